"""The job history: one row per step attempt, in a small SQLite database under mlruns/.

`freshcast jobs` lists it and the UI's Jobs page reads it. Each write is its own short
transaction, so a killed job leaves at worst a row marked ``running`` that the next run
of the same date closes as ``interrupted``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

HISTORY_COLUMNS = (
    "id",
    "job",
    "business_date",
    "step",
    "status",
    "started",
    "ended",
    "seconds",
    "error",
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS job_steps (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job TEXT NOT NULL,
    business_date TEXT NOT NULL,
    step TEXT NOT NULL,
    status TEXT NOT NULL,
    started TEXT NOT NULL,
    ended TEXT,
    seconds REAL,
    error TEXT
)
"""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@contextmanager
def _connect(db: Path) -> Iterator[sqlite3.Connection]:
    db.parent.mkdir(parents=True, exist_ok=True)
    with closing(sqlite3.connect(db, timeout=30)) as conn:
        conn.execute(_SCHEMA)
        yield conn
        conn.commit()


def start_step(db: Path, *, job: str, business_date: str, step: str) -> int:
    """Record that a step started; returns its row id."""
    with _connect(db) as conn:
        cur = conn.execute(
            "INSERT INTO job_steps (job, business_date, step, status, started) VALUES (?, ?, ?, 'running', ?)",
            (job, business_date, step, _now()),
        )
        return int(cur.lastrowid or 0)


def end_step(db: Path, row_id: int, *, status: str, error: str | None = None) -> None:
    """Close a step row as ``done``, ``failed`` or ``skipped``."""
    with _connect(db) as conn:
        started = conn.execute("SELECT started FROM job_steps WHERE id = ?", (row_id,)).fetchone()
        seconds = None
        if started:
            seconds = (datetime.now(UTC) - datetime.fromisoformat(started[0])).total_seconds()
        conn.execute(
            "UPDATE job_steps SET status = ?, ended = ?, seconds = ?, error = ? WHERE id = ?",
            (status, _now(), seconds, error, row_id),
        )


def close_interrupted(db: Path, *, job: str, business_date: str) -> int:
    """Mark rows left ``running`` by a killed process as ``interrupted``. Returns how many."""
    with _connect(db) as conn:
        cur = conn.execute(
            "UPDATE job_steps SET status = 'interrupted', ended = ? "
            "WHERE job = ? AND business_date = ? AND status = 'running'",
            (_now(), job, business_date),
        )
        return cur.rowcount


def read_history(db: Path, *, limit: int = 200) -> pl.DataFrame:
    """The latest step rows, newest first (an empty frame when there is no history)."""
    schema = {
        "id": pl.Int64,
        "job": pl.String,
        "business_date": pl.String,
        "step": pl.String,
        "status": pl.String,
        "started": pl.String,
        "ended": pl.String,
        "seconds": pl.Float64,
        "error": pl.String,
    }
    if not db.is_file():
        return pl.DataFrame(schema=schema)
    with _connect(db) as conn:
        rows = conn.execute(
            f"SELECT {', '.join(HISTORY_COLUMNS)} FROM job_steps ORDER BY id DESC LIMIT ?", (limit,)
        ).fetchall()
    return pl.DataFrame(rows, schema=schema, orient="row")


def settle(frame: pl.DataFrame, *, job_running: bool) -> pl.DataFrame:
    """Rows left ``running`` while no job holds the lock belong to a process that died
    (killed, or stopped by a full disk that refused even this row): shown as ``failed``."""
    if job_running or frame.is_empty():
        return frame
    stale = pl.col("status") == "running"
    return frame.with_columns(
        pl.when(stale).then(pl.lit("failed")).otherwise("status").alias("status"),
        pl.when(stale)
        .then(pl.lit("the job stopped without closing this step (killed, or the disk was full)"))
        .otherwise("error")
        .alias("error"),
    )
