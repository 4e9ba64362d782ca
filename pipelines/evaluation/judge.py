"""The gate's evidence: two forecasts of the same window scored on the same rows, and the
sanity checks of a candidate's next-week forecast.

Pure functions on forecast frames (``store_id``, ``product_id``, ``dt``, ``yhat`` and the
bands); the evaluate step (:mod:`pipelines.jobs.evaluate_step`) feeds them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import polars as pl

from models.metrics import clean_rows, score_forecast

KEYS = ("store_id", "product_id", "dt")
ACTUAL_COLUMNS = ("sale_amount", "stock_hour6_22_cnt", "demand_amount")


def score_window(forecast: pl.DataFrame, actuals: pl.DataFrame) -> dict[str, float]:
    """The published protocol (clean days, against sales) plus the honest bias target.

    ``acc``/``wpe`` and the rest: :func:`models.metrics.score_forecast` on clean rows.
    ``acc_demand``/``wpe_demand``: every row with a recovered (or true) demand, against it:
    clean days are chosen after the fact (busy days stock out), so the clean-day wpe of a
    true-demand forecast sits above zero; this one does not.
    """
    joined = forecast.join(actuals.select(*KEYS, *ACTUAL_COLUMNS), on=list(KEYS))
    metrics = {k: float(v) for k, v in score_forecast(clean_rows(joined)).items()}
    demand = score_forecast(joined, actual="demand_amount")
    metrics.update({f"{k}_demand": float(demand[k]) for k in ("acc", "wpe") if k in demand})
    return {k: v for k, v in metrics.items() if np.isfinite(v)}


def common_rows(a: pl.DataFrame, b: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Both forecasts restricted to the (series, day) rows they share: the same window."""
    keys = a.select(KEYS).join(b.select(KEYS), on=list(KEYS), how="semi")
    return a.join(keys, on=list(KEYS), how="semi"), b.join(keys, on=list(KEYS), how="semi")


@dataclass(frozen=True)
class SanityCheck:
    """One check of a candidate's next-week forecast; ``value`` is what was measured."""

    check: str
    ok: bool
    value: float
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def sanity_checks(
    candidate: pl.DataFrame,
    reference: pl.DataFrame,
    *,
    total_band: float,
    rank_floor: float,
    reference_name: str,
) -> list[SanityCheck]:
    """Checks of the candidate's forecast of the coming days against a reference's.

    * ``finite``: no NaN or infinite value in ``yhat`` and the bands;
    * ``non_negative``: no negative forecast;
    * ``total``: the candidate's total over the days both forecast is within ±total_band
      of the reference's (sales ×10 on the last day, or a collapse to zero, break it);
    * ``rank``: the Spearman correlation of per-series totals is at least ``rank_floor``
      (a model that scrambles which series sell most breaks it).
    """
    cols = [c for c in ("yhat", "yhat_p10", "yhat_p50", "yhat_p90") if c in candidate.columns]
    values = candidate.select(cols).to_numpy().astype(float)
    bad = int((~np.isfinite(values)).sum())
    negative = int((np.nan_to_num(values, nan=0.0) < 0).sum())
    checks = [
        SanityCheck("finite", bad == 0, float(bad), f"{bad} NaN or infinite forecast values"),
        SanityCheck("non_negative", negative == 0, float(negative), f"{negative} negative values"),
    ]
    cand, ref = common_rows(candidate, reference)
    if cand.is_empty():
        return [
            *checks,
            SanityCheck("overlap", False, 0.0, f"no day in common with {reference_name}"),
        ]
    total_c, total_r = float(cand["yhat"].sum()), float(ref["yhat"].sum())
    ratio = total_c / total_r if total_r > 0 else float("inf")
    checks.append(
        SanityCheck(
            "total",
            bool(np.isfinite(ratio) and abs(ratio - 1) <= total_band),
            ratio,
            f"total {total_c:,.1f} is {ratio:.3f}× {reference_name}'s {total_r:,.1f} "
            f"(allowed ±{total_band})",
        )
    )
    rank = _series_rank_correlation(cand, ref)
    checks.append(
        SanityCheck(
            "rank",
            bool(np.isfinite(rank) and rank >= rank_floor),
            rank,
            f"per-series rank correlation with {reference_name} {rank:.3f} (floor {rank_floor})",
        )
    )
    return checks


def _series_rank_correlation(a: pl.DataFrame, b: pl.DataFrame) -> float:
    totals = (
        a.group_by("store_id", "product_id")
        .agg(pl.col("yhat").sum().alias("a"))
        .join(
            b.group_by("store_id", "product_id").agg(pl.col("yhat").sum().alias("b")),
            on=["store_id", "product_id"],
        )
        .with_columns(pl.col("a", "b").fill_nan(None))
        .drop_nulls()
    )
    if totals.height < 3:
        return float("nan")
    ranked = totals.select(pl.col("a").rank(), pl.col("b").rank())
    corr = ranked.select(pl.corr("a", "b")).item()
    return float("nan") if corr is None else float(corr)
