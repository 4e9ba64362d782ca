"""Stage-2 features: no look-ahead (property test), windows against DuckDB and numpy."""

from __future__ import annotations

from datetime import date, timedelta

import duckdb
import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from models.forecasters.lgbm_rows import stack_horizons
from pipelines.data.contract import HIERARCHY_COLUMNS
from pipelines.features.build import build_features, build_panel
from pipelines.features.config import FeatureConfig
from pipelines.features.windows import (
    lag,
    window_mean,
    window_sum,
    with_position,
    with_running_totals,
)

START = date(2024, 3, 28)
SMALL = FeatureConfig(lags=(1, 2, 3), seasonal_lags=(7, 14), windows=(3, 7), stockout_windows=(7,))


def _daily(values: np.ndarray, stockouts: np.ndarray) -> pl.DataFrame:
    """A tiny daily frame: rows = series, columns = days."""
    n_series, n_days = values.shape
    rows = []
    for s in range(n_series):
        for d in range(n_days):
            rows.append(
                {
                    "series_id": s,
                    "dt": START + timedelta(days=d),
                    **{c: s for c in HIERARCHY_COLUMNS},
                    "sale_amount": float(values[s, d]),
                    "demand_amount": float(values[s, d]) * 1.25,
                    "imputed_hours": int(stockouts[s, d]),
                    "stock_hour6_22_cnt": int(stockouts[s, d]),
                    "discount": 1.0 - 0.01 * (d % 5),
                    "holiday_flag": d % 7 == 0,
                    "activity_flag": d % 3 == 0,
                    "precpt": 0.5 * d,
                    "avg_temperature": 20.0,
                    "avg_humidity": 60.0,
                    "avg_wind_level": 2.0,
                }
            )
    return pl.DataFrame(rows).with_columns(
        pl.col("series_id").cast(pl.Int64),
        pl.col("stock_hour6_22_cnt", "imputed_hours", "holiday_flag", "activity_flag").cast(
            pl.Int32
        ),
    )


def _features(
    daily: pl.DataFrame, target: str = "recovered"
) -> tuple[pl.DataFrame, tuple[str, ...]]:
    panel = build_panel(daily.lazy(), None, target=target)  # type: ignore[arg-type]
    out, spec = build_features(panel, config=SMALL)
    return out.collect(), spec.all


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    cut=st.integers(1, 34),
    target=st.sampled_from(["recovered", "censored"]),
)
def test_changing_future_targets_never_changes_features(seed: int, cut: int, target: str) -> None:
    rng = np.random.default_rng(seed)
    values = rng.gamma(1.0, 1.0, size=(2, 35)).round(1)
    stockouts = rng.integers(0, 17, size=(2, 35))
    base, names = _features(_daily(values, stockouts), target)
    # Everything realised from day `cut` on changes: sales, demand, stockouts.
    values2, stockouts2 = values.copy(), stockouts.copy()
    values2[:, cut:] = rng.gamma(1.0, 3.0, size=values2[:, cut:].shape).round(1) + 7
    stockouts2[:, cut:] = rng.integers(0, 17, size=stockouts2[:, cut:].shape)
    changed, _ = _features(_daily(values2, stockouts2), target)
    limit = START + timedelta(days=cut)
    # Row `cut` itself may use days up to cut-1 only, so rows <= cut must be unchanged.
    before = base.filter(pl.col("dt") <= limit).select(names)
    after = changed.filter(pl.col("dt") <= limit).select(names)
    # Equal up to float rounding: the windows are differences of whole-column running
    # totals, so a later series' features carry the rounding (~1e-16 relative) of the
    # series before it. A leak would move them by the size of the change (>= 7).
    assert_frame_equal(before, after, check_exact=False, rel_tol=1e-12, abs_tol=1e-12)
    # The horizon-stacked frame: at horizon h a row reads the series up to day t - h.
    stacked = [
        stack_horizons(
            f,
            origin_features=names,
            keep=("series_id", "dt"),
            horizons=range(1, 8),
            target_rows=pl.lit(True),
        ).filter((pl.col("dt") - pl.lit(limit)).dt.total_days() < pl.col("horizon"))
        for f in (base, changed)
    ]
    assert_frame_equal(stacked[0], stacked[1], check_exact=False, rel_tol=1e-12, abs_tol=1e-12)


def test_windows_match_duckdb() -> None:
    rng = np.random.default_rng(3)
    daily = _daily(rng.gamma(1.0, 1.0, size=(3, 40)).round(1), rng.integers(0, 17, size=(3, 40)))
    feats, _ = _features(daily, "censored")
    expected = duckdb.sql(
        """
        SELECT series_id, dt,
          AVG(sale_amount) OVER (PARTITION BY series_id ORDER BY dt ROWS BETWEEN 7 PRECEDING AND 1 PRECEDING) AS m7,
          MAX(sale_amount) OVER (PARTITION BY series_id ORDER BY dt ROWS BETWEEN 3 PRECEDING AND 1 PRECEDING) AS x3,
          LAG(sale_amount, 14) OVER (PARTITION BY series_id ORDER BY dt) AS l14,
          AVG(stock_hour6_22_cnt / 16.0) OVER (PARTITION BY series_id ORDER BY dt ROWS BETWEEN 7 PRECEDING AND 1 PRECEDING) AS so7
        FROM daily ORDER BY series_id, dt
        """
    ).pl()
    got = feats.select(
        "target_rolling_mean_lag1_w7",
        "target_rolling_max_lag1_w3",
        "target_lag14",
        "stockout_rate_lag1_w7",
    )
    for ours, theirs in zip(got.columns, ["m7", "x3", "l14", "so7"], strict=True):
        np.testing.assert_allclose(
            got[ours].to_numpy().astype(float),
            expected[theirs].to_numpy().astype(float),
            rtol=1e-12,
            equal_nan=True,
        )


