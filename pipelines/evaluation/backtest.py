"""Forecasts of days that have already arrived, made as of an earlier origin, and their plot."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import polars as pl

from models.constants import HORIZON
from models.forecasters import Forecaster
from pipelines.features.panel import STAGE1_COLUMNS, split_stage1
from pipelines.serving.forecast import forecast_days


def forecast_from(model: Forecaster, history: pl.DataFrame, origin: date) -> pl.DataFrame:
    """The model's forecast of the days after ``origin`` that history holds (at most 7), made
    from history up to ``origin`` only: the days' sales never reach the features."""
    past = history.filter(pl.col("dt") <= origin)
    window = history.filter(
        (pl.col("dt") > origin) & (pl.col("dt") <= origin + timedelta(days=HORIZON))
    )
    hist, recovery = split_stage1(past)
    return forecast_days(model, hist, window.drop(STAGE1_COLUMNS).lazy(), recovery=recovery)


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
