"""The daily job's evaluate step: the evidence the gate decides on, about artifacts.

* **The window D−6..D.** The lagged candidate (the train step's model through D−7)
  forecasts it from D−7; the champion's forecast of it is the one it made on D−7, read
  from the ledger (or, while the champion is younger than that, made by its own lagged
  candidate from D−7). Both are scored on the rows they share with the published protocol
  (clean days, sales) and against recovered demand.
* **The coming week.** The candidate (through D) forecasts D+1..D+7. That forecast must
  be finite and non-negative, and agree with the champion's latest served forecast of
  those days (made on D−1, before day D's data) in total and in how it ranks series.
"""

from __future__ import annotations

import json
import logging
from datetime import date, timedelta
from typing import Any

import mlflow
import numpy as np
import polars as pl
from mlflow.entities.model_registry import ModelVersion

from models.constants import HORIZON
from pipelines.data import io
from pipelines.errors import DataError
from pipelines.evaluation.backtest import forecast_from, plot_forecast_vs_actual
from pipelines.evaluation.judge import (
    ACTUAL_COLUMNS,
    KEYS,
    SanityCheck,
    common_rows,
    sanity_checks,
    score_window,
)
from pipelines.jobs.data_steps import DayInputs, future_days, recovered_history
from pipelines.jobs.runner import StepContext
from pipelines.jobs.tracking import step_run
from pipelines.jobs.train_step import BACKTEST_DAYS, lagged_cutoff
from pipelines.serving import ledger, registry
from pipelines.serving.forecast import forecast_requests, forecast_with_history
from pipelines.serving.pyfunc import load_champion_forecaster
from pipelines.training.fit import load_model
from pipelines.training.recipe import Recipe

logger = logging.getLogger("freshcast")


def evaluate_step(ctx: StepContext, paths: DayInputs) -> dict[str, Any]:
    """Score the lagged candidate beside the champion on D−6..D; sanity-check the candidate."""
    layout = ctx.settings.layout
    history = recovered_history(ctx, paths)
    cutoff = lagged_cutoff(paths.day)
    actuals = history.filter(pl.col("dt") > cutoff).select(*KEYS, *ACTUAL_COLUMNS)
    _require_a_clean_day(actuals, cutoff, paths.day)
    window = forecast_from(load_model(layout.lagged_model(paths.tag)), history, cutoff)
    champion = registry.alias_version(registry.CHAMPION)
    champion_window, champion_source = (
        (None, None)
        if champion is None
        else champion_window_forecast(ctx, champion, history, cutoff)
    )
    if champion_window is not None:
        window, champion_window = common_rows(window, champion_window)
    metrics = score_window(window, actuals)
    champion_metrics = None if champion_window is None else score_window(champion_window, actuals)

    requests = forecast_requests(history.lazy(), future_days(paths), day=paths.day, horizon=HORIZON)
    next_week = forecast_with_history(load_model(layout.model(paths.tag)), history, requests)
    reference, reference_name = next_week_reference(ctx, champion, history, requests, paths.day)
    gate = ctx.settings.gate
    checks = [
        *_window_checks(window),
        *sanity_checks(
            next_week,
            reference,
            # Last week's demand (no champion) is a looser reference than a forecast.
            total_band=gate.total_band * (1 if champion is not None else 2),
            rank_floor=gate.rank_floor,
            reference_name=reference_name,
        ),
    ]
    for check in checks:
        if not check.ok:
            logger.warning("candidate for %s fails %s: %s", paths.day, check.check, check.detail)
    recipe = Recipe.from_settings(ctx.settings)
    rows = [
        {"task": "forecast", "method": recipe.model, "target": recipe.target, "scope": scope, **m}
        for scope, m in (("candidate", metrics), ("champion", champion_metrics))
        if m is not None
    ]
    io.write_json(rows, layout.metrics(paths.tag))
    record_refresh_history(ctx, paths, metrics, champion_metrics)
    with step_run(ctx, "evaluate"):
        mlflow.log_params(
            {**recipe.as_params(), "window_end": paths.tag, "window_days": BACKTEST_DAYS}
        )
        mlflow.log_metrics({f"eval/{k}": v for k, v in metrics.items()})
        if champion_metrics is not None:
            mlflow.log_metrics({f"eval/champion_{k}": v for k, v in champion_metrics.items()})
        mlflow.log_metrics({f"sanity/{c.check}": c.value for c in checks})
        mlflow.set_tags(
            {"champion_source": str(champion_source), "sanity_reference": reference_name}
        )
        mlflow.log_text(json.dumps(rows, indent=2), "metrics.json")
        scored = window.join(actuals, on=list(KEYS))
        mlflow.log_figure(plot_forecast_vs_actual(scored), "forecast_vs_actual.png")
    return {
        "metrics": metrics,
        "champion_metrics": champion_metrics,
        "champion_version": None if champion is None else str(champion.version),
        "champion_source": champion_source,
        "sanity": [c.to_dict() for c in checks],
        "sanity_reference": reference_name,
    }


def _require_a_clean_day(actuals: pl.DataFrame, cutoff: date, day: date) -> None:
    """Nothing to judge a model by: stop before it can be registered."""
    clean = actuals.filter((pl.col("stock_hour6_22_cnt") == 0) & (pl.col("sale_amount") > 0))
    if clean.is_empty():
        raise DataError(
            f"the backtest window {cutoff + timedelta(days=1)} .. {day} has no day to score "
            f"({actuals.height} rows, none without a stockout in hours 6..21 and with sales); "
            "no version was registered. Run a later date, when clean days arrive."
        )


