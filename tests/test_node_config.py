"""NodeConfig: loads from dict/JSON/TOML, rejects nonsense, and every parameter has a cited source."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from pipelines.errors import NodeConfigError
from pipelines.node import NodeConfig, OrbitalNode
from pipelines.node.config import PARAM_SOURCES


def test_defaults_and_every_parameter_has_a_source() -> None:
    cfg = NodeConfig()
    keys = {f"{s.name}.{f.name}" for s in dataclasses.fields(cfg) for f in dataclasses.fields(getattr(cfg, s.name))}
    assert keys == set(PARAM_SOURCES) and all(PARAM_SOURCES.values())
    assert cfg.link.xband_rate_bps == 400e6
    assert 300 < cfg.power.solar_w < 600  # 1361 W/m2 * 1.5 m2 * 0.30 * 0.85 * 0.8 = 416 W
    assert cfg.link.payload_bytes(400e6, 10.0) == int(10 * 50e6 * 0.87)


def test_round_trip_json_and_toml(tmp_path: Path) -> None:
    cfg = NodeConfig.from_dict({"link": {"relay_enabled": False, "xband_rate_bps": 800e6},
                                "compute": {"device": "h100", "power_w": 700, "throughput_mpx_s": 500}})
    assert cfg.link.relay_enabled is False and cfg.compute.power_w == 700.0
    (tmp_path / "n.json").write_text(json.dumps(cfg.to_dict()))
    assert NodeConfig.load(tmp_path / "n.json") == cfg
    (tmp_path / "n.toml").write_text('[power]\nbattery_wh = 1200\n[storage]\nretention = "lowest_priority"\n')
    t = NodeConfig.load(tmp_path / "n.toml")
    assert t.power.battery_wh == 1200.0 and t.storage.retention == "lowest_priority"


@pytest.mark.parametrize("bad", [
    {"linkk": {}},
    {"link": {"xband_rate": 1}},
    {"link": {"xband_rate_bps": -1}},
    {"link": {"relay_enabled": "yes"}},
    {"power": {"max_depth_of_discharge": 1.5}},
    {"power": {"initial_soc": 0.5}},  # below the 70% floor
    {"storage": {"capacity_bytes": 1.5}},
    {"storage": {"retention": "random"}},
    {"orbit": {"step_s": 0}},
    {"compute": {"throughput_mpx_s": float("nan")}},
    [],
])
def test_invalid_configs_raise(bad) -> None:
    with pytest.raises(NodeConfigError):
        NodeConfig.from_dict(bad)


def test_bad_files(tmp_path: Path) -> None:
    (tmp_path / "n.toml").write_text("[power\n")
    with pytest.raises(NodeConfigError):
        NodeConfig.load(tmp_path / "n.toml")
    with pytest.raises(NodeConfigError):
        NodeConfig.load(tmp_path / "n.yaml")
    with pytest.raises(NodeConfigError):
        NodeConfig.load(tmp_path / "missing.json")


def test_node_facade_wires_orbit_and_relay() -> None:
    node = OrbitalNode(NodeConfig())
    assert node.tle.name == "CAPELLA-7-WHITNEY" and len(node.stations) == 7
    import numpy as np
    ok = node.relay_available(node.tle.epoch, np.arange(0, 6000, 60.0))
    assert 0.7 < ok.mean() < 1.0  # polar caps beyond 75 deg are outside GEO coverage
    off = OrbitalNode(NodeConfig.from_dict({"link": {"relay_enabled": False}}))
    assert not off.relay_available(node.tle.epoch, np.arange(0, 600, 60.0)).any()
