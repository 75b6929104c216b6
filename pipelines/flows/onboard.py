"""Onboard flows: ``onboard-pass`` (collects -> alerts -> durable downlink queue) and ``downlink-contact``.

Flows orchestrate; the work is plain functions below (the scan itself is the existing
``detect-scene`` task of :mod:`pipelines.flows.scan`, with its cache and GPU slot).

**onboard-pass.** Collects are scene bundles dropped in an onboard *inbox* folder. The node may
spend on processing only the battery energy above its depth-of-discharge floor
(``(state_of_charge - floor_soc) * battery_wh`` from :class:`~pipelines.node.config.PowerConfig`,
or an explicit ``energy_wh``); a collect costs ``compute.power_w * OrbitalNode.processing_s(pixels)``.
Collects are taken oldest first; the first one the remaining budget cannot pay for stops the pass
(first in, first out: a big collect is not starved by small ones behind it) and it and everything
after it wait for the next pass. Each scanned collect's alerts, one scene header per scene, the
advanced sequence counters and the "collect done" mark are committed in ONE SQLite transaction of
the :class:`~pipelines.downlink.sqlite_store.SqliteQueueStore`: a crash before it rescans the
collect (alert ids are deterministic, so nothing changes), a crash after it never rescans. A
collect that is not a readable bundle is marked failed and never retried (it would fail the same
way); transient errors leave it for the next pass.

**downlink-contact.** During one contact the node plans packets from the queue (strict priority,
first fit) within the contact's byte budget -- ``link.payload_bytes(rate, duration - setup)`` for
X-band or the relay -- and writes each round as one file ``<ground_inbox>/<contact>-rNN.bin``
(written as ``.part`` and renamed, so a folder watcher never reads half a file), optionally through
a lossy :class:`~pipelines.downlink.link.Channel` (bit errors at ``ber``). The ack exchange has two
modes:

* **in process** (``ground_store`` given; tests, a co-located simulation): a
  :class:`~pipelines.ground.receiver.Receiver` (``unresolved="hold"``) ingests each round's file at
  once and its acknowledged ids are acked on the queue before the next round, so everything not
  acknowledged -- packets the CRC rejected -- is sent again within the same contact while the
  budget lasts, like a real contact with an open uplink.
* **through files** (``ack_file`` given): the ground runs ``orbitwatch ground ingest <file>
  --ack-file acks.txt`` (or ``serve``), which appends each committed id to ``acks.txt``; the next
  contact reads that file first and acks every listed id (acking an id twice is a no-op), then
  sends what is still queued. One round per contact (the acks only come back with the next
  uplink). Headers and alerts carry the ids the queue uses (alert id, ``scene:<key hex>``).

Either way an item leaves the queue only once the ground has committed it, and a retransmission is
the same packet (same alert id, same sequence count), which the ground stores once.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any, Literal

from prefect import flow, get_run_logger, task

from pipelines.errors import DownlinkError, OrbitwatchError
from pipelines.flows.resources import retry_transient_only
from pipelines.flows.scan import detect_scene, scan_options

#: Queue file and folders the deployments default to (relative to the repository root).
DEFAULT_QUEUE = "out/onboard/queue.sqlite"
DEFAULT_INBOX = "sample_scenes"
DEFAULT_GROUND_INBOX = "out/downlink"
LINKS = ("xband", "relay")


# ------------------------------------------------------------------------- plain functions
def _node(node_config: str | None) -> Any:
    from pipelines.node import NodeConfig, OrbitalNode

    return OrbitalNode(NodeConfig.load(node_config) if node_config else NodeConfig())


def energy_budget_wh(node: Any, state_of_charge: float | None = None) -> float:
    """Energy processing may use now: the charge above the depth-of-discharge floor."""
    p = node.config.power
    soc = p.initial_soc if state_of_charge is None else float(state_of_charge)
    if not 0.0 <= soc <= 1.0:
        raise DownlinkError(f"state_of_charge must be in [0, 1], got {soc}")
    return max(0.0, (soc - p.floor_soc) * p.battery_wh)


def plan_collects(inbox: Path, queue_db: Path, energy_wh: float | None = None,
                  state_of_charge: float | None = None, node_config: str | None = None) -> dict[str, Any]:
    """Which not-yet-processed collects of ``inbox`` this pass can afford (FIFO by arrival).

    Returns ``{"budget_wh", "todo": [...], "deferred": [...], "failures": [...]}``; each collect is
    ``{"path", "pixels", "seconds", "energy_wh"}``. Unreadable bundles are failures (and marked so).
    """
    from pipelines.downlink.sqlite_store import SqliteQueueStore
    from pipelines.scene import find_scenes, open_scene

    node = _node(node_config)
    budget = energy_budget_wh(node, state_of_charge) if energy_wh is None else float(energy_wh)
    if budget < 0:
        raise DownlinkError(f"energy_wh must be >= 0, got {budget}")
    out: dict[str, Any] = {"budget_wh": budget, "todo": [], "deferred": [], "failures": []}
    if not inbox.is_dir():
        return out
    paths = sorted(find_scenes(inbox), key=lambda p: (p.stat().st_mtime_ns, str(p)))
    left = budget
    with SqliteQueueStore(queue_db) as store:
        for path in paths:
            if store.collect_state(path) is not None:
                continue
            try:
                with open_scene(path) as sc:
                    pixels = int(sc.rows) * int(sc.cols)
            except OrbitwatchError as exc:
                store.mark_collect(path, "failed", detail=f"{type(exc).__name__}: {exc}")
                out["failures"].append({"path": str(path), "error": type(exc).__name__, "reason": str(exc)})
                continue
            secs = node.processing_s(pixels)
            item = {"path": str(path), "pixels": pixels, "seconds": secs,
                    "energy_wh": node.config.compute.power_w * secs / 3600.0}
            if out["deferred"] or item["energy_wh"] > left:
                out["deferred"].append(item)
            else:
                left -= item["energy_wh"]
                out["todo"].append(item)
    return out


def queue_scene(queue_db: Path, path: str, features: list[dict[str, Any]], created_s: float | None = None) -> dict[str, Any]:
    """Queue one scanned collect's alerts (+ its scene header) and mark it done, atomically."""
    from pipelines.alerts.model import Alert
    from pipelines.downlink.link import enqueue_alerts
    from pipelines.downlink.queue import DownlinkQueue
    from pipelines.downlink.sqlite_store import SqliteQueueStore

    alerts = list({a.alert_id: a for a in (Alert.from_feature(f) for f in features)}.values())
    created = time.time() if created_s is None else created_s
    with SqliteQueueStore(queue_db) as store:
        queue = DownlinkQueue(store)
        counter = store.load_counter()
        with store.transaction():
            new = [a for a in alerts if store.get(a.alert_id) is None]  # idempotent if re-run
            nbytes = enqueue_alerts(queue, new, created, counter) if new else 0
            store.save_counter(counter)
            scene = alerts[0].scene if alerts else Path(path).stem
            store.mark_collect(path, "done", scene=scene, alerts=len(alerts))
        return {"path": path, "scene": scene, "alerts": len(alerts), "queued": len(new), "queued_bytes": nbytes,
                "queue_items": store.count()}