def _window_checks(window: pl.DataFrame) -> list[SanityCheck]:
    """The lagged candidate's forecast of D−6..D must be usable before it is scored."""
    values = window.select("yhat", "yhat_p10", "yhat_p90").to_numpy().astype(float)
    bad = int((~np.isfinite(values)).sum())
    return [SanityCheck("window_finite", bad == 0, float(bad), f"{bad} NaN or infinite values")]


def champion_window_forecast(
    ctx: StepContext, champion: ModelVersion, history: pl.DataFrame, cutoff: date
) -> tuple[pl.DataFrame | None, str | None]:
    """The champion's own forecast of the days after ``cutoff``, and where it came from."""
    layout = ctx.settings.layout
    served = ledger.read_ledger(layout.ledger, made_since=cutoff).filter(
        (pl.col("made_on") == cutoff) & (pl.col("version") == str(champion.version))
    )
    if not served.is_empty():
        return served.drop("version", "role", "made_on"), f"ledger (made on {cutoff})"
    day = champion.tags.get("business_date")
    path = None if day is None else layout.lagged_model(day)
    if path is not None and io.damage(path) is None:
        lagged = load_model(path)
        if lagged.train_end_ <= cutoff:
            return forecast_from(lagged, history, cutoff), f"lagged model of {day}"
    return None, None


def next_week_reference(
    ctx: StepContext,
    champion: ModelVersion | None,
    history: pl.DataFrame,
    requests: pl.DataFrame,
    day: date,
) -> tuple[pl.DataFrame, str]:
    """What the candidate's forecast of D+1..D+7 is checked against, and its name.

    The champion's forecast made on D−1 does not know day D, so a corrupt day D cannot
    drag the reference along with the candidate. Failing that, the champion's forecast
    from D; with no champion, last week's recovered demand (a seasonal-naive forecast).
    """
    if champion is not None:
        yesterday = day - timedelta(days=1)
        served = ledger.read_ledger(ctx.settings.layout.ledger, made_since=yesterday).filter(
            (pl.col("made_on") == yesterday)
            & (pl.col("version") == str(champion.version))
            & (pl.col("role") == ledger.SERVED)
        )
        if not served.is_empty():
            return served.drop("version", "role", "made_on"), f"champion v{champion.version}"
        forecast = forecast_with_history(load_champion_forecaster(), history, requests)
        return forecast, f"champion v{champion.version}"
    last_week = history.filter(pl.col("dt") > day - timedelta(days=HORIZON)).select(
        "store_id",
        "product_id",
        (pl.col("dt") + timedelta(days=HORIZON)).alias("dt"),
        pl.col("demand_amount").fill_null(pl.col("sale_amount")).alias("yhat"),
    )
    return last_week, "last week's recovered demand"


def record_refresh_history(
    ctx: StepContext,
    paths: DayInputs,
    metrics: dict[str, float],
    champion_metrics: dict[str, float] | None,
) -> None:
    """One row per date in ``data/continual/history.parquet`` for the Models page.

    ``acc_candidate`` and ``acc_champion``: the gate's window D−6..D, same rows;
    ``acc_refresh_prequential``: 1 − the pooled WAPE of the lagged chain on its new day
    before it learned it (null on full fits); seconds of the day's train step beside the
    latest full fit's (what every day would cost without replay).
    """
    train = ctx.records.get("train", {})
    pre = train.get("pre_wape")
    seconds = float(train.get("seconds", 0.0))
    path = ctx.settings.layout.continual_history
    past = _read_history(path).filter(pl.col("business_date") != paths.day)
    full_fits = past.filter(~pl.col("mode").str.starts_with("refresh")).sort("business_date")
    is_full = not str(train.get("mode", "")).startswith("refresh")
    last_full = seconds if is_full or full_fits.is_empty() else full_fits["seconds_train_step"][-1]
    row = pl.DataFrame(
        {
            "business_date": [paths.day],
            "mode": [str(train.get("mode", ""))],
            "acc_candidate": [metrics.get("acc")],
            "acc_champion": [None if champion_metrics is None else champion_metrics.get("acc")],
            "acc_refresh_prequential": [None if pre is None or pre != pre else 1 - float(pre)],
            "seconds_train_step": [seconds],
            "seconds_last_full_fit": [float(last_full)],
        },
        schema_overrides={c: pl.Float64 for c in HISTORY_FLOATS},
    )
    io.write_parquet(pl.concat([past, row], how="diagonal_relaxed").sort("business_date"), path)


HISTORY_FLOATS = ("acc_candidate", "acc_champion", "acc_refresh_prequential")


def _read_history(path: Any) -> pl.DataFrame:
    """The history so far; a damaged file (only the Models page reads it) starts afresh."""
    empty = pl.DataFrame(
        schema={"business_date": pl.Date, "mode": pl.String, "seconds_train_step": pl.Float64}
    )
    if not path.exists():
        return empty
    damaged = io.damage(path)
    if damaged is not None:
        logger.warning("%s: %s; starting it afresh", path, damaged)
        return empty
    frame = io.scan_parquet(path).collect()
    # Rows from before the gate judged artifacts have other columns: start afresh too.
    return frame if "acc_candidate" in frame.columns else empty
