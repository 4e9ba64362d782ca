"""The daily job's incremental recovery against a full one, and when it refuses to be
incremental (a damaged or mismatched earlier file, a changed history, the weekly refit)."""

from __future__ import annotations

import shutil
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from pipelines.data import io
from pipelines.data.layout import Layout
from pipelines.recovery.incremental import REFIT_AFTER_DAYS, read_state, recover_history
from pipelines.recovery.recover import recover_demand
from tests.pipelines.recovery.test_recover import check_recovered

METHOD = "lgbm"


def _history(sim_dir: Path, day: date) -> pl.LazyFrame:
    return io.scan_days(sim_dir).filter(pl.col("dt") <= day)


@pytest.fixture(scope="module")
def first_day(sim_dir: Path) -> date:
    """Ten days before the simulated timeline's end: the day of the first, full recovery."""
    last = io.scan_days(sim_dir).select(pl.col("dt").max()).collect().item()
    return last - timedelta(days=10)


@pytest.fixture(scope="module")
def recovered_home(tmp_path_factory: pytest.TempPathFactory, sim_dir: Path, first_day) -> Path:
    """A home holding one full recovery, through ``first_day``."""
    home = tmp_path_factory.mktemp("recovered")
    result = recover_history(
        _history(sim_dir, first_day), day=first_day, method=METHOD, layout=Layout(home)
    )
    assert (result.mode, result.reason) == ("full", "no earlier recovery")
    return home


@pytest.fixture
def home(recovered_home: Path, tmp_path: Path) -> Path:
    """A copy of ``recovered_home`` that a test may damage."""
    return Path(shutil.copytree(recovered_home, tmp_path / "home"))


def _wape(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).sum() / b.sum())


@pytest.mark.parametrize("step", [1, 3])
def test_new_days_match_a_full_recovery(sim_dir: Path, home: Path, first_day, step: int) -> None:
    layout = Layout(home)
    earlier = pl.read_parquet(layout.recovered(first_day.isoformat()))
    fitted = read_state(layout.recovery_state(first_day.isoformat())).recoverer
    day = first_day + timedelta(days=step)
    history = _history(sim_dir, day)
    result = recover_history(history, day=day, method=METHOD, layout=layout)
    assert result.mode == "incremental"
    assert (result.new_days, result.days) == (step, step + 1)  # the day before, again
    written = pl.read_parquet(layout.recovered(day.isoformat()))
    assert written.equals(result.frame)
    check_recovered(history.sort("series_id", "dt").collect(), written)
    # Rows before the recovered-again day are the earlier file's, untouched.
    kept = written.filter(pl.col("dt") < first_day)
    assert kept.equals(earlier.filter(pl.col("dt") < first_day))
    state = read_state(layout.recovery_state(day.isoformat()))
    assert (state.through, state.fitted_through, state.rows) == (day, first_day, written.height)

    fresh = written.filter(pl.col("dt") >= first_day)
    stockout = fresh["imputed_hours"].to_numpy() > 0
    mine = fresh["demand_amount"].to_numpy()
    # The same fitted recoverer on the whole history: only the series statistics differ
    # (the new days are not in them), which moves a stockout day's demand well under 2 %.
    same_fit = recover_demand(history, recoverer=fitted, fit=False).filter(
        pl.col("dt") >= first_day
    )
    assert same_fit.select("series_id", "dt").equals(fresh.select("series_id", "dt"))
    theirs = same_fit["demand_amount"].to_numpy()
    assert np.array_equal(mine[~stockout], theirs[~stockout])
    assert _wape(mine[stockout], theirs[stockout]) < 0.02
    # A full recovery also fits the recoverer again; on 60 series a refit alone moves
    # stockout days by a few percent (sampled series, fresh synthetic masks).
    refit = recover_demand(history, method=METHOD).filter(pl.col("dt") >= first_day)
    theirs = refit["demand_amount"].to_numpy()
    assert np.array_equal(mine[~stockout], theirs[~stockout])
    assert _wape(mine[stockout], theirs[stockout]) < 0.15
    assert abs(mine.sum() / theirs.sum() - 1) < 0.03


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _shorter_file(path: Path) -> None:
    pl.read_parquet(path).head(10).write_parquet(path)


