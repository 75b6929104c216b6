"""Power scheduler keeps the battery above its DoD floor; storage retention drops what the policy says."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.errors import StorageError
from pipelines.node import Job, PowerConfig, PowerModel, StorageConfig
from pipelines.node.storage import OnboardStorage, StoredItem


def _orbit_sun(n: int, dt: float, period_s: float = 5700.0, eclipse: float = 0.36) -> np.ndarray:
    t = np.arange(n) * dt
    return (t % period_s) >= eclipse * period_s  # eclipse first, then sunlight


def test_processing_never_takes_battery_below_floor() -> None:
    # 300 Wh, full at the start of eclipse: the bus alone (150 W x 34 min = 86 Wh) stays above
    # the 210 Wh floor, so any dip below it could only come from processing.
    cfg = PowerConfig(battery_wh=300.0, initial_soc=1.0)
    dt = 10.0
    sun = _orbit_sun(2000, dt)
    jobs = [Job(f"s{i}", i * 300.0, 120.0, 300.0) for i in range(40)]  # 10 Wh each, heavy
    sched = PowerModel(cfg).simulate(dt, sun, 0.0, jobs)
    floor = cfg.battery_wh * cfg.floor_soc
    assert sched.soc_wh.min() >= floor - 1e-9
    assert sched.deferred_steps > 0 and sched.bus_floor_violations == 0
    assert not sched.unfinished  # everything ran eventually, in sunlight
    # Jobs that became ready in eclipse with no margin waited, and started in sunlight.
    waited = [r for j, r in ((j, sched.runs[j.job_id]) for j in jobs) if r.start_s > j.ready_s + dt]
    assert waited and all(sun[int(r.start_s // dt)] for r in waited)
    assert sum(r.energy_wh for r in sched.runs.values()) == pytest.approx(40 * 10.0)


def test_without_jobs_the_battery_follows_sun_and_load() -> None:
    cfg = PowerConfig()
    sched = PowerModel(cfg).simulate(10.0, np.ones(360, bool), 0.0, [])
    assert sched.soc_wh[-1] == pytest.approx(min(cfg.battery_wh, cfg.initial_soc * cfg.battery_wh
                                                 + (cfg.solar_w - cfg.bus_load_w) * 1.0))
    dark = PowerModel(cfg).simulate(10.0, np.zeros(1080, bool), 0.0, [Job("j", 0.0, 10.0, 60.0)])
    assert dark.bus_floor_violations > 0  # 3 h of eclipse with bus load: a sizing problem, reported
    # The eclipse reserve exceeds the margin above the floor, so the GPU job never starts.
    assert "j" not in dark.runs and dark.unfinished == ["j"]


def test_storage_oldest_first() -> None:
    st = OnboardStorage(StorageConfig(capacity_bytes=100))
    for i in range(4):
        assert st.add(StoredItem(f"s{i}", 30, created_s=float(i))) == ([] if i < 3 else [st.dropped[0]])
    assert [d.item_id for d in st.dropped] == ["s0"] and st.used_bytes == 90
    st.remove("s2")
    assert st.used_bytes == 60 and "s2" not in st
    with pytest.raises(StorageError):
        st.remove("s2")
    with pytest.raises(StorageError):
        st.add(StoredItem("huge", 101, 9.0))
    with pytest.raises(StorageError):
        st.add(StoredItem("s1", 1, 9.0))


def test_storage_lowest_priority_first_and_new_item_can_lose() -> None:
    st = OnboardStorage(StorageConfig(capacity_bytes=100, retention="lowest_priority"))
    st.add(StoredItem("old-important", 40, 0.0, priority=5))
    st.add(StoredItem("mid", 40, 1.0, priority=1))
    dropped = st.add(StoredItem("new-urgent", 40, 2.0, priority=9))
    assert [d.item_id for d in dropped] == ["mid"]
    dropped = st.add(StoredItem("new-junk", 40, 3.0, priority=0))
    assert [d.item_id for d in dropped] == ["new-junk"] and "new-junk" not in st
    assert {i.item_id for i in st.items()} == {"old-important", "new-urgent"}
