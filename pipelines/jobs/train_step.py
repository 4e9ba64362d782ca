"""The daily job's train step: refresh the champion with replay, or fit the recipe afresh."""

from __future__ import annotations

import shutil
import time
from datetime import date
from pathlib import Path
from typing import Any

import mlflow

from models.forecasters import Forecaster
from pipelines.data import io
from pipelines.errors import FreshcastError
from pipelines.jobs.data_steps import DayInputs, recovered_history
from pipelines.jobs.runner import StepContext
from pipelines.jobs.tracking import step_run
from pipelines.serving import registry
from pipelines.serving.pyfunc import load_champion_forecaster
from pipelines.training.recipe import Recipe, fit_recipe
from pipelines.training.refresh import refresh_model


def train_step(
    ctx: StepContext, paths: DayInputs, *, retrain: bool, refresh_only: bool = False
) -> dict[str, Any]:
    """Refresh the champion with replay when it can be; otherwise a full fit.

    A refresh needs a champion of the same recipe, trained before D. The refresh's own
    safety net (weekly, or drift in its prequential error) turns it into a full fit, except
    with ``refresh_only`` (``freshcast refresh``): then the refreshed model goes on to the
    gate, the due retrain is reported, and no refreshable champion is an error.
    """
    history = recovered_history(ctx, paths)
    recipe = Recipe.from_settings(ctx.settings)
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
        buffer_dir = _staged_buffer(ctx, champion.name, paths.day)
        # A due retrain replaces the update, so the daily job does not pay for both.
        refreshed = refresh_model(
            champion,
            history,
            through=paths.day,
            buffer_dir=buffer_dir,
            skip_when_due=not refresh_only,
        )
        refresh_log = (refreshed.refresh_log_ or [{}])[-1]
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
        model = fit_recipe(recipe, history)
    seconds = time.perf_counter() - started
    path = ctx.settings.layout.model(paths.tag)
    with io.atomic_path(path) as tmp:
        tmp.write_bytes(model.save())
    with step_run(ctx, "train"):
        mlflow.log_params({**recipe.as_params(), "mode": mode})
        mlflow.log_metric("train/seconds", seconds)
        for key in ("new_windows", "replay_windows", "work", "pre_wape", "level"):
            if isinstance(refresh_log.get(key), int | float):
                mlflow.log_metric(f"refresh/{key}", float(refresh_log[key]))
        mlflow.log_dict(model.describe(), "model.json")
        importance = model.feature_importance()
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


def _refreshable_champion(ctx: StepContext, recipe: Recipe, day: date) -> Forecaster | None:
    """The champion's forecaster when a replay refresh applies to it, else None."""
    registry.configure(ctx.settings.tracking_uri)
    champion = registry.alias_version(registry.CHAMPION)
    if champion is None or Recipe.from_tags(champion.tags) != recipe:
        return None
    if recipe.model not in ("lgbm", "neural"):
        return None
    forecaster = load_champion_forecaster()
    return forecaster if forecaster.train_end_ < day else None


def _staged_buffer(ctx: StepContext, model_name: str, day: date) -> Path:
    """A fresh copy of the latest replay buffer before D, for this date's refresh.

    Refreshing writes the buffer; staging it per date keeps a killed train step from
    leaving a buffer that already claims day D, so a resumed run refreshes again cleanly.
    """
    root = ctx.settings.layout.replay(model_name)
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
