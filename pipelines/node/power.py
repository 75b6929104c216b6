"""Energy budget: when may the GPU run without pushing the battery below its depth-of-discharge floor?

Why a scheduler and not just an average: processing is deferrable, the bus and the radar are not.
A scene that arrives in eclipse with a low battery waits for sunlight instead of eating into the
cycle-life margin; the benchmark's latency numbers include that wait.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from pipelines.errors import NodeConfigError
from pipelines.node.config import PowerConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Job:
    """A deferrable load: process one scene for ``duration_s`` at ``power_w`` once ``ready_s`` has passed."""

    job_id: str
    ready_s: float
    duration_s: float
    power_w: float


@dataclass(slots=True)
class JobRun:
    """When a job actually ran and what it cost."""

    job_id: str
    start_s: float
    end_s: float
    energy_wh: float = 0.0


@dataclass(slots=True)
class PowerSchedule:
    """The day's state of charge and the jobs' actual start/end times."""

    dt_s: float
    soc_wh: np.ndarray  # state of charge at the END of each step
    floor_wh: float
    capacity_wh: float
    runs: dict[str, JobRun] = field(default_factory=dict)
    unfinished: list[str] = field(default_factory=list)
    deferred_steps: int = 0
    #: Steps where non-deferrable loads alone pulled the battery below the floor (a sizing problem).
    bus_floor_violations: int = 0
    compute_energy_wh: float = 0.0
    solar_energy_wh: float = 0.0


class PowerModel:
    """Steps the battery through a day of sunlight, fixed loads and deferrable jobs (FIFO)."""

    def __init__(self, cfg: PowerConfig) -> None:
        self.cfg = cfg

    @property
    def floor_wh(self) -> float:
        return self.cfg.battery_wh * self.cfg.floor_soc

    def simulate(self, dt_s: float, sunlit: np.ndarray, fixed_load_w: np.ndarray | float,
                 jobs: Sequence[Job], soc0_wh: float | None = None) -> PowerSchedule:
        """Run jobs in ready order, a step at a time, only if the battery stays above the floor.

        "Stays" includes the future: a step runs only if, after it, the battery still holds the
        fixed loads' deficit until the end of the next (or current) eclipse. Without that reserve a
        GPU burst just before eclipse would push the bus below the floor half an orbit later.
        ``sunlit`` and ``fixed_load_w`` (loads beyond the bus: radar, transmitters) are per step.
        """
        if dt_s <= 0:
            raise NodeConfigError(f"power step must be > 0, got {dt_s}")
        sun = np.asarray(sunlit, dtype=bool)
        n = sun.size
        load = np.broadcast_to(np.asarray(fixed_load_w, dtype=np.float64), (n,))
        cap, floor = self.cfg.battery_wh, self.floor_wh
        soc = self.cfg.initial_soc * cap if soc0_wh is None else float(soc0_wh)
        if not (0.0 <= soc <= cap):
            raise NodeConfigError(f"initial state of charge {soc} Wh outside [0, {cap}]")
        pending = sorted(jobs, key=lambda j: (j.ready_s, j.job_id))
        remaining = {j.job_id: j.duration_s for j in pending}
        out = PowerSchedule(dt_s=dt_s, soc_wh=np.empty(n), floor_wh=floor, capacity_wh=cap)
        h = dt_s / 3600.0
        solar_w = np.where(sun, self.cfg.solar_w, 0.0)
        deficit = np.maximum(0.0, self.cfg.bus_load_w + load - solar_w) * h
        cum = np.concatenate([[0.0], np.cumsum(deficit)])
        eclipse_end = np.empty(n, dtype=np.int64)  # end of the eclipse run containing/after each step
        cur = n - 1
        for k in range(n - 1, -1, -1):
            if not sun[k] and (k + 1 == n or sun[k + 1]):
                cur = k
            eclipse_end[k] = cur
        qi = 0
        for k in range(n):
            t = k * dt_s
            solar = self.cfg.solar_w if sun[k] else 0.0
            out.solar_energy_wh += solar * h
            net = solar - self.cfg.bus_load_w - float(load[k])
            busy = 0.0
            if qi < len(pending) and pending[qi].ready_s <= t + dt_s:
                job = pending[qi]
                begin = max(t, job.ready_s)
                run_s = min(remaining[job.job_id], t + dt_s - begin)
                cost = job.power_w * run_s / 3600.0
                reserve = cum[eclipse_end[k + 1] + 1] - cum[k + 1] if k + 1 < n else 0.0
                if soc + net * h - cost - reserve >= floor:
                    busy = cost
                    run = out.runs.setdefault(job.job_id, JobRun(job.job_id, begin, begin + run_s))
                    run.end_s = begin + run_s
                    run.energy_wh += cost
                    remaining[job.job_id] -= run_s
                    if remaining[job.job_id] <= 1e-9:
                        qi += 1
                else:
                    out.deferred_steps += 1
            new = min(cap, soc + net * h - busy)
            if new < floor and soc + net * h < floor:
                out.bus_floor_violations += 1
            soc = max(0.0, new)
            out.compute_energy_wh += busy
            out.soc_wh[k] = soc
        out.unfinished = [j.job_id for j in pending[qi:]]
        if out.bus_floor_violations:
            log.warning("fixed loads alone took the battery below the DoD floor in %d steps", out.bus_floor_violations)
        return out
