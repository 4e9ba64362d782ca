"""Forecast metrics: the published per-day protocol, pooled WAPE, pinball loss, coverage.

The published FreshRetailNet-50K protocol scores each forecast day separately on rows
with ``stock_hour6_22_cnt == 0`` against ``sale_amount``, then averages over the days:

    acc_d = 1 - Σ|ŷ - y| / Σ|y|        wpe_d = Σ(ŷ - y) / Σ|y|

The row filter is the caller's choice (see :func:`clean_rows`); these functions score
whatever rows they are given, so the same code serves the all-rows and truth scopes.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from models.constants import QUANTILES


def _mean(values: pl.Series) -> float:
    """The mean of a numeric column (a column without values has none: TypeError)."""
    value = values.mean()
    if not isinstance(value, int | float):
        raise TypeError(f"{values.name!r} has no values to average")
    return float(value)


def clean_rows(frame: pl.DataFrame) -> pl.DataFrame:
    """Rows the published protocol scores: no stockout hour in hours 6..21."""
    return frame.filter(pl.col("stock_hour6_22_cnt") == 0)


def per_day_scores(
    frame: pl.DataFrame, *, pred: str = "yhat", actual: str = "sale_amount", day: str = "dt"
) -> pl.DataFrame:
    """acc and wpe for each day.

    Reads ``day``, ``pred``, ``actual``; returns one row per day with ``acc``, ``wpe``,
    ``abs_err``, ``err``, ``total`` and ``rows``.
    """
    err = pl.col(pred) - pl.col(actual)
    return (
        frame.group_by(day)
        .agg(
            err.abs().sum().alias("abs_err"),
            err.sum().alias("err"),
            pl.col(actual).abs().sum().alias("total"),
            pl.len().alias("rows"),
        )
        .with_columns(
            (1 - pl.col("abs_err") / pl.col("total")).alias("acc"),
            (pl.col("err") / pl.col("total")).alias("wpe"),
        )
        .sort(day)
    )


def pinball_loss(y: np.ndarray, q_pred: np.ndarray, q: float) -> float:
    """Mean pinball (quantile) loss of ``q_pred`` as the ``q`` quantile of ``y``."""
    diff = np.asarray(y, dtype=float) - np.asarray(q_pred, dtype=float)
    return float(np.mean(np.maximum(q * diff, (q - 1) * diff)))


def coverage(y: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> float:
    """Share of ``y`` inside the closed interval [lo, hi]."""
    y = np.asarray(y, dtype=float)
    return float(np.mean((y >= np.asarray(lo)) & (y <= np.asarray(hi))))


def score_forecast(
    frame: pl.DataFrame, *, actual: str = "sale_amount", day: str = "dt"
) -> dict[str, float]:
    """All forecast metrics on the given rows.

    Args:
        frame: rows to score, with ``yhat`` and, when present, ``yhat_p10``, ``yhat_p50``,
            ``yhat_p90``.
        actual: the column holding the realised value.
        day: the day column for the per-day protocol.

    Returns:
        ``acc`` and ``wpe`` (per-day, then averaged), pooled ``wape`` and ``pooled_wpe``,
        ``mae``, ``rows``, and when quantiles are present ``pinball_p10/p50/p90``,
        ``pinball`` (their mean) and ``coverage_p10_p90``.
    """
    frame = frame.filter(pl.col(actual).is_not_null() & pl.col("yhat").is_not_null())
    if frame.height == 0:
        return {"rows": 0}
    days = per_day_scores(frame, actual=actual, day=day).filter(pl.col("total") > 0)
    y = frame[actual].to_numpy()
    yhat = frame["yhat"].to_numpy()
    total = float(np.abs(y).sum())
    out: dict[str, float] = {
        "acc": _mean(days["acc"]),
        "wpe": _mean(days["wpe"]),
        "wape": float(np.abs(yhat - y).sum() / total) if total > 0 else float("nan"),
        "pooled_wpe": float((yhat - y).sum() / total) if total > 0 else float("nan"),
        "mae": float(np.abs(yhat - y).mean()),
        "rows": int(frame.height),
    }
    names = [f"yhat_p{round(q * 100)}" for q in QUANTILES]
    if all(n in frame.columns for n in names):
        losses = [
            pinball_loss(y, frame[n].to_numpy(), q) for n, q in zip(names, QUANTILES, strict=True)
        ]
        for n, loss in zip(names, losses, strict=True):
            out[f"pinball_{n.removeprefix('yhat_')}"] = loss
        out["pinball"] = float(np.mean(losses))
        out["coverage_p10_p90"] = coverage(
            y, frame["yhat_p10"].to_numpy(), frame["yhat_p90"].to_numpy()
        )
    return out
