"""Stage 1 as a pipeline step: daily hub rows in, recovered latent demand out.

:func:`recover_demand` is what later stages (features, the daily job) call;
:func:`run_recover` is the ``freshcast recover`` job.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from models.constants import series_day_increasing
from models.recovery import DEFAULT_METHOD, DayBlock, Recoverer, make_recoverer
from pipelines.data.contract import COVARIATE_COLUMNS, HOURS, RECOVERED_SCHEMA, add_series_id
from pipelines.data.io import scan_split, write_parquet
from pipelines.errors import DataError

# Daily covariates handed to the recoverers as context (hierarchy for pooling, then
# the known covariates the learned methods use).
CONTEXT_COLUMNS: tuple[str, ...] = ("product_id", "third_category_id", *COVARIATE_COLUMNS)
_NEEDED = ("store_id", "product_id", "dt", "hours_sale", "hours_stock_status")


def prepare_daily(daily: pl.LazyFrame) -> pl.DataFrame:
    """Collect the columns stage 1 needs, typed and sorted by (series_id, dt).

    Reads store_id, product_id, dt (Date or ``YYYY-MM-DD`` String), hours_sale,
    hours_stock_status and whichever of :data:`CONTEXT_COLUMNS` exist; adds
    ``series_id`` when missing.

    Raises:
        DataError: a needed column is missing, a key repeats, or an hourly list is not
            24 long.
    """
    schema = daily.collect_schema()
    missing = [c for c in _NEEDED if c not in schema]
    if missing:
        raise DataError(f"recovery needs columns {missing}")
    if "series_id" not in schema:
        daily = daily.pipe(add_series_id)
    if schema["dt"] == pl.String:
        daily = daily.with_columns(pl.col("dt").str.to_date("%Y-%m-%d"))
    ctx = [c for c in CONTEXT_COLUMNS if c in schema and c not in ("product_id",)]
    frame = daily.select(
        "series_id", "store_id", "product_id", "dt", *ctx, "hours_sale", "hours_stock_status"
    ).collect()
    for key in ("store_id", "product_id", "dt"):
        nulls = frame[key].is_null()
        if nulls.any():
            # Null keys would pass the monotonicity check unseen (nulls are skipped there).
            raise DataError(
                f"{int(nulls.sum())} rows have no {key}", column=key, row=int(nulls.arg_max() or 0)
            )
    frame = sort_by_series_day(frame)
    bad = frame.filter(
        (pl.col("hours_sale").list.len() != HOURS)
        | (pl.col("hours_stock_status").list.len() != HOURS)
        | pl.col("hours_sale").is_null()
        | pl.col("hours_stock_status").is_null()
    )
    if bad.height:
        row = bad.row(0, named=True)
        raise DataError(
            f"{bad.height} rows lack 24-long hours_sale/hours_stock_status lists, e.g. "
            f"store_id={row['store_id']} product_id={row['product_id']} dt={row['dt']}",
            column="hours_sale",
        )
    return frame


def sort_by_series_day(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` sorted by (series_id, dt), sorting only when it is not already.

    The hub files come sorted by store, product and day, which is series order. Checking
    costs a pass over two columns; sorting moves 2 x 108 M list values (~15 s of the
    ``profile`` budget on the full split).

    Raises:
        DataError: a (series, day) key appears more than once.
    """
    if series_day_increasing(frame):
        return frame
    frame = frame.sort("series_id", "dt")
    if not series_day_increasing(frame):  # sorted, so only a repeated key can fail
        raise DataError("a (store_id, product_id, dt) key appears more than once")
    return frame


def day_block_from_daily(frame: pl.DataFrame) -> DayBlock:
    """The :class:`DayBlock` of a :func:`prepare_daily` frame.

    Equal to ``to_day_block`` of the hourly long view (one row per series-hour), but reshapes the 24-long lists
    directly: on the full split this skips building and sorting a 108 M-row hourly frame
    (~17 s and ~4 GB on the reference machine), which the 20 s ``profile`` budget
    cannot afford. ``tests/pipelines/test_recover.py`` checks the equivalence.
    """
    n = frame.height
    sale = frame["hours_sale"].list.to_array(HOURS).to_numpy().astype(np.float64, copy=False)
    stock = frame["hours_stock_status"].list.to_array(HOURS).to_numpy()
    nan = np.isnan(sale)
    if nan.any():  # a null hour carries no information: treat it as unobserved
        sale = np.where(nan, 0.0, sale)
    series_id = frame["series_id"].to_numpy()
    code = np.zeros(n, dtype=np.int64)
    if n > 1:
        code[1:] = np.cumsum(np.diff(series_id) != 0)
    context = {
        c: frame[c].cast(pl.Float64).fill_null(np.nan).to_numpy()
        for c in CONTEXT_COLUMNS
        if c in frame.columns
    }
    return DayBlock(
        series_id=series_id,
        day=frame["dt"].cast(pl.Int32).to_numpy().astype(np.int64),
        sale=sale,
        stockout=(stock != 0) | nan,
        series_code=code,
        n_series=int(code[-1]) + 1 if n else 0,
        context=context,
    )


