"""`freshcast evaluate forecast`, `train` and `forecast` end to end on the simulator."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.data.contract import FORECAST_SCHEMA
from pipelines.evaluation.forecast import evaluate_forecast, fold_splits

runner = CliRunner()
ALL = "lgbm,neural,ensemble,ssa,seasonal_naive,moving_average"


def test_evaluate_forecast_cli_writes_every_model_target_scope(
    sim_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "f.json"
    result = runner.invoke(
        app,
        [
            "evaluate",
            "forecast",
            "--data",
            str(sim_dir),
            "--out",
            str(out),
            "--models",
            ALL,
            "--profile",
            "smoke",
        ],
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(out.read_text())
    keys = {(r["method"], r["target"], r["scope"]) for r in rows}
    scopes = {"clean", "clean_psd<1", "clean_psd>=1", "all", "truth"}
    assert keys == {
        (m, t, s) for m in ALL.split(",") for t in ("recovered", "censored") for s in scopes
    }
    for r in rows:
        assert r["task"] == "forecast"
        if r["rows"]:
            assert {"acc", "wpe", "wape", "coverage_p10_p90", "pinball"} <= r.keys()


def test_rolling_origin_folds(sim_dir: Path) -> None:
    splits = fold_splits(sim_dir, folds=3)
    origins = [h.select(pl.col("dt").max()).collect().item() for h, _ in splits]
    assert origins[0] > origins[1] > origins[2]
    rows = evaluate_forecast(
        sim_dir, models=("ssa", "seasonal_naive"), targets=("censored",), folds=3
    )
    folds = {r["fold"] for r in rows}
    assert folds == {0, 1, 2, "mean"}


def test_holdout_when_there_is_no_eval(sim_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "train.parquet").write_bytes((sim_dir / "train.parquet").read_bytes())
    rows = evaluate_forecast(tmp_path, models=("moving_average",), targets=("censored",))
    last = pl.read_parquet(sim_dir / "train.parquet")["dt"].max()
    assert rows[0]["origin"] < last
    assert {r["scope"] for r in rows} == {"clean", "clean_psd<1", "clean_psd>=1", "all"}


def test_train_then_forecast_cli(sim_dir: Path, tmp_path: Path) -> None:
    model = tmp_path / "m.pkl"
    result = runner.invoke(
        app,
        [
            "train",
            "--data",
            str(sim_dir),
            "--model",
            "lgbm",
            "--target",
            "recovered",
            "--out",
            str(model),
            "--profile",
            "smoke",
        ],
    )
    assert result.exit_code == 0, result.output
    out = tmp_path / "fc.parquet"
    result = runner.invoke(
        app, ["forecast", "--data", str(sim_dir), "--model-uri", str(model), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    fc = pl.read_parquet(out)
    assert dict(fc.schema) == FORECAST_SCHEMA
    eval_rows = pl.read_parquet(sim_dir / "eval.parquet")
    assert fc.height == eval_rows.height
    assert fc.null_count().sum_horizontal().item() == 0


def test_forecast_with_a_missing_model_is_a_clean_error(sim_dir: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "forecast",
            "--data",
            str(sim_dir),
            "--model-uri",
            str(tmp_path / "nope.pkl"),
            "--out",
            str(tmp_path / "x.parquet"),
        ],
    )
    assert result.exit_code == 2
    assert "model file not found" in result.output


@pytest.mark.real
@pytest.mark.slow
def test_real_data_subsample(real_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "real.json"
    result = runner.invoke(
        app,
        [
            "evaluate",
            "forecast",
            "--data",
            str(real_dir),
            "--out",
            str(out),
            "--series",
            "150",
            "--models",
            "lgbm,ssa,seasonal_naive",
            "--targets",
            "censored",
            "--profile",
            "smoke",
        ],
    )
    assert result.exit_code == 0, result.output
    rows = {(r["method"], r["scope"]): r for r in json.loads(out.read_text())}
    # Held-out last week of the real split, published protocol: sane accuracies.
    for m in ("lgbm", "ssa", "seasonal_naive"):
        assert 0.2 < rows[(m, "clean")]["acc"] < 0.95
