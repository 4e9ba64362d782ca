"""The daily job's last steps: forecast D+1..D+7 with the champion (kept in the ledger),
score the ledger against the days that have arrived, build the UI's aggregates."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import mlflow
import polars as pl

from models.constants import HORIZON
from pipelines.data import io
from pipelines.errors import FreshcastError
from pipelines.jobs.alerts import send_alert
from pipelines.jobs.data_steps import DayInputs, future_days, history_through, recovered_history
from pipelines.jobs.runner import StepContext
from pipelines.jobs.tracking import step_run
from pipelines.serving import ledger, registry
from pipelines.serving.aggregates import build_aggregates, write_aggregates
from pipelines.serving.forecast import forecast_requests, forecast_with_history
from pipelines.serving.pyfunc import load_champion_forecaster


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
    with step_run(ctx, "forecast"):
        mlflow.set_tag("champion_version", str(champion.version))
        mlflow.log_metrics(
            {
                "forecast/rows": predictions.height,
                "forecast/total": float(predictions["yhat"].sum()),
            }
        )
    return {"path": str(out), "rows": predictions.height, "champion_version": str(champion.version)}


def live_step(ctx: StepContext, paths: DayInputs) -> dict[str, Any]:
    """Score the served forecasts of the last week's target days against their actuals.

    Live acc as of D is the published protocol over target days D−6..D, all horizons, per
    version that forecast them: written to ``data/live/D.parquet`` and logged as
    ``live/acc``, ``live/wpe`` and ``live/coverage`` on each version's own run (one point
    per business date). A champion whose live acc is below its gate acc − margin is flagged.
    """
    layout = ctx.settings.layout
    first_target = paths.day - timedelta(days=ledger.LIVE_DAYS - 1)
    # Forecasts for those days were made at most HORIZON days before each of them.
    book = ledger.rolling_window(
        ledger.read_ledger(layout.ledger, made_since=first_target - timedelta(days=HORIZON)),
        through=paths.day,
    )
    recovered = io.scan_parquet(layout.recovered(paths.tag)).select(
        "series_id", "dt", "demand_amount"
    )
    actuals = (
        history_through(paths)
        .filter(pl.col("dt") >= first_target)
        .join(recovered, on=["series_id", "dt"], how="left")
        .select(
            "store_id", "product_id", "dt", "sale_amount", "stock_hour6_22_cnt", "demand_amount"
        )
        .collect()
    )
    scores = ledger.score_ledger(book, actuals)
    io.write_parquet(
        scores.with_columns(pl.lit(paths.day).alias("business_date")), layout.live(paths.tag)
    )
    registry.configure(ctx.settings.tracking_uri)
    step = (paths.day - date(1970, 1, 1)).days
    overall = scores.filter((pl.col("target") == "sales_clean") & (pl.col("horizon") == 0))
    live_acc: dict[str, float] = {}
    for row in overall.iter_rows(named=True):
        version = registry.get_version(row["version"])
        if version is None or row["acc"] != row["acc"]:
            continue
        live_acc[row["version"]] = row["acc"]
        registry.log_version_metrics(
            version,
            {"live/acc": row["acc"], "live/wpe": row["wpe"], "live/coverage": row["coverage"]},
            step=step,
        )
    alert = _stale_champion(ctx, live_acc, serving_version(book, paths.day), paths.day)
    return {"live_acc": live_acc, "alert": alert}


def serving_version(book: pl.DataFrame, day: date) -> str | None:
    """The version that served the newest forecast of ``day``: the champion as of D−1.

    Judged, not today's champion: a promotion today has not served a single day yet.
    """
    rows = book.filter(pl.col("dt") == day)
    if rows.is_empty():
        return None
    return str(rows.sort("made_on").row(-1, named=True)["version"])


def _stale_champion(
    ctx: StepContext, live_acc: dict[str, float], serving: str | None, day: date
) -> str | None:
    """An alert when the serving champion's live acc is below its gate acc − margin."""
    version = None if serving is None else registry.get_version(serving)
    if version is None or serving not in live_acc:
        return None
    live = live_acc[serving]
    gate_acc = registry.version_metrics(version).get("eval/acc")
    margin = ctx.settings.gate.live_margin
    if gate_acc is None or live >= gate_acc - margin:
        return None
    message = (
        f"champion v{serving}: live acc {live:.4f} over the week through {day} is more "
        f"than {margin} below the {gate_acc:.4f} the gate measured"
    )
    registry.tag_version(version, {"live/alert": message})
    send_alert(
        message,
        webhook=ctx.settings.alert_webhook,
        payload={"version": serving, "live_acc": live, "gate_acc": gate_acc, "day": day},
    )
    return message


def aggregates_step(ctx: StepContext, paths: DayInputs) -> dict[str, Any]:
    frames = build_aggregates(
        history_through(paths),
        io.scan_parquet(ctx.settings.layout.recovered(paths.tag)),
        io.scan_parquet(ctx.settings.layout.forecasts(paths.tag)),
        business_date=paths.day,
    )
    out = write_aggregates(ctx.settings.layout.aggregates, paths.tag, frames)
    return {"path": str(out), "tables": sorted(frames)}
