"""Stage-2 jobs: build the panel, train a forecaster, forecast the days after train.

Job functions:

* :func:`run_train` trains one model on a folder's whole train split and saves it.
* :func:`run_forecast` forecasts the eval days of a folder with a saved model.
* :func:`forecast_days` is the in-memory core the daily job calls: history plus the
  known-future covariates of the next days in, the forecast frame out.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl

from models.forecasters import Forecaster, make_forecaster
from pipelines.errors import DataError, FreshcastError
from pipelines.features.build import (
    FeatureConfig,
    FeatureSpec,
    Target,
    add_static_features,
    build_features,
    build_panel,
)
from pipelines.data.io import scan_split, split_path, write_bytes, write_parquet
from pipelines.data.contract import FORECAST_SCHEMA

# A stage-1 recovery: daily rows in, series_id/dt/demand_amount/imputed_hours out.
Recovery = Callable[[pl.LazyFrame], pl.DataFrame]


def default_recovery(history: pl.LazyFrame) -> pl.DataFrame:
    """Stage 1's default method (:func:`pipelines.recovery.recover.recover_demand`)."""
    try:
        from pipelines.recovery.recover import recover_demand
    except ImportError as exc:  # stage 1 lives in its own module; say so plainly
        raise FreshcastError(
            f"the recovered target needs stage 1 (pipelines.recovery.recover): {exc}"
        ) from None
    return recover_demand(history)


def sample_series(frame: pl.LazyFrame, n: int | None, *, seed: int = 0) -> pl.LazyFrame:
    """Keep ``n`` series chosen at random (all when ``n`` is None)."""
    if n is None:
        return frame
    ids = frame.select(pl.col("series_id").unique().sort()).collect()["series_id"]
    keep = ids.sample(min(n, len(ids)), seed=seed)
    return frame.filter(pl.col("series_id").is_in(keep.implode()))


def attach_recovery(
    history: pl.LazyFrame, *, target: Target, recovery: Recovery | None = None
) -> pl.LazyFrame:
    """Join stage-1 ``demand_amount`` and ``imputed_hours`` onto history rows (recovered only).

    Recovery runs on history only: running it over forecast days would read their sales.
    """
    if target == "censored":
        return history
    rec = (recovery or default_recovery)(history)
    cols = rec.select("series_id", "dt", "demand_amount", pl.col("imputed_hours").cast(pl.Int32))
    return history.join(cols.lazy(), on=["series_id", "dt"], how="left")


def make_panel(
    history: pl.LazyFrame,
    future: pl.LazyFrame | None,
    *,
    target: Target,
    feature_config: FeatureConfig | None = None,
    recovery: Recovery | None = None,
    features_from: date | None = None,
) -> tuple[pl.DataFrame, FeatureSpec]:
    """History (+ recovery) and forecast days, with every feature, collected.

    ``features_from``: compute features only for the days from then on (earlier rows keep
    their data columns, with null features). A forecast reads features on its forecast
    days alone, and this cuts the feature work to a 28-day window (see ``build_features``).
    """
    hist = attach_recovery(history, target=target, recovery=recovery)
    # Collected once: the windowed path reads the panel twice (features, then early rows).
    panel = build_panel(hist, future, target=target).collect().lazy()
    features, spec = build_features(panel, config=feature_config, features_from=features_from)
    if features_from is None:
        return features.collect(), spec
    # Same dtypes as the featured rows (the ids become categorical codes), null features.
    early = panel.filter(pl.col("dt") < features_from).pipe(add_static_features)
    stitched = pl.concat([early, features], how="diagonal").sort("series_id", "dt")
    return stitched.collect(), spec


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
    model = make_forecaster(name, config, target=target, features=spec_dict(spec), profile=profile)  # type: ignore[arg-type]
    model.fit(panel)
    # Plain data only, so unpickling never needs pipelines (models must not import it).
    model.pipeline_meta_ = {"feature_config": asdict(feature_config or FeatureConfig())}  # type: ignore[attr-defined]
    return model


