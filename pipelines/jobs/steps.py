"""The steps of the daily job for one business date D.

History is every row with ``dt ≤ D``; the forecast covers D+1..D+7 with the known-future
covariates the data has for those days. No step reads a target after D.
"""

from __future__ import annotations

import json
import shutil
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import mlflow
import polars as pl

from pipelines.serving import registry
from pipelines.data import io
from pipelines.serving import pyfunc as serving
from pipelines.errors import FreshcastError
from pipelines.jobs.daily import ingest, parent_run_id, scan_all_days, step_run
from pipelines.jobs.runner import Step, StepContext

HORIZON = 7
BACKTEST_DAYS = 7


def build_steps(root: Path, day: date, *, retrain: bool) -> list[Step]:
    """The daily job's steps, bound to a dataset and a business date."""
    paths = _Paths(root, day)
    return [
        *_model_steps(paths, lambda ctx: _train(ctx, paths, retrain=retrain)),
        Step("forecast", lambda ctx: _forecast(ctx, paths)),
        Step("aggregates", lambda ctx: _aggregates(ctx, paths)),
    ]


def build_refresh_steps(root: Path, day: date) -> list[Step]:
    """The ``freshcast refresh`` job's steps: the daily job's, up to the gate, with a train
    step that only refreshes the champion (no fallback to a full fit)."""
    paths = _Paths(root, day)
    return _model_steps(paths, lambda ctx: _train(ctx, paths, retrain=False, refresh_only=True))


def _model_steps(paths: _Paths, train: Any) -> list[Step]:
    """Ingest to gate: what the daily job and the refresh job share."""
    return [
        Step("ingest", lambda ctx: _ingest(ctx, paths)),
        Step("recover", lambda ctx: _recover(ctx, paths)),
        Step("train", train),
        Step("evaluate", lambda ctx: _evaluate(ctx, paths)),
        Step("register", lambda ctx: _register(ctx, paths)),
        Step("gate", lambda ctx: _gate(ctx)),
    ]


class _Paths:
    """Where the daily job reads and writes for one date (all under ``data/``)."""

    def __init__(self, root: Path, day: date) -> None:
        self.root = root
        self.day = day
        self.tag = day.isoformat()

    def recovered(self, ctx: StepContext) -> Path:
        return ctx.settings.work_dir / "recovered" / f"{self.tag}.parquet"

    def model(self, ctx: StepContext) -> Path:
        return ctx.settings.work_dir / "models" / self.tag / "model.pkl"

    def forecasts(self, ctx: StepContext) -> Path:
        return ctx.settings.work_dir / "forecasts" / f"{self.tag}.parquet"

    def metrics(self, ctx: StepContext) -> Path:
        return ctx.settings.work_dir / "metrics" / f"{self.tag}.json"


def _history(paths: _Paths) -> pl.LazyFrame:
    return scan_all_days(paths.root).filter(pl.col("dt") <= paths.day)


def _future(paths: _Paths) -> pl.LazyFrame:
    end = paths.day + timedelta(days=HORIZON)
    return scan_all_days(paths.root).filter((pl.col("dt") > paths.day) & (pl.col("dt") <= end))


def _ingest(ctx: StepContext, paths: _Paths) -> dict[str, Any]:
    report = ingest(paths.root)
    with step_run(ctx, "ingest"):
        train = report.summary.get("train", {})
        mlflow.log_metrics(
            {"data/rows": train.get("rows", 0), "data/series": train.get("series", 0)}
        )
        mlflow.log_dict(report.to_dict(), "validation.json")
    return {"summary": json.loads(json.dumps(report.summary, default=str))}


def _recover(ctx: StepContext, paths: _Paths) -> dict[str, Any]:
    from pipelines.recovery.recover import recover_demand

    method = ctx.settings.recovery_method
    history = _history(paths)
    started = time.perf_counter()
    recovered = recover_demand(history, method=method)
    seconds = time.perf_counter() - started
    out = io.write_parquet(recovered, paths.recovered(ctx))
    observed = history.select("series_id", "dt", "sale_amount").collect()
    joined = recovered.join(observed, on=["series_id", "dt"])
    lost = float((joined["demand_amount"] - joined["sale_amount"]).sum())
    with step_run(ctx, "recover"):
        registry.log_frame_input(
            observed, source=str(paths.root), name="history", context="recover"
        )
        mlflow.log_params({"method": method})
        mlflow.log_metrics(
            {
                "recover/seconds": seconds,
                "recover/imputed_hours": float(recovered["imputed_hours"].sum()),
                "recover/lost_sales": lost,
            }
        )
        sample = joined.sort("series_id", "dt").head(500).drop("hours_demand")
        mlflow.log_table(sample.to_pandas(), "recovered_sample.json")
    return {"path": str(out), "rows": recovered.height, "seconds": seconds, "lost_sales": lost}