def read_ack_file(ack_file: Path) -> list[str]:
    """Ids in an ack file written by ``ground ingest --ack-file`` (one per line; a torn last line is ignored)."""
    try:
        text = ack_file.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    lines = text.split("\n")
    if not text.endswith("\n"):
        lines = lines[:-1]  # still being written
    return [x.strip() for x in lines if x.strip()]


def contact_budget_bytes(node: Any, duration_s: float, link: str = "xband", rate_bps: float | None = None) -> int:
    """User bytes one contact carries: rate x (duration - acquisition/latency), less framing overhead."""
    if link not in LINKS:
        raise DownlinkError(f"link must be one of {LINKS}, got {link!r}")
    if duration_s < 0:
        raise DownlinkError(f"duration_s must be >= 0, got {duration_s}")
    lk = node.config.link
    if rate_bps is None:
        rate_bps = lk.xband_rate_bps if link == "xband" else lk.relay_rate_bps
    if not rate_bps > 0:
        raise DownlinkError(f"rate_bps must be > 0, got {rate_bps}")
    setup = lk.contact_setup_s if link == "xband" else lk.relay_latency_s
    return lk.payload_bytes(rate_bps, duration_s - setup)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".part")
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
    tmp.replace(path)


def run_contact(queue_db: Path, ground_inbox: Path, budget_bytes: int, ber: float = 0.0, seed: int = 0,
                ground_store: Path | None = None, ack_file: Path | None = None, contact_id: str | None = None,
                max_rounds: int = 16, relay: bool = False) -> dict[str, Any]:
    """Send what the budget allows; ack what the ground acknowledged; see the module docstring."""
    from pipelines.downlink.link import Channel
    from pipelines.downlink.queue import DownlinkQueue, Priority
    from pipelines.downlink.sqlite_store import SqliteQueueStore

    if budget_bytes < 0 or max_rounds < 1:
        raise DownlinkError(f"budget_bytes must be >= 0 and max_rounds >= 1, got {budget_bytes}, {max_rounds}")
    cid = contact_id or f"contact-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"
    channel = Channel(ber, seed)
    ground_inbox.mkdir(parents=True, exist_ok=True)
    rep: dict[str, Any] = {"contact": cid, "budget_bytes": budget_bytes, "sent_bytes": 0, "rounds": 0,
                           "files": [], "acked": 0, "acked_from_file": 0, "ground_corrupt": 0, "flipped_bits": 0}
    # The relay carries alerts and scene headers only; X-band also thumbnails. Size-only raw items
    # have no bytes to write into a downlink file, so this flow never plans them.
    max_prio = Priority.ALERT if relay else Priority.THUMBNAIL
    with SqliteQueueStore(queue_db) as qstore:
        queue = DownlinkQueue(qstore)
        if ack_file is not None:
            rep["acked_from_file"] = len(queue.ack(read_ack_file(ack_file)))
        left = budget_bytes
        while left > 0 and rep["rounds"] < max_rounds:
            with qstore.transaction():
                transfers = queue.plan(left, max_priority=max_prio)
            if not transfers:
                break
            rep["rounds"] += 1
            blob = b"".join(t.data for t in transfers if t.data is not None)
            sent = sum(t.nbytes for t in transfers)
            left -= sent
            rep["sent_bytes"] += sent
            f = ground_inbox / f"{cid}-r{rep['rounds']:02d}.bin"
            _write_atomic(f, channel.transmit(blob))
            rep["files"].append(str(f))
            if ground_store is None:
                break  # acks come back through the ack file, with the next contact
            from pipelines.ground.receiver import Receiver
            from pipelines.ground.store import AlertStore

            with AlertStore(ground_store) as gstore:
                got = Receiver(gstore, unresolved="hold").receive_file(f)
                gstore.mark_file_done(f)
            rep["ground_corrupt"] += got.corrupt
            rep["acked"] += len(queue.ack(got.acked))
        rep["flipped_bits"] = channel.flipped_bits
        rep["queue_items"] = len(queue)
        rep["queue_bytes"] = queue.pending_bytes()
    return rep


