"""The daily job's last steps: forecast D+1..D+7 with the champion (kept in the ledger,
beside the previous champion's shadow forecast) and build the UI's aggregates."""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

import mlflow
import polars as pl
from mlflow.exceptions import MlflowException

from models.constants import HORIZON
from pipelines.data import io
from pipelines.errors import FreshcastError
from pipelines.jobs.data_steps import DayInputs, future_days, history_through, recovered_history
from pipelines.jobs.runner import StepContext
from pipelines.jobs.tracking import step_run
from pipelines.serving import ledger, registry
from pipelines.serving.aggregates import build_aggregates, write_aggregates
from pipelines.serving.forecast import forecast_requests, forecast_with_history
from pipelines.serving.pyfunc import load_champion_forecaster, load_version_forecaster

logger = logging.getLogger("freshcast")


def forecast_step(ctx: StepContext, paths: DayInputs) -> dict[str, Any]:
    """Forecast D+1..D+7 with the champion's model from today's recovered history.

    The champion may be older than D (the gate can keep it); its fitted model is reused,
    but its features are built from the history as of D, never from its bundled snapshot.
    """
    registry.configure(ctx.settings.tracking_uri)
    champion = registry.alias_version(registry.CHAMPION)
    if champion is None:
        raise FreshcastError(
            "no champion model to forecast with: promote a version (`freshcast promote N`)"
        )
    history = recovered_history(ctx, paths)
    requests = forecast_requests(history.lazy(), future_days(paths), day=paths.day, horizon=HORIZON)
    predictions = forecast_with_history(load_champion_forecaster(), history, requests)
    out = io.write_parquet(predictions, ctx.settings.layout.forecasts(paths.tag))
    ledger.append_forecasts(
        ctx.settings.layout.ledger, predictions, version=str(champion.version), made_on=paths.day
    )
    shadow = shadow_forecast(ctx, history, requests, str(champion.version), paths.day)
    with step_run(ctx, "forecast"):
        mlflow.set_tag("champion_version", str(champion.version))
        mlflow.log_metrics(
            {
                "forecast/rows": predictions.height,
                "forecast/total": float(predictions["yhat"].sum()),
            }
        )
    return {
        "path": str(out),
        "rows": predictions.height,
        "champion_version": str(champion.version),
        "shadow_version": shadow,
    }


def shadow_forecast(
    ctx: StepContext, history: pl.DataFrame, requests: pl.DataFrame, champion: str, day: date
) -> str | None:
    """The previous champion's forecast of the same days, kept in the ledger as a shadow.

    It is the live evidence a rollback is judged on (``gate.on_live_drop``); planners never
    see it. A previous version that can no longer be loaded only costs the shadow.
    """
    previous = registry.previous_champion()
    if previous is None or previous == champion:
        return None
    try:
        model = load_version_forecaster(previous)
    except (MlflowException, OSError) as exc:
        logger.warning("no shadow forecast for %s: v%s cannot be loaded (%s)", day, previous, exc)
        return None
    forecast = forecast_with_history(model, history, requests)
    ledger.append_forecasts(
        ctx.settings.layout.ledger, forecast, version=previous, made_on=day, role=ledger.SHADOW
    )
    return previous


def aggregates_step(ctx: StepContext, paths: DayInputs) -> dict[str, Any]:
    frames = build_aggregates(
        history_through(paths),
        io.scan_parquet(ctx.settings.layout.recovered(paths.tag)),
        io.scan_parquet(ctx.settings.layout.forecasts(paths.tag)),
        business_date=paths.day,
    )
    out = write_aggregates(ctx.settings.layout.aggregates, paths.tag, frames)
    # Every file, so a rerun of the date finds a damaged one and rebuilds (the runner).
    files = [str(out / f"{name}.parquet") for name in sorted(frames)]
    return {"path": str(out), "tables": sorted(frames), "files": files}
