"""Running a job as resumable steps: a lock, completion markers and the job history.

A job for a business date is a list of steps. Each step writes its outputs atomically
and then its marker ``data/jobs/<job>/<date>/<step>.json``; a step whose marker exists is
not run again. So after a crash, or a ``kill -9`` anywhere, the next run resumes at the
first unfinished step, and a finished date is a no-op unless forced.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from pipelines.data import io
from pipelines.jobs import history
from pipelines.jobs.faults import as_fault
from pipelines.jobs.locks import job_lock
from pipelines.settings import Settings

console = Console(stderr=True)


@dataclass
class StepContext:
    """What a step sees: the settings, the date, and the records of the steps before it."""

    settings: Settings
    job: str
    business_date: str
    records: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def marker_dir(self) -> Path:
        return self.settings.layout.job_markers(self.job, self.business_date)


@dataclass(frozen=True)
class Step:
    """A named unit of a job. ``run`` returns a JSON-able record of what it wrote."""

    name: str
    run: Callable[[StepContext], dict[str, Any]]


@dataclass(frozen=True)
class JobResult:
    job: str
    business_date: str
    status: str  # "done", "already done"
    records: dict[str, dict[str, Any]]


def _log_event(settings: Settings, **fields: Any) -> None:
    """Append one JSON line to ``data/logs/jobs.jsonl``: the machine-readable job log."""
    path = settings.layout.job_log
    path.parent.mkdir(parents=True, exist_ok=True)
    event = {"time": datetime.now(UTC).isoformat(timespec="milliseconds"), **fields}
    with path.open("a") as fh:  # one short append per event; a crash loses at most that line
        fh.write(json.dumps(event, default=str) + "\n")


def run_job(
    settings: Settings,
    *,
    job: str,
    business_date: str,
    steps: Sequence[Step],
    force: bool = False,
    on_start: Callable[[StepContext], object] | None = None,
    on_failure: Callable[[StepContext], object] | None = None,
) -> JobResult:
    """Run ``steps`` for ``business_date`` under the job lock, resuming after a crash.

    ``on_start`` runs under the lock before the first step that is not done yet (the
    tracking clean-up of a killed run); ``on_failure`` after a step fails. An environment
    fault (disk full, a locked database, an unreachable tracking server) is raised as one
    :class:`~pipelines.jobs.faults.EnvironmentFault`; the history row ends ``failed``.
    """
    with job_lock(settings):
        ctx = StepContext(settings=settings, job=job, business_date=business_date)
        try:
            return _run_locked(ctx, steps, force=force, on_start=on_start, on_failure=on_failure)
        except Exception as exc:
            fault = as_fault(exc, settings)
            if fault is not None:
                raise fault from None
            raise


def _run_locked(
    ctx: StepContext,
    steps: Sequence[Step],
    *,
    force: bool,
    on_start: Callable[[StepContext], object] | None,
    on_failure: Callable[[StepContext], object] | None,
) -> JobResult:
    settings, job, business_date = ctx.settings, ctx.job, ctx.business_date
    done_marker = ctx.marker_dir / "_done.json"
    if force and ctx.marker_dir.exists():
        shutil.rmtree(ctx.marker_dir)
    if done_marker.is_file():
        records = {s.name: io.read_json(ctx.marker_dir / f"{s.name}.json") for s in steps}
        if not any(_damaged_output(r) for r in records.values()):
            console.print(f"{job} {business_date}: already done (use --force to run it again)")
            return JobResult(job, business_date, "already done", records)
        # An output of a finished date was lost or corrupted: rebuild what is damaged.
        done_marker.unlink()
    db = settings.layout.job_history_db
    interrupted = history.close_interrupted(db, job=job, business_date=business_date)
    if interrupted:
        console.print(f"{job} {business_date}: resuming after an interrupted run")
    if on_start is not None:
        on_start(ctx)
    for index, step in enumerate(steps, start=1):
        marker = ctx.marker_dir / f"{step.name}.json"
        label = f"[{index}/{len(steps)}] {step.name}"
        if marker.is_file():
            record = io.read_json(marker)
            damaged = _damaged_output(record)
            if damaged is None:
                ctx.records[step.name] = record
                console.print(f"{label}: done earlier, skipped")
                continue
            console.print(f"{label}: done earlier, but {damaged}: running it again")
            _log_event(
                settings,
                job=job,
                business_date=business_date,
                step=step.name,
                status="rebuilding",
                reason=damaged,
            )
            marker.unlink()
        row = history.start_step(db, job=job, business_date=business_date, step=step.name)
        _log_event(settings, job=job, business_date=business_date, step=step.name, status="running")
        started = time.perf_counter()
        try:
            with console.status(f"{label} running…"):
                record = step.run(ctx)
        except BaseException as exc:
            message = str(exc).strip() or type(exc).__name__
            # A full disk can refuse these too: the next run closes the row as interrupted.
            with contextlib.suppress(Exception):
                history.end_step(db, row, status="failed", error=message[:2000])
                _log_event(
                    settings,
                    job=job,
                    business_date=business_date,
                    step=step.name,
                    status="failed",
                    seconds=round(time.perf_counter() - started, 3),
                    error=message[:2000],
                )
            console.print(f"{label}: [red]failed[/] after {time.perf_counter() - started:.1f}s")
            if on_failure is not None:
                with contextlib.suppress(Exception):  # the step's own error is the one to tell
                    on_failure(ctx)
            raise
        record = {**record, "seconds": round(time.perf_counter() - started, 3)}
        io.write_json(record, marker)
        history.end_step(db, row, status="done")
        _log_event(
            settings,
            job=job,
            business_date=business_date,
            step=step.name,
            status="done",
            seconds=record["seconds"],
        )
        ctx.records[step.name] = record
        console.print(f"{label}: done in {record['seconds']:.1f}s", highlight=False)
    io.write_json({"steps": [s.name for s in steps]}, done_marker)
    return JobResult(job, business_date, "done", ctx.records)


def _damaged_output(record: dict[str, Any]) -> str | None:
    """Why a finished step can't be trusted, or None: its output (the record's ``path`` and
    ``files``) is damaged, or an input it read (``inputs``: path → stamp) changed since."""
    paths = [record.get("path"), *record.get("files", [])]
    for path in (p for p in paths if isinstance(p, str)):
        reason = io.damage(Path(path))
        if reason is not None:
            return f"its output {path} {reason.removeprefix('it ')}"
    for path, stamp in record.get("inputs", {}).items():
        if not Path(path).is_file() or io.file_stamp(Path(path)) != stamp:
            return f"its input {path} changed since"
    return None
