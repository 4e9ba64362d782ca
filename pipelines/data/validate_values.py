"""Checks of values and of the two splits together: what the contract's dtypes can't say.

* **values:** ids that the arithmetic ``series_id`` can't pack without collisions;
  non-finite numbers; discounts and weather no shop or sky produces; a day's sales far
  beyond the series' own history;
* **splits:** eval series that train does not know; eval days that overlap train, come
  before it, or leave a gap after it (the job would carry covariates over the gap).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import polars as pl

from models.forecasters.panel import first_day, last_day
from pipelines.data.contract import KEY_COLUMNS, SERIES_ID_FACTOR

MAX_EXAMPLES = 5
# Values no real shop or weather station produces: beyond them a row is an error, not an
# oddity. (The real split has discounts of 0.0 and up to 1.088: those stay invariant
# breaks, counted and shown, since real data has them.)
VALUE_RANGES: dict[str, tuple[float, float]] = {
    "discount": (0.0, 1.5),
    "precpt": (0.0, 500.0),
    "avg_temperature": (-60.0, 60.0),
    "avg_humidity": (0.0, 100.0),
    "avg_wind_level": (0.0, 50.0),
}
FLOAT_COLUMNS = ("sale_amount", *VALUE_RANGES)
# A day's sales beyond this many times (the series' own median day + 1) is an error: on the
# real train split the largest ratio is 10.4, on the default simulation 4.6; a sale of 1e12,
# or a day keyed in grams, is far beyond. The median, because one outlier cannot move it.
EXTREME_SALES_FACTOR = 100.0


@dataclass(frozen=True)
class Finding:
    """One problem: where it is and what it is. ``row`` counts from 0 in file order."""

    file: str
    check: str
    message: str
    column: str | None = None
    row: int | None = None
    count: int = 1
    examples: list[dict[str, Any]] = field(default_factory=list)

    def describe(self) -> str:
        where = [self.file]
        if self.column:
            where.append(f"column {self.column!r}")
        if self.row is not None:
            where.append(f"row {self.row}")
        return f"{', '.join(where)}: {self.message}"


def first_rows(
    frame: pl.DataFrame, mask: pl.Expr, columns: list[str]
) -> tuple[int, list[dict[str, Any]]]:
    hits = frame.filter(mask)
    examples = hits.head(MAX_EXAMPLES).select(pl.col("_row").alias("row"), *columns).to_dicts()
    return hits.height, examples


def finding(
    name: str,
    check: str,
    column: str,
    message: str,
    frame: pl.DataFrame,
    mask: pl.Expr,
    show: list[str],
    *,
    quote: bool = False,
) -> Finding | None:
    """The rows ``mask`` selects as one finding: count, first row, examples of ``show``.

    ``quote`` adds the first row's value of ``column`` to the message.
    """
    count, examples = first_rows(frame, mask, show)
    if count == 0:
        return None
    row = examples[0]["row"]
    value = f": {examples[0][column]!r}" if quote else ""
    return Finding(
        file=name,
        check=check,
        column=column,
        row=row,
        count=count,
        message=f"{message} ({count:,} rows; first at row {row}{value})",
        examples=examples,
    )


def _error(
    name: str, check: str, column: str, message: str, frame: pl.DataFrame, mask: pl.Expr
) -> Finding | None:
    shown = [*KEY_COLUMNS, *([column] if column not in KEY_COLUMNS else [])]
    return finding(name, check, column, message, frame, mask.fill_null(True), shown, quote=True)


def value_errors(name: str, frame: pl.DataFrame) -> list[Finding]:
    """Errors in values: non-finite numbers, impossible covariates, ids that would collide."""
    found = [
        _error(
            name,
            "id_range",
            "product_id",
            f"must lie in 0 .. {SERIES_ID_FACTOR - 1}: larger "
            "ids would share a series_id with another store",
            frame,
            (pl.col("product_id") < 0) | (pl.col("product_id") >= SERIES_ID_FACTOR),
        ),
        _error(name, "id_range", "store_id", "must not be negative", frame, pl.col("store_id") < 0),
    ]
    for column in FLOAT_COLUMNS:
        found.append(
            _error(
                name,
                "not_finite",
                column,
                "is not a finite number",
                frame,
                ~pl.col(column).is_finite(),
            )
        )
    for column, (lo, hi) in VALUE_RANGES.items():
        found.append(
            _error(
                name,
                "value_range",
                column,
                f"is outside {lo} .. {hi}",
                frame,
                pl.col(column).is_finite() & ((pl.col(column) < lo) | (pl.col(column) > hi)),
            )
        )
    usual = pl.col("sale_amount").median().over("store_id", "product_id") + 1
    found.append(
        _error(
            name,
            "extreme_sales",
            "sale_amount",
            f"is more than {EXTREME_SALES_FACTOR:g} times the series' usual day (its median + 1)",
            frame,
            pl.col("sale_amount").is_finite()
            & (pl.col("sale_amount") > EXTREME_SALES_FACTOR * usual),
        )
    )
    return [f for f in found if f is not None]


def split_errors(
    eval_path: Path, eval_keys: pl.DataFrame, train_keys: pl.DataFrame
) -> list[Finding]:
    """eval.parquet against train.parquet: known series, and days that follow train's.

    Reads ``store_id``, ``product_id`` and ``dt`` (Date) of each split.
    """
    found = _unknown_series(
        eval_path,
        eval_keys.select("store_id", "product_id").unique(),
        train_keys.select("store_id", "product_id").unique(),
    )
    train_last = last_day(train_keys)
    eval_first, eval_last = first_day(eval_keys), last_day(eval_keys)
    name = str(eval_path)
    if eval_last <= train_last:
        message = (
            f"its days {eval_first} .. {eval_last} are not after train's last day {train_last}"
        )
    elif eval_first <= train_last:
        message = f"its days {eval_first} .. {eval_last} overlap train, which ends {train_last}"
    elif eval_first > train_last + timedelta(days=1):
        message = f"it starts {eval_first}, not the day after train ends ({train_last})"
    else:
        return found
    found.append(Finding(file=name, check="split_days", column="dt", message=message))
    return found


def _unknown_series(path: Path, keys: pl.DataFrame, train_keys: pl.DataFrame) -> list[Finding]:
    unknown = keys.join(train_keys, on=["store_id", "product_id"], how="anti")
    if unknown.height == 0:
        return []
    examples = unknown.head(MAX_EXAMPLES).to_dicts()
    return [
        Finding(
            file=str(path),
            check="unknown_series",
            column="store_id, product_id",
            count=unknown.height,
            message=f"{unknown.height:,} series are not in train.parquet, e.g. {examples[0]}",
            examples=examples,
        )
    ]
