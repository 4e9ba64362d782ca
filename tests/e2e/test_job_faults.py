"""Faults the daily job must survive or refuse cleanly: nothing to score, a damaged UI file."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from pipelines.data.simulate import SimulationConfig, write_simulation
from pipelines.serving import registry
from pipelines.serving.aggregates import load_aggregates
from pipelines.settings import load_settings
from tests.e2e.cli import run_freshcast

SIM = SimulationConfig(series=40, days=42, eval_days=3, seed=9)
LAST_TRAIN_DAY = "2024-05-08"


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("data")
    write_simulation(SIM, out)
    return out


def test_a_week_without_a_clean_day_stops_before_register(data: Path, tmp_path: Path) -> None:
    """Every row of the backtest week out of stock in business hours: nothing to score."""
    out = tmp_path / "data"
    out.mkdir()
    train = pl.read_parquet(data / "train.parquet")
    last_week = pl.col("dt") > "2024-05-01"
    out_of_stock = pl.lit([0] * 6 + [1] * 16 + [0] * 2, dtype=pl.List(pl.Int32))
    train = train.with_columns(
        pl.when(last_week)
        .then(out_of_stock)
        .otherwise("hours_stock_status")
        .alias("hours_stock_status"),
        pl.when(last_week)
        .then(16)
        .otherwise("stock_hour6_22_cnt")
        .cast(pl.Int32)
        .alias("stock_hour6_22_cnt"),
    )
    train.write_parquet(out / "train.parquet")
    home = tmp_path / "home"
    # The stockout share jumps, so the day needs the operator's word to get past quality.
    proc = run_freshcast("run", "--accept-day", LAST_TRAIN_DAY, home=home, data=out)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "has no day to score" in proc.stderr
    assert "no version was registered" in proc.stderr
    assert "Traceback" not in proc.stderr
    registry.configure(load_settings(home=home).tracking_uri)
    assert registry.list_versions().is_empty()


def test_a_damaged_ui_history_file_is_started_afresh(data: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = run_freshcast("run", home=home, data=data)
    assert first.returncode == 0, first.stderr[-3000:]
    history = load_settings(home=home).layout.continual_history
    assert history.is_file()
    history.write_bytes(b"not a parquet file")
    second = run_freshcast("run", "--date", "2024-05-09", home=home, data=data)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "starting it afresh" in second.stderr
    rebuilt = pl.read_parquet(history)
    # Started afresh with today's row; the damaged file's rows could not be kept.
    assert [str(d) for d in rebuilt["business_date"]] == ["2024-05-09"]


def test_damaged_aggregates_are_passed_over_and_rebuilt(data: Path, tmp_path: Path) -> None:
    """A truncated UI aggregate never reaches a page, and a rerun of the date rebuilds it."""
    home = tmp_path / "home"
    assert run_freshcast("run", home=home, data=data).returncode == 0
    root = load_settings(home=home).layout.aggregates
    victim = sorted((root / LAST_TRAIN_DAY).glob("*.parquet"))[0]
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    assert load_aggregates(root) is None  # the only build is damaged: nothing to show
    again = run_freshcast("run", home=home, data=data)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "aggregates: done earlier, but its output" in again.stderr
    frames = load_aggregates(root)
    assert frames is not None
    assert victim.stem in frames
