"""The forecast ledger: every served forecast, kept, and scored as its actuals arrive.

Append-only and partitioned by the day the forecast was made on::

    data/ledger/made_on=<D>/version=<V>.parquet

with ``version``, ``role``, ``made_on``, ``dt`` (the target day), ``store_id``,
``product_id``, ``yhat``, ``yhat_p10``, ``yhat_p50`` and ``yhat_p90``. ``role`` is
``served`` for the champion's forecast that planners got, ``shadow`` for the previous
champion's forecast of the same days, kept so a rollback can be judged on live evidence. A partition is written once per
forecast (atomically); a rerun of the same day and version writes the same rows again,
never another day's.

Scoring (:func:`score_ledger`) joins the ledger with the actuals that have arrived and
reports, per version and horizon day, acc, wpe and P10–P90 coverage on two targets:
``sales_clean`` (the published protocol: days without a stockout hour in 6..21, against
``sale_amount``; acc and wpe per target day, then averaged) and ``recovered`` (every day,
against stage 1's recovered demand).
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import polars as pl

from models.metrics import per_day_scores
from pipelines.data import io

# Live scores are rolling: the target days of the last week that have arrived.
LIVE_DAYS = 7
SERVED, SHADOW = "served", "shadow"
LEDGER_SCHEMA: dict[str, pl.DataType] = {
    "version": pl.String(),
    "role": pl.String(),
    "made_on": pl.Date(),
    "dt": pl.Date(),
    "store_id": pl.Int64(),
    "product_id": pl.Int64(),
    "yhat": pl.Float64(),
    "yhat_p10": pl.Float64(),
    "yhat_p50": pl.Float64(),
    "yhat_p90": pl.Float64(),
}
LIVE_SCHEMA: dict[str, pl.DataType] = {
    "version": pl.String(),
    "target": pl.String(),
    "horizon": pl.Int32(),
    "acc": pl.Float64(),
    "wpe": pl.Float64(),
    "coverage": pl.Float64(),
    "rows": pl.Float64(),
    "days": pl.Float64(),
}


def partition(root: Path, made_on: date, version: str, role: str = SERVED) -> Path:
    suffix = "" if role == SERVED else f"-{role}"
    return root / f"made_on={made_on.isoformat()}" / f"version={version}{suffix}.parquet"


def append_forecasts(
    root: Path, forecasts: pl.DataFrame, *, version: str, made_on: date, role: str = SERVED
) -> Path:
    """Add one forecast (the forecast step's frame) to the ledger under ``root``."""
    rows = forecasts.select(
        pl.lit(version).alias("version"),
        pl.lit(role).alias("role"),
        pl.lit(made_on).alias("made_on"),
        *(c for c in LEDGER_SCHEMA if c not in ("version", "role", "made_on")),
    ).cast(pl.Schema(LEDGER_SCHEMA))
    return io.write_parquet(rows, partition(root, made_on, version, role))


def read_ledger(root: Path, *, made_since: date | None = None) -> pl.DataFrame:
    """Ledger rows under ``root`` made on or after ``made_since`` (all when None).

    Only the partitions asked for are read: the ledger grows by a day's forecast every day.
    """
    files = sorted(root.glob("made_on=*/version=*.parquet")) if root.is_dir() else []
    if made_since is not None:
        files = [f for f in files if f.parent.name >= f"made_on={made_since.isoformat()}"]
    if not files:
        return pl.DataFrame(schema=LEDGER_SCHEMA)
    # Partitions written before ``role`` existed were all served forecasts.
    frames = [io.scan_parquet(f).collect() for f in files]
    book = pl.concat(frames, how="diagonal_relaxed")
    if "role" not in book.columns:
        book = book.with_columns(pl.lit(None, pl.String).alias("role"))
    return book.with_columns(pl.col("role").fill_null(SERVED)).select(list(LEDGER_SCHEMA))


def rolling_window(ledger: pl.DataFrame, *, through: date, days: int = LIVE_DAYS) -> pl.DataFrame:
    """The ledger rows whose target day is one of the ``days`` days ending ``through``."""
    return ledger.filter(
        (pl.col("dt") > through - timedelta(days=days)) & (pl.col("dt") <= through)
    )


def _scores(joined: pl.DataFrame, actual: str) -> dict[str, float]:
    days = per_day_scores(joined, actual=actual).filter(pl.col("total") > 0)
    inside = (pl.col(actual) >= pl.col("yhat_p10")) & (pl.col(actual) <= pl.col("yhat_p90"))
    means = days.select(pl.col("acc", "wpe").mean()).row(0) if days.height else (None, None)
    return {
        "acc": float("nan") if means[0] is None else float(means[0]),
        "wpe": float("nan") if means[1] is None else float(means[1]),
        "coverage": float(joined.select(inside.mean()).item()) if joined.height else float("nan"),
        "rows": float(joined.height),
        "days": float(days.height),
    }


def score_ledger(ledger: pl.DataFrame, actuals: pl.DataFrame) -> pl.DataFrame:
    """Live scores of every version, per horizon day and over all (``horizon`` 0).

    Args:
        ledger: ledger rows (:func:`read_ledger`).
        actuals: ``store_id``, ``product_id``, ``dt``, ``sale_amount``,
            ``stock_hour6_22_cnt`` and ``demand_amount`` (null where not recovered) of the
            days that have arrived. Target days not in it are not scored yet.

    Returns:
        One row per (version, target, horizon): the columns of :data:`LIVE_SCHEMA`.
    """
    joined = ledger.join(actuals, on=["store_id", "product_id", "dt"], how="inner").with_columns(
        (pl.col("dt") - pl.col("made_on")).dt.total_days().cast(pl.Int32).alias("horizon")
    )
    rows = []
    targets = {
        "sales_clean": (joined.filter(pl.col("stock_hour6_22_cnt") == 0), "sale_amount"),
        "recovered": (joined.filter(pl.col("demand_amount").is_not_null()), "demand_amount"),
    }
    for target, (frame, actual) in targets.items():
        for (version,), by_version in frame.group_by("version", maintain_order=True):
            rows.append(
                {"version": version, "target": target, "horizon": 0, **_scores(by_version, actual)}
            )
            for (h,), by_horizon in by_version.group_by("horizon", maintain_order=True):
                rows.append(
                    {
                        "version": version,
                        "target": target,
                        "horizon": h,
                        **_scores(by_horizon, actual),
                    }
                )
    return pl.DataFrame(rows, schema=LIVE_SCHEMA).sort("version", "target", "horizon")
