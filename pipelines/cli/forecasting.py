"""Model commands: train a forecaster, and forecast the eval days with a saved one."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipelines.cli.common import DataDir, console, handle_errors
from pipelines.errors import FreshcastError


@handle_errors
def train(
    data: DataDir,
    model: Annotated[
        str, typer.Option(help="lgbm, neural, ensemble, ssa, seasonal_naive or moving_average.")
    ] = "lgbm",
    target: Annotated[
        str, typer.Option(help="recovered (stage-1 demand) or censored (sale_amount).")
    ] = "recovered",
    out: Annotated[
        Path | None, typer.Option(help="Model file (default data/models/<model>-<target>.pkl).")
    ] = None,
    profile: Annotated[str, typer.Option(help="default, or smoke (tiny, for tests).")] = "default",
) -> None:
    """Train a 7-day forecaster on the whole train split and save it atomically."""
    from models.constants import as_target
    from models.forecasters import MODEL_NAMES
    from pipelines.training.fit import run_train

    if model not in MODEL_NAMES:
        raise FreshcastError(f"unknown model {model!r}; choose one of {', '.join(MODEL_NAMES)}")
    if target not in ("recovered", "censored"):
        raise FreshcastError(f"unknown target {target!r}; choose recovered or censored")
    if profile not in ("default", "smoke"):
        raise FreshcastError(f"unknown profile {profile!r}; choose default or smoke")
    _, info = run_train(data, model, as_target(target), out, profile=profile)
    console.print(
        f"trained {info['model']} on {info['target']} ({info['train_start']} to "
        f"{info['train_end']}) in {info['seconds']:.1f} s: {info['path']}",
        highlight=False,
    )


@handle_errors
def forecast(
    data: DataDir,
    out: Annotated[Path, typer.Option(help="Parquet file to write the forecast to.")],
    model_uri: Annotated[
        Path, typer.Option("--model-uri", help="A model file written by `freshcast train`.")
    ] = Path("data/models/lgbm-recovered.pkl"),
) -> None:
    """Forecast the eval days of every series in eval.parquet, using eval's covariates."""
    from pipelines.serving.forecast import run_forecast

    path = run_forecast(data, model_uri, out)
    console.print(f"wrote forecast: {path}", highlight=False)
