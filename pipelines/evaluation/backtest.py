"""Backtest a recipe on the last days of history with the published protocol."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import polars as pl

from models.forecasters.panel import last_day
from models.metrics import clean_rows, score_forecast
from pipelines.features.panel import STAGE1_COLUMNS, split_stage1
from pipelines.serving.forecast import forecast_days
from pipelines.training.recipe import Recipe, fit_recipe


@dataclass(frozen=True)
class BacktestResult:
    metrics: dict[str, float]
    predictions: pl.DataFrame  # forecasts joined with actuals, for plots


def backtest_recipe(recipe: Recipe, history: pl.DataFrame, *, days: int = 7) -> BacktestResult:
    """Fit on history up to ``days`` before its end; score the last ``days`` (published protocol)."""
    cut = last_day(history) - timedelta(days=days)
    past = history.filter(pl.col("dt") <= cut)
    window = history.filter(pl.col("dt") > cut)
    model = fit_recipe(recipe, past)
    hist, recovery = split_stage1(past)
    pred = forecast_days(model, hist, window.drop(STAGE1_COLUMNS).lazy(), recovery=recovery)
    scored = pred.join(
        window.select(
            "store_id", "product_id", "dt", "sale_amount", "stock_hour6_22_cnt", "demand_amount"
        ),
        on=["store_id", "product_id", "dt"],
    )
    metrics = score_forecast(clean_rows(scored))
    metrics = {k: float(v) for k, v in metrics.items() if np.isfinite(v)}
    return BacktestResult(metrics=metrics, predictions=scored)


def plot_forecast_vs_actual(scored: pl.DataFrame) -> Any:
    """Daily totals of forecast (with P10–P90) against sales, over the backtest window."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    daily = (
        scored.group_by("dt")
        .agg(
            pl.col(c).sum()
            for c in ("yhat", "yhat_p10", "yhat_p90", "sale_amount", "demand_amount")
        )
        .sort("dt")
    )
    fig, ax = plt.subplots(figsize=(7, 3.5))
    x = daily["dt"].to_list()
    ax.fill_between(x, daily["yhat_p10"], daily["yhat_p90"], alpha=0.2, label="P10–P90 (sum)")
    ax.plot(x, daily["yhat"], marker="o", label="forecast")
    ax.plot(x, daily["sale_amount"], marker="s", label="observed sales")
    ax.plot(x, daily["demand_amount"], linestyle="--", label="recovered demand")
    ax.set_title("Backtest: forecast vs actual, all series")
    ax.legend()
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig
