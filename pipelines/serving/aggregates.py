"""Precomputed aggregates for the UI: what the pages show, built once by the daily job.

The daily job's last step calls :func:`build_aggregates` and :func:`write_aggregates`, so
a page reads a few small frames instead of scanning 50,000 series. Everything here is a
pure polars function of the job's outputs; nothing is modelled.

Lost sales are *recovered demand minus observed sales* (clipped at 0), over the last 7
and 28 days up to and including the business date.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl

from pipelines.data import io

logger = logging.getLogger("freshcast")
WINDOWS: tuple[int, ...] = (7, 28)
MOST_CENSORED = 200
# Written last: a folder without it is a half-written build and is never read.
DONE_MARKER = "_done.json"

_SUMS = ("observed", "recovered", "lost", "stockout_days", "stockout_hours", "imputed_hours")


def _joined(daily: pl.LazyFrame, recovered: pl.LazyFrame, *, end: date) -> pl.LazyFrame:
    """Observed sales beside recovered demand, one row per series-day up to ``end``.

    Reads daily `series_id, dt, city_id, store_id, first_category_id, product_id,
    sale_amount, stock_hour6_22_cnt` and recovered `series_id, dt, demand_amount,
    imputed_hours`. A day without a recovered row counts its sales as its demand.
    """
    rec = recovered.filter(pl.col("dt") <= end).select(
        "series_id", "dt", "demand_amount", "imputed_hours"
    )
    return (
        daily.filter(pl.col("dt") <= end)
        .select(
            "series_id",
            "dt",
            "city_id",
            "store_id",
            "first_category_id",
            "product_id",
            pl.col("sale_amount").alias("observed"),
            pl.col("stock_hour6_22_cnt").cast(pl.Int64).alias("stockout_hours"),
        )
        .join(rec, on=["series_id", "dt"], how="left")
        .with_columns(
            pl.max_horizontal(
                pl.col("demand_amount").fill_null(pl.col("observed")), "observed"
            ).alias("recovered"),
            (pl.col("stockout_hours") > 0).cast(pl.Int64).alias("stockout_days"),
            pl.col("imputed_hours").fill_null(0).cast(pl.Int64),
        )
        .with_columns((pl.col("recovered") - pl.col("observed")).clip(0).alias("lost"))
        .drop("demand_amount")
    )


def _sums() -> list[pl.Expr]:
    return [
        *(pl.col(c).sum() for c in _SUMS),
        pl.len().alias("days"),
    ]


def _with_shares(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(
        (pl.col("stockout_days") / pl.col("days")).alias("stockout_day_share"),
        pl.when(pl.col("recovered") > 0)
        .then(pl.col("lost") / pl.col("recovered"))
        .otherwise(0.0)
        .alias("lost_share"),
    )


def _by(window: pl.DataFrame, keys: list[str], days: int) -> pl.DataFrame:
    out = window.group_by(keys).agg(_sums()).pipe(_with_shares)
    return out.select(pl.lit(days, pl.Int32).alias("window"), *keys, pl.exclude(keys)).sort(
        "lost", *keys, descending=[True, *([False] * len(keys))]
    )


def build_aggregates(
    daily: pl.LazyFrame,
    recovered: pl.LazyFrame,
    forecasts: pl.LazyFrame | None,
    *,
    business_date: date,
) -> dict[str, pl.DataFrame]:
    """The UI's aggregates for ``business_date``.

    Args:
        daily: the raw typed daily frame (:func:`pipelines.data.io.scan_split`), train and eval.
        recovered: the recovered frame (``RECOVERED_SCHEMA``).
        forecasts: the forecast frame (``FORECAST_SCHEMA``), or None before the first one.
        business_date: the last day of observed data the job ran for.

    Returns:
        ``summary`` (one row: freshness, size, stockout-day shares, lost sales per window),
        ``daily_totals`` (per day: observed, recovered, lost, stockout share),
        ``lost_by_city`` and ``lost_by_category`` (per window), ``series_stats`` (per window
        and series, with its city and category, for rankings and filters),
        ``most_censored`` (series with the most stockout hours in the last 28 days),
        ``series_index`` (store, product, city, category of every series) and
        ``forecast_daily`` (summed forecast per day, empty without forecasts).
    """
    end = business_date
    start = end - timedelta(days=max(WINDOWS) - 1)
    joined = _joined(daily, recovered, end=end)
    daily_totals = (
        joined.group_by("dt")
        .agg(
            *(pl.col(c).sum() for c in ("observed", "recovered", "lost", "stockout_days")),
            pl.len().alias("series"),
        )
        .with_columns((pl.col("stockout_days") / pl.col("series")).alias("stockout_day_share"))
        .sort("dt")
        .collect()
    )
    recent = joined.filter(pl.col("dt") >= start).collect()
    series_index = (
        daily.select("series_id", "store_id", "product_id", "city_id", "first_category_id")
        .unique("series_id")
        .sort("series_id")
        .collect()
    )

    keys = ["series_id", "store_id", "product_id", "city_id", "first_category_id"]
    stats, by_city, by_category, totals = [], [], [], {}
    for days in WINDOWS:
        window = recent.filter(pl.col("dt") > end - timedelta(days=days))
        stats.append(_by(window, keys, days))
        by_city.append(_by(window, ["city_id"], days))
        by_category.append(_by(window, ["first_category_id"], days))
        row = window.select(_sums()).pipe(_with_shares).row(0, named=True)
        for name in ("observed", "recovered", "lost", "stockout_day_share", "lost_share"):
            totals[f"{name}_{days}"] = float(row[name] or 0.0)
    series_stats = pl.concat(stats)
    most_censored = (
        series_stats.filter(pl.col("window") == max(WINDOWS), pl.col("stockout_hours") > 0)
        .sort(["stockout_hours", "lost", "series_id"], descending=[True, True, False])
        .head(MOST_CENSORED)
        .drop("window")
    )

    forecast_daily = pl.DataFrame(
        schema={
            "dt": pl.Date,
            "yhat": pl.Float64,
            "yhat_p10": pl.Float64,
            "yhat_p50": pl.Float64,
            "yhat_p90": pl.Float64,
            "series": pl.UInt32,
        }
    )
    if forecasts is not None:
        forecast_daily = (
            forecasts.group_by("dt")
            .agg(
                *(pl.col(c).sum() for c in ("yhat", "yhat_p10", "yhat_p50", "yhat_p90")),
                pl.len().alias("series"),
            )
            .sort("dt")
            .collect()
        )

    span = (
        daily.select(
            pl.col("dt").min().alias("first_day"),
            pl.col("dt").filter(pl.col("dt") <= end).max().alias("last_day"),
            pl.len().alias("rows"),
        )
        .collect()
        .row(0, named=True)
    )
    summary = pl.DataFrame(
        [
            {
                "business_date": end,
                "first_day": span["first_day"],
                "last_day": span["last_day"],
                "days": daily_totals.height,
                "rows": int(span["rows"]),
                "series": series_index.height,
                "stores": series_index["store_id"].n_unique(),
                "products": series_index["product_id"].n_unique(),
                "cities": series_index["city_id"].n_unique(),
                "categories": series_index["first_category_id"].n_unique(),
                **totals,
                "forecast_days": forecast_daily.height,
                "forecast_total": float(forecast_daily["yhat"].sum())
                if forecast_daily.height
                else 0.0,
                "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
            }
        ]
    )
    return {
        "summary": summary,
        "daily_totals": daily_totals,
        "lost_by_city": pl.concat(by_city),
        "lost_by_category": pl.concat(by_category),
        "series_stats": series_stats,
        "most_censored": most_censored,
        "series_index": series_index,
        "forecast_daily": forecast_daily,
    }


def write_aggregates(root: Path, business_date: str, frames: dict[str, pl.DataFrame]) -> Path:
    """Write each frame to ``<root>/<business_date>/<name>.parquet``, then the marker.

    ``root`` is the layout's ``aggregates`` folder.

    Each file is atomic and the marker comes last, so readers never see a half build.
    Returns the folder.
    """
    folder = root / business_date
    (folder / DONE_MARKER).unlink(missing_ok=True)
    for name, frame in frames.items():
        io.write_parquet(frame, folder / f"{name}.parquet")
    io.write_json({"business_date": business_date, "frames": sorted(frames)}, folder / DONE_MARKER)
    return folder


def latest_aggregates_dir(root: Path) -> Path | None:
    """The newest complete, readable aggregate folder under ``root``, or None.

    A folder whose marker lists a missing or damaged file (a truncated copy, a full disk)
    is passed over with a warning for the one before it: the UI keeps working, and the next
    ``freshcast run`` of that date rebuilds it.
    """
    if not root.is_dir():
        return None
    done = sorted(p for p in root.iterdir() if p.is_dir() and (p / DONE_MARKER).is_file())
    for folder in reversed(done):
        damaged = damaged_files(folder)
        if not damaged:
            return folder
        logger.warning("aggregates %s: %s; using an older build", folder, "; ".join(damaged))
    return None


def damaged_files(folder: Path) -> list[str]:
    """What is wrong with an aggregate folder's files (empty when all are readable)."""
    marker = io.damage(folder / DONE_MARKER)
    if marker is not None:
        return [f"{DONE_MARKER} {marker}"]
    names = io.read_json(folder / DONE_MARKER)["frames"]
    found = ((name, io.damage(folder / f"{name}.parquet")) for name in names)
    return [f"{name}.parquet {why}" for name, why in found if why is not None]


def load_aggregates(root: Path) -> dict[str, pl.DataFrame] | None:
    """The latest complete, readable aggregates under ``root`` as eager frames, or None."""
    folder = latest_aggregates_dir(root)
    if folder is None:
        return None
    names = io.read_json(folder / DONE_MARKER)["frames"]
    return {name: io.scan_parquet(folder / f"{name}.parquet").collect() for name in names}
