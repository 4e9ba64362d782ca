"""Stage 2's fit: train a forecaster on a panel, and read and write model files.

:func:`fit_model` is the in-memory core (the recipe, the backtest and the protocols call
it); :func:`run_train` is ``freshcast train``, a folder's whole train split in, a model file
out. Forecasting with a fitted model lives in :mod:`pipelines.serving.forecast`.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import polars as pl

from models.constants import Target
from models.forecasters import Forecaster, make_forecaster
from pipelines.data.io import scan_split, write_bytes
from pipelines.errors import DataError
from pipelines.features.config import FeatureConfig, FeatureSpec
from pipelines.features.panel import Recovery, make_panel, sample_series
from pipelines.settings import load_settings


def spec_dict(spec: FeatureSpec) -> dict[str, tuple[str, ...]]:
    """A FeatureSpec as the plain dict :func:`models.forecasters.make_forecaster` takes."""
    return {"origin": spec.origin, "target_day": spec.target_day, "categorical": spec.categorical}


def fit_model(
    name: str,
    panel: pl.DataFrame,
    spec: FeatureSpec,
    *,
    target: Target,
    profile: str = "default",
    config: Any = None,
    feature_config: FeatureConfig | None = None,
) -> Forecaster:
    """Fit model ``name`` on the panel's history and record how to rebuild its features."""
    model = make_forecaster(name, config, target=target, features=spec_dict(spec), profile=profile)
    # Plain data only, so unpickling never needs pipelines (models must not import it).
    return model.fit(panel, metadata={"feature_config": asdict(feature_config or FeatureConfig())})


def load_model(path: Path) -> Forecaster:
    """Load a model file written by :func:`run_train`."""
    if not path.is_file():
        raise DataError("model file not found", file=path)
    try:
        return Forecaster.load(path.read_bytes())
    except Exception as exc:
        raise DataError(
            f"not a freshcast model file ({type(exc).__name__}: {exc})", file=path
        ) from None


def save_model(model: Forecaster, path: Path) -> Path:
    """Write a fitted model atomically."""
    return write_bytes(model.save(), path)


def run_train(
    data_dir: Path,
    model: str = "lgbm",
    target: Target = "recovered",
    out_model_path: Path | None = None,
    *,
    profile: str = "default",
    series: int | None = None,
    recovery: Recovery | None = None,
) -> tuple[Forecaster, dict[str, Any]]:
    """Train ``model`` on the whole train split of ``data_dir`` and save it.

    Args:
        data_dir: a folder in the hub layout.
        model: a name from :data:`models.forecasters.MODEL_NAMES`.
        target: ``"recovered"`` or ``"censored"``.
        out_model_path: where to write the model; default ``data/models/<model>-<target>.pkl``.
        profile: ``"default"`` or ``"smoke"``.
        series: train on a random subset of this many series (None: all).
        recovery: stage-1 function; default :func:`default_recovery`.

    Returns:
        The fitted model and an info dict (``describe()`` plus ``path`` and ``seconds``).
    """
    started = time.perf_counter()
    history = sample_series(scan_split(data_dir, "train"), series)
    panel, spec = make_panel(history, None, target=target, recovery=recovery)
    fitted = fit_model(model, panel, spec, target=target, profile=profile)
    path = out_model_path or load_settings().layout.trained_model(model, target)
    save_model(fitted, path)
    info = {**fitted.describe(), "path": str(path), "seconds": time.perf_counter() - started}
    return fitted, info
