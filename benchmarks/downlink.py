"""What does processing on board buy over downlinking pixels? One simulated day, honest numbers.

A Capella-like SAR smallsat (CAPELLA-7-WHITNEY's real TLE, SGP4) over the reference ground
stations collects N spotlight scenes. Four scenarios share the same orbit, contacts, collects and
power model:

* raw_xband   - downlink every raw scene over X-band; the ground detects after the scene is down.
* raw_relay   - the same, and the low-rate GEO relay carries raw bytes too whenever reachable.
* onboard_xband - detect on board; alert packets (+ thumbnails) go down at the next contact; raw
                  scenes stay in onboard storage (retention policy).
* onboard_relay - the same, and alerts/thumbnails go out over the relay as soon as it is reachable.
* onboard_xband+raw - onboard_xband, but every raw scene is also queued behind the alerts at the
                  lowest priority: shows alerts are never delayed by a raw backlog.

Every byte count is a real encoded packet (alerts via pipelines.alerts.packets, thumbnails from the
committed sample SAR scene via pipelines.alerts.thumbnail); every contact comes from SGP4; every
queue decision goes through pipelines.downlink. Run: ``python benchmarks/downlink.py`` (< 1 min).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipelines.alerts.model import Alert, make_alert_id  # noqa: E402
from pipelines.alerts.packets import SequenceCounter  # noqa: E402
from pipelines.alerts.thumbnail import make_thumbnail  # noqa: E402
from pipelines.downlink import Channel, DownlinkQueue, GroundEndpoint, Priority, QueueItem, enqueue_alerts, run_pass  # noqa: E402
from pipelines.node import Job, NodeConfig, OrbitalNode, StoredItem, merge_windows  # noqa: E402
from pipelines.node.config import PARAM_SOURCES  # noqa: E402

#: Capella spotlight GEO product: 24,638 x 24,103 uint16 (issue brief, from Capella sample data).
GEO_SHAPE = (24_638, 24_103)
GEO_BYTES = GEO_SHAPE[0] * GEO_SHAPE[1] * 2
#: Capella spotlight SLC: up to 7.25 GB (issue brief).
SLC_BYTES = 7_250_000_000
SCENARIOS = ("raw_xband", "raw_relay", "onboard_xband", "onboard_relay", "onboard_xband+raw")
SAMPLE_SAR = ROOT / "sample_scenes" / "sar" / "calais_geo_050cm.tif"

log = logging.getLogger("benchmarks.downlink")


@dataclass
class Params:
    """Benchmark-only parameters (node parameters live in NodeConfig)."""

    collects: int = 40
    alerts_min: int = 10  # per scene; the committed sample SAR scenes hold 22-26 true vessels
    alerts_max: int = 50
    lifeboat_share: float = 0.05
    product: str = "geo"
    thumbnails: bool = True
    thumb_side: int = 32
    thumb_bits: int = 4
    collect_s: float = 10.0  # spotlight dwell (assumption)
    ground_processing_s: float = 60.0  # raw route: ground forms/reads and scans a scene (assumption)
    ground_alert_s: float = 1.0  # ground receiver -> store -> webhook (benchmarks/ground.py measures ms)
    dt_s: float = 5.0
    seed: int = 7

    @property
    def raw_bytes(self) -> int:
        return GEO_BYTES if self.product == "geo" else SLC_BYTES


@dataclass
class Scene:
    idx: int
    name: str
    start_s: float
    end_s: float
    alerts: list[Alert]
    thumbs: dict[str, bytes]
    ready_s: float = 0.0  # onboard: processing finished


@dataclass
class Result:
    name: str
    bytes_by_class: dict[str, int] = field(default_factory=dict)
    xband_tx_s: float = 0.0
    relay_tx_s: float = 0.0
    contacts_used: int = 0
    backlog_bytes: dict[str, int] = field(default_factory=dict)
    latencies_s: list[float] = field(default_factory=list)
    undelivered_alerts: int = 0
    energy_wh: dict[str, float] = field(default_factory=dict)
    first_contact_share: float | None = None
    storage_end_bytes: int = 0

    def summary(self) -> dict[str, Any]:
        lat = np.array(self.latencies_s)
        q = (lambda p: float(np.percentile(lat, p))) if lat.size else (lambda p: None)
        return {
            "bytes_downlinked": self.bytes_by_class, "xband_tx_s": round(self.xband_tx_s, 1),
            "relay_tx_s": round(self.relay_tx_s, 1), "contacts_used": self.contacts_used,
            "backlog_bytes_end_of_day": self.backlog_bytes,
            "alert_latency_s": {"median": q(50), "p95": q(95), "max": float(lat.max()) if lat.size else None,
                                "delivered": int(lat.size), "undelivered": self.undelivered_alerts},
            "energy_wh": {k: round(v, 2) for k, v in self.energy_wh.items()},
            "alerts_in_first_contact_after_ready": self.first_contact_share,
            "storage_used_end_bytes": self.storage_end_bytes,
        }


def make_scenes(p: Params, node: OrbitalNode, start: datetime, rng: np.random.Generator) -> list[Scene]:
    """N non-overlapping collects at random times; synthetic alerts; thumbnails from a real SAR chip."""
    thumb_src = None
    if p.thumbnails:
        import rasterio

        with rasterio.open(SAMPLE_SAR) as ds:
            thumb_src = ds.read(1)
        truth = json.loads(SAMPLE_SAR.with_name(SAMPLE_SAR.stem + "_truth.geojson").read_text())
        centres = [(f["properties"]["row"], f["properties"]["col"]) for f in truth["features"]]
    slots = np.sort(rng.choice(int(86400 // 120) - 1, size=p.collects, replace=False)) * 120.0
    slots += rng.uniform(0, 120.0 - p.collect_s, size=p.collects)
    lat = node.orbit.subpoint_lat_deg(start, slots)
    scenes = []
    for i, t in enumerate(slots):
        acq = start + timedelta(seconds=float(t))
        name = f"CAPELLA_C07_SP_GEO_HH_{acq:%Y%m%d%H%M%S}"
        n = int(rng.integers(p.alerts_min, p.alerts_max + 1))
        alerts, thumbs = [], {}
        for k in range(n):
            kind = "lifeboat" if rng.random() < p.lifeboat_share else "vessel"
            r, c = float(rng.uniform(0, GEO_SHAPE[0])), float(rng.uniform(0, GEO_SHAPE[1]))
            a = Alert(alert_id=make_alert_id(name, kind, r, c, "sar-cfar"), scene=name, kind=kind,
                      score=float(rng.uniform(0.5, 1.0)), lon=float(rng.uniform(-180, 180)),
                      lat=float(np.clip(lat[i] + rng.uniform(-0.05, 0.05), -90, 90)), row=r, col=c, acquired=acq,
                      detector="sar-cfar", length_m=float(rng.uniform(5, 300)) if kind == "vessel" else 6.0,
                      width_m=float(rng.uniform(2, 40)) if kind == "vessel" else 2.5,
                      heading_deg=float(rng.uniform(0, 360)))
            alerts.append(a)
            if thumb_src is not None:
                rr, cc = centres[(i * 7 + k) % len(centres)]
                thumbs[a.alert_id] = make_thumbnail(thumb_src, rr, cc, p.thumb_side, p.thumb_bits)
        scenes.append(Scene(i, name, float(t), float(t) + p.collect_s, alerts, thumbs))
    return scenes


def simulate(name: str, p: Params, cfg: NodeConfig, node: OrbitalNode, start: datetime, scenes: list[Scene],
             t: np.ndarray, in_contact: np.ndarray, contact_id: np.ndarray, relay_ok: np.ndarray,
             contact_starts: np.ndarray) -> Result:
    """Step through the day: enqueue what is ready, run X-band / relay passes, record deliveries."""
    onboard = name.startswith("onboard")
    use_relay = "relay" in name
    raw_behind = name.endswith("+raw")
    lk = cfg.link
    res = Result(name)
    queue = DownlinkQueue()
    ground = GroundEndpoint()
    chan = Channel(lk.bit_error_rate, seed=p.seed)
    counter = SequenceCounter()
    storage = type(node.storage)(cfg.storage)
    x_rate = lk.xband_rate_bps / 8 * (1 - lk.protocol_overhead)  # user bytes/s
    r_rate = lk.relay_rate_bps / 8 * (1 - lk.protocol_overhead)
    sent_class = {"alerts": 0, "thumbnails": 0, "raw": 0}
    delivered: dict[str, float] = {}  # item id -> time the ground has it
    raw_id = {s.name: f"raw:{s.name}" for s in scenes}
    events = sorted(((s.ready_s if onboard else s.end_s), s.idx) for s in scenes)
    ev = 0
    used_contacts: set[int] = set()
    for k, tk in enumerate(t):
        while ev < len(events) and events[ev][0] <= tk + p.dt_s:
            s = scenes[events[ev][1]]
            when = events[ev][0]
            if onboard:
                enqueue_alerts(queue, s.alerts, when, counter, s.thumbs if p.thumbnails else None)
            if not onboard or raw_behind:
                queue.enqueue(QueueItem(raw_id[s.name], Priority.RAW, p.raw_bytes, s.end_s, divisible=True))
            storage.add(StoredItem(raw_id[s.name], p.raw_bytes, s.end_s))
            ev += 1
        if not len(queue):
            continue
        if in_contact[k]:
            rate, latency, link = x_rate, 0.0, "x"
            rep = run_pass(queue, int(rate * p.dt_s), chan, ground, now_s=tk + p.dt_s)
        elif use_relay and relay_ok[k]:
            rate, latency, link = r_rate, lk.relay_latency_s, "r"
            rep = run_pass(queue, int(rate * p.dt_s), chan, ground, now_s=tk + p.dt_s,
                           max_priority=Priority.RAW if not onboard else Priority.THUMBNAIL)
        else:
            continue
        if not rep.sent:
            continue
        if link == "x":
            used_contacts.add(int(contact_id[k]))
        cum = 0
        acked = set(rep.acked)
        items_done: dict[str, float] = {}
        for item_id, prio, nb in rep.sent:
            cum += nb
            cls = "alerts" if prio == Priority.ALERT else "thumbnails" if prio == Priority.THUMBNAIL else "raw"
            sent_class[cls] += nb
            if item_id in acked:
                items_done[item_id] = tk + cum / rate + latency
        busy = cum / rate
        if link == "x":
            res.xband_tx_s += busy
        else:
            res.relay_tx_s += busy
        for item_id, when in items_done.items():
            delivered.setdefault(item_id, when)
            if item_id.startswith("raw:"):
                storage.remove(item_id)
    # Latencies: acquisition (collect start) -> alert available on the ground.
    in_first = 0
    n_alerts = 0
    for s in scenes:
        for a in s.alerts:
            n_alerts += 1
            if onboard:
                got = delivered.get(a.alert_id)
            else:
                raw_t = delivered.get(raw_id[s.name])
                got = None if raw_t is None else raw_t + p.ground_processing_s
            if got is None:
                res.undelivered_alerts += 1
                continue
            res.latencies_s.append(got + p.ground_alert_s - s.start_s)
            if onboard and not use_relay and s.ready_s < np.inf:
                nxt = contact_starts[contact_starts >= s.ready_s - 1e-6]
                # Delivered in the first contact that opened after the alert was ready?
                bound = nxt[1] if nxt.size > 1 else np.inf
                in_first += int(got < bound)
    if onboard and not use_relay and n_alerts:
        res.first_contact_share = in_first / max(1, n_alerts - res.undelivered_alerts)
    res.bytes_by_class = sent_class
    res.backlog_bytes = {"alerts": queue.pending_bytes(Priority.ALERT),
                         "thumbnails": queue.pending_bytes(Priority.THUMBNAIL),
                         "raw": queue.pending_bytes(Priority.RAW)}
    res.contacts_used = len(used_contacts)
    res.storage_end_bytes = storage.used_bytes
    res.energy_wh = {"xband_tx": res.xband_tx_s * cfg.power.xband_tx_w / 3600,
                     "relay_tx": res.relay_tx_s * cfg.power.relay_terminal_w / 3600}
    return res


def run(p: Params, cfg: NodeConfig) -> dict[str, Any]:
    t0 = time.perf_counter()
    node = OrbitalNode(cfg)
    start = node.tle.epoch.replace(microsecond=0)
    rng = np.random.default_rng(p.seed)
    day = 86400.0
    t = np.arange(0.0, day, p.dt_s)
    windows = node.contacts(start, day)
    merged = merge_windows(windows, start)
    setup = cfg.link.contact_setup_s
    in_contact = np.zeros(t.size, bool)
    contact_id = np.full(t.size, -1)
    for i, (a, b) in enumerate(merged):
        m = (t >= a + setup) & (t + p.dt_s <= b)
        in_contact |= m
        contact_id[m] = i
    contact_starts = np.array([a + setup for a, _ in merged])
    sunlit = node.sunlit(start, t)
    relay_ok = node.relay_available(start, t)
    scenes = make_scenes(p, node, start, rng)

    # Power: onboard processing scheduled inside the energy budget. Fixed loads are deliberately
    # conservative: SAR during collects, X-band TX for every whole contact, relay terminal whenever
    # reachable; the energy *reported* per scenario counts only actual transmit time.
    fixed = np.zeros(t.size)
    for s in scenes:
        fixed[(t >= s.start_s - p.dt_s) & (t < s.end_s)] += cfg.power.sar_imaging_w
    fixed[in_contact] += cfg.power.xband_tx_w
    fixed[relay_ok & ~in_contact] += cfg.power.relay_terminal_w
    pixels = GEO_SHAPE[0] * GEO_SHAPE[1]
    proc_s = node.processing_s(pixels)
    jobs = [Job(s.name, s.end_s, proc_s, cfg.compute.power_w) for s in scenes]
    sched = node.power.simulate(p.dt_s, sunlit, fixed, jobs)
    for s in scenes:
        run_ = sched.runs.get(s.name)
        s.ready_s = run_.end_s if run_ is not None and s.name not in sched.unfinished else float("inf")
    sched_raw = node.power.simulate(p.dt_s, sunlit, fixed, [])

    results = {}
    for name in SCENARIOS:
        r = simulate(name, p, cfg, node, start, scenes, t, in_contact, contact_id, relay_ok, contact_starts)
        r.energy_wh["compute"] = sched.compute_energy_wh if name.startswith("onboard") else 0.0
        r.energy_wh["sar"] = len(scenes) * p.collect_s * cfg.power.sar_imaging_w / 3600
        results[name] = r

    alert_bytes = [sum(len(x) for x in _packets_for(s)) for s in scenes]
    thumb_bytes = [sum(len(b) for b in s.thumbs.values()) for s in scenes]
    ratio = [p.raw_bytes / b for b in alert_bytes]
    ratio_thumb = [p.raw_bytes / (b + tb) for b, tb in zip(alert_bytes, thumb_bytes)] if p.thumbnails else None
    out = {
        "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "runtime_s": None,
        "params": dataclasses.asdict(p) | {"raw_bytes_per_scene": p.raw_bytes},
        "node_config": cfg.to_dict(),
        "satellite": node.tle.name, "tle_epoch": node.tle.epoch.isoformat(), "day_start": start.isoformat(),
        "orbit": {"altitude_km": round(node.orbit.altitude_km(start), 1),
                  "beta_deg": round(node.orbit.beta_angle_deg(start), 1),
                  "eclipse_fraction": round(float(1 - sunlit.mean()), 4),
                  "relay_reachable_fraction": round(float(relay_ok.mean()), 4)},
        "contacts": {"passes": len(windows), "merged_windows": len(merged),
                     "contact_s": round(sum(b - a for a, b in merged), 1),
                     "usable_s": round(float(in_contact.sum() * p.dt_s), 1),
                     "xband_capacity_bytes": int(in_contact.sum() * p.dt_s * cfg.link.xband_rate_bps / 8
                                                 * (1 - cfg.link.protocol_overhead))},
        "per_scene": {"alerts_mean": float(np.mean([len(s.alerts) for s in scenes])),
                      "alert_packet_bytes_median": float(np.median(alert_bytes)),
                      "thumbnail_bytes_median": float(np.median(thumb_bytes)) if p.thumbnails else 0.0,
                      "raw_to_alert_ratio_median": float(np.median(ratio)),
                      "raw_to_alert_ratio_min": float(np.min(ratio)),
                      "raw_to_alert_plus_thumbnail_ratio_median": None if ratio_thumb is None else float(np.median(ratio_thumb)),
                      "onboard_processing_s": round(proc_s, 2)},
        "power": {"min_soc_fraction": round(float(sched.soc_wh.min() / sched.capacity_wh), 4),
                  "floor_fraction": cfg.power.floor_soc, "deferred_steps": sched.deferred_steps,
                  "bus_floor_violations": sched.bus_floor_violations,
                  "min_soc_fraction_without_processing": round(float(sched_raw.soc_wh.min() / sched_raw.capacity_wh), 4)},
        "scenarios": {k: v.summary() for k, v in results.items()},
    }
    out["runtime_s"] = round(time.perf_counter() - t0, 2)
    out["_series"] = {"t": t, "in_contact": in_contact, "relay_ok": relay_ok, "sunlit": sunlit, "soc": sched.soc_wh,
                      "scenes": scenes, "results": results}
    return out


def _sweep_values(spec: str, measured: Path) -> list[tuple[float, str]]:
    """The sweep's Mpx/s values, each with where it came from (assumed, or measured and where)."""
    vals = [(float(x), "assumed") for x in spec.split(",") if x.strip()]
    if spec.strip() and measured.is_file():
        try:
            m = json.loads(measured.read_text())
            runs = (m.get("scene") or {}).get("runs") or []
            for r in runs:
                mpx = r.get("mpx_s_end_to_end")
                if mpx:
                    vals.append((float(mpx), f"measured: {m.get('hardware', '?')}, {r.get('rows')}x{r.get('cols')} "
                                              f"scene, {'+'.join(r.get('detectors', []))} on {r.get('device')} "
                                              f"({measured.name})"))
        except (OSError, ValueError, TypeError) as e:  # a broken results file must not stop the benchmark
            log.warning("ignoring %s: %s", measured, e)
    return sorted(vals)