def _train(
    ctx: StepContext, paths: _Paths, *, retrain: bool, refresh_only: bool = False
) -> dict[str, Any]:
    """Refresh the champion with replay when it can be; otherwise a full fit.

    A refresh needs a champion of the same recipe, trained before D. The refresh's own
    safety net (weekly, or drift in its prequential error) turns it into a full fit, except
    with ``refresh_only`` (``freshcast refresh``): then the refreshed model goes on to the
    gate, the due retrain is reported, and no refreshable champion is an error.
    """
    history = _recovered_history(ctx, paths)
    recipe = serving.Recipe.from_settings(ctx.settings)
    started = time.perf_counter()
    champion = None if retrain else _refreshable_champion(ctx, recipe, paths.day)
    if refresh_only and champion is None:
        raise FreshcastError(
            f"no champion to refresh through {paths.day}: it must be an lgbm or neural model "
            f"of the configured recipe ({recipe.model}, {recipe.target}) trained before that "
            "day. Run `freshcast run` (or `freshcast run --retrain`) first."
        )
    refresh_log: dict[str, Any] = {}
    mode = "retrain" if retrain else "train"
    model = None
    if champion is not None:
        from pipelines.training.refresh import refresh_model

        buffer_dir = _staged_buffer(ctx, champion.name, paths.day)
        # A due retrain replaces the update, so the daily job does not pay for both.
        refreshed = refresh_model(
            champion,
            history,
            through=paths.day,
            buffer_dir=buffer_dir,
            skip_when_due=not refresh_only,
        )
        refresh_log = (getattr(refreshed, "refresh_log_", None) or [{}])[-1]
        if refreshed is not champion and (refresh_only or not refresh_log.get("needs_retrain")):
            model, mode = refreshed, "refresh"
        elif refresh_only:  # the refresh job never falls back to a full fit
            raise FreshcastError(
                f"nothing to refresh through {paths.day}: no new days after the champion's "
                f"last training day ({champion.train_end_})"
            )
        else:
            mode = f"train ({refresh_log.get('reason') or 'no new days'})"
    if model is None:
        model = serving.fit_recipe(recipe, history)
    seconds = time.perf_counter() - started
    path = paths.model(ctx)
    with io.atomic_path(path) as tmp:
        tmp.write_bytes(model.to_bytes())
    with step_run(ctx, "train"):
        mlflow.log_params({**recipe.as_params(), "mode": mode})
        mlflow.log_metric("train/seconds", seconds)
        for key in ("new_windows", "replay_windows", "work", "pre_wape", "level"):
            if isinstance(refresh_log.get(key), int | float):
                mlflow.log_metric(f"refresh/{key}", float(refresh_log[key]))
        mlflow.log_dict(model.describe(), "model.json")
        importance = serving.feature_importance(model)
        if importance is not None:
            mlflow.log_table(importance.to_pandas(), "feature_importance.json")
    return {
        "path": str(path),
        "seconds": seconds,
        "mode": mode,
        "recipe": recipe.as_params(),
        **{
            key: refresh_log.get(key)
            for key in (
                "pre_wape",
                "new_windows",
                "replay_windows",
                "needs_retrain",
                "reason",
                "updated",
                "level",
            )
        },
    }


def _refreshable_champion(ctx: StepContext, recipe: serving.Recipe, day: date) -> Any:
    """The champion's forecaster when a replay refresh applies to it, else None."""
    registry.configure(ctx.settings.tracking_uri)
    champion = registry.alias_version(registry.CHAMPION)
    if champion is None or serving.Recipe.from_tags(champion.tags) != recipe:
        return None
    if recipe.model not in ("lgbm", "neural"):
        return None
    model = mlflow.pyfunc.load_model(f"models:/{registry.MODEL_NAME}@{registry.CHAMPION}")
    forecaster = model.unwrap_python_model().model_
    return forecaster if forecaster.train_end_ < day else None


def _staged_buffer(ctx: StepContext, model_name: str, day: date) -> Path:
    """A fresh copy of the latest replay buffer before D, for this date's refresh.

    Refreshing writes the buffer; staging it per date keeps a killed train step from
    leaving a buffer that already claims day D, so a resumed run refreshes again cleanly.
    """
    root = ctx.settings.work_dir / "replay" / model_name
    target = root / day.isoformat()
    if target.exists():
        shutil.rmtree(target)
    earlier = (
        sorted(p for p in root.glob("????-??-??") if p.name < day.isoformat())
        if root.exists()
        else []
    )
    if earlier:
        shutil.copytree(earlier[-1], target)
    return target