def load_model(path: Path) -> Forecaster:
    """Load a model file written by :func:`run_train`."""
    if not path.is_file():
        raise DataError("model file not found", file=path)
    try:
        return Forecaster.from_bytes(path.read_bytes())
    except Exception as exc:
        raise DataError(
            f"not a freshcast model file ({type(exc).__name__}: {exc})", file=path
        ) from None


def save_model(model: Forecaster, path: Path) -> Path:
    """Write a fitted model atomically."""
    return write_bytes(model.to_bytes(), path)


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
    path = out_model_path or Path("data") / "models" / f"{model}-{target}.pkl"
    save_model(fitted, path)
    info = {**fitted.describe(), "path": str(path), "seconds": time.perf_counter() - started}
    return fitted, info


def forecast_days(
    model: Forecaster,
    history: pl.LazyFrame,
    future: pl.LazyFrame,
    *,
    recovery: Recovery | None = None,
) -> pl.DataFrame:
    """Forecast the days in ``future`` (at most 7, right after history) with ``model``.

    Args:
        model: a fitted forecaster from :func:`run_train` or :func:`fit_model`.
        history: daily rows up to the origin (hub columns, ``series_id``, ``dt`` as Date).
        future: the forecast days' rows; only their keys and known-future covariates
            (discount, holiday, activity, weather) and hierarchy ids are read.

    Returns:
        The DESIGN.md section 4 forecast frame: store_id, product_id, dt, yhat, yhat_p10,
        yhat_p50, yhat_p90, one row per future row of a series with history.
    """
    meta = getattr(model, "pipeline_meta_", {})
    fcfg = FeatureConfig(**{k: tuple(v) for k, v in meta.get("feature_config", {}).items()})
    # Read each input once (several lazy queries would each rescan a parquet source). The
    # hourly lists are only stage 1's input: kept when stage 1 has to run here.
    hourly = ("hours_sale", "hours_stock_status")
    hist = (history if recovery is None else history.drop(hourly, strict=False)).collect()
    fut = future.drop(hourly, strict=False).collect()
    last: date | None = hist["dt"].max()  # type: ignore[assignment]
    first_future: date | None = fut["dt"].min()  # type: ignore[assignment]
    if last is None or first_future is None:
        raise DataError("nothing to forecast: history or forecast days are empty")
    if (first_future - last).days != 1:
        raise DataError(
            f"forecast days must start the day after history ({last}); they start {first_future}"
        )
    keys = fut.select("series_id", "store_id", "product_id").unique()
    fut = fut.join(hist.select("series_id").unique(), on="series_id", how="semi")
    target: Target = model.target_  # type: ignore[assignment]
    panel, _ = make_panel(
        hist.lazy(),
        fut.lazy(),
        target=target,
        feature_config=fcfg,
        recovery=recovery,
        features_from=first_future,
    )
    pred = model.predict(panel)
    return (
        pred.join(keys, on="series_id", how="left")
        .select(list(FORECAST_SCHEMA))
        .cast(FORECAST_SCHEMA)  # type: ignore[arg-type]
        .sort("store_id", "product_id", "dt")
    )


def run_forecast(
    data_dir: Path, model_path: Path, out: Path, *, recovery: Recovery | None = None
) -> Path:
    """Forecast every series in ``data_dir``'s eval split with the saved model.

    Reads train.parquet as history and eval.parquet for the forecast days' covariates
    (their sales and stockouts are never read). Writes the forecast file to ``out``.
    """
    if split_path(data_dir, "eval") is None:
        raise DataError(
            "forecast needs eval.parquet (the forecast days' covariates)", file=data_dir
        )
    model = load_model(model_path)
    frame = forecast_days(
        model, scan_split(data_dir, "train"), scan_split(data_dir, "eval"), recovery=recovery
    )
    return write_parquet(frame, out)
