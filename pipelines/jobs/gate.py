"""The gate: backtest the challenger, register it, and promote it only if it passes.

The evaluate step backtests the recipe and the champion's on the same window (D−6..D);
the register step logs the pyfunc and sets ``challenger``; the gate step promotes it to
``champion`` when :func:`decide_promotion` says so.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

import mlflow
import polars as pl

from models.constants import HORIZON
from pipelines.data import io
from pipelines.errors import DataError
from pipelines.evaluation.backtest import backtest_recipe, plot_forecast_vs_actual
from pipelines.jobs.data_steps import DayInputs, recovered_history
from pipelines.jobs.runner import StepContext
from pipelines.jobs.tracking import parent_run_id, step_run
from pipelines.serving import registry
from pipelines.serving.pyfunc import log_and_register
from pipelines.training.fit import load_model
from pipelines.training.recipe import Recipe

logger = logging.getLogger("freshcast")

# The backtest window: the last week of history, as long as the forecast.
BACKTEST_DAYS = HORIZON


@dataclass(frozen=True)
class GateDecision:
    """Whether a challenger may replace the champion, with the figures that decided it."""

    promote: bool
    reason: str
    challenger_acc: float
    challenger_wpe: float
    champion_acc: float | None
    tolerance: float
    wpe_limit: float

    def as_metrics(self) -> dict[str, float]:
        out = {
            "gate/promote": float(self.promote),
            "gate/challenger_acc": self.challenger_acc,
            "gate/challenger_wpe": self.challenger_wpe,
        }
        if self.champion_acc is not None:
            out["gate/champion_acc"] = self.champion_acc
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def decide_promotion(
    *,
    challenger_acc: float,
    challenger_wpe: float,
    champion_acc: float | None,
    tolerance: float,
    wpe_limit: float,
) -> GateDecision:
    """The promotion gate: acc ≥ champion's − tolerance and |wpe| ≤ limit, on the same windows."""

    def decision(promote: bool, reason: str) -> GateDecision:
        return GateDecision(
            promote, reason, challenger_acc, challenger_wpe, champion_acc, tolerance, wpe_limit
        )

    if champion_acc is None:
        # Bootstrap: with no champion there is nothing to protect, and planners need a
        # forecast. The bias is still reported so a person can act on it.
        note = (
            f"; note |wpe| {abs(challenger_wpe):.4f} > limit {wpe_limit}"
            if abs(challenger_wpe) > wpe_limit
            else ""
        )
        return decision(True, f"no champion yet{note}")
    if abs(challenger_wpe) > wpe_limit:
        return decision(False, f"|wpe| {abs(challenger_wpe):.4f} > limit {wpe_limit}")
    if challenger_acc < champion_acc - tolerance:
        return decision(
            False, f"acc {challenger_acc:.4f} < champion {champion_acc:.4f} - {tolerance}"
        )
    return decision(True, f"acc {challenger_acc:.4f} ≥ champion {champion_acc:.4f} - {tolerance}")


def evaluate_step(ctx: StepContext, paths: DayInputs) -> dict[str, Any]:
    """Backtest the challenger's recipe and the champion's on the same window (D−6..D)."""
    history = recovered_history(ctx, paths)
    recipe = Recipe.from_settings(ctx.settings)
    started = time.perf_counter()
    result = backtest_recipe(recipe, history, days=BACKTEST_DAYS)
    backtest_seconds = time.perf_counter() - started
    if "acc" not in result.metrics or "wpe" not in result.metrics:
        # Nothing to judge the model by: stop before it can be registered.
        first = paths.day - timedelta(days=BACKTEST_DAYS - 1)
        raise DataError(
            f"the backtest window {first} .. {paths.day} has no day to score "
            f"({int(result.metrics.get('rows', 0))} rows without a stockout in hours 6..21 and "
            "with sales); no version was registered. Run a later date, when clean days arrive."
        )
    record_refresh_history(ctx, paths, result.metrics, backtest_seconds)
    champion = registry.alias_version(registry.CHAMPION)
    champion_metrics = None
    if champion is not None:
        champion_recipe = Recipe.from_tags(champion.tags)
        if champion_recipe == recipe:
            champion_metrics = result.metrics
        elif champion_recipe is not None:
            champion_metrics = backtest_recipe(champion_recipe, history, days=BACKTEST_DAYS).metrics
    rows = [
        {
            "task": "forecast",
            "method": recipe.model,
            "target": recipe.target,
            "scope": "backtest",
            **result.metrics,
        }
    ]
    io.write_json(rows, ctx.settings.layout.metrics(paths.tag))
    with step_run(ctx, "evaluate"):
        mlflow.log_params(
            {**recipe.as_params(), "window_end": paths.tag, "window_days": BACKTEST_DAYS}
        )
        mlflow.log_metrics({f"eval/{k}": v for k, v in result.metrics.items()})
        mlflow.log_text(json.dumps(rows, indent=2), "metrics.json")
        mlflow.log_figure(plot_forecast_vs_actual(result.predictions), "forecast_vs_actual.png")
    return {
        "metrics": result.metrics,
        "champion_metrics": champion_metrics,
        "champion_version": str(champion.version) if champion else None,
    }