def _evaluate(ctx: StepContext, paths: _Paths) -> dict[str, Any]:
    """Backtest the challenger's recipe and the champion's on the same window (D−6..D)."""
    history = _recovered_history(ctx, paths)
    recipe = serving.Recipe.from_settings(ctx.settings)
    started = time.perf_counter()
    result = serving.backtest_recipe(recipe, history, days=BACKTEST_DAYS)
    backtest_seconds = time.perf_counter() - started
    _record_refresh_history(ctx, paths, result.metrics, backtest_seconds)
    champion = registry.alias_version(registry.CHAMPION)
    champion_metrics = None
    if champion is not None:
        champion_recipe = serving.Recipe.from_tags(champion.tags)
        if champion_recipe == recipe:
            champion_metrics = result.metrics
        elif champion_recipe is not None:
            champion_metrics = serving.backtest_recipe(
                champion_recipe, history, days=BACKTEST_DAYS
            ).metrics
    rows = [
        {
            "task": "forecast",
            "method": recipe.model,
            "target": recipe.target,
            "scope": "backtest",
            **result.metrics,
        }
    ]
    io.write_json(rows, paths.metrics(ctx))
    with step_run(ctx, "evaluate"):
        mlflow.log_params(
            {**recipe.as_params(), "window_end": paths.tag, "window_days": BACKTEST_DAYS}
        )
        mlflow.log_metrics({f"eval/{k}": v for k, v in result.metrics.items()})
        mlflow.log_text(json.dumps(rows, indent=2), "metrics.json")
        mlflow.log_figure(
            serving.plot_forecast_vs_actual(result.predictions), "forecast_vs_actual.png"
        )
    return {
        "metrics": result.metrics,
        "champion_metrics": champion_metrics,
        "champion_version": str(champion.version) if champion else None,
    }


def _record_refresh_history(
    ctx: StepContext, paths: _Paths, metrics: dict[str, float], full_fit_seconds: float
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
    path = ctx.settings.work_dir / "continual" / "history.parquet"
    if path.is_file():
        past = io.scan_parquet(path).collect().filter(pl.col("business_date") != paths.day)
        row = pl.concat([past, row], how="vertical_relaxed")
    io.write_parquet(row.sort("business_date"), path)


def _register(ctx: StepContext, paths: _Paths) -> dict[str, Any]:
    """Log and register the model; a resumed run reuses a version it registered before."""
    registry.configure(ctx.settings.tracking_uri)
    # The parent run id names this attempt: a resumed run finds its own version again,
    # a --force rerun (a new parent run) registers a new one.
    tags = {"business_date": paths.tag, "job": ctx.job, "job_run_id": parent_run_id(ctx)}
    existing = registry.find_version(**tags)
    if existing is None:
        model = serving.load_model_file(paths.model(ctx))
        recipe = serving.Recipe.from_settings(ctx.settings)
        metrics = ctx.records["evaluate"]["metrics"]
        history = _recovered_history(ctx, paths)
        with step_run(ctx, "register"):
            mlflow.log_params(recipe.as_params())
            mlflow.log_metrics({f"eval/{k}": v for k, v in metrics.items()})
            existing = serving.log_and_register(
                model, history, recipe=recipe, tags={**tags, **recipe.as_tags()}
            )
    registry.set_alias(registry.CHALLENGER, existing.version)
    return {"version": str(existing.version)}


def _gate(ctx: StepContext) -> dict[str, Any]:
    registry.configure(ctx.settings.tracking_uri)
    evaluation = ctx.records["evaluate"]
    version = ctx.records["register"]["version"]
    champion = evaluation["champion_metrics"]
    decision = registry.decide_promotion(
        challenger_acc=evaluation["metrics"]["acc"],
        challenger_wpe=evaluation["metrics"]["wpe"],
        champion_acc=None if champion is None else champion["acc"],
        tolerance=ctx.settings.gate.acc_tolerance,
        wpe_limit=ctx.settings.gate.wpe_limit,
    )
    if decision.promote:
        registry.set_champion(version)
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
    }


def _forecast(ctx: StepContext, paths: _Paths) -> dict[str, Any]:
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
    pyfunc = mlflow.pyfunc.load_model(f"models:/{registry.MODEL_NAME}@{registry.CHAMPION}")
    history = _recovered_history(ctx, paths)
    requests = serving.forecast_requests(
        history.lazy(), _future(paths), day=paths.day, horizon=HORIZON
    )
    predictions = serving.forecast_with_history(
        pyfunc.unwrap_python_model().model_, history, requests
    )
    out = io.write_parquet(predictions, paths.forecasts(ctx))
    with step_run(ctx, "forecast"):
        mlflow.set_tag("champion_version", str(champion.version))
        mlflow.log_metrics(
            {
                "forecast/rows": predictions.height,
                "forecast/total": float(predictions["yhat"].sum()),
            }
        )
    return {"path": str(out), "rows": predictions.height, "champion_version": str(champion.version)}


def _aggregates(ctx: StepContext, paths: _Paths) -> dict[str, Any]:
    from pipelines.serving.aggregates import build_aggregates, write_aggregates

    frames = build_aggregates(
        _history(paths),
        io.scan_parquet(paths.recovered(ctx)),
        io.scan_parquet(paths.forecasts(ctx)),
        business_date=paths.day,
    )
    out = write_aggregates(ctx.settings.work_dir, paths.tag, frames)
    return {"path": str(out), "tables": sorted(frames)}


def _recovered_history(ctx: StepContext, paths: _Paths) -> pl.DataFrame:
    """History ≤ D with stage-1 ``demand_amount`` and ``imputed_hours`` joined on."""
    recovered = io.scan_parquet(paths.recovered(ctx)).select(
        "series_id", "dt", "demand_amount", "imputed_hours"
    )
    return _history(paths).join(recovered, on=["series_id", "dt"], how="left").collect()
