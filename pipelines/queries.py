"""Read-only queries the Streamlit pages make over the job's outputs. Paths come from settings only.

Each function reads the project's configured data, the daily job's outputs or the
registry; none writes anything or accepts a path from the user. Small per-series frames
are read on demand by filtering the parquet files lazily on ``series_id``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from pipelines.data import io
from pipelines.data.contract import SERIES_ID_FACTOR
from pipelines.jobs import history
from pipelines.settings import Settings

COVARIATES = ("discount", "activity_flag", "holiday_flag", "precpt", "avg_temperature")


def file_stamp(path: Path | None) -> float:
    """A file's modification time (0 when absent): a cache key that changes on rewrite."""
    return path.stat().st_mtime if path is not None and path.is_file() else 0.0


def scan_daily(settings: Settings) -> pl.LazyFrame | None:
    """The raw daily rows, train and eval together (typed), or None without a dataset."""
    if not io.has_dataset(settings.data_dir):
        return None
    return io.scan_days(settings.data_dir)


def dataset_bytes(settings: Settings) -> int:
    """The size of the configured dataset's train and eval files, in bytes."""
    paths = [io.split_path(settings.data_dir, s) for s in io.SPLITS]
    return sum(p.stat().st_size for p in paths if p is not None)


@dataclass(frozen=True)
class SeriesDetail:
    """One series' frames: raw daily rows, recovered rows, forecast rows (maybe empty)."""

    daily: pl.DataFrame
    recovered: pl.DataFrame
    forecast: pl.DataFrame


def series_rows(scan: pl.LazyFrame, store: int, product: int) -> pl.DataFrame:
    """One series' rows of a file, decoding only the span of rows that holds it.

    The key columns are cheap to read; the 24-hour list columns are not. So the first pass
    finds the row span of the series from the keys, and the second decodes just that span
    (the job's files are sorted by series, so the span is the series' own rows).
    """
    one = (pl.col("store_id") == store) & (pl.col("product_id") == product)
    lo, hi = (
        scan.select("store_id", "product_id")
        .with_row_index("_row")
        .filter(one)
        .select(pl.col("_row").min().alias("lo"), pl.col("_row").max().alias("hi"))
        .collect()
        .row(0)
    )
    if lo is None:
        return scan.head(0).collect()
    return scan.slice(lo, hi - lo + 1).filter(one).sort("dt").collect()


def series_detail(settings: Settings, series_id: int) -> SeriesDetail:
    """Everything the Series explorer shows for one series (train and eval, job outputs)."""
    store, product = divmod(int(series_id), SERIES_ID_FACTOR)
    raw = pl.DataFrame()
    if io.has_dataset(settings.data_dir):
        parts = [
            series_rows(io.scan_split(settings.data_dir, split), store, product)
            for split in io.SPLITS
            if io.split_path(settings.data_dir, split) is not None
        ]
        raw = pl.concat(parts, how="vertical_relaxed").sort("dt")
    frames = {}
    for kind in ("recovered", "forecasts"):
        path = settings.layout.latest(kind)
        frames[kind] = (
            series_rows(io.scan_parquet(path), store, product)
            if path is not None
            else pl.DataFrame()
        )
    return SeriesDetail(daily=raw, recovered=frames["recovered"], forecast=frames["forecasts"])


def hour_grid(daily: pl.DataFrame, *, last_days: int = 42) -> pl.DataFrame:
    """Long hour × day view of a series: dt, hour, sale, stockout (0/1), last ``last_days``."""
    if daily.is_empty():
        return pl.DataFrame(
            schema={"dt": pl.Date, "hour": pl.Int64, "sale": pl.Float64, "stockout": pl.Int64}
        )
    recent = daily.sort("dt").tail(last_days)
    return (
        recent.select(
            "dt",
            pl.int_ranges(0, pl.col("hours_sale").list.len()).alias("hour"),
            pl.col("hours_sale").alias("sale"),
            pl.col("hours_stock_status").cast(pl.List(pl.Int64)).alias("stockout"),
        )
        .explode("hour", "sale", "stockout")
        .with_columns(pl.col("hour").cast(pl.Int64))
    )


def observed_vs_recovered(detail: SeriesDetail) -> pl.DataFrame:
    """Per day: observed sales, recovered demand (when recovered), stockout hours."""
    if detail.daily.is_empty():
        return pl.DataFrame()
    out = detail.daily.select(
        "dt",
        pl.col("sale_amount").alias("observed"),
        pl.col("stock_hour6_22_cnt").alias("stockout_hours"),
    )
    if detail.recovered.is_empty():
        return out.with_columns(pl.lit(None, pl.Float64).alias("recovered"))
    rec = detail.recovered.select("dt", pl.col("demand_amount").alias("recovered"))
    return out.join(rec, on="dt", how="left")


