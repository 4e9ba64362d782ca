"""What every page shares: settings, cached loaders, empty states and small formatters.

Frames are cached with ``st.cache_data``, keyed on the file's modification time so a new
job run shows up at once; the registry client with ``st.cache_resource``. The app only
reads the configured project folders (settings): it never takes a path from the user.
"""

from __future__ import annotations

import contextlib
import io as _io
from collections.abc import Iterator
from typing import Any

import polars as pl
import streamlit as st

from pipelines import queries as app_data
from pipelines.serving import aggregates
from pipelines.settings import Settings, load_settings

RUN_HINT = (
    "Run `make run` (or `freshcast run`) to simulate a default dataset and run the daily job."
)


def settings() -> Settings:
    """The project's settings, from the environment (cheap: read on every rerun)."""
    return load_settings()


def _aggregates_stamp(s: Settings) -> str:
    folder = aggregates.latest_aggregates_dir(s.layout.aggregates)
    if folder is None:
        return ""
    return f"{folder}:{app_data.file_stamp(folder / aggregates.DONE_MARKER)}"


@st.cache_data(show_spinner=False, max_entries=4)
def _load_aggregates(root: str, stamp: str) -> dict[str, pl.DataFrame] | None:
    from pathlib import Path

    return aggregates.load_aggregates(Path(root)) if stamp else None


def load_aggregates(s: Settings) -> dict[str, pl.DataFrame] | None:
    """The latest aggregates the daily job built, or None."""
    return _load_aggregates(str(s.layout.aggregates), _aggregates_stamp(s))


def require_data(s: Settings) -> None:
    """Stop the page with an empty state when the project has no dataset yet."""
    if not has_data(s):
        empty_state("No data yet: there is no dataset in the project's data folder.")
        st.stop()


def require_aggregates(s: Settings, message: str, hint: str) -> dict[str, pl.DataFrame]:
    """The job's aggregates; stop the page with ``message`` and ``hint`` when there are none."""
    require_data(s)
    agg = load_aggregates(s)
    if agg is None:
        empty_state(message, hint)
        st.stop()
    return agg


def has_data(s: Settings) -> bool:
    return app_data.scan_daily(s) is not None


@st.cache_data(show_spinner=False, ttl=60)
def _history(db: str, stamp: float) -> pl.DataFrame:
    from pathlib import Path

    from pipelines.jobs import history

    return history.read_history(Path(db), limit=500)


def job_history(s: Settings) -> pl.DataFrame:
    """The job history, newest first (empty when no job ran)."""
    return _history(str(s.layout.job_history_db), app_data.file_stamp(s.layout.job_history_db))


@st.cache_resource(show_spinner=False)
def registry_client(tracking_uri: str) -> Any:
    """The MLflow client for the project's registry, created once per tracking URI."""
    from mlflow import MlflowClient

    from pipelines.serving import registry

    registry.configure(tracking_uri)
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


@st.cache_data(show_spinner=False, ttl=30)
def _versions(tracking_uri: str, stamp: float) -> pl.DataFrame:
    return app_data.registry_versions(settings().model_copy(update={"tracking_uri": tracking_uri}))


def model_versions(s: Settings) -> pl.DataFrame:
    """Registered versions with aliases and headline metrics (empty without a registry)."""
    if not app_data.has_registry(s):
        return pl.DataFrame()
    registry_client(s.tracking_uri)
    uri = s.tracking_uri
    stamp = 0.0
    if uri.startswith("sqlite:///"):
        from pathlib import Path

        stamp = app_data.file_stamp(Path(uri.removeprefix("sqlite:///")))
    return _versions(uri, stamp)


def champion(versions: pl.DataFrame) -> dict[str, Any] | None:
    """The champion row of :func:`model_versions`, or None."""
    if versions.is_empty() or "aliases" not in versions.columns:
        return None
    rows = versions.filter(pl.col("aliases").str.contains(r"\bchampion\b"))
    return rows.row(0, named=True) if rows.height else None


def empty_state(message: str, hint: str = RUN_HINT) -> None:
    """A friendly box saying what is missing and what to run."""
    st.info(f"{message}\n\n{hint}", icon=":material/info:")


@contextlib.contextmanager
def guard(what: str) -> Iterator[None]:
    """Show an unexpected failure as a readable error box, never as a traceback."""
    try:
        yield
    except Exception as exc:  # a page must never show a traceback to a planner
        st.error(
            f"Could not show {what}: {type(exc).__name__}: {exc}\n\n"
            "Check the daily job's output (`freshcast run`) and the job history.",
            icon=":material/error:",
        )


def fmt_num(value: Any, digits: int = 1) -> str:
    """1234.5 → '1,234.5'; None → '–'."""
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def fmt_pct(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    return f"{100 * value:.{digits}f} %"


def fmt_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1024
    return f"{size} B"


def csv_bytes(frame: pl.DataFrame) -> bytes:
    return frame.write_csv().encode()


def parquet_bytes(frame: pl.DataFrame) -> bytes:
    buf = _io.BytesIO()
    frame.write_parquet(buf)
    return buf.getvalue()


def filters(index: pl.DataFrame, *, key: str) -> tuple[list[int], list[int]]:
    """City and category multiselects (empty selection = all)."""
    left, right = st.columns(2)
    cities = left.multiselect(
        "City",
        sorted(index["city_id"].unique().to_list()),
        key=f"{key}-city",
        placeholder="All cities",
    )
    categories = right.multiselect(
        "Category",
        sorted(index["first_category_id"].unique().to_list()),
        key=f"{key}-cat",
        placeholder="All categories",
    )
    return cities, categories


def apply_filters(frame: pl.DataFrame, cities: list[int], categories: list[int]) -> pl.DataFrame:
    if cities:
        frame = frame.filter(pl.col("city_id").is_in(cities))
    if categories:
        frame = frame.filter(pl.col("first_category_id").is_in(categories))
    return frame