def test_rolling_std_and_expanding_mean_match_numpy() -> None:
    y = np.random.default_rng(5).gamma(1.0, 1.0, size=(1, 30)).round(1)
    feats, _ = _features(_daily(y, np.zeros((1, 30), dtype=int)), "censored")
    std7 = feats["target_rolling_std_lag1_w7"].to_numpy()
    exp_mean = feats["target_expanding_mean_lag1"].to_numpy()
    for t in range(2, 30):
        window = y[0, max(0, t - 7) : t]
        assert std7[t] == pytest.approx(np.std(window, ddof=1))
        assert exp_mean[t] == pytest.approx(y[0, :t].mean())
    assert np.isnan(exp_mean[0])


def test_target_choice_and_recovered_share() -> None:
    daily = _daily(np.ones((1, 10)), np.full((1, 10), 4))
    rec, _ = _features(daily, "recovered")
    cen, _ = _features(daily, "censored")
    assert rec["y"].to_list() == [1.25] * 10
    assert cen["y"].to_list() == [1.0] * 10
    # demand 1.25 vs sales 1.0: a fifth of past demand was recovered.
    assert rec["recovered_share_lag1_w7"][5] == pytest.approx(0.2)
    assert rec["stockout_rate_lag1_w7"][5] == pytest.approx(4 / 16)


def test_build_panel_hides_realised_columns_of_forecast_days() -> None:
    daily = _daily(np.ones((1, 14)), np.ones((1, 14), dtype=int))
    hist = daily.filter(pl.col("dt") < START + timedelta(days=10))
    fut = daily.filter(pl.col("dt") >= START + timedelta(days=10)).with_columns(
        pl.lit([1.0] * 24).alias("hours_sale")
    )
    panel = build_panel(hist.lazy(), fut.lazy(), target="recovered").collect()
    future = panel.filter(pl.col("is_future"))
    assert future.height == 4
    for col in ("y", "sale_amount", "stock_hour6_22_cnt", "demand_amount", "imputed_hours"):
        assert future[col].null_count() == 4, col
    assert "hours_sale" not in panel.columns
    assert future["discount"].null_count() == 0


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), cut=st.integers(30, 44))
def test_features_from_a_day_equal_the_full_computation(seed: int, cut: int) -> None:
    # The forecast path computes features on a 28-day window plus per-series priors of
    # the expanding means; on the rows it returns they must equal the whole-history ones.
    rng = np.random.default_rng(seed)
    daily = _daily(rng.gamma(1.0, 2.0, size=(3, 45)).round(1), rng.integers(0, 17, (3, 45)))
    daily = daily.with_columns(  # some unknown days, which the expanding means must skip
        pl.when(pl.Series(rng.random(daily.height) < 0.1))
        .then(None)
        .otherwise(pl.col("demand_amount"))
        .alias("demand_amount")
    )
    panel = build_panel(daily.lazy(), None, target="recovered")
    full, spec = build_features(panel, config=SMALL)
    day = START + timedelta(days=cut)
    window, spec_w = build_features(panel, config=SMALL, features_from=day)
    assert spec_w == spec
    got = window.collect()
    want = full.collect().filter(pl.col("dt") >= day)
    assert got.columns == want.columns
    assert got.height == want.height == 3 * (45 - cut)
    assert_frame_equal(got, want, check_exact=False, rel_tol=1e-9, abs_tol=1e-9)


def test_running_total_windows_equal_per_series_rolling() -> None:
    # The whole-column windows (running totals cut at series starts) against polars'
    # per-series rolling, on series of unequal length with unknown days.
    rng = np.random.default_rng(11)
    lengths = [1, 3, 40, 29, 57]
    frame = pl.DataFrame(
        {
            "series_id": np.repeat(np.arange(len(lengths)), lengths),
            "y": rng.gamma(1.0, 2.0, sum(lengths)).round(1),
        }
    ).with_columns(pl.when(pl.Series(rng.random(sum(lengths)) < 0.15)).then(None).otherwise("y"))
    past = pl.col("y").shift(1)
    want = frame.select(
        *(past.rolling_mean(w, min_samples=1).over("series_id").alias(f"m{w}") for w in (1, 7, 28)),
        *(past.rolling_sum(w, min_samples=1).over("series_id").alias(f"s{w}") for w in (1, 7, 28)),
        pl.col("y").shift(5).over("series_id").alias("lag5"),
    )
    got = (
        frame.lazy()
        .pipe(with_position)
        .pipe(with_running_totals, {"past": lag(pl.col("y"), 1)})
        .select(
            *(window_mean("past", w).alias(f"m{w}") for w in (1, 7, 28)),
            *(window_sum("past", w).alias(f"s{w}") for w in (1, 7, 28)),
            lag(pl.col("y"), 5).alias("lag5"),
        )
        .collect()
    )
    assert_frame_equal(got, want, check_exact=False, rel_tol=1e-9, abs_tol=1e-9)


def test_features_of_a_shuffled_panel_equal_the_sorted_ones() -> None:
    rng = np.random.default_rng(2)
    daily = _daily(rng.gamma(1.0, 1.0, size=(3, 35)).round(1), rng.integers(0, 17, (3, 35)))
    panel = build_panel(daily.lazy(), None, target="recovered").collect()
    want, _ = build_features(panel.lazy(), config=SMALL)
    got, _ = build_features(panel.sample(fraction=1.0, shuffle=True, seed=1).lazy(), config=SMALL)
    assert_frame_equal(got.collect(), want.collect())
