"""A smoke-size run of the continual protocol, the no-leakage rule, and the refresh job."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest

from research.continual.protocol import ARMS, ContinualConfig, evaluate_continual, load_history
from research.continual.report import merge_runs, write_report

# retrain_every=2: the second step is a weekly-retrain day for A1w and A3w, the third an
# update again.
SMOKE = ContinualConfig(
    warm_days=35, steps=3, profile="smoke", probe_weeks=1, probe_series=30, retrain_every=2
)
WARM_START_ARMS = ("WS0", "WS", "WS:sp")


@pytest.fixture(scope="module")
def protocol_rows(sim_dir: Path) -> list[dict]:
    return evaluate_continual(
        sim_dir,
        warm_days=35,
        models=("lgbm", "neural"),
        config=replace(SMOKE, warm_start=True),
    )


def test_protocol_writes_step_and_summary_rows(protocol_rows: list[dict], tmp_path: Path) -> None:
    steps = [r for r in protocol_rows if r["scope"] == "step"]
    # The warm-start arms are the neural model's only.
    arms = {(m, a) for m in ("lgbm", "neural") for a in ARMS}
    arms |= {("neural", a) for a in WARM_START_ARMS}
    assert {(r["model"], r["arm"]) for r in steps} == arms
    assert len(steps) == 3 * len(arms)
    for r in steps:
        assert r["task"] == "continual"
        assert r["method"] == f"{r['model']}/{r['arm']}"
        for key in (
            "acc",
            "wpe",
            "wape",
            "probe_wape",
            "forgetting",
            "stability_gap",
            "seconds",
            "cpu_seconds",
            "work",
            "peak_mb",
        ):
            assert key in r
        assert 0 < r["wape"] < 5
        # A fit or an update costs wall and CPU time; a frozen arm costs nothing.
        assert (r["cpu_seconds"] > 0) == (r["work"] > 0) == (r["seconds"] > 0)
    summary = {r["method"]: r for r in protocol_rows if r["scope"] == "summary"}
    assert set(summary) == {f"{m}/{a}" for m, a in arms}
    assert summary["lgbm/A1"]["work_ratio"] == pytest.approx(1.0)
    assert summary["lgbm/A0"]["work"] == 0
    # A replay update is cheaper than a full retrain, in compute units, on any machine.
    assert summary["lgbm/A3"]["work_ratio"] < 1
    assert "meets_wape_ratio" in summary["lgbm/A3"]
    paths = write_report(protocol_rows, tmp_path / "c.json")
    rows = json.loads(paths["json"].read_text())
    assert len(rows) == len(protocol_rows)
    assert paths["plot"].stat().st_size > 1000


def test_no_training_window_ends_after_its_origin(protocol_rows: list[dict]) -> None:
    for r in protocol_rows:
        if r["scope"] == "step":
            assert r["train_max_dt"] <= r["origin"], r["method"]
    # A full retrain at t uses every day through t; an update adds exactly day t.
    for r in protocol_rows:
        if r["scope"] == "step" and r["arm"] in ("A1", "A2", "A3"):
            assert r["train_max_dt"] == r["origin"]


def test_a3w_updates_then_takes_over_the_retrain(protocol_rows: list[dict]) -> None:
    """A3w is A3 on update days and A1's full fit on retrain days, charged at A1's cost."""
    steps = {(r["model"], r["arm"], r["step"]): r for r in protocol_rows if r["scope"] == "step"}
    for model in ("lgbm", "neural"):
        a1, a3w = steps[(model, "A1", 1)], steps[(model, "A3w", 1)]
        assert 0 < a3w["work"] < a1["work"]
        a1, a3w = steps[(model, "A1", 2)], steps[(model, "A3w", 2)]
        assert a3w["wape"] == a1["wape"]
        assert a3w["acc"] == a1["acc"]
        assert (a3w["work"], a3w["seconds"], a3w["cpu_seconds"]) == (
            a1["work"],
            a1["seconds"],
            a1["cpu_seconds"],
        )
        # A1w retrains on the same day with its own fit: the same data, so the same model.
        assert steps[(model, "A1w", 2)]["wape"] == pytest.approx(a1["wape"], rel=1e-6)
        # The day after, A3w updates its copy of A1's model; A1 refits on its own.
        a1, a3w = steps[(model, "A1", 3)], steps[(model, "A3w", 3)]
        assert 0 < a3w["work"] < a1["work"]
        assert a3w["train_max_dt"] == a3w["origin"]
        assert a3w["wape"] != a1["wape"]
        assert a3w["wape"] != steps[(model, "A3", 3)]["wape"]  # not A3: it started from A1


def test_warm_start_arms_train_on_every_window_through_the_origin(
    protocol_rows: list[dict],
) -> None:
    steps = {
        (r["arm"], r["step"]): r
        for r in protocol_rows
        if r["scope"] == "step" and r["model"] == "neural"
    }
    for step in (1, 2, 3):
        ws = [steps[(a, step)] for a in WARM_START_ARMS]
        for r in ws:
            assert r["train_max_dt"] == r["origin"]
        # Fresh weights, current weights and shrunk-and-perturbed ones learn different nets.
        assert len({r["wape"] for r in ws}) == 3
        if step > 1:  # every window through t: one more day's worth (A2's) each step
            for a in WARM_START_ARMS:
                grown = steps[(a, step)]["windows"] - steps[(a, step - 1)]["windows"]
                assert grown == steps[("A2", step)]["windows"] > 0


def test_runs_of_different_seeds_merge_into_one_report(
    protocol_rows: list[dict], sim_dir: Path, tmp_path: Path
) -> None:
    other = evaluate_continual(
        sim_dir, warm_days=35, models=("lgbm",), arms=("A3",), first_seed=1, config=SMOKE
    )
    assert {r["seed"] for r in other if r["scope"] == "step"} == {1}
    # The benchmark merges runs written to JSON (dates as strings, NaN as null).
    as_json = [
        json.loads(write_report(run, tmp_path / f"run{i}.json")["json"].read_text())
        for i, run in enumerate((protocol_rows, other))
    ]
    merged = merge_runs(as_json)
    summary = {r["method"]: r for r in merged if r["scope"] == "summary"}
    # Each arm is compared with A1 on its own seeds: A0 ran only in seed 0.
    a0 = {r["method"]: r for r in protocol_rows if r["scope"] == "summary"}["lgbm/A0"]
    assert summary["lgbm/A0"]["seeds"] == 1
    assert summary["lgbm/A0"]["wape_ratio"] == pytest.approx(a0["wape_ratio"])
    assert summary["lgbm/A3"]["seeds"] == 2
    assert summary["neural/A3"]["seeds"] == 1
    # The merged mean is the mean of the seeds' means.
    single = {r["method"]: r for r in protocol_rows + other if r["scope"] == "summary"}
    runs = [r for r in protocol_rows + other if r["scope"] == "summary" and r["arm"] == "A1"]
    lgbm_a1 = [r["wape"] for r in runs if r["model"] == "lgbm"]
    assert summary["lgbm/A1"]["wape"] == pytest.approx(sum(lgbm_a1) / 2)
    assert summary["neural/A1"]["wape"] == pytest.approx(single["neural/A1"]["wape"])
    with pytest.raises(ValueError, match="seed 1"):
        merge_runs([other, other])
    shorter = [r for r in other if r["scope"] != "step" or r["step"] < 3]
    with pytest.raises(ValueError, match="steps or origins"):
        merge_runs([protocol_rows, shorter])


def test_precomputed_panel_forecasts_equal_a_panel_built_from_the_past_only(sim_dir: Path) -> None:
    """The protocol builds features once; at origin t they must not read anything after t."""
    from models.forecasters.panel import with_origin
    from pipelines.training.fit import fit_model, make_panel

    daily = load_history(sim_dir, series=None).collect()
    full, spec = make_panel(daily.lazy(), None, target="censored")
    t = full["dt"].max() - timedelta(days=10)
    model = fit_model(
        "lgbm", full.filter(pl.col("dt") <= t), spec, target="censored", profile="smoke"
    )
    shared = model.predict(with_origin(full, t))
    past = daily.filter(pl.col("dt") <= t).lazy()
    future = daily.filter((pl.col("dt") > t) & (pl.col("dt") <= t + timedelta(days=7)))
    # Destroy every realised value after t: a leak would change the forecast.
    future = future.with_columns(
        pl.lit(1e6).alias("sale_amount"), pl.lit(16, dtype=pl.Int32).alias("stock_hour6_22_cnt")
    )
    alone, _ = make_panel(past, future.lazy(), target="censored")
    own = model.predict(alone)
    assert shared.sort("series_id", "dt").equals(own.sort("series_id", "dt"))


def test_cli_evaluate_continual(
    sim_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from pipelines.cli import app

    monkeypatch.setenv("FRESHCAST_HOME", str(tmp_path))
    monkeypatch.delenv("FRESHCAST_TRACKING_URI", raising=False)
    runner = CliRunner()
    out = tmp_path / "c.json"
    args = [
        "evaluate",
        "continual",
        "--data",
        str(sim_dir),
        "--out",
        str(out),
        "--models",
        "lgbm",
        "--warm-days",
        "35",
        "--steps",
        "1",
        "--profile",
        "smoke",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert {r["scope"] for r in json.loads(out.read_text())} == {"warm", "step", "summary"}
    assert out.with_suffix(".png").is_file()

    bad = runner.invoke(
        app, ["evaluate", "continual", "--data", str(sim_dir), "--out", str(out), "--models", "ssa"]
    )
    assert bad.exit_code == 1
    assert "--models" in bad.output


def test_a_run_without_the_reference_merges_onto_its_seed(
    protocol_rows: list[dict], sim_dir: Path, tmp_path: Path
) -> None:
    """Extra arms run later on a seed that already has A1 are compared with that A1."""
    from models.forecasters.update import LGBM_REFRESH

    extra = evaluate_continual(
        sim_dir,
        warm_days=35,
        models=("lgbm",),
        arms=("A0",),
        config=replace(
            SMOKE,
            reference=False,
            variants=(("r05", "lgbm", replace(LGBM_REFRESH, replay_ratio=0.5)),),
        ),
    )
    assert {r["arm"] for r in extra if r["scope"] == "step"} == {"A0", "A3:r05"}
    assert not [r for r in extra if r["scope"] == "summary"]  # nothing to take ratios to
    as_json = [
        json.loads(write_report(run, tmp_path / f"run{i}.json")["json"].read_text())
        for i, run in enumerate((protocol_rows, extra))
    ]
    merged = merge_runs(as_json)
    summary = {r["method"]: r for r in merged if r["scope"] == "summary"}
    a3r = [r for r in extra if r["scope"] == "step" and r["arm"] == "A3:r05"]
    a1 = [r for r in protocol_rows if r["scope"] == "step" and r["method"] == "lgbm/A1"]
    assert summary["lgbm/A3:r05"]["wape_ratio"] == pytest.approx(
        sum(r["wape"] for r in a3r) / sum(r["wape"] for r in a1)
    )
    # The repeated frozen model is kept once, and so is its warm row.
    steps = [r for r in merged if r["scope"] == "step" and r["method"] == "lgbm/A0"]
    assert len(steps) == 3
    assert len([r for r in merged if r["scope"] == "warm" and r["model"] == "lgbm"]) == 1
    # A0 scores that differ mean another warm fit: the ratios would compare two models.
    moved = [
        {**r, "wpe": r["wpe"] + 0.01} if r["scope"] == "step" and r["arm"] == "A0" else r
        for r in as_json[1]
    ]
    with pytest.raises(ValueError, match="not the same warm fit"):
        merge_runs([as_json[0], moved])
    # Without A0 nothing shows the same warm fit; without A1 on its seed nothing to compare.
    no_a0 = [r for r in as_json[1] if r.get("arm") != "A0"]
    with pytest.raises(ValueError, match="lacks A0"):
        merge_runs([as_json[0], no_a0])
    other_seed = [{**r, "seed": 7} if "seed" in r else r for r in as_json[1]]
    with pytest.raises(ValueError, match="no run has A1 for lgbm seed 7"):
        merge_runs([as_json[0], other_seed])
    with pytest.raises(ValueError, match="needs the reference"):
        evaluate_continual(
            sim_dir,
            warm_days=35,
            models=("lgbm",),
            arms=("A3w",),
            config=replace(SMOKE, reference=False),
        )
