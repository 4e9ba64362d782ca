"""The gate's evidence: same-row scoring and the next-week sanity checks."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl

from pipelines.evaluation.judge import common_rows, sanity_checks, score_window


def _forecast(scale: float = 1.0, series: int = 30, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    level = rng.gamma(2.0, 3.0, series)
    rows = [
        {
            "store_id": 1,
            "product_id": s,
            "dt": date(2024, 6, 1) + timedelta(days=d),
            "yhat": float(level[s] * scale),
        }
        for s in range(series)
        for d in range(7)
    ]
    frame = pl.DataFrame(rows)
    return frame.with_columns(
        (pl.col("yhat") * 0.6).alias("yhat_p10"),
        pl.col("yhat").alias("yhat_p50"),
        (pl.col("yhat") * 1.5).alias("yhat_p90"),
    )


def _checks(candidate: pl.DataFrame, reference: pl.DataFrame) -> dict[str, bool]:
    found = sanity_checks(
        candidate, reference, total_band=0.25, rank_floor=0.8, reference_name="champion"
    )
    return {c.check: c.ok for c in found}


def test_a_sound_forecast_passes_every_check() -> None:
    assert _checks(_forecast(1.05), _forecast()) == {
        "finite": True,
        "non_negative": True,
        "total": True,
        "rank": True,
    }


def test_zeros_nan_negatives_and_a_tenfold_total_fail() -> None:
    ref = _forecast()
    assert not _checks(_forecast(0.0), ref)["total"]
    assert not _checks(_forecast(10.0), ref)["total"]
    nan = _forecast().with_columns(
        pl.when(pl.col("product_id") == 3)
        .then(float("nan"))
        .otherwise(pl.col("yhat"))
        .alias("yhat")
    )
    assert not _checks(nan, ref)["finite"]
    negative = _forecast().with_columns((pl.col("yhat_p10") - 100).alias("yhat_p10"))
    assert not _checks(negative, ref)["non_negative"]


def test_scrambled_series_fail_the_rank_floor() -> None:
    scrambled = _forecast(seed=1)  # same total scale, other series on top
    checks = _checks(scrambled, _forecast(seed=0))
    assert not checks["rank"]


def test_scores_are_taken_on_the_rows_both_forecasts_share() -> None:
    a, b = _forecast(), _forecast().filter(pl.col("product_id") < 10)
    a2, b2 = common_rows(a, b)
    assert a2.height == b2.height == 70
    actuals = _forecast().select(
        "store_id",
        "product_id",
        "dt",
        pl.col("yhat").alias("sale_amount"),
        pl.lit(0).alias("stock_hour6_22_cnt"),
        (pl.col("yhat") * 1.1).alias("demand_amount"),
    )
    perfect = score_window(a2, actuals)
    assert perfect["acc"] == 1.0
    assert perfect["wpe"] == 0.0
    assert abs(perfect["wpe_demand"] - (1 / 1.1 - 1)) < 1e-9
