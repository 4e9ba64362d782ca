"""Recipes, backtests and the MLflow pyfunc that serves the two-stage forecaster.

A *recipe* is how a model is made (forecaster, target, profile, recovery method). The gate
compares recipes on the same backtest window. The pyfunc bundles a fitted forecaster with
the recovered history its features need, so ``models:/freshcast-demand@champion`` answers a
request (series, day, known-future covariates) in any fresh process.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
from mlflow.entities.model_registry import ModelVersion
from mlflow.pyfunc import PythonModel

import models
import pipelines
from pipelines.serving import registry
from models.forecasters import Forecaster
from models.metrics import clean_rows, score_forecast
from pipelines.training.fit import fit_model, forecast_days, load_model, make_panel
from pipelines.data.contract import COVARIATE_COLUMNS, FORECAST_SCHEMA, SERIES_ID_FACTOR
from pipelines.settings import Settings

STAGE1_COLUMNS = ("demand_amount", "imputed_hours")
# Longest look-back of any feature (same-weekday lag 28 plus the 28-day windows), with slack.
HISTORY_DAYS_KEPT = 63

REQUEST_SCHEMA: dict[str, Any] = {
    "store_id": "int64",
    "product_id": "int64",
    "dt": "datetime64[ns]",
    "discount": "float64",
    "holiday_flag": "int32",
    "activity_flag": "int32",
    "precpt": "float64",
    "avg_temperature": "float64",
    "avg_humidity": "float64",
    "avg_wind_level": "float64",
}


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


@dataclass(frozen=True)
class BacktestResult:
    metrics: dict[str, float]
    predictions: pl.DataFrame  # forecasts joined with actuals, for plots


def _stage1(history: pl.DataFrame) -> tuple[pl.LazyFrame, Any]:
    """Split stage-1 columns off history and hand them back through the recovery seam."""
    recovered = history.select("series_id", "dt", *STAGE1_COLUMNS)

    def recovery(frame: pl.LazyFrame) -> pl.DataFrame:
        keys = frame.select("series_id", "dt").collect()
        return keys.join(recovered, on=["series_id", "dt"], how="left")

    return history.drop(STAGE1_COLUMNS, strict=False).lazy(), recovery


def fit_recipe(recipe: Recipe, history: pl.DataFrame) -> Forecaster:
    """Fit the recipe's forecaster on history (with stage-1 columns already joined)."""
    hist, recovery = _stage1(history)
    panel, spec = make_panel(hist, None, target=recipe.target, recovery=recovery)  # type: ignore[arg-type]
    return fit_model(recipe.model, panel, spec, target=recipe.target, profile=recipe.profile)  # type: ignore[arg-type]


def backtest_recipe(recipe: Recipe, history: pl.DataFrame, *, days: int = 7) -> BacktestResult:
    """Fit on history up to ``days`` before its end; score the last ``days`` (published protocol)."""
    end = history["dt"].max()
    cut = end - timedelta(days=days)  # type: ignore[operator]
    past = history.filter(pl.col("dt") <= cut)
    window = history.filter(pl.col("dt") > cut)
    model = fit_recipe(recipe, past)
    hist, recovery = _stage1(past)
    pred = forecast_days(model, hist, window.drop(STAGE1_COLUMNS).lazy(), recovery=recovery)
    scored = pred.join(
        window.select(
            "store_id", "product_id", "dt", "sale_amount", "stock_hour6_22_cnt", "demand_amount"
        ),
        on=["store_id", "product_id", "dt"],
    )
    metrics = score_forecast(clean_rows(scored))
    metrics = {k: float(v) for k, v in metrics.items() if np.isfinite(v)}
    return BacktestResult(metrics=metrics, predictions=scored)


def feature_importance(model: Forecaster) -> pl.DataFrame | None:
    fn = getattr(model, "feature_importance", None)
    return fn() if callable(fn) else None


def load_model_file(path: Path) -> Forecaster:
    return load_model(path)