# ------------------------------------------------------------------------------ tasks
@task(name="plan-collects", retries=2, retry_delay_seconds=2, retry_condition_fn=retry_transient_only)
def plan_collects_task(inbox: str, queue_db: str, energy_wh: float | None, state_of_charge: float | None,
                       node_config: str | None) -> dict[str, Any]:
    """Affordable collects of this pass (reads headers only; idempotent, so transient I/O is retried)."""
    return plan_collects(Path(inbox), Path(queue_db), energy_wh, state_of_charge, node_config)


@task(name="queue-scene-alerts", retries=2, retry_delay_seconds=2, retry_condition_fn=retry_transient_only)
def queue_scene_task(queue_db: str, path: str, detected: dict[str, Any]) -> dict[str, Any]:
    """One atomic enqueue per collect (idempotent: already-queued alert ids are skipped)."""
    return queue_scene(Path(queue_db), path, detected["features"])


@task(name="mark-collect-failed")
def mark_failed_task(queue_db: str, path: str, reason: str) -> None:
    """A collect that fails for what it is (not for the moment) is not scanned again."""
    from pipelines.downlink.sqlite_store import SqliteQueueStore

    with SqliteQueueStore(queue_db) as store:
        store.mark_collect(path, "failed", detail=reason)


@task(name="downlink-rounds")
def downlink_task(queue_db: str, ground_inbox: str, budget_bytes: int, ber: float, seed: int,
                  ground_store: str | None, ack_file: str | None, contact_id: str | None, max_rounds: int,
                  relay: bool) -> dict[str, Any]:
    """Not retried: a contact is a moment in time; what it did not send waits in the queue."""
    return run_contact(Path(queue_db), Path(ground_inbox), budget_bytes, ber, seed,
                       Path(ground_store) if ground_store else None, Path(ack_file) if ack_file else None,
                       contact_id, max_rounds, relay)


