"""Replay refresh of a fitted forecaster: once per new day, never the future, on the CLI too."""

from __future__ import annotations

import shutil
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.data import io
from pipelines.features.panel import make_panel
from pipelines.training.fit import fit_model, save_model
from pipelines.training.refresh import load_buffer, refresh_model


def _days(sim_dir: Path) -> pl.LazyFrame:
    """The simulated train and eval days, without the hourly lists."""
    return io.scan_days(sim_dir).drop("hours_sale", "hours_stock_status")


def test_refresh_model_updates_once_per_new_day_and_ignores_the_future(
    sim_dir: Path, tmp_path: Path
) -> None:
    daily = _days(sim_dir).collect()
    first = daily["dt"].min()
    t = first + timedelta(days=34)
    panel, spec = make_panel(daily.filter(pl.col("dt") <= t).lazy(), None, target="censored")
    model = fit_model("lgbm", panel, spec, target="censored", profile="smoke")
    through: date = t + timedelta(days=1)
    a = refresh_model(model, daily, through=through, buffer_dir=tmp_path / "a", seed=1)
    b = refresh_model(
        model,
        daily.filter(pl.col("dt") <= through),
        through=through,
        buffer_dir=tmp_path / "b",
        seed=1,
    )
    assert a is not model
    assert a.train_end_ == through
    assert a.boosters_[0].model_to_string() == b.boosters_[0].model_to_string()
    log = a.refresh_log_[-1]
    assert log["pre_wape"] > 0  # the prequential drift signal was measured
    assert "needs_retrain" in log
    assert log["new_windows"] == daily.filter(pl.col("dt") == through).height
    assert (tmp_path / "a" / "manifest.json").is_file()
    # Same day again: nothing new, the model comes back unchanged.
    assert refresh_model(a, daily, through=through, buffer_dir=tmp_path / "a") is a

    # The gate rejected ``a`` and kept ``model``, but ``a``'s buffer already holds ``through``.
    # The champion's next refresh still learns that day as new, with the day after it.
    shutil.copytree(tmp_path / "a", tmp_path / "kept")
    later: date = through + timedelta(days=1)
    kept = refresh_model(model, daily, through=later, buffer_dir=tmp_path / "kept", seed=1)
    both_days = daily.filter(pl.col("dt").is_between(through, later)).height
    assert kept.refresh_log_[-1]["new_windows"] == both_days
    kept_buffer = load_buffer(tmp_path / "kept")
    assert kept_buffer.last_dt_ == later
    # The buffer was offered only ``later``: ``through`` is not counted twice in its strata.
    seen_before = sum(load_buffer(tmp_path / "a").seen_.values())
    later_windows = daily.filter(pl.col("dt") == later).height
    assert sum(kept_buffer.seen_.values()) == seen_before + later_windows

    # A week after the full fit the periodic retrain is due. The daily job retrains then,
    # so it skips the update it would throw away; the buffer still takes the new days.
    week: date = t + timedelta(days=7)
    skipped = refresh_model(
        model, daily, through=week, buffer_dir=tmp_path / "c", seed=1, skip_when_due=True
    )
    done = refresh_model(model, daily, through=week, buffer_dir=tmp_path / "d", seed=1)
    for out, updated in ((skipped, False), (done, True)):
        log = out.refresh_log_[-1]
        assert (log["needs_retrain"], log["reason"], log["updated"]) == (True, "periodic", updated)
        assert (log["work"] > 0) is updated
        assert (log["replay_windows"] > 0) is updated  # a skipped update replayed nothing
    assert skipped is not model
    assert skipped.train_end_ == model.train_end_
    assert [b.model_to_string() for b in skipped.boosters_] == [
        b.model_to_string() for b in model.boosters_
    ]
    assert done.boosters_[0].num_trees() > model.boosters_[0].num_trees()
    assert load_buffer(tmp_path / "c").last_dt_ == week == load_buffer(tmp_path / "d").last_dt_


def test_neural_refresh_anchors_and_logs_its_forecast_level(
    sim_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from models.forecasters import neural_update
    from models.forecasters.update import NEURAL_REFRESH

    daily = _days(sim_dir).collect()
    t = daily["dt"].min() + timedelta(days=34)
    panel, spec = make_panel(daily.filter(pl.col("dt") <= t).lazy(), None, target="censored")
    model = fit_model("neural", panel, spec, target="censored", profile="smoke")
    out = refresh_model(model, daily, through=t + timedelta(days=1), buffer_dir=tmp_path, seed=1)
    log = out.refresh_log_[-1]
    assert log["updated"]
    assert log["level"] == out.level_ != 1.0
    assert model.level_ == 1.0  # the champion itself is untouched
    # The next day replays from the buffer, toward the model's own forecasts (the default),
    # and trains on replayed windows besides the new ones.
    assert NEURAL_REFRESH.replay_targets == "forecast"
    held: list[int] = []
    step = neural_update.DistilledReplay.training_step

    def counted(self: Any, batch: tuple, i: int) -> Any:
        held.append(int(batch[-1].sum()))  # replayed rows in the batch
        return step(self, batch, i)

    monkeypatch.setattr(neural_update.DistilledReplay, "training_step", counted)
    again = refresh_model(out, daily, through=t + timedelta(days=2), buffer_dir=tmp_path, seed=1)
    log = again.refresh_log_[-1]
    assert log["updated"]
    assert log["work"] > log["new_windows"] * NEURAL_REFRESH.epochs * len(again.nets())
    assert sum(held) > 0  # the job's update trained replayed windows toward soft targets
    assert np.isfinite(again.level_)
    assert again.level_ > 0


def test_cli_refresh_writes_the_refreshed_model_and_its_buffer(
    sim_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FRESHCAST_HOME", str(tmp_path))
    monkeypatch.delenv("FRESHCAST_TRACKING_URI", raising=False)
    runner = CliRunner()
    daily = _days(sim_dir).collect()
    t = daily["dt"].min() + timedelta(days=34)
    panel, spec = make_panel(daily.filter(pl.col("dt") <= t).lazy(), None, target="censored")
    model_path = save_model(
        fit_model("lgbm", panel, spec, target="censored", profile="smoke"), tmp_path / "m.pkl"
    )
    through = (t + timedelta(days=2)).isoformat()
    result = runner.invoke(
        app, ["refresh", "--data", str(sim_dir), "--through", through, "--model", str(model_path)]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "data" / "models" / through / "refreshed.pkl").is_file()
    assert (tmp_path / "data" / "replay" / "lgbm" / "manifest.json").is_file()
