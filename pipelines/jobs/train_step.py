"""The daily job's train step: the day's candidate, as of D−7 and rolled forward through D.

The gate must judge the artifact it registers, so the train step makes it in two parts:

* the **lagged candidate**, trained through D−7 by the path the day calls for: a replay
  refresh of the champion's own lagged candidate (one new day, usually), or a full fit when
  there is no such chain, a retrain is asked for, or the refresh's safety net says one is
  due (weekly, or drift). The evaluate step scores it on D−6..D, days it has never seen;
* the **candidate**, that same model rolled forward through D by a replay refresh (the
  update path; a full fit only for models that cannot be updated). It is what is registered
  and what would serve D+1..D+7.

A refresh day therefore pays for two replay updates and no full fit. The lagged chain
follows the champion: tomorrow's lagged candidate starts from the champion's.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import mlflow
import polars as pl

from models.constants import HORIZON
from models.forecasters import Forecaster
from pipelines.data import io
from pipelines.errors import FreshcastError
from pipelines.jobs.data_steps import DayInputs, recovered_history
from pipelines.jobs.runner import StepContext
from pipelines.jobs.tracking import step_run
from pipelines.serving import registry
from pipelines.training.fit import load_model
from pipelines.training.recipe import Recipe, fit_recipe
from pipelines.training.refresh import refresh_model

# The gate's window: the last week of history, as long as the forecast. The lagged
# candidate is trained through D − BACKTEST_DAYS.
BACKTEST_DAYS = HORIZON
REFRESHABLE = ("lgbm", "neural")


def lagged_cutoff(day: date) -> date:
    """The last day the lagged candidate (and the champion's forecast it is compared with)
    has seen: D−7."""
    return day - timedelta(days=BACKTEST_DAYS)


def train_step(
    ctx: StepContext, paths: DayInputs, *, retrain: bool, refresh_only: bool = False
) -> dict[str, Any]:
    """Make the lagged candidate (through D−7) and the candidate (through D); see the module.

    ``refresh_only`` (``freshcast refresh``): refresh the champion's chain or fail; never a
    full fit, and a due retrain is only reported.
    """
    layout = ctx.settings.layout
    history = recovered_history(ctx, paths)
    recipe = Recipe.from_settings(ctx.settings)
    cutoff = lagged_cutoff(paths.day)
    started = time.perf_counter()
    chain = None if retrain else champion_chain(ctx, recipe)
    if refresh_only and chain is None:
        raise FreshcastError(
            f"no champion to refresh through {paths.day}: it must be an lgbm or neural model "
            f"of the configured recipe ({recipe.model}, {recipe.target}) with its lagged "
            "candidate on disk. Run `freshcast run` (or `freshcast run --retrain`) first."
        )
    buffer_dir = _staged_buffer(ctx, recipe.model, paths.tag, chain)
    refresh_log: dict[str, Any] = {}
    mode = "retrain" if retrain else "train"
    lagged = None
    if chain is not None:
        champion_lagged = chain.lagged
        # A due retrain replaces the update, so the job does not pay for both.
        refreshed = refresh_model(
            champion_lagged,
            history,
            through=cutoff,
            buffer_dir=buffer_dir,
            skip_when_due=not refresh_only,
        )
        refresh_log = (
            (refreshed.refresh_log_ or [{}])[-1] if refreshed is not champion_lagged else {}
        )
        due = bool(refresh_log.get("needs_retrain")) and not refresh_only
        if not due:
            lagged, mode = refreshed, "refresh"
        else:
            mode = f"train ({refresh_log.get('reason')})"
    if lagged is None:
        # A full fit starts a new chain: its buffer is built from its own training windows.
        shutil.rmtree(buffer_dir, ignore_errors=True)
        lagged = fit_recipe(recipe, history.filter(pl.col("dt") <= cutoff))
    lagged_seconds = time.perf_counter() - started
    candidate = roll_forward(lagged, recipe, history, through=paths.day, buffer_dir=buffer_dir)
    seconds = time.perf_counter() - started
    io.write_bytes(lagged.save(), layout.lagged_model(paths.tag))
    io.write_bytes(candidate.save(), layout.model(paths.tag))
    with step_run(ctx, "train"):
        mlflow.log_params({**recipe.as_params(), "mode": mode, "lagged_through": str(cutoff)})
        mlflow.log_metrics({"train/seconds": seconds, "train/lagged_seconds": lagged_seconds})
        for key in ("new_windows", "replay_windows", "work", "pre_wape", "level"):
            if isinstance(refresh_log.get(key), int | float):
                mlflow.log_metric(f"refresh/{key}", float(refresh_log[key]))
        mlflow.log_dict(candidate.describe(), "model.json")
        importance = candidate.feature_importance()
        if importance is not None:
            mlflow.log_table(importance.to_pandas(), "feature_importance.json")
    return {
        "path": str(layout.model(paths.tag)),
        "lagged_path": str(layout.lagged_model(paths.tag)),
        "seconds": seconds,
        "mode": mode,
        "recipe": recipe.as_params(),
        "chain_from": None if chain is None else chain.version,
        **{
            key: refresh_log.get(key)
            for key in ("pre_wape", "new_windows", "replay_windows", "needs_retrain", "reason")
        },
    }


def roll_forward(
    lagged: Forecaster, recipe: Recipe, history: pl.DataFrame, *, through: date, buffer_dir: Path
) -> Forecaster:
    """The lagged candidate brought up to ``through`` by the update path.

    The update works on a scratch copy of the lagged chain's buffer: tomorrow's chain starts
    again from the lagged state, not from this one. Models without an update are refit.
    """
    if lagged.name not in REFRESHABLE:
        return fit_recipe(recipe, history.filter(pl.col("dt") <= through))
    with tempfile.TemporaryDirectory(prefix="freshcast-forward-") as scratch:
        forward_buffer = Path(scratch) / "buffer"
        if buffer_dir.is_dir():
            shutil.copytree(buffer_dir, forward_buffer)
        return refresh_model(lagged, history, through=through, buffer_dir=forward_buffer)


@dataclass(frozen=True)
class Chain:
    """The champion's lagged candidate, which the day's lagged candidate continues."""

    lagged: Forecaster
    version: str
    business_date: str


def champion_chain(ctx: StepContext, recipe: Recipe) -> Chain | None:
    """The champion's lagged candidate, when a replay refresh applies.

    It needs a champion of the configured, refreshable recipe whose lagged candidate is on
    disk and readable (a damaged file means a full fit, not a crash).
    """
    registry.configure(ctx.settings.tracking_uri)
    champion = registry.alias_version(registry.CHAMPION)
    if champion is None or Recipe.from_tags(champion.tags) != recipe:
        return None
    if recipe.model not in REFRESHABLE or "business_date" not in champion.tags:
        return None
    path = ctx.settings.layout.lagged_model(champion.tags["business_date"])
    if io.damage(path) is not None:
        return None
    return Chain(load_model(path), str(champion.version), champion.tags["business_date"])


def _staged_buffer(ctx: StepContext, model_name: str, day: str, chain: Chain | None) -> Path:
    """A fresh copy of the champion's lagged buffer, for this date's lagged candidate.

    Refreshing writes the buffer; staging it per date keeps a killed train step from
    leaving a buffer that already claims the new day, so a resumed run refreshes cleanly.
    """
    layout = ctx.settings.layout
    target = layout.lagged_buffer(model_name, day)
    source = None if chain is None else layout.lagged_buffer(model_name, chain.business_date)
    if source == target:  # a rerun of the champion's own date: its buffer is the source
        return target
    if target.exists():
        shutil.rmtree(target)
    if source is not None and source.is_dir():
        shutil.copytree(source, target)
    return target