# ------------------------------------------------------------------------------ flows
@flow(name="onboard-pass")
def onboard_pass(inbox: str = DEFAULT_INBOX, queue_db: str = DEFAULT_QUEUE, energy_wh: float | None = None,
                 state_of_charge: float | None = None, node_config: str | None = None,
                 detectors: list[str] | None = None, device: str = "auto", tile_size: int = 2048,
                 detector_options: dict[str, dict[str, Any]] | None = None,
                 land_mask: str | None = None, coastline: bool = False) -> dict[str, Any]:
    """Process the inbox's affordable collects and queue their alerts for downlink.

    ``detector_options``: keyword options per detector name (see the ``scan-scene`` flow);
    ``land_mask`` / ``coastline``: land handling of SAR collects, as for ``scan-scene`` (land alerts
    would spend downlink bytes on nothing).

    Returns ``{"budget_wh", "energy_wh", "processed": [...], "deferred": [paths], "failed": [...],
    "alerts", "queue_items"}``. A collect that fails is recorded, never fails the pass.
    """
    from pipelines.downlink.sqlite_store import SqliteQueueStore

    logger = get_run_logger()
    options = scan_options(detectors, device, tile_size, detector_options=detector_options, land_mask=land_mask,
                           coastline=coastline)
    plan = plan_collects_task(inbox, queue_db, energy_wh, state_of_charge, node_config)
    processed, failed = [], list(plan["failures"])
    spent = 0.0
    for item in plan["todo"]:
        state = detect_scene(item["path"], options, return_state=True)
        if state.is_completed():
            processed.append(queue_scene_task(queue_db, item["path"], state.result()))
            spent += item["energy_wh"]
            continue
        exc = state.result(raise_on_failure=False)
        reason = f"{type(exc).__name__}: {exc}"
        failed.append({"path": item["path"], "error": type(exc).__name__, "reason": str(exc)})
        if isinstance(exc, OrbitwatchError):  # about the collect itself: retrying cannot help
            mark_failed_task(queue_db, item["path"], reason)
        logger.warning("collect %s failed: %s", item["path"], reason)
    with SqliteQueueStore(queue_db) as store:
        items = store.count()
    logger.info("%d collect(s) processed (%.3f of %.3f Wh), %d deferred, %d failed; %d item(s) queued",
                len(processed), spent, plan["budget_wh"], len(plan["deferred"]), len(failed), items)
    return {"budget_wh": plan["budget_wh"], "energy_wh": spent, "processed": processed,
            "deferred": [d["path"] for d in plan["deferred"]], "failed": failed,
            "alerts": sum(p["alerts"] for p in processed), "queue_items": items}


@flow(name="downlink-contact")
def downlink_contact(queue_db: str = DEFAULT_QUEUE, ground_inbox: str = DEFAULT_GROUND_INBOX,
                     duration_s: float = 300.0, link: Literal["xband", "relay"] = "xband",
                     rate_bps: float | None = None, node_config: str | None = None, ber: float = 0.0,
                     seed: int = 0, ground_store: str | None = None, ack_file: str | None = None,
                     contact_id: str | None = None, max_rounds: int = 16) -> dict[str, Any]:
    """One contact: queue -> (lossy) link -> downlink files in ``ground_inbox`` -> acks -> queue.

    Returns the contact report (bytes sent, rounds, files, acks, ground-side CRC rejections,
    flipped bits, what is left queued).
    """
    logger = get_run_logger()
    budget = contact_budget_bytes(_node(node_config), duration_s, link, rate_bps)
    rep = downlink_task(queue_db, ground_inbox, budget, ber, seed, ground_store, ack_file, contact_id,
                        max_rounds, link == "relay")
    logger.info("contact %s: %d of %d B sent in %d round(s), %d acked (+%d from ack file), %d corrupt at ground; "
                "%d item(s) left", rep["contact"], rep["sent_bytes"], budget, rep["rounds"], rep["acked"],
                rep["acked_from_file"], rep["ground_corrupt"], rep["queue_items"])
    return rep