def sensitivity(p: Params, cfg: NodeConfig, values: list[tuple[float, str]]) -> list[dict[str, Any]]:
    """Why: the on-board latency depends on the compute throughput, which is an assumption until it
    is measured on flight-like hardware. Re-run the day for each value and report what it implies."""
    rows = []
    for mpx, source in values:
        c = dataclasses.replace(cfg, compute=dataclasses.replace(cfg.compute, throughput_mpx_s=mpx))
        o = run(p, c)
        o.pop("_series", None)
        sc = o["scenarios"]
        rows.append({"throughput_mpx_s": round(mpx, 3), "source": source,
                     "processing_s_per_scene": o["per_scene"]["onboard_processing_s"],
                     "relay_latency_s": sc["onboard_relay"]["alert_latency_s"],
                     "xband_latency_s": sc["onboard_xband"]["alert_latency_s"],
                     "min_soc_fraction": o["power"]["min_soc_fraction"],
                     "deferred_steps": o["power"]["deferred_steps"]})
    return rows


def _packets_for(s: Scene) -> list[bytes]:
    from pipelines.alerts.packets import alerts_to_packets

    return alerts_to_packets(s.alerts, headers=True)


def _fmt_lat(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:.0f} s" if x < 120 else f"{x / 60:.1f} min"


