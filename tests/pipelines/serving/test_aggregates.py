"""The UI aggregates: lost sales = recovered − observed, per window, consistent across cuts."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest

from pipelines import queries as app_data
from pipelines.data.contract import add_series_id
from pipelines.serving import aggregates
from tests.factories import hub_frame

START = date(2024, 3, 28)


def typed(frame: pl.DataFrame) -> pl.LazyFrame:
    return frame.lazy().with_columns(pl.col("dt").str.to_date()).pipe(add_series_id)


def recovered_from(daily: pl.LazyFrame, extra: float) -> pl.LazyFrame:
    """Recovered demand = sales + ``extra`` on every stockout day."""
    return daily.select(
        "series_id",
        "store_id",
        "product_id",
        "dt",
        pl.col("hours_sale").alias("hours_demand"),
        (
            pl.col("sale_amount")
            + pl.when(pl.col("stock_hour6_22_cnt") > 0).then(extra).otherwise(0.0)
        ).alias("demand_amount"),
        pl.col("stock_hour6_22_cnt").alias("imputed_hours"),
    )


@pytest.fixture
def frames() -> tuple[pl.LazyFrame, pl.LazyFrame, dict[str, pl.DataFrame], date]:
    daily = typed(hub_frame(n_series=6, n_days=40))
    business = START + timedelta(days=34)  # the last 5 days lie after the business date
    recovered = recovered_from(daily, 2.0)
    forecasts = daily.filter(pl.col("dt") > business).select(
        "store_id",
        "product_id",
        "dt",
        pl.col("sale_amount").alias("yhat"),
        (pl.col("sale_amount") * 0.5).alias("yhat_p10"),
        pl.col("sale_amount").alias("yhat_p50"),
        (pl.col("sale_amount") * 2).alias("yhat_p90"),
    )
    out = aggregates.build_aggregates(daily, recovered, forecasts, business_date=business)
    return daily, recovered, out, business


def test_lost_sales_by_window_match_a_direct_computation(frames) -> None:  # type: ignore[no-untyped-def]
    daily, _, out, business = frames
    summary = out["summary"].row(0, named=True)
    rows = daily.collect()
    for days in aggregates.WINDOWS:
        window = rows.filter(
            pl.col("dt") > business - timedelta(days=days), pl.col("dt") <= business
        )
        stockout_days = window.filter(pl.col("stock_hour6_22_cnt") > 0).height
        assert summary[f"lost_{days}"] == pytest.approx(2.0 * stockout_days)
        assert summary[f"stockout_day_share_{days}"] == pytest.approx(stockout_days / window.height)
        for cut in ("lost_by_city", "lost_by_category", "series_stats"):
            part = out[cut].filter(pl.col("window") == days)
            assert part["lost"].sum() == pytest.approx(summary[f"lost_{days}"]), cut
            assert (part["lost"] >= 0).all()
    assert summary["business_date"] == business
    assert summary["last_day"] == business  # nothing after the business date leaks in
    assert summary["series"] == 6
    assert out["daily_totals"]["dt"].max() == business


def test_forecast_and_censored_frames(frames) -> None:  # type: ignore[no-untyped-def]
    _, _, out, _ = frames
    assert out["forecast_daily"].height == 5
    assert (out["forecast_daily"]["yhat_p10"] <= out["forecast_daily"]["yhat_p90"]).all()
    censored = out["most_censored"]
    assert censored.height > 0
    assert censored["stockout_hours"].is_sorted(descending=True)


def test_missing_recovered_rows_count_as_no_loss() -> None:
    daily = typed(hub_frame(n_series=2, n_days=30))
    empty = recovered_from(daily, 1.0).filter(pl.lit(False))
    out = aggregates.build_aggregates(daily, empty, None, business_date=START + timedelta(days=29))
    assert out["summary"]["lost_28"][0] == 0.0
    assert out["forecast_daily"].is_empty()


def test_write_and_load_latest_complete_build(frames, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, _, out, business = frames
    assert aggregates.load_aggregates(tmp_path) is None
    aggregates.write_aggregates(tmp_path, business.isoformat(), out)
    # A later, half-written build (no marker) is never read.
    (tmp_path / "2099-01-01").mkdir()
    loaded = aggregates.load_aggregates(tmp_path)
    assert loaded is not None
    assert set(loaded) == set(out)
    assert loaded["series_stats"].equals(out["series_stats"])


def test_series_detail_reads_one_series(tmp_path: Path) -> None:
    from pipelines.data import io
    from pipelines.settings import load_settings

    raw = hub_frame(n_series=3, n_days=10)
    io.write_parquet(raw, tmp_path / "data" / "raw" / "train.parquet")
    settings = load_settings(home=tmp_path, data_dir=tmp_path / "data" / "raw")
    daily = typed(raw)
    io.write_parquet(
        recovered_from(daily, 1.0), tmp_path / "data" / "recovered" / "2024-04-06.parquet"
    )
    sid = daily.select("series_id").collect()["series_id"][1]
    detail = app_data.series_detail(settings, sid)
    assert detail.daily.height == 10
    assert detail.recovered.height == 10
    assert detail.forecast.is_empty()
    grid = app_data.hour_grid(detail.daily, last_days=4)
    assert grid.height == 4 * 24
    view = app_data.observed_vs_recovered(detail)
    assert (view["recovered"] >= view["observed"]).all()
