"""Validation of a dataset folder against the data contract (DESIGN.md section 3).

Two kinds of findings:
- *schema errors* make the data unusable (a missing column, a wrong dtype, a list that is
  not 24 long, a null or duplicate key, an unreadable file, an eval series unknown to train);
- *invariant breaks* are row-level inconsistencies that real data has too. They are
  counted with examples, and fail validation only in strict mode.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from pipelines.data import io
from pipelines.data.contract import HOURS, KEY_COLUMNS, LIST_COLUMNS, RAW_SCHEMA
from pipelines.data.validate_values import Finding, finding, split_errors, value_errors
from pipelines.errors import DataError

MAX_EXAMPLES = 5
SUM_TOLERANCE = 1e-6


@dataclass
class ValidationReport:
    """What validation found in one dataset folder."""

    root: str
    strict: bool
    errors: list[Finding] = field(default_factory=list)
    invariants: list[Finding] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors and not (self.strict and self.invariants)

    def to_dict(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "ok": self.ok,
            "strict": self.strict,
            "summary": self.summary,
            "errors": [asdict(f) for f in self.errors],
            "invariants": [asdict(f) for f in self.invariants],
        }


def validate_dataset(root: Path, *, strict: bool = False) -> ValidationReport:
    """Validate ``train.parquet`` (required) and ``eval.parquet`` (optional) under ``root``."""
    report = ValidationReport(root=str(root), strict=strict)
    try:
        train_path = io.require_split(root, "train")
    except DataError as exc:
        report.errors.append(Finding(file=str(root), check="layout", message=exc.detail))
        return report
    try:
        eval_path = io.split_path(root, "eval")
    except DataError as exc:
        report.errors.append(
            Finding(file=exc.file or str(root), check="layout", message=exc.detail)
        )
        return report
    keys: dict[str, pl.DataFrame] = {}
    for split, path in (("train", train_path), ("eval", eval_path)):
        if path is None:
            continue
        errors, invariants, summary, split_keys = _validate_file(path)
        report.errors += errors
        report.invariants += invariants
        if summary:
            report.summary[split] = summary
        if split_keys is not None:
            keys[split] = split_keys
    if eval_path is not None and {"train", "eval"} <= keys.keys():
        report.errors += split_errors(eval_path, keys["eval"], keys["train"])
    return report


def _validate_file(
    path: Path,
) -> tuple[list[Finding], list[Finding], dict[str, Any], pl.DataFrame | None]:
    name = str(path)
    try:
        schema = io.read_parquet_schema(path)
    except DataError as exc:
        return [Finding(file=name, check="readable", message=exc.detail)], [], {}, None
    errors = _schema_errors(name, schema)
    if errors:
        return errors, [], {}, None
    try:
        frame = _read_reduced(path)
    except Exception as exc:  # a truncated body can pass the footer check
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return (
            [Finding(file=name, check="readable", message=f"cannot read data: {msg}")],
            [],
            {},
            None,
        )
    if frame.height == 0:
        return [Finding(file=name, check="empty", message="the file has no rows")], [], {}, None
    errors = _content_errors(name, frame) + value_errors(name, frame)
    if errors:
        return errors, [], {}, None
    invariants = _invariant_breaks(name, frame)
    keys = frame.select("store_id", "product_id", pl.col("dt").str.to_date()).unique()
    return errors, invariants, _summarise(frame), keys


# What the checks need of the two hourly lists, one scalar per row each: the lists are
# reduced while the file streams, so they are never all in memory (they are ~90 % of it).
HOUR_SUM, STOCK_SUM, FLAGS_BAD, NEG_HOUR = "_hour_sum", "_stock_sum", "_flags_bad", "_neg_hour"


def _list_length(column: str) -> str:
    return f"_{column}_len"


def _read_reduced(path: Path) -> pl.DataFrame:
    """The file's scalar columns, with the per-row reductions of its hourly lists.

    Row order is the file's (``_row`` counts from 0). The lists are read by the streaming
    engine and reduced batch by batch: peak memory follows the scalar columns.
    """
    scan = pl.scan_parquet(path)
    scalars = scan.drop(*LIST_COLUMNS).collect()
    stock = pl.col("hours_stock_status")
    reduced = scan.select(
        *(pl.col(c).list.len().alias(_list_length(c)) for c in LIST_COLUMNS),
        pl.col("hours_sale").list.sum().alias(HOUR_SUM),
        pl.col("hours_sale").list.min().alias(NEG_HOUR),
        stock.list.slice(6, 16).list.sum().alias(STOCK_SUM),
        stock.list.eval((pl.element() != 0) & (pl.element() != 1)).list.any().alias(FLAGS_BAD),
    ).collect(engine="streaming")
    return pl.concat([scalars, reduced], how="horizontal").with_row_index("_row")


def _schema_errors(name: str, schema: dict[str, pl.DataType]) -> list[Finding]:
    errors = []
    for column, dtype in RAW_SCHEMA.items():
        if column not in schema:
            errors.append(
                Finding(
                    file=name, check="missing_column", column=column, message="column is missing"
                )
            )
        elif schema[column] != dtype:
            errors.append(
                Finding(
                    file=name,
                    check="dtype",
                    column=column,
                    message=f"has dtype {schema[column]}, expected {dtype}",
                )
            )
    for column in schema:
        if column not in RAW_SCHEMA:
            errors.append(
                Finding(file=name, check="extra_column", column=column, message="unexpected column")
            )
    return errors


def _content_errors(name: str, frame: pl.DataFrame) -> list[Finding]:
    keys = list(KEY_COLUMNS)
    found: list[Finding | None] = []
    for column in LIST_COLUMNS:
        length = pl.col(_list_length(column))
        found.append(
            finding(
                name,
                "list_length",
                column,
                f"list is not {HOURS} long",
                frame,
                length.is_null() | (length != HOURS),
                [*keys],
            )
        )
    for column in keys:
        found.append(
            finding(name, "null_key", column, "key is null", frame, pl.col(column).is_null(), keys)
        )
    bad_dt = (
        pl.col("dt").str.to_date("%Y-%m-%d", strict=False).is_null() & pl.col("dt").is_not_null()
    )
    found.append(finding(name, "date_format", "dt", "not a YYYY-MM-DD date", frame, bad_dt, keys))
    dup = pl.struct(keys).is_duplicated()
    found.append(
        finding(
            name, "duplicate_key", "store_id, product_id, dt", "duplicate key", frame, dup, keys
        )
    )
    return [f for f in found if f is not None]


def _invariant_breaks(name: str, frame: pl.DataFrame) -> list[Finding]:
    keys = list(KEY_COLUMNS)
    hour_sum = pl.col(HOUR_SUM)
    stock_sum = pl.col(STOCK_SUM)
    tolerance = SUM_TOLERANCE * pl.max_horizontal(pl.lit(1.0), pl.col("sale_amount").abs())
    flags_bad = pl.col(FLAGS_BAD)
    neg_hour = pl.col(NEG_HOUR) < 0
    checks = [
        (
            "sale_sum",
            "sale_amount",
            "differs from sum(hours_sale)",
            (pl.col("sale_amount") - hour_sum).abs() > tolerance,
            ["sale_amount"],
        ),
        (
            "stock_count",
            "stock_hour6_22_cnt",
            "differs from sum(hours_stock_status[6:22])",
            pl.col("stock_hour6_22_cnt") != stock_sum,
            ["stock_hour6_22_cnt"],
        ),
        ("flag_range", "hours_stock_status", "has values outside {0, 1}", flags_bad, []),
        (
            "flag_range",
            "holiday_flag",
            "outside {0, 1}",
            ~pl.col("holiday_flag").is_in([0, 1]),
            ["holiday_flag"],
        ),
        (
            "flag_range",
            "activity_flag",
            "outside {0, 1}",
            ~pl.col("activity_flag").is_in([0, 1]),
            ["activity_flag"],
        ),
        (
            "negative_sales",
            "sale_amount",
            "is negative",
            pl.col("sale_amount") < 0,
            ["sale_amount"],
        ),
        ("negative_sales", "hours_sale", "has a negative hour", neg_hour, []),
        (
            "discount_range",
            "discount",
            "outside (0, 1]",
            (pl.col("discount") <= 0) | (pl.col("discount") > 1) | pl.col("discount").is_null(),
            ["discount"],
        ),
    ]
    found = [
        finding(name, check, column, message, frame, mask, [*keys, *show])
        for check, column, message, mask, show in checks
    ]
    sorted_frame = frame.sort(["store_id", "product_id", "dt"])
    series_dt = pl.col("dt").str.to_date("%Y-%m-%d")
    gaps = sorted_frame.filter(
        series_dt.diff().over(["store_id", "product_id"]).dt.total_days() > 1
    )
    if gaps.height:
        examples = gaps.head(MAX_EXAMPLES).select(pl.col("_row").alias("row"), *keys).to_dicts()
        first = examples[0]["row"]
        found.append(
            Finding(
                file=name,
                check="date_gap",
                column="dt",
                row=first,
                count=gaps.height,
                message=f"a series skips days ({gaps.height:,} gaps; first at row {first})",
                examples=examples,
            )
        )
    return [f for f in found if f is not None]


def _summarise(frame: pl.DataFrame) -> dict[str, Any]:
    stats = frame.select(
        pl.len().alias("rows"),
        pl.struct("store_id", "product_id").n_unique().alias("series"),
        pl.col("store_id").n_unique().alias("stores"),
        pl.col("city_id").n_unique().alias("cities"),
        pl.col("product_id").n_unique().alias("products"),
        pl.col("dt").min().alias("first_day"),
        pl.col("dt").max().alias("last_day"),
        pl.col("dt").n_unique().alias("days"),
        (pl.col("stock_hour6_22_cnt") > 0).mean().alias("stockout_day_share"),
        pl.col("sale_amount").mean().alias("mean_daily_sales"),
    ).row(0, named=True)
    return stats


def render_report(report: ValidationReport) -> str:
    """A readable, plain-text report for the terminal."""
    lines = [f"dataset: {report.root}"]
    for split, s in report.summary.items():
        lines.append(
            f"  {split}: {s['rows']:,} rows, {s['series']:,} series, {s['stores']:,} stores, "
            f"{s['cities']} cities, {s['days']} days {s['first_day']} .. {s['last_day']}, "
            f"{s['stockout_day_share']:.1%} days with a stockout"
        )
    if report.errors:
        lines.append(f"schema errors ({len(report.errors)}):")
        lines += [f"  - {f.describe()}" for f in report.errors]
    if report.invariants:
        label = "fail in --strict" if not report.strict else "strict: these fail"
        lines.append(f"row-level invariant breaks ({label}):")
        for f in report.invariants:
            lines.append(f"  - {f.describe()}")
            lines += [f"      e.g. {ex}" for ex in f.examples[:MAX_EXAMPLES]]
    elif not report.errors:
        lines.append("row-level invariants: all hold")
    lines.append("VALID" if report.ok else "INVALID")
    return "\n".join(lines)