def plot_forecast_vs_actual(scored: pl.DataFrame) -> Any:
    """Daily totals of forecast (with P10–P90) against sales, over the backtest window."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    daily = (
        scored.group_by("dt")
        .agg(
            pl.col(c).sum()
            for c in ("yhat", "yhat_p10", "yhat_p90", "sale_amount", "demand_amount")
        )
        .sort("dt")
    )
    fig, ax = plt.subplots(figsize=(7, 3.5))
    x = daily["dt"].to_list()
    ax.fill_between(x, daily["yhat_p10"], daily["yhat_p90"], alpha=0.2, label="P10–P90 (sum)")
    ax.plot(x, daily["yhat"], marker="o", label="forecast")
    ax.plot(x, daily["sale_amount"], marker="s", label="observed sales")
    ax.plot(x, daily["demand_amount"], linestyle="--", label="recovered demand")
    ax.set_title("Backtest: forecast vs actual, all series")
    ax.legend()
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


# -- the pyfunc ------------------------------------------------------------------------------


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


def forecast_with_history(
    model: Forecaster, history: pl.DataFrame, requests: pl.DataFrame
) -> pl.DataFrame:
    """Forecast request rows from the bundled history; unknown series are an error."""
    series = requests.select(
        (pl.col("store_id") * SERIES_ID_FACTOR + pl.col("product_id")).alias("series_id"), pl.all()
    )
    static = history.group_by("series_id").agg(
        pl.col(c).last()
        for c in history.columns
        if c.endswith("_id") and c not in ("series_id", "store_id", "product_id")
    )
    unknown = series.join(static, on="series_id", how="anti")
    if unknown.height:
        first = unknown.row(0, named=True)
        raise ValueError(
            f"{unknown.height} request rows are for series the model has no history for, "
            f"e.g. store_id={first['store_id']}, product_id={first['product_id']}"
        )
    future = series.join(static, on="series_id")
    hist, recovery = _stage1(history)
    return forecast_days(model, hist, future.lazy(), recovery=recovery)


def forecast_requests(
    history: pl.LazyFrame, future: pl.LazyFrame, *, day: Any, horizon: int
) -> pl.DataFrame:
    """Request rows for D+1..D+horizon for every series in history.

    Covariates come from the data where it has those days (they are published ahead);
    for days it lacks, the series' last known values are carried forward, and calendar
    flags stay as last seen. Sales of future rows are never read.
    """
    keys = history.select("series_id", "store_id", "product_id").unique()
    days = pl.DataFrame(
        {"dt": pl.date_range(day + timedelta(days=1), day + timedelta(days=horizon), eager=True)}
    )
    grid = keys.collect().join(days, how="cross")
    known = future.select("series_id", "dt", *COVARIATE_COLUMNS).collect()
    last = (
        history.sort("dt")
        .group_by("series_id")
        .agg(pl.col(c).last() for c in COVARIATE_COLUMNS)
        .collect()
    )
    filled = grid.join(known, on=["series_id", "dt"], how="left")
    filled = filled.join(last, on="series_id", how="left", suffix="_last").with_columns(
        pl.coalesce(c, f"{c}_last").alias(c) for c in COVARIATE_COLUMNS
    )
    return filled.select(list(REQUEST_SCHEMA)).sort("store_id", "product_id", "dt")


def predict_pyfunc(model: Any, requests: pl.DataFrame) -> pl.DataFrame:
    """Call a loaded pyfunc on polars requests; return the typed forecast frame."""
    frame = requests.to_pandas()
    frame["dt"] = pd.to_datetime(frame["dt"])
    out = pl.from_pandas(model.predict(frame))
    return (
        out.with_columns(pl.col("dt").cast(pl.Date))
        .select(list(FORECAST_SCHEMA))
        .cast(pl.Schema(FORECAST_SCHEMA))
    )  # type: ignore[arg-type]


def log_and_register(
    model: Forecaster, history: pl.DataFrame, *, recipe: Recipe, tags: dict[str, str]
) -> ModelVersion:
    """Log the pyfunc (model + recent history) on the active run and register it."""
    end = history["dt"].max()
    tail = history.filter(pl.col("dt") > end - timedelta(days=HISTORY_DAYS_KEPT))  # type: ignore[operator]
    tail = tail.drop("hours_sale", "hours_stock_status", strict=False)
    example = forecast_requests(tail.lazy(), tail.head(0).lazy(), day=end, horizon=7).head(14)
    with tempfile.TemporaryDirectory(prefix="freshcast-model-") as tmp:
        model_path = Path(tmp) / "model.pkl"
        model_path.write_bytes(model.to_bytes())
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
