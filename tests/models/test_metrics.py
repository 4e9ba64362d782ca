"""The published per-day protocol against a hand-computed example."""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl
import pytest

from models.metrics import clean_rows, coverage, per_day_scores, pinball_loss, score_forecast


def _example() -> pl.DataFrame:
    # Day 1: y = 1, 2, 3; ŷ = 2, 2, 2 -> Σ|e| = 2, Σy = 6: acc 2/3, wpe 0.
    # Day 2: y = 4, 0;    ŷ = 2, 1    -> Σ|e| = 3, Σy = 4: acc 1/4, wpe -1/4.
    # A stockout row on day 2 (y = 9, ŷ = 0) must be ignored by the published scope.
    d1, d2 = date(2024, 6, 26), date(2024, 6, 27)
    return pl.DataFrame(
        {
            "dt": [d1, d1, d1, d2, d2, d2],
            "sale_amount": [1.0, 2.0, 3.0, 4.0, 0.0, 9.0],
            "yhat": [2.0, 2.0, 2.0, 2.0, 1.0, 0.0],
            "stock_hour6_22_cnt": [0, 0, 0, 0, 0, 3],
        }
    )


def test_per_day_then_averaged_matches_hand_computation() -> None:
    scores = score_forecast(clean_rows(_example()))
    assert scores["acc"] == pytest.approx(((1 - 2 / 6) + (1 - 3 / 4)) / 2)
    assert scores["wpe"] == pytest.approx((0.0 + (-1 / 4)) / 2)
    # Pooled: Σ|e| = 5 over Σy = 10, unlike the per-day mean.
    assert scores["wape"] == pytest.approx(0.5)
    assert scores["pooled_wpe"] == pytest.approx(-0.1)
    assert scores["rows"] == 5


def test_per_day_table() -> None:
    days = per_day_scores(clean_rows(_example()))
    assert days["acc"].to_list() == pytest.approx([2 / 3, 0.25])
    assert days["rows"].to_list() == [3, 2]


def test_all_rows_scope_includes_stockout_days() -> None:
    scores = score_forecast(_example())
    # Day 2 with the stockout row: Σ|e| = 2 + 1 + 9 = 12 over Σy = 13.
    assert scores["acc"] == pytest.approx(((1 - 2 / 6) + (1 - 12 / 13)) / 2)


def test_pinball_and_coverage() -> None:
    y = np.array([1.0, 2.0, 3.0, 4.0])
    q = np.array([2.0, 2.0, 2.0, 2.0])
    # q=0.9: errors -1, 0, 1, 2 -> 0.1*1, 0, 0.9*1, 0.9*2 -> mean 2.8/4.
    assert pinball_loss(y, q, 0.9) == pytest.approx(2.8 / 4)
    assert coverage(y, np.full(4, 1.5), np.full(4, 3.0)) == pytest.approx(0.5)


def test_quantile_metrics_present_when_quantiles_are() -> None:
    frame = _example().with_columns(
        (pl.col("yhat") * 0.5).alias("yhat_p10"),
        pl.col("yhat").alias("yhat_p50"),
        (pl.col("yhat") * 2).alias("yhat_p90"),
    )
    scores = score_forecast(clean_rows(frame))
    assert {"pinball", "coverage_p10_p90", "pinball_p10"} <= scores.keys()
    # Intervals [ŷ/2, 2ŷ]: every clean row is inside except y = 0 (interval [0.5, 2]).
    assert scores["coverage_p10_p90"] == pytest.approx(4 / 5)