def forecast_vs_actual(detail: SeriesDetail) -> pl.DataFrame:
    """The series' forecast rows with the observed sales on those days, where known."""
    if detail.forecast.is_empty():
        return pl.DataFrame()
    actual = detail.daily.select("dt", pl.col("sale_amount").alias("actual"))
    return detail.forecast.join(actual, on="dt", how="left")


def forecast_table(
    settings: Settings,
    series_index: pl.DataFrame,
    *,
    cities: list[int] | None = None,
    categories: list[int] | None = None,
) -> pl.DataFrame:
    """The latest forecast rows with city and category, filtered (empty when none)."""
    path = settings.layout.latest("forecasts")
    if path is None:
        return pl.DataFrame()
    index = series_index.lazy().select("store_id", "product_id", "city_id", "first_category_id")
    if cities:
        index = index.filter(pl.col("city_id").is_in(cities))
    if categories:
        index = index.filter(pl.col("first_category_id").is_in(categories))
    return (
        io.scan_parquet(path)
        .join(index, on=["store_id", "product_id"], how="inner")
        .select(
            "city_id",
            "first_category_id",
            "store_id",
            "product_id",
            "dt",
            "yhat",
            "yhat_p10",
            "yhat_p50",
            "yhat_p90",
        )
        .sort("store_id", "product_id", "dt")
        .collect()
    )


def continual_history(settings: Settings) -> pl.DataFrame | None:
    """``data/continual/history.parquet`` (refresh accuracy vs full retrain), if written."""
    path = settings.layout.continual_history
    return io.scan_parquet(path).collect() if path.is_file() else None


def live_history(settings: Settings) -> pl.DataFrame | None:
    """Each version's live acc, wpe and coverage per business date (published protocol over
    the week's target days, all horizons), oldest first; None before the first scoring."""
    files = settings.layout.live_files()
    if not files:
        return None
    frames = [io.scan_parquet(f).collect() for f in files]
    return (
        pl.concat(frames, how="vertical_relaxed")
        .filter((pl.col("target") == "sales_clean") & (pl.col("horizon") == 0))
        .select("business_date", "version", "acc", "wpe", "coverage", "rows")
        .sort("business_date", "version")
    )


def job_history(settings: Settings, *, limit: int = 500) -> pl.DataFrame:
    """The job history, newest first (empty without a history database)."""
    from pipelines.jobs.locks import job_running

    frame = history.read_history(settings.layout.job_history_db, limit=limit)
    return history.settle(frame, job_running=job_running(settings))


def has_registry(settings: Settings) -> bool:
    """False when the local SQLite registry file does not exist yet (nothing registered)."""
    uri = settings.tracking_uri
    if uri.startswith("sqlite:///"):
        return Path(uri.removeprefix("sqlite:///")).is_file()
    return True


def registry_versions(settings: Settings) -> pl.DataFrame:
    """Registered versions (``pipelines.serving.registry.list_versions``), empty without a registry."""
    if not has_registry(settings):
        return pl.DataFrame()
    from pipelines.serving import registry

    registry.configure(settings.tracking_uri)
    return registry.list_versions()


def run_metrics(settings: Settings, run_id: str) -> dict[str, float]:
    """All metrics logged on one MLflow run."""
    from mlflow import MlflowClient

    from pipelines.serving import registry

    registry.configure(settings.tracking_uri)
    return dict(MlflowClient().get_run(run_id).data.metrics)


def run_params(settings: Settings, run_id: str) -> dict[str, str]:
    """All params logged on one MLflow run (training data rows and digest among them)."""
    from mlflow import MlflowClient

    from pipelines.serving import registry

    registry.configure(settings.tracking_uri)
    return dict(MlflowClient().get_run(run_id).data.params)


def override_log(settings: Settings) -> pl.DataFrame:
    """Every promote and rollback outside the gate, newest first: by hand (the CLI, this app)
    and by the daily job on live evidence (``gate.on_live_drop = rollback``)."""
    if not has_registry(settings):
        return pl.DataFrame()
    import mlflow

    from pipelines.serving import registry

    registry.configure(settings.tracking_uri)
    runs = mlflow.search_runs(
        experiment_names=["overrides"], output_format="list", order_by=["start_time DESC"]
    )
    return pl.DataFrame(
        [
            {
                "time": datetime.fromtimestamp(r.info.start_time / 1000, UTC),
                "action": r.data.tags.get("action", ""),
                "version": r.data.tags.get("version", ""),
                "reason": r.data.tags.get("reason", ""),
            }
            for r in runs
        ],
        schema={
            "time": pl.Datetime("ms", "UTC"),
            "action": pl.String,
            "version": pl.String,
            "reason": pl.String,
        },
    )