def daily_block(daily: pl.LazyFrame) -> tuple[pl.DataFrame, DayBlock]:
    """The keys (series_id, store_id, product_id, dt; sorted) and :class:`DayBlock` of
    daily hub rows: :func:`prepare_daily` then :func:`day_block_from_daily`."""
    frame = prepare_daily(daily)
    block = day_block_from_daily(frame)
    return frame.select("series_id", "store_id", "product_id", "dt"), block  # frees the lists


def recovered_frame(frame: pl.DataFrame, block: DayBlock, demand: np.ndarray) -> pl.DataFrame:
    """Assemble the :data:`RECOVERED_SCHEMA` frame from keys and an (n, 24) demand array."""
    return pl.DataFrame(
        {
            "series_id": frame["series_id"],
            "store_id": frame["store_id"],
            "product_id": frame["product_id"],
            "dt": frame["dt"],
            "hours_demand": pl.Series(demand).cast(pl.List(pl.Float64)),
            "demand_amount": demand.sum(axis=1),
            "imputed_hours": block.stockout.sum(axis=1).astype(np.int32),
        },
        schema=RECOVERED_SCHEMA,
    )


def recover_demand(
    daily: pl.LazyFrame,
    *,
    method: str = DEFAULT_METHOD,
    recoverer: Recoverer | None = None,
    fit: bool = True,
) -> pl.DataFrame:
    """Recover latent hourly and daily demand for every series-day.

    Reads store_id, product_id, dt, hours_sale, hours_stock_status and the context
    columns (product_id, discount, holiday_flag, activity_flag, weather) of ``daily``.

    Args:
        daily: daily rows in the hub schema (``scan_split`` output or the raw files).
        method: a method of :func:`models.recovery.make_recoverer`, used when
            ``recoverer`` is None.
        recoverer: a configured recoverer to use instead of ``method``.
        fit: fit the recoverer on ``daily`` first (recovery is transductive: each series'
            own in-stock hours inform its stockout hours). Pass False with a recoverer
            already fitted elsewhere.

    Returns:
        One row per input row, sorted by (series_id, dt), with the columns of
        :data:`RECOVERED_SCHEMA`: ``hours_demand`` (24 hourly values; observed sales in
        in-stock hours), ``demand_amount`` (their sum) and ``imputed_hours`` (how many
        hours were stockouts and so hold an estimate).
    """
    frame, block = daily_block(daily)
    model = recoverer if recoverer is not None else make_recoverer(method)
    if fit:
        model.fit_block(block)
    demand = model.recover_block(block)
    return recovered_frame(frame, block, demand)


def run_recover(
    data_dir: Path, method: str = DEFAULT_METHOD, out: Path | None = None
) -> dict[str, Any]:
    """The ``recover`` job: recover the train split of ``data_dir`` and write it.

    Returns:
        A summary: method, rows, series, imputed hours, output path and seconds spent
        reading, fitting + recovering, and writing.
    """
    if out is None:
        raise DataError("an output file is required")
    t0 = time.perf_counter()
    frame, block = daily_block(scan_split(data_dir, "train"))
    t1 = time.perf_counter()
    model = make_recoverer(method)
    model.fit_block(block)
    demand = model.recover_block(block)
    result = recovered_frame(frame, block, demand)
    t2 = time.perf_counter()
    write_parquet(result, out)
    t3 = time.perf_counter()
    return {
        "method": method,
        "rows": result.height,
        "series": block.n_series,
        "imputed_hours": int(block.stockout.sum()),
        "out": str(out),
        "seconds_read": round(t1 - t0, 2),
        "seconds_recover": round(t2 - t1, 2),
        "seconds_write": round(t3 - t2, 2),
        "seconds": round(t3 - t0, 2),
    }
