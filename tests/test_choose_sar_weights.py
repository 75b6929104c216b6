"""benchmarks/experiments/choose_sar_weights.py: the blend round's rule read from eval_learned JSON.

Run on the committed validation files, it must give back the numbers the rule file records for the
shipped weights and the outcome recorded there; the tie and margin clauses are checked directly."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks" / "experiments"))
import choose_sar_weights as csw  # noqa: E402

R15 = REPO / "benchmarks" / "results" / "train_sar_1.5.0"
RB = REPO / "benchmarks" / "results" / "blend_sar_1.5.1"
BASE = f"{R15 / 'validation_B_1.4.0_generated.json'},{R15 / 'validation_B_1.4.0.json'}"


def test_committed_validation_gives_the_recorded_scores_and_choice(tmp_path: Path) -> None:
    out = tmp_path / "choice.json"
    cands = [f"a{a}={RB / f'validation_gen_a{a}.json'},{RB / f'validation_ssdd_a{a}.json'}" for a in ("0.25", "0.5", "0.75")]
    assert csw.main(["--base", BASE, *sum((["--candidate", c] for c in cands), []), "--out", str(out)]) == 0
    got = json.loads(out.read_text())
    assert {k: got["base"][k] for k in ("S_fine", "LR", "S_coarse", "G")} == \
        {"S_fine": 0.9574, "LR": 0.9552, "S_coarse": 0.8834, "G": 0.2805}
    assert got["choice"] is None and all(c["fails"] for c in got["candidates"].values())
    assert got["coarse_choice"] == "a0.75"  # the amendment's pick: the highest S_coarse, above B's
    assert got == {**json.loads((RB / "choice.json").read_text()), "rule": got["rule"]}


def test_the_1_5_2_round_names_its_own_rule_and_keeps_the_base(tmp_path: Path) -> None:
    r = REPO / "benchmarks" / "results" / "train_sar_1.5.2"
    rule = "benchmarks/results/train_sar_1.5.2/CHOICE_RULE.txt"
    out = tmp_path / "choice.json"
    cands = [f"{n}={r / f'validation_gen_{n}.json'},{r / f'validation_ssdd_{n}.json'}" for n in ("d1", "e1")]
    assert csw.main(["--base", BASE, *sum((["--candidate", c] for c in cands), []), "--rule", rule,
                     "--out", str(out)]) == 0
    got = json.loads(out.read_text())
    assert got["rule"] == rule and (REPO / rule).is_file()
    assert got["choice"] is None and got["coarse_choice"] is None  # no S_coarse above B's 0.8834
    assert got == json.loads((r / "choice.json").read_text())
    without = tmp_path / "default.json"
    csw.main(["--base", BASE, "--candidate", cands[0], "--out", str(without)])
    assert json.loads(without.read_text())["rule"] == "benchmarks/results/blend_sar_1.5.1/CHOICE_RULE.txt"


def test_the_second_file_supplies_the_ssdd_sweep_and_it_must_be_validation(tmp_path: Path) -> None:
    # validation_B_1.4.0.json holds an older generated sweep too: read in second place, it is not used
    s = csw.scores([R15 / "validation_B_1.4.0_generated.json", R15 / "validation_B_1.4.0.json"])
    assert s["gen05"] == 0.9686
    holdout = json.loads((R15 / "validation_B_1.4.0.json").read_text())
    holdout["ssdd_sweep"]["split"] = "holdout"
    bad = tmp_path / "holdout.json"
    bad.write_text(json.dumps(holdout))
    with pytest.raises(SystemExit, match="validation only"):
        csw.scores([R15 / "validation_B_1.4.0_generated.json", bad])
    gen = json.loads((R15 / "validation_B_1.4.0_generated.json").read_text())
    gen["generated_sweep"]["seeds"] = [1000, 1019]
    (tmp_path / "test_seeds.json").write_text(json.dumps(gen))
    with pytest.raises(SystemExit, match="reach the test seeds"):
        csw.scores([tmp_path / "test_seeds.json", R15 / "validation_B_1.4.0.json"])
    with pytest.raises(SystemExit, match="different weights"):
        csw.scores([R15 / "validation_B_1.4.0_generated.json", RB / "validation_ssdd_a0.5.json"])
    grouped = json.loads((R15 / "validation_B_1.4.0.json").read_text())  # same main weights, a group expert
    grouped["learned_group_weights"] = {"path": "x.pt", "sha256": "ab" * 32, "version": "t", "score_threshold": 0.4}
    (tmp_path / "grouped.json").write_text(json.dumps(grouped))
    with pytest.raises(SystemExit, match="different weights"):
        csw.scores([R15 / "validation_B_1.4.0_generated.json", tmp_path / "grouped.json"])
    with pytest.raises(SystemExit, match="one or two"):
        csw.scores([])
    with pytest.raises(SystemExit, match="does not end with its blend alpha"):
        csw.main(["--base", BASE, "--candidate", f"best={R15 / 'validation_B_1.4.0.json'}"])
    with pytest.raises(SystemExit, match="NAME=FILE"):
        csw.main(["--base", BASE, "--candidate", "a0.5"])


def _s(s_fine: float, lr: float, s_coarse: float, g: float) -> dict:
    return {"S_fine": s_fine, "LR": lr, "S_coarse": s_coarse, "G": g}


def test_margins_and_ties() -> None:
    base = _s(0.95, 0.95, 0.88, 0.30)
    assert csw.eligible(_s(0.945, 0.94, 0.88, 0.40), base) == []  # each margin exactly met
    assert len(csw.eligible(_s(0.9449, 0.9399, 0.8799, 0.3999), base)) == 4
    cands = {"a0.25": (0.25, _s(0.95, 0.95, 0.9, 0.705)), "a0.5": (0.5, _s(0.95, 0.95, 0.9, 0.71)),
             "a0.75": (0.75, _s(0.90, 0.95, 0.9, 0.9))}  # the best G is not eligible
    assert csw.choose(base, cands) == "a0.25"  # within 0.01 of the best eligible G: the smaller alpha
    assert csw.choose(base, {"a0.5": (0.5, _s(0.90, 0.95, 0.9, 0.9))}) is None
    # B's real values: G exactly 0.10 above 0.2805 meets the rule (0.2805 + 0.10 is 0.38050000000000006)
    real = _s(0.9574, 0.9552, 0.8834, 0.2805)
    assert csw.eligible(_s(0.9524, 0.9452, 0.8834, 0.3805), real) == []
    # the amendment: no eligible candidate, the highest S_coarse above the base's; none above: none
    worse = {"a0.5": (0.5, _s(0.90, 0.95, 0.91, 0.9)), "a0.75": (0.75, _s(0.90, 0.95, 0.92, 0.9))}
    assert csw.coarse_choice(real, worse) == "a0.75"
    assert csw.coarse_choice(real, {"a0.5": (0.5, _s(0.90, 0.95, 0.88, 0.9))}) is None
