"""Stage-2 forecasters behind one interface (see :mod:`models.forecasters.base`): fit, predict,
update, save and load."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from models.forecasters.base import Forecaster
from models.forecasters.baselines import SSA, BaselineConfig, MovingAverage, SeasonalNaive
from models.forecasters.ensemble import EnsembleConfig, EnsembleForecaster
from models.forecasters.lgbm import LGBMConfig, LGBMForecaster
from models.forecasters.neural import NeuralConfig, NeuralForecaster

MODEL_NAMES: tuple[str, ...] = (
    "lgbm",
    "neural",
    "ensemble",
    "ssa",
    "seasonal_naive",
    "moving_average",
)

_BASELINES: dict[str, type[Forecaster]] = {
    "ssa": SSA,
    "seasonal_naive": SeasonalNaive,
    "moving_average": MovingAverage,
}


def default_config(name: str, profile: str = "default") -> Any:
    """The config of model ``name`` for a profile: ``"smoke"`` (few trees, 1 short epoch);
    any other profile takes the default config."""
    if name == "lgbm":
        cfg = LGBMConfig()
        return (
            replace(
                cfg,
                n_estimators=20,
                num_leaves=15,
                min_child_samples=5,
                row_fraction=1.0,
                calibration_row_scale=1.0,
                num_threads=1,
            )
            if profile == "smoke"
            else cfg
        )
    if name == "neural":
        cfg_n = NeuralConfig()
        return (
            replace(
                cfg_n, epochs=1, samples_per_epoch=4096, batch_size=512, hidden=32, num_threads=1
            )
            if profile == "smoke"
            else cfg_n
        )
    if name == "ensemble":
        return EnsembleConfig(step=0.1) if profile == "smoke" else EnsembleConfig()
    if name in _BASELINES:
        return BaselineConfig()
    raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODEL_NAMES)}")


def make_forecaster(
    name: str,
    config: Any = None,
    *,
    target: str = "recovered",
    features: dict[str, tuple[str, ...]] | None = None,
    profile: str = "default",
) -> Forecaster:
    """Build an unfitted forecaster.

    Args:
        name: one of :data:`MODEL_NAMES`.
        config: the model's config dataclass; None takes :func:`default_config`.
        target: ``"recovered"`` or ``"censored"`` (recorded on the model).
        features: for ``lgbm``/``ensemble``: ``origin``, ``target_day`` and ``categorical``
            feature column names (the pipeline's FeatureSpec).
        profile: used when ``config`` is None.
    """
    cfg = config if config is not None else default_config(name, profile)
    if name == "lgbm":
        if features:
            cfg = replace(
                cfg,
                origin_features=tuple(features["origin"]),
                target_day_features=tuple(features["target_day"]),
                categorical=tuple(features["categorical"]),
            )
        if not cfg.origin_features and not cfg.target_day_features:
            raise ValueError("lgbm needs feature names (pass features=...)")
        return LGBMForecaster(cfg, target=target)
    if name == "neural":
        return NeuralForecaster(cfg, target=target)
    if name == "ensemble":
        members = [
            make_forecaster(m, target=target, features=features, profile=profile)
            for m in cfg.members
        ]
        return EnsembleForecaster(cfg, members=members, target=target)
    if name in _BASELINES:
        return _BASELINES[name](cfg, target=target)
    raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODEL_NAMES)}")


__all__ = [
    "MODEL_NAMES",
    "Forecaster",
    "default_config",
    "make_forecaster",
]
