"""The data-quality gate: normal days pass, implausible ones fail with the check named."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest

from pipelines.data import io
from pipelines.data.quality import QualityBounds, check_day, day_figures


def _days(root: Path) -> pl.LazyFrame:
    return io.scan_days(root).collect().lazy()


def _failed(days: pl.LazyFrame, day: date) -> set[str]:
    return {c.check for c in check_day(day_figures(days, day), day, QualityBounds()) if not c.ok}


def _judged_days(days: pl.LazyFrame) -> list[date]:
    all_days = sorted(days.select(pl.col("dt").unique()).collect()["dt"].to_list())
    return all_days[7:]  # the first week has no trailing window to judge by


def test_every_simulated_day_passes(sim_dir: Path) -> None:
    days = _days(sim_dir)
    judged = _judged_days(days)
    assert len(judged) >= 40
    failures = {d: _failed(days, d) for d in judged}
    assert not {d: f for d, f in failures.items() if f}


@pytest.mark.real
@pytest.mark.slow
def test_every_real_day_passes(real_dir: Path) -> None:
    days = _days(real_dir)
    judged = _judged_days(days)
    assert len(judged) == 83
    failures = {d: _failed(days, d) for d in judged}
    assert not {d: f for d, f in failures.items() if f}


def _with_day_changed(days: pl.LazyFrame, day: date, change: list[pl.Expr]) -> pl.LazyFrame:
    on_day = pl.col("dt") == day
    return days.with_columns(
        pl.when(on_day).then(e).otherwise(pl.col(e.meta.output_name())) for e in change
    )


def test_sales_times_ten_fail_both_levels(sim_dir: Path) -> None:
    days = _days(sim_dir)
    day = _judged_days(days)[-1]
    corrupt = _with_day_changed(
        days,
        day,
        [
            (pl.col("sale_amount") * 10).alias("sale_amount"),
            pl.col("hours_sale").list.eval(pl.element() * 10).alias("hours_sale"),
        ],
    )
    assert {"chain_level", "series_level"} <= _failed(corrupt, day)
    assert not _failed(days, day)


def test_a_feed_outage_of_zeros_without_stockouts_fails(sim_dir: Path) -> None:
    days = _days(sim_dir)
    day = _judged_days(days)[-1]
    zeros = pl.lit([0.0] * 24, dtype=pl.List(pl.Float64))
    in_stock = pl.lit([0] * 24, dtype=pl.List(pl.Int32))
    corrupt = _with_day_changed(
        days,
        day,
        [
            pl.lit(0.0).alias("sale_amount"),
            zeros.alias("hours_sale"),
            in_stock.alias("hours_stock_status"),
        ],
    )
    assert {"chain_level", "zero_hours"} <= _failed(corrupt, day)


def test_missing_series_and_impossible_covariates_fail(sim_dir: Path) -> None:
    days = _days(sim_dir)
    day = _judged_days(days)[-1]
    keep = days.select("series_id").unique().collect()["series_id"].sort()[:20]
    thinned = days.filter((pl.col("dt") != day) | pl.col("series_id").is_in(keep.implode()))
    assert "missing_series" in _failed(thinned, day)
    gone = days.filter(pl.col("dt") != day)  # the whole day's feed never arrived
    assert {"chain_level", "series_level", "missing_series"} <= _failed(gone, day)
    hot = _with_day_changed(days, day, [pl.lit(float("inf")).alias("avg_humidity")])
    assert "covariates" in _failed(hot, day)
    cheap = _with_day_changed(days, day, [pl.lit(-50.0).alias("discount")])
    assert "covariates" in _failed(cheap, day)


def test_a_day_without_a_trailing_week_is_not_judged(sim_dir: Path) -> None:
    days = _days(sim_dir)
    first = days.select(pl.col("dt").min()).collect().item()
    assert check_day(day_figures(days, first + timedelta(days=2)), first, QualityBounds()) == []
