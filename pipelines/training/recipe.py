"""Recipes: how a model is made (forecaster, target, profile, recovery method).

A recipe is stored as registry tags, so the gate can rebuild and backtest the champion's.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import polars as pl

from models.constants import as_target
from models.forecasters import Forecaster
from pipelines.features.panel import make_panel, split_stage1
from pipelines.settings import Settings
from pipelines.training.fit import fit_model


@dataclass(frozen=True)
class Recipe:
    """How a model is made. Stored as registry tags so the gate can rebuild the champion's."""

    model: str
    target: str
    profile: str
    recovery_method: str

    @classmethod
    def from_settings(cls, settings: Settings) -> Recipe:
        return cls(settings.forecast_model, "recovered", settings.profile, settings.recovery_method)

    @classmethod
    def from_tags(cls, tags: dict[str, str]) -> Recipe | None:
        try:
            return cls(**{f: tags[f"recipe.{f}"] for f in cls.__dataclass_fields__})
        except KeyError:
            return None

    def as_params(self) -> dict[str, str]:
        return asdict(self)

    def as_tags(self) -> dict[str, str]:
        return {f"recipe.{k}": v for k, v in asdict(self).items()}


def fit_recipe(recipe: Recipe, history: pl.DataFrame) -> Forecaster:
    """Fit the recipe's forecaster on history (with stage-1 columns already joined)."""
    hist, recovery = split_stage1(history)
    target = as_target(recipe.target)
    panel, spec = make_panel(hist, None, target=target, recovery=recovery)
    return fit_model(recipe.model, panel, spec, target=target, profile=recipe.profile)
