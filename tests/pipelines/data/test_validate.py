"""`freshcast validate` on valid data and on each kind of malformed file."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.data.validate import validate_dataset
from tests.factories import hub_frame

runner = CliRunner()


def _write(root: Path, frame: pl.DataFrame, split: str = "train") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / f"{split}.parquet"
    frame.write_parquet(path)
    return path


def _invoke(*args: str):
    result = runner.invoke(app, ["validate", *args])
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    return result


def test_valid_folder_passes_and_reports_counts(tmp_path: Path) -> None:
    _write(tmp_path, hub_frame(n_series=3, n_days=5))
    result = _invoke(str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "15 rows, 3 series" in result.output
    assert "VALID" in result.output


def test_hub_layout_with_data_subfolder(tmp_path: Path) -> None:
    _write(tmp_path / "data", hub_frame())
    # eval's days follow train's five (2024-03-28 .. 04-01).
    _write(tmp_path / "data", hub_frame(n_days=2, start=date(2024, 4, 2)), split="eval")
    assert validate_dataset(tmp_path).ok


def test_json_report(tmp_path: Path) -> None:
    _write(tmp_path, hub_frame())
    result = _invoke(str(tmp_path), "--json")
    payload = json.loads(result.output)
    assert payload["ok"] is True
    assert payload["summary"]["train"]["rows"] == 15


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda f: f.drop("discount"), "column 'discount': column is missing"),
        (lambda f: f.with_columns(pl.lit(1).alias("extra")), "column 'extra': unexpected column"),
        (
            lambda f: f.with_columns(pl.col("sale_amount").cast(pl.Float32)),
            "column 'sale_amount': has dtype Float32, expected Float64",
        ),
        (
            lambda f: f.with_columns(
                pl.when(pl.int_range(pl.len()) == 4)
                .then(pl.col("hours_sale").list.head(23))
                .otherwise(pl.col("hours_sale"))
            ),
            "column 'hours_sale', row 4: list is not 24 long",
        ),
        (lambda f: pl.concat([f, f.slice(2, 1)]), "duplicate key"),
        (
            lambda f: f.with_columns(
                pl.when(pl.int_range(pl.len()) == 1)
                .then(None)
                .otherwise(pl.col("store_id"))
                .alias("store_id")
            ),
            "column 'store_id', row 1: key is null",
        ),
    ],
    ids=["missing-column", "extra-column", "wrong-dtype", "list-23", "duplicate", "null-key"],
)
def test_schema_errors_exit_2_and_name_the_problem(tmp_path: Path, mutate, expected: str) -> None:
    path = _write(tmp_path, mutate(hub_frame()))
    result = _invoke(str(tmp_path))
    assert result.exit_code == 2, result.output
    assert str(path) in result.output
    assert expected in result.output
    assert "INVALID" in result.output


def test_truncated_file(tmp_path: Path) -> None:
    path = _write(tmp_path, hub_frame())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    result = _invoke(str(tmp_path))
    assert result.exit_code == 2
    assert "not a readable parquet file" in result.output
    assert str(path) in result.output


def test_not_parquet(tmp_path: Path) -> None:
    tmp_path.joinpath("train.parquet").write_text("store_id,product_id\n1,2\n")
    result = _invoke(str(tmp_path))
    assert result.exit_code == 2
    assert "not a readable parquet file" in result.output


def test_empty_and_missing_folder(tmp_path: Path) -> None:
    result = _invoke(str(tmp_path))
    assert result.exit_code == 2
    assert "no train.parquet" in result.output
    result = _invoke(str(tmp_path / "nowhere"))
    assert result.exit_code == 2
    assert "does not exist" in result.output


def test_unknown_eval_series(tmp_path: Path) -> None:
    _write(tmp_path, hub_frame(n_series=2))
    _write(tmp_path, hub_frame(n_series=3, n_days=2), split="eval")
    result = _invoke(str(tmp_path))
    assert result.exit_code == 2
    assert "not in train.parquet" in result.output


def _break_row(frame: pl.DataFrame, row: int, **values) -> pl.DataFrame:
    is_row = pl.int_range(pl.len()) == row
    return frame.with_columns(
        *[
            pl.when(is_row)
            .then(v if isinstance(v, pl.Expr) else pl.lit(v))
            .otherwise(pl.col(c))
            .alias(c)
            for c, v in values.items()
        ]
    )


@pytest.mark.parametrize(
    ("values", "check"),
    [
        ({"sale_amount": 99.0}, "sale_sum"),
        ({"stock_hour6_22_cnt": pl.lit(9, dtype=pl.Int32)}, "stock_count"),
        ({"holiday_flag": pl.lit(2, dtype=pl.Int32)}, "flag_range"),
        ({"discount": 0.0}, "discount_range"),
        ({"discount": 1.2}, "discount_range"),
    ],
)
def test_invariant_breaks_are_counted_and_fail_only_in_strict(
    tmp_path: Path, values: dict, check: str
) -> None:
    _write(tmp_path, _break_row(hub_frame(), 7, **values))
    report = validate_dataset(tmp_path)
    assert report.ok
    (finding,) = [f for f in report.invariants if f.check == check]
    assert finding.count == 1
    assert finding.row == 7
    assert finding.examples[0]["row"] == 7
    strict = _invoke(str(tmp_path), "--strict")
    assert strict.exit_code == 2
    assert "row 7" in strict.output


def test_negative_sales_and_date_gaps(tmp_path: Path) -> None:
    frame = hub_frame(n_series=2, n_days=6)
    frame = frame.filter(pl.int_range(pl.len()) != 3)  # series 0 loses a day
    frame = frame.with_columns(
        pl.when(pl.int_range(pl.len()) == 8)
        .then(pl.col("hours_sale").list.eval(pl.element() - 5.0))
        .otherwise(pl.col("hours_sale"))
    )
    _write(tmp_path, frame)
    checks = {f.check for f in validate_dataset(tmp_path).invariants}
    assert {"date_gap", "negative_sales"} <= checks


def test_real_split_is_valid(real_dir: Path) -> None:
    report = validate_dataset(real_dir)
    assert report.ok, [f.describe() for f in report.errors]
    assert report.summary["train"]["rows"] == 4_500_000
    assert report.summary["train"]["series"] == 50_000
    # The real data breaks the (0, 1] discount range; SOURCES.md measured 16,039 + 34 rows.
    discount = [f for f in report.invariants if f.check == "discount_range"]
    assert discount
    assert discount[0].count == 16_039 + 34


# -- inputs that used to get past validation (hardening) ----------------------------------


def _folder(tmp_path: Path, train: pl.DataFrame, eval_: pl.DataFrame | None = None) -> Path:
    _write(tmp_path, train)
    if eval_ is not None:
        _write(tmp_path, eval_, split="eval")
    return tmp_path


@pytest.mark.parametrize(
    ("mutate", "check", "column"),
    [
        (
            lambda f: f.with_columns(pl.lit(float("inf")).alias("sale_amount")),
            "not_finite",
            "sale_amount",
        ),
        (lambda f: f.with_columns(pl.lit(float("nan")).alias("precpt")), "not_finite", "precpt"),
        (
            lambda f: f.with_columns(pl.lit(float("inf")).alias("avg_humidity")),
            "not_finite",
            "avg_humidity",
        ),
        (lambda f: f.with_columns(pl.lit(-50.0).alias("discount")), "value_range", "discount"),
        (
            lambda f: f.with_columns(pl.lit(150.0).alias("avg_humidity")),
            "value_range",
            "avg_humidity",
        ),
        (
            lambda f: f.with_columns(pl.col("product_id") + 1_000_000),
            "id_range",
            "product_id",
        ),
        (  # one day of 1e12 in a series that sells about 1 a day
            lambda f: f.with_columns(
                pl.when(pl.int_range(pl.len()) == 0)
                .then(1e12)
                .otherwise(pl.col("sale_amount"))
                .alias("sale_amount")
            ),
            "extreme_sales",
            "sale_amount",
        ),
    ],
)
def test_impossible_values_are_errors_that_name_file_column_and_row(
    tmp_path: Path, mutate, check: str, column: str
) -> None:
    _folder(tmp_path, mutate(hub_frame()))
    result = _invoke(str(tmp_path))
    assert result.exit_code == 2, result.output
    report = validate_dataset(tmp_path)
    finding = next(f for f in report.errors if f.check == check)
    assert finding.column == column
    assert finding.row == 0
    assert "train.parquet" in finding.file


def test_a_file_with_no_rows_is_an_error(tmp_path: Path) -> None:
    _folder(tmp_path, hub_frame().head(0))
    result = _invoke(str(tmp_path))
    assert result.exit_code == 2, result.output
    assert "the file has no rows" in result.output


@pytest.mark.parametrize(
    ("start", "words"),
    [
        (date(2024, 3, 31), "overlap train"),
        (date(2024, 3, 20), "are not after train's last day"),
        (date(2024, 5, 1), "not the day after train ends"),
    ],
)
def test_eval_days_must_follow_train(tmp_path: Path, start: date, words: str) -> None:
    _folder(tmp_path, hub_frame(n_days=5), hub_frame(n_days=3, start=start))
    result = _invoke(str(tmp_path))
    assert result.exit_code == 2, result.output
    assert words in result.output
    assert "eval.parquet" in result.output


def test_eval_right_after_train_is_valid(tmp_path: Path) -> None:
    train = hub_frame(n_days=5)
    _folder(tmp_path, train, hub_frame(n_days=3, start=date(2024, 3, 28) + timedelta(days=5)))
    assert validate_dataset(tmp_path).ok


def test_a_directory_or_a_looping_link_where_a_file_should_be(tmp_path: Path) -> None:
    _folder(tmp_path, hub_frame())
    (tmp_path / "eval.parquet").mkdir()
    result = _invoke(str(tmp_path))
    assert result.exit_code == 2, result.output
    assert "a directory (or device) where a parquet file should be" in result.output
    other = tmp_path / "other"
    other.mkdir()
    (other / "train.parquet").symlink_to(other / "train.parquet")
    result = _invoke(str(other))
    assert result.exit_code == 2, result.output
    assert "a broken or looping link" in result.output


def test_too_few_days_for_the_job_names_the_right_range(tmp_path: Path) -> None:
    """A valid one-day dataset is not enough for the daily job: exit 2, the range as it is."""
    _folder(tmp_path / "raw", hub_frame(n_days=1))
    assert validate_dataset(tmp_path / "raw").ok
    result = runner.invoke(
        app,
        ["run", "--data", str(tmp_path / "raw")],
        env={"FRESHCAST_HOME": str(tmp_path / "home"), "FRESHCAST_PROFILE": "smoke"},
    )
    assert result.exit_code == 2, result.output
    assert "the data holds 1 day (2024-03-28 .. 2024-03-28)" in result.output
    assert "Traceback" not in result.output
