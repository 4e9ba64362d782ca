"""Property: whatever malformed dataset a user hands over, `freshcast validate` answers with
exit 0 (valid) or exit 2 (a report), never a crash or a traceback."""

from __future__ import annotations

import math
import tempfile
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.data.contract import RAW_SCHEMA
from tests.factories import hub_frame

COLUMNS = list(RAW_SCHEMA)
NUMERIC = [c for c, t in RAW_SCHEMA.items() if t.is_numeric()]
ODD_VALUES = [None, math.nan, math.inf, -math.inf, -1.0, 0.0, 1e12, -1e12, 2**40]


def _set_cell(frame: pl.DataFrame, column: str, row: int, value: Any) -> pl.DataFrame:
    target = pl.int_range(pl.len()) == row
    try:
        return frame.with_columns(
            pl.when(target).then(pl.lit(value)).otherwise(pl.col(column)).alias(column)
        )
    except (pl.exceptions.PolarsError, TypeError, ValueError, OverflowError):
        return frame


MUTATIONS = st.one_of(
    st.tuples(st.just("drop"), st.sampled_from(COLUMNS)),
    st.tuples(st.just("cast_str"), st.sampled_from(COLUMNS)),
    st.tuples(st.just("cast_float"), st.sampled_from(NUMERIC)),
    st.tuples(
        st.just("cell"),
        st.sampled_from(NUMERIC),
        st.integers(0, 14),
        st.sampled_from(ODD_VALUES),
    ),
    st.tuples(
        st.just("hours"), st.sampled_from(["hours_sale", "hours_stock_status"]), st.integers(0, 30)
    ),
    st.tuples(st.just("duplicate"), st.integers(0, 14)),
    st.tuples(st.just("bad_date"), st.sampled_from(["2024-13-01", "", "yesterday", "2024-02-30"])),
    st.tuples(st.just("empty")),
    st.tuples(st.just("extra_column")),
)


def _mutate(frame: pl.DataFrame, mutation: tuple[Any, ...]) -> pl.DataFrame:
    """The frame with one mutation applied (unchanged when it does not apply)."""
    try:
        return _apply(frame, mutation)
    except (pl.exceptions.PolarsError, TypeError, ValueError, OverflowError):
        return frame


def _apply(frame: pl.DataFrame, mutation: tuple[Any, ...]) -> pl.DataFrame:
    kind = mutation[0]
    if kind == "drop":
        return frame.drop(mutation[1])
    if kind == "cast_str" and mutation[1] in frame.columns:
        return frame.with_columns(pl.col(mutation[1]).cast(pl.String, strict=False))
    if kind == "cast_float" and mutation[1] in frame.columns:
        return frame.with_columns(pl.col(mutation[1]).cast(pl.Float64, strict=False))
    if kind == "cell" and mutation[1] in frame.columns and frame.height:
        return _set_cell(frame, mutation[1], mutation[2] % frame.height, mutation[3])
    if kind == "hours" and mutation[1] in frame.columns and frame.height:
        if frame.schema[mutation[1]] != RAW_SCHEMA[mutation[1]]:
            return frame
        length = mutation[2]
        kind_of = frame.schema[mutation[1]].inner  # type: ignore[attr-defined]
        value = pl.lit([0] * length, dtype=pl.List(kind_of))
        return frame.with_columns(
            pl.when(pl.int_range(pl.len()) == 0)
            .then(value)
            .otherwise(mutation[1])
            .alias(mutation[1])
        )
    if kind == "duplicate" and frame.height:
        return pl.concat([frame, frame.slice(mutation[1] % frame.height, 1)])
    if kind == "bad_date" and "dt" in frame.columns and frame.schema["dt"] == pl.String:
        return _set_cell(frame, "dt", 0, mutation[1])
    if kind == "empty":
        return frame.head(0)
    if kind == "extra_column":
        return frame.with_columns(pl.lit(1).alias("surprise"))
    return frame


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    train_mutations=st.lists(MUTATIONS, max_size=3),
    eval_mutations=st.lists(MUTATIONS, max_size=2),
    with_eval=st.booleans(),
    eval_offset=st.integers(-6, 9),
    truncate=st.sampled_from([None, "train", "eval"]),
)
def test_validate_never_crashes_on_a_malformed_dataset(
    train_mutations: list[tuple[Any, ...]],
    eval_mutations: list[tuple[Any, ...]],
    with_eval: bool,
    eval_offset: int,
    truncate: str | None,
) -> None:
    train = hub_frame(n_series=3, n_days=5)
    for mutation in train_mutations:
        train = _mutate(train, mutation)
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        train.write_parquet(root / "train.parquet")
        if with_eval:
            start = date(2024, 3, 28) + timedelta(days=5 + eval_offset)
            ev = hub_frame(n_series=3, n_days=2, start=start)
            for mutation in eval_mutations:
                ev = _mutate(ev, mutation)
            ev.write_parquet(root / "eval.parquet")
        if truncate is not None and (root / f"{truncate}.parquet").is_file():
            path = root / f"{truncate}.parquet"
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        result = CliRunner().invoke(app, ["validate", str(root)])
    assert result.exit_code in (0, 2), result.output
    assert "internal error" not in result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
