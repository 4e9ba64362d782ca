"""The recovery evaluation: scores by hand, masking protocol, truth, decoupling, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from models.recovery import DayBlock
from models.recovery.base import HOURS
from pipelines.cli import app
from pipelines.data.io import scan_split
from pipelines.errors import DataError
from pipelines.evaluation.recovery import (
    ALL_METHODS,
    decoupling_score,
    evaluate_masking,
    evaluate_recovery,
    resolve_methods,
    score_hidden,
)
from pipelines.recovery.recover import day_block_from_daily, prepare_daily


def _block(stockout: np.ndarray, code: np.ndarray, sale: np.ndarray | None = None) -> DayBlock:
    n = len(code)
    return DayBlock(
        series_id=code.astype(np.int64),
        day=np.arange(n, dtype=np.int64),
        sale=np.zeros((n, HOURS)) if sale is None else sale,
        stockout=stockout,
        series_code=code,
        n_series=int(code.max()) + 1,
    )


def test_score_hidden_by_hand() -> None:
    truth = np.zeros((3, HOURS))
    truth[0, 10], truth[0, 11], truth[0, 12] = 1.0, 2.0, 3.0  # day 0 total 6
    truth[1, 10], truth[1, 20] = 4.0, 4.0  # day 1 total 8
    truth[2, 5] = 9.0  # day 2: nothing hidden, must not count
    hidden = np.zeros_like(truth, dtype=bool)
    hidden[0, 11:13] = True  # hides 2 + 3
    hidden[1, 20] = True  # hides 4
    pred = truth.copy()
    pred[0, 11], pred[0, 12] = 1.0, 5.0  # day 0 hidden sum 6 vs 5: +1; hourly |1-2|+|5-3| = 3
    pred[1, 20] = 1.0  # day 1: -3; hourly 3
    s = score_hidden(truth, pred, hidden)
    assert s["wape"] == pytest.approx((1 + 3) / (6 + 8))
    assert s["wpe"] == pytest.approx((1 - 3) / (6 + 8))
    assert s["hidden_wape"] == pytest.approx(4 / 9)
    assert s["hourly_wape"] == pytest.approx(6 / 9)
    assert (s["days"], s["hours"]) == (2, 3)
    zero = score_hidden(truth, np.where(hidden, 0.0, truth), hidden)
    assert zero["wape"] == pytest.approx(9 / 14)
    assert zero["wpe"] == pytest.approx(-9 / 14)
    assert zero["hourly_wape"] == pytest.approx(1.0)


def test_decoupling_by_hand() -> None:
    stockout = np.zeros((6, HOURS), dtype=bool)
    for i, k in enumerate([0, 2, 4, 0, 2, 4]):
        stockout[i, 6 : 6 + k] = True
    code = np.array([0, 0, 0, 1, 1, 1])
    block = _block(stockout, code)
    # Series 0: sales fall as stockouts rise (corr -1); series 1 rises (corr +1).
    assert decoupling_score(block, np.array([3.0, 2.0, 1.0, 1.0, 2.0, 3.0])) == pytest.approx(0.0)
    assert decoupling_score(block, np.array([3.0, 2.0, 1.0, 3.0, 2.0, 1.0])) == pytest.approx(-1.0)
    # A series with constant sales has no correlation and is skipped.
    assert decoupling_score(block, np.array([3.0, 2.0, 1.0, 5.0, 5.0, 5.0])) == pytest.approx(-1.0)


def test_resolve_methods() -> None:
    assert resolve_methods("all") == ALL_METHODS
    assert resolve_methods("zero_fill, profile") == ("zero_fill", "profile")
    with pytest.raises(DataError, match="unknown method"):
        resolve_methods("profile,magic")


@pytest.fixture(scope="module")
def sim_block(sim_dir: Path) -> DayBlock:
    return day_block_from_daily(prepare_daily(scan_split(sim_dir)))


def test_masking_protocol_rows(sim_block: DayBlock) -> None:
    rows = evaluate_masking(sim_block, ["zero_fill", "profile"], rates=(0.1, 0.3), seed=3)
    assert len(rows) == 2 * 2 * 2
    for row in rows:
        assert row["task"] == "recovery"
        assert row["target"] == "sale"
        assert row["scope"] in ("masked_uniform", "masked_demand")
        assert abs(row["achieved_rate"] - row["missing_rate"]) < 0.06
        assert row["days"] > 0
    by = {(r["method"], r["scope"], r["missing_rate"]): r for r in rows}
    for scope in ("masked_uniform", "masked_demand"):
        zero = by[("zero_fill", scope, 0.3)]
        assert zero["hidden_wape"] == pytest.approx(1.0)
        assert zero["wpe"] == pytest.approx(-zero["wape"])
        assert by[("profile", scope, 0.3)]["wape"] < 0.7 * zero["wape"]
    # Censoring couples hidden hours with low sales; recovery on uniform masks (which
    # ignore demand, so the truth is about uncoupled) undoes most of it.
    uni = {m: by[(m, "masked_uniform", 0.3)] for m in ("zero_fill", "profile")}
    assert uni["zero_fill"]["decoupling"] < -0.2
    assert abs(uni["zero_fill"]["decoupling_truth"]) < 0.1
    assert abs(uni["profile"]["decoupling"] - uni["profile"]["decoupling_truth"]) < abs(
        uni["zero_fill"]["decoupling"] - uni["zero_fill"]["decoupling_truth"]
    )
    # The same seed gives the same masks, so the floor scores repeat exactly.
    again = evaluate_masking(sim_block, ["zero_fill"], rates=(0.3,), seed=3)
    assert again[0]["wape"] == by[("zero_fill", "masked_uniform", 0.3)]["wape"]


def test_truth_and_decoupling_on_the_simulator(sim_dir: Path) -> None:
    rows = evaluate_recovery(sim_dir, methods=["zero_fill", "profile"], variants=("uniform",))
    truth = {(r["method"], r["scope"]): r for r in rows if r["target"] == "truth"}
    assert set(truth) == {
        (m, s) for m in ("zero_fill", "profile") for s in ("stockout_hours", "stockout_days")
    }
    for scope in ("stockout_hours", "stockout_days"):
        assert truth[("zero_fill", scope)]["wpe"] < 0  # censoring under-states demand
        # Recovery removes most of that bias.
        assert abs(truth[("profile", scope)]["wpe"]) < 0.5 * abs(truth[("zero_fill", scope)]["wpe"])
    # Daily totals are what recovery gets right; single hours stay noisy.
    days = ("profile", "stockout_days"), ("zero_fill", "stockout_days")
    assert truth[days[0]]["wape"] < truth[days[1]]["wape"]
    dec = {r["method"]: r["decoupling"] for r in rows if r["scope"] == "all_days"}
    assert set(dec) == {"zero_fill", "profile", "truth"}
    assert all(-1.0 <= v <= 1.0 for v in dec.values())


def test_cli_evaluate_recovery(sim_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    args = ["evaluate", "recovery", "--data", str(sim_dir), "--out", str(out)]
    res = CliRunner().invoke(
        app, [*args, "--method", "zero_fill,profile", "--series", "20", "--missing-rate", "0.3"]
    )
    assert res.exit_code == 0, res.output
    rows = json.loads(out.read_text())
    assert {r["method"] for r in rows} == {"zero_fill", "profile", "truth"}
    assert {r["scope"] for r in rows} >= {"masked_uniform", "masked_demand", "all_days"}
    assert all(r["series"] == 20 for r in rows if "series" in r)
    bad = CliRunner().invoke(app, [*args, "--missing-rate", "1.5"])
    assert bad.exit_code == 2
    assert "missing-rate" in bad.output
    assert "Traceback" not in bad.output


@pytest.mark.real
@pytest.mark.slow
def test_masking_on_real_subsample(real_dir: Path) -> None:
    rows = evaluate_recovery(
        real_dir, methods=["zero_fill", "profile", "lgbm"], series=300, variants=("uniform",)
    )
    by = {(r["method"], r["scope"]): r for r in rows}
    masked = {m: by[(m, "masked_uniform")] for m in ("zero_fill", "profile", "lgbm")}
    assert masked["profile"]["wape"] < 0.6 * masked["zero_fill"]["wape"]
    # The targets at rate 0.3, on the default method: half zero-fill's daily WAPE,
    # below profile's, and (on the masked days, whose truth is known) half the coupling.
    assert masked["lgbm"]["wape"] <= 0.5 * masked["zero_fill"]["wape"]
    assert masked["lgbm"]["wape"] < masked["profile"]["wape"]
    assert abs(masked["lgbm"]["decoupling"]) <= 0.5 * abs(masked["zero_fill"]["decoupling"])
    assert by[("zero_fill", "all_days")]["decoupling"] < 0  # censoring couples them