def _changed(history: pl.LazyFrame, day: date) -> pl.LazyFrame:
    """``history`` with one series' sales on ``day`` doubled (a re-delivered earlier day)."""
    hit = (pl.col("dt") == day) & (pl.col("series_id") == pl.col("series_id").min())
    return history.with_columns(
        pl.when(hit).then(pl.col("sale_amount") * 2).otherwise("sale_amount").alias("sale_amount"),
        pl.when(hit)
        .then(pl.col("hours_sale").list.eval(pl.element() * 2))
        .otherwise("hours_sale")
        .alias("hours_sale"),
    )


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("truncated file", "recovered file of {first} is damaged: it is unreadable"),
        ("missing file", "recovered file of {first} is damaged: it is missing"),
        ("shorter file", "recovered file of {first} does not match its state"),
        ("truncated state", "recovery state of {first} is damaged: it is truncated"),
        ("history changed", "history changed on or before {first} (first on {changed})"),
        ("retrain", "retrain"),
        ("method", "the method changed (lgbm → profile)"),
        ("old recoverer", f"the recoverer was fitted {REFIT_AFTER_DAYS} days ago"),
    ],
)
def test_an_earlier_recovery_that_cannot_be_trusted_is_rebuilt_in_full(
    sim_dir: Path, home: Path, first_day, case: str, reason: str
) -> None:
    layout = Layout(home)
    first = first_day.isoformat()
    day = first_day + timedelta(days=REFIT_AFTER_DAYS if case == "old recoverer" else 1)
    history = _history(sim_dir, day)
    changed = first_day - timedelta(days=5)
    method, refit = ("profile" if case == "method" else METHOD), case == "retrain"
    if case == "truncated file":
        _truncate(layout.recovered(first))
    elif case == "missing file":
        layout.recovered(first).unlink()
    elif case == "shorter file":
        _shorter_file(layout.recovered(first))
    elif case == "truncated state":
        _truncate(layout.recovery_state(first))
    elif case == "history changed":
        history = _changed(history, changed)
    result = recover_history(history, day=day, method=method, layout=layout, refit=refit)
    assert result.mode == "full"
    assert reason.format(first=first, changed=changed) in result.reason
    # Rebuilt from scratch: exactly what a full recovery of this history gives.
    assert result.frame.equals(recover_demand(history, method=method))
    assert result.days == result.new_days == result.frame["dt"].n_unique()
    state = read_state(layout.recovery_state(day.isoformat()))
    assert state.fitted_through == state.through == day
    # The next day is incremental again, from the rebuilt state.
    after = day + timedelta(days=1)
    later = _history(sim_dir, after)
    if case == "history changed":
        later = _changed(later, changed)
    nxt = recover_history(later, day=after, method=method, layout=layout)
    assert nxt.mode == "incremental", nxt.reason


def test_append_days_places_rows_as_a_sort_would() -> None:
    """Series only in the earlier rows, only in the new ones, and in both."""
    from pipelines.data.contract import RECOVERED_SCHEMA
    from pipelines.recovery.incremental import append_days

    def rows(keys: list[tuple[int, int]]) -> pl.DataFrame:
        return pl.DataFrame(
            {
                "series_id": [s for s, _ in keys],
                "store_id": [s // 10 for s, _ in keys],
                "product_id": [s % 10 for s, _ in keys],
                "dt": [date(2024, 5, 1) + timedelta(days=d) for _, d in keys],
                "hours_demand": [[float(s * 100 + d)] * 24 for s, d in keys],
                "demand_amount": [24.0 * (s * 100 + d) for s, d in keys],
                "imputed_hours": [d % 3 for _, d in keys],
            },
            schema=RECOVERED_SCHEMA,
        )

    kept = rows([(11, 0), (11, 1), (12, 0), (12, 1), (14, 0), (14, 1)])
    fresh = rows([(10, 2), (11, 2), (11, 3), (13, 2), (14, 2)])
    merged = append_days(kept, fresh)
    assert merged.equals(pl.concat([kept, fresh]).sort("series_id", "dt"))
    assert append_days(kept, fresh.head(0)).equals(kept)
    assert append_days(kept.head(0), fresh).equals(fresh)