def record_refresh_history(
    ctx: StepContext, paths: DayInputs, metrics: dict[str, float], full_fit_seconds: float
) -> None:
    """One row per date in ``data/continual/history.parquet`` for the Models page.

    ``acc_full_retrain_backtest`` is the recipe fit from scratch and scored on D−6..D;
    ``acc_refresh_prequential`` is 1 − the pooled WAPE of the model being refreshed on its new
    days before it learned them (out of sample; null on full fits). Seconds compare the
    day's train step with one full fit.
    """
    train = ctx.records.get("train", {})
    pre = train.get("pre_wape")
    row = pl.DataFrame(
        {
            "business_date": [paths.day],
            "mode": [str(train.get("mode", ""))],
            "acc_full_retrain_backtest": [metrics.get("acc")],
            "acc_refresh_prequential": [None if pre is None or pre != pre else 1 - float(pre)],
            "seconds_train_step": [float(train.get("seconds", 0.0))],
            "seconds_full_fit": [full_fit_seconds],
        },
        schema_overrides={
            "acc_refresh_prequential": pl.Float64,
            "acc_full_retrain_backtest": pl.Float64,
        },
    )
    path = ctx.settings.layout.continual_history
    damaged = io.damage(path) if path.exists() else None
    if damaged is not None:
        # Only the Models page reads this file: a damaged one is started afresh, not fatal.
        logger.warning("%s: %s; starting it afresh", path, damaged)
    elif path.is_file():
        past = io.scan_parquet(path).collect().filter(pl.col("business_date") != paths.day)
        row = pl.concat([past, row], how="vertical_relaxed")
    io.write_parquet(row.sort("business_date"), path)


def register_step(ctx: StepContext, paths: DayInputs) -> dict[str, Any]:
    """Log and register the model; a resumed run reuses a version it registered before."""
    registry.configure(ctx.settings.tracking_uri)
    # The parent run id names this attempt: a resumed run finds its own version again,
    # a --force rerun (a new parent run) registers a new one.
    tags = {"business_date": paths.tag, "job": ctx.job, "job_run_id": parent_run_id(ctx)}
    existing = registry.find_version(**tags)
    if existing is None:
        model = load_model(ctx.settings.layout.model(paths.tag))
        recipe = Recipe.from_settings(ctx.settings)
        metrics = ctx.records["evaluate"]["metrics"]
        history = recovered_history(ctx, paths)
        with step_run(ctx, "register"):
            mlflow.log_params(recipe.as_params())
            mlflow.log_metrics({f"eval/{k}": v for k, v in metrics.items()})
            existing = log_and_register(
                model, history, recipe=recipe, tags={**tags, **recipe.as_tags()}
            )
    registry.set_alias(registry.CHALLENGER, existing.version)
    return {"version": str(existing.version)}


def gate_step(ctx: StepContext) -> dict[str, Any]:
    registry.configure(ctx.settings.tracking_uri)
    evaluation = ctx.records["evaluate"]
    version = ctx.records["register"]["version"]
    champion = evaluation["champion_metrics"]
    decision = decide_promotion(
        challenger_acc=evaluation["metrics"]["acc"],
        challenger_wpe=evaluation["metrics"]["wpe"],
        champion_acc=None if champion is None else champion["acc"],
        tolerance=ctx.settings.gate.acc_tolerance,
        wpe_limit=ctx.settings.gate.wpe_limit,
    )
    if decision.promote:
        registry.set_champion(version)
    # A first champion is promoted with nothing to protect, even past the bias cap: planners
    # need a forecast. Then it must not pass unnoticed: a WARNING, and a tag the UI shows.
    warning = None
    if decision.promote and champion is None and abs(decision.challenger_wpe) > decision.wpe_limit:
        warning = (
            f"v{version} became the first champion although its |wpe| "
            f"{abs(decision.challenger_wpe):.4f} exceeds the limit {decision.wpe_limit}"
        )
        logger.warning(warning)
        registered = registry.get_version(version)
        if registered is not None:
            registry.tag_version(registered, {"gate/warning": warning})
    with step_run(ctx, "gate"):
        mlflow.log_metrics(decision.as_metrics())
        mlflow.set_tags(
            {"gate/decision": "promote" if decision.promote else "keep", "version": version}
        )
        mlflow.log_dict(decision.to_dict(), "gate_decision.json")
    verdict = "promoted to champion" if decision.promote else "kept the champion"
    return {
        "version": version,
        "promote": decision.promote,
        "reason": f"{verdict}: {decision.reason}",
        "warning": warning,
    }