def table(out: dict[str, Any]) -> str:
    rows = ["scenario          | alert B   | thumb B   | raw GB  | X tx s | relay s | backlog raw GB | "
            "latency med / p95 / max      | undeliv | E tx+relay+compute Wh"]
    for k, v in out["scenarios"].items():
        b, lat, e = v["bytes_downlinked"], v["alert_latency_s"], v["energy_wh"]
        rows.append(f"{k:17s} | {b['alerts']:9d} | {b['thumbnails']:9d} | {b['raw'] / 1e9:7.2f} | "
                    f"{v['xband_tx_s']:6.1f} | {v['relay_tx_s']:7.0f} | {v['backlog_bytes_end_of_day']['raw'] / 1e9:14.2f} | "
                    f"{_fmt_lat(lat['median']):>8s} / {_fmt_lat(lat['p95']):>8s} / {_fmt_lat(lat['max']):>8s} | "
                    f"{lat['undelivered']:7d} | {e['xband_tx'] + e['relay_tx'] + e['compute']:.1f}")
    return "\n".join(rows)


def plot(out: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = out["_series"]
    t_h = s["t"] / 3600
    fig, (ax0, ax1) = plt.subplots(2, 1, figsize=(11, 8), gridspec_kw={"height_ratios": [1.1, 1]})
    ax0.fill_between(t_h, 0, 1, where=~s["sunlit"], color="0.85", step="post", label="eclipse", lw=0)
    ax0.fill_between(t_h, 1.1, 2.1, where=s["in_contact"], color="tab:blue", step="post", label="X-band contact", lw=0)
    ax0.fill_between(t_h, 2.2, 3.2, where=s["relay_ok"], color="tab:green", alpha=0.5, step="post",
                     label="GEO relay reachable", lw=0)
    for sc in s["scenes"]:
        ax0.plot([sc.start_s / 3600] * 2, [3.3, 4.3], color="k", lw=1)
    ax0.plot(t_h, s["soc"] / out["node_config"]["power"]["battery_wh"] * 1.0 + 4.5, color="tab:orange",
             label="battery SoC (onboard)")
    floor = out["power"]["floor_fraction"]
    ax0.axhline(4.5 + floor, color="tab:red", ls="--", lw=0.8, label=f"DoD floor {floor:.0%}")
    ax0.set_yticks([0.5, 1.6, 2.7, 3.8, 5.2], ["eclipse", "X-band contact", "relay reachable", "collects",
                                                "battery SoC"])
    ax0.set_xlabel(f"hours since {out['day_start'][:16]}Z ({out['satellite']})")
    ax0.set_xlim(0, 24)
    ax0.set_ylim(-0.1, 5.7)
    ax0.legend(handles=[h for h in ax0.get_lines() if h.get_label().startswith(("battery", "DoD"))],
               loc="lower right", fontsize=7, ncol=2)
    ax0.set_title("One day: contacts, relay coverage, collects, battery")
    styles = {"raw_xband": ("tab:orange", "-"), "raw_relay": ("tab:red", ":"), "onboard_xband": ("tab:blue", "-"),
              "onboard_relay": ("tab:green", "-"), "onboard_xband+raw": ("navy", "--")}
    for name, r in s["results"].items():
        lat = np.sort(np.array(r.latencies_s)) / 60
        if lat.size:
            color, ls = styles.get(name, ("k", "-"))
            ax1.step(lat, np.arange(1, lat.size + 1) / (lat.size + r.undelivered_alerts), where="post", label=name,
                     color=color, ls=ls, lw=1.6)
    ax1.set_xscale("log")
    ax1.axvline(5, color="k", ls=":", lw=0.8)
    ax1.text(5.2, 0.05, "5 min", fontsize=8)
    ax1.set_xlabel("acquisition -> alert on the ground (minutes, log)")
    ax1.set_ylabel("share of alerts")
    ax1.grid(alpha=0.3)
    ax1.legend(fontsize=8)
    ratio = out["per_scene"]["raw_to_alert_ratio_median"]
    ax1.set_title(f"Alert latency; raw scene / alert packets = {ratio:,.0f}x bytes (median scene)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _sensitivity_md(out: dict[str, Any]) -> list[str]:
    rows = out.get("throughput_sensitivity") or []
    if not rows:
        return []
    lines = ["* On-board throughput sensitivity (same day, only `compute.throughput_mpx_s` changed):", "",
             "  | Mpx/s | source | processing s/scene | relay latency median | p95 | X-band median | battery min |",
             "  |---|---|---|---|---|---|---|"]
    for r in rows:
        rl, xl = r["relay_latency_s"], r["xband_latency_s"]
        lines.append(f"  | {r['throughput_mpx_s']:g} | {r['source']} | {r['processing_s_per_scene']:g} | "
                     f"{_fmt_lat(rl['median'])} | {_fmt_lat(rl['p95'])} | {_fmt_lat(xl['median'])} | "
                     f"{r['min_soc_fraction']:.1%} |")
    return lines + [""]


def markdown(out: dict[str, Any], cmd: str) -> str:
    ps, sc = out["per_scene"], out["scenarios"]
    lines = [
        "## Downlink benchmark: on-board detection vs downlinking raw scenes",
        "",
        f"`{cmd}` simulates one day ({out['day_start'][:19]}Z, the TLE epoch) of {out['satellite']} "
        f"({out['orbit']['altitude_km']} km, beta {out['orbit']['beta_deg']} deg, eclipse "
        f"{out['orbit']['eclipse_fraction']:.1%} of the day) with {out['params']['collects']} spotlight collects. "
        f"It ran in {out['runtime_s']} s. Contacts: {out['contacts']['passes']} passes over the reference stations, "
        f"{out['contacts']['merged_windows']} distinct windows, {out['contacts']['contact_s'] / 60:.0f} min in view.",
        "",
        "| scenario | alert bytes | thumbnail bytes | raw bytes | X-band tx s | relay tx s | raw backlog (GB) | "
        "latency median | p95 | max | undelivered | tx+relay+compute energy (Wh) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for k, v in sc.items():
        b, lat, e = v["bytes_downlinked"], v["alert_latency_s"], v["energy_wh"]
        lines.append(f"| {k} | {b['alerts']:,} | {b['thumbnails']:,} | {b['raw']:,} | {v['xband_tx_s']:.0f} | "
                     f"{v['relay_tx_s']:.0f} | {v['backlog_bytes_end_of_day']['raw'] / 1e9:.2f} | "
                     f"{_fmt_lat(lat['median'])} | {_fmt_lat(lat['p95'])} | {_fmt_lat(lat['max'])} | "
                     f"{lat['undelivered']} | {e['xband_tx'] + e['relay_tx'] + e['compute']:.1f} |")
    lines += [
        "",
        f"* Bytes per scene: raw {out['params']['raw_bytes_per_scene']:,} B vs alert packets (scene header + "
        f"one 53-byte packet per alert) median {ps['alert_packet_bytes_median']:,.0f} B: "
        f"**{ps['raw_to_alert_ratio_median']:,.0f}x** fewer bytes (worst scene {ps['raw_to_alert_ratio_min']:,.0f}x). "
        + (f"With {out['params']['thumb_side']}x{out['params']['thumb_side']} {out['params']['thumb_bits']}-bit thumbnails "
           f"(median {ps['thumbnail_bytes_median']:,.0f} B per scene) the ratio is "
           f"{ps['raw_to_alert_plus_thumbnail_ratio_median']:,.0f}x." if out['params']['thumbnails'] else ""),
        f"* Without the relay, on-board alerts wait for the next contact and nothing else: "
        f"{(sc['onboard_xband']['alerts_in_first_contact_after_ready'] or 0):.0%} of them reached the ground in the "
        f"first contact after they were ready; with every raw scene queued behind them (onboard_xband+raw) "
        f"{(sc['onboard_xband+raw']['alerts_in_first_contact_after_ready'] or 0):.0%} did. Alerts of scenes "
        "collected after the day's last contact count as undelivered (the day ends before the next pass).",
        f"* On-board processing: {ps['onboard_processing_s']} s per scene at the PLACEHOLDER throughput "
        f"({out['node_config']['compute']['throughput_mpx_s']} Mpx/s); battery minimum "
        f"{out['power']['min_soc_fraction']:.1%} (floor {out['power']['floor_fraction']:.0%}), "
        f"{out['power']['deferred_steps']} deferred steps.",
        *_sensitivity_md(out),
        "* Latency = acquisition start -> alert available on the ground (raw routes: scene fully downlinked + "
        "ground processing). Energy counts actual transmit time and on-board compute; SAR collects cost the same in "
        "every scenario.",
        "",
        "Assumptions and parameters (node: `pipelines/node/config.py`; benchmark: `benchmarks/downlink.py`):",
        "",
        "| parameter | value | source |",
        "|---|---|---|",
    ]
    cfg = out["node_config"]
    for key, src in PARAM_SOURCES.items():
        sec, name = key.split(".")
        lines.append(f"| `{key}` | {cfg[sec][name]} | {src} |")
    bench_src = {
        "collects": "issue: N collects per day (parameter)",
        "alerts_min": "committed sample SAR scenes hold 22-26 vessels; range is a parameter",
        "alerts_max": "as above",
        "lifeboat_share": "assumption",
        "product": "geo: Capella spotlight GEO 24,638 x 24,103 uint16 = 1.19 GB; slc: up to 7.25 GB (issue brief)",
        "thumbnails": "optional 32x32 chips from the committed sample SAR scene",
        "thumb_side": "choice", "thumb_bits": "choice: 4 bits ~ 500 B per chip (speckle barely compresses)",
        "collect_s": "assumption: spotlight dwell", "ground_processing_s": "assumption: ground forms + scans a scene",
        "ground_alert_s": "assumption (benchmarks/ground.py measures the ground path in ms)",
        "dt_s": "simulation step", "seed": "reproducibility",
    }
    for k, v in out["params"].items():
        if k in bench_src:
            lines.append(f"| `{k}` | {v} | {bench_src[k]} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--collects", type=int, default=Params.collects)
    ap.add_argument("--alerts-min", type=int, default=Params.alerts_min)
    ap.add_argument("--alerts-max", type=int, default=Params.alerts_max)
    ap.add_argument("--product", choices=("geo", "slc"), default=Params.product)
    ap.add_argument("--no-thumbnails", action="store_true")
    ap.add_argument("--no-relay", action="store_true", help="disable the relay in the node config")
    ap.add_argument("--config", type=Path, help="node config .json/.toml (pipelines.node.NodeConfig)")
    ap.add_argument("--seed", type=int, default=Params.seed)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    ap.add_argument("--readme", type=Path, default=ROOT / "benchmarks" / "README_downlink.md")
    ap.add_argument("--throughput-sweep", default="1,5,20,50,200,1000",
                    help="comma-separated on-board Mpx/s values for the latency sensitivity table ('' to skip)")
    ap.add_argument("--measured", type=Path, default=ROOT / "benchmarks" / "results" / "throughput.json",
                    help="benchmarks/throughput.py results: their scene-level Mpx/s joins the sweep")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    p = Params(collects=a.collects, alerts_min=a.alerts_min, alerts_max=a.alerts_max, product=a.product,
               thumbnails=not a.no_thumbnails, seed=a.seed)
    cfg = NodeConfig.load(a.config) if a.config else NodeConfig()
    if a.no_relay:
        cfg = dataclasses.replace(cfg, link=dataclasses.replace(cfg.link, relay_enabled=False))
    out = run(p, cfg)
    out["throughput_sensitivity"] = sensitivity(p, cfg, _sweep_values(a.throughput_sweep, a.measured))
    a.out.mkdir(parents=True, exist_ok=True)
    suffix = "" if (p.product == "geo" and p.collects == 40) else f"_{p.product}_{p.collects}"
    plot(out, a.out / f"downlink{suffix}.png")
    series = out.pop("_series")
    del series
    (a.out / f"downlink{suffix}.json").write_text(json.dumps(out, indent=2, default=str))
    cmd = "python benchmarks/downlink.py" + ("" if argv is None and len(sys.argv) == 1 else " " + " ".join(argv or sys.argv[1:]))
    if not suffix:
        a.readme.write_text(markdown(out, cmd.strip()))
    print(table(out))
    for k, v in out["scenarios"].items():
        if v["alerts_in_first_contact_after_ready"] is not None:
            print(f"{k}: {v['alerts_in_first_contact_after_ready']:.1%} of delivered alerts went down in the first contact after ready")
    print(f"raw/alert bytes per scene: median {out['per_scene']['raw_to_alert_ratio_median']:,.0f}x "
          f"(min {out['per_scene']['raw_to_alert_ratio_min']:,.0f}x); with thumbnails "
          f"{(out['per_scene']['raw_to_alert_plus_thumbnail_ratio_median'] or 0):,.0f}x")
    print(f"wrote {a.out / f'downlink{suffix}.json'} and .png in {out['runtime_s']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
