"""The MLflow pyfunc that serves the two-stage forecaster.

The pyfunc bundles a fitted forecaster with the recovered history its features need, so ``models:/freshcast-demand@champion`` answers a
request (series, day, known-future covariates) in any fresh process.
"""

from __future__ import annotations

import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import polars as pl
from mlflow.entities.model_registry import ModelVersion
from mlflow.pyfunc import PythonModel

import models
import pipelines
from models.constants import HORIZON
from models.forecasters import Forecaster
from models.forecasters.panel import last_day
from pipelines.data.contract import FORECAST_SCHEMA
from pipelines.serving import registry
from pipelines.serving.forecast import REQUEST_SCHEMA, forecast_requests, forecast_with_history
from pipelines.training.fit import load_model
from pipelines.training.recipe import Recipe

# Longest look-back of any feature (same-weekday lag 28 plus the 28-day windows), with slack.
HISTORY_DAYS_KEPT = 63


class DemandPyfunc(PythonModel):
    """The two-stage forecaster as an MLflow pyfunc.

    Input: one row per (store_id, product_id, dt) to forecast, with the known-future
    covariates; the days must follow the bundled history. Output: the forecast columns of
    DESIGN.md section 4. Wrong columns or dtypes raise a clear ``ValueError``.
    """

    def load_context(self, context: Any) -> None:
        self.model_ = load_model(Path(context.artifacts["model"]))
        self.history_ = pl.read_parquet(context.artifacts["history"])

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        requests = check_requests(model_input)
        return forecast_with_history(self.model_, self.history_, requests).to_pandas()


def load_champion_forecaster() -> Forecaster:
    """The forecaster inside the registry's champion (the tracking URI must be configured)."""
    return load_forecaster(f"models:/{registry.MODEL_NAME}@{registry.CHAMPION}")


def load_version_forecaster(version: str) -> Forecaster:
    """The forecaster inside a registered version."""
    return load_forecaster(f"models:/{registry.MODEL_NAME}/{version}")


def load_forecaster(uri: str) -> Forecaster:
    pyfunc = mlflow.pyfunc.load_model(uri)
    wrapper = pyfunc.unwrap_python_model()
    if not isinstance(wrapper, DemandPyfunc):
        raise TypeError(f"{uri} is not a freshcast model: {type(wrapper).__name__}")
    return wrapper.model_


def check_requests(frame: pd.DataFrame) -> pl.DataFrame:
    """Validate a pyfunc input frame and return it as polars; raise ValueError if wrong."""
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"freshcast-demand expects a pandas DataFrame, got {type(frame).__name__}")
    missing = [c for c in REQUEST_SCHEMA if c not in frame.columns]
    if missing:
        raise ValueError(
            f"freshcast-demand input is missing columns {missing}; expected {list(REQUEST_SCHEMA)}"
        )
    for column, kind in REQUEST_SCHEMA.items():
        series = frame[column]
        ok = (
            pd.api.types.is_datetime64_any_dtype(series)
            if kind.startswith("datetime")
            else pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
        )
        if not ok or series.isna().any():
            raise ValueError(
                f"freshcast-demand input column {column!r} must be {kind} without nulls, got {series.dtype}"
            )
    out = pl.from_pandas(frame[list(REQUEST_SCHEMA)])
    return out.with_columns(
        pl.col("dt").cast(pl.Date),
        pl.col("holiday_flag", "activity_flag").cast(pl.Int32),
        pl.col("store_id", "product_id").cast(pl.Int64),
    )


def predict_pyfunc(model: Any, requests: pl.DataFrame) -> pl.DataFrame:
    """Call a loaded pyfunc on polars requests; return the typed forecast frame."""
    frame = requests.to_pandas()
    frame["dt"] = pd.to_datetime(frame["dt"])
    out = pl.from_pandas(model.predict(frame))
    return (
        out.with_columns(pl.col("dt").cast(pl.Date))
        .select(list(FORECAST_SCHEMA))
        .cast(pl.Schema(FORECAST_SCHEMA))
    )


def log_and_register(
    model: Forecaster, history: pl.DataFrame, *, recipe: Recipe, tags: dict[str, str]
) -> ModelVersion:
    """Log the pyfunc (model + recent history) on the active run and register it."""
    end = last_day(history)
    tail = history.filter(pl.col("dt") > end - timedelta(days=HISTORY_DAYS_KEPT))
    tail = tail.drop("hours_sale", "hours_stock_status", strict=False)
    example = forecast_requests(tail.lazy(), tail.head(0).lazy(), day=end, horizon=HORIZON).head(14)
    with tempfile.TemporaryDirectory(prefix="freshcast-model-") as tmp:
        model_path = Path(tmp) / "model.pkl"
        model_path.write_bytes(model.save())
        history_path = Path(tmp) / "history.parquet"
        tail.write_parquet(history_path)
        request_frame = example.to_pandas()
        request_frame["dt"] = pd.to_datetime(request_frame["dt"])
        output = forecast_with_history(model, tail, example).to_pandas()
        output["dt"] = pd.to_datetime(output["dt"])
        return registry.log_pyfunc(
            DemandPyfunc(),
            artifacts={"model": str(model_path), "history": str(history_path)},
            input_example=request_frame,
            output_example=output,
            tags={**tags, "kind": recipe.model, **recipe.as_tags()},
            code_paths=[str(Path(p).parent) for p in (pipelines.__file__, models.__file__)],
            pip_requirements=_pip_requirements(),
        )


def _pip_requirements() -> list[str]:
    """The serving environment: the libraries the pyfunc imports, at their current versions."""
    from importlib.metadata import version

    names = (
        "polars",
        "numpy",
        "pandas",
        "lightgbm",
        "torch",
        "lightning",
        "mlflow",
        "pyarrow",
        "pydantic",
        "rich",
        "typer",
    )
    return [f"{n}=={version(n)}" for n in names]
