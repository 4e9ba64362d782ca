"""Faults of the machine around a job, turned into one clear message each.

A full disk, a locked database or an unreachable tracking server is nobody's bug and no
bad input: the job stops with exit 3 ("not now: fix the environment and run it again"),
names the path or URI, and resumes where it stopped on the next run.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator

from pipelines.errors import FreshcastError
from pipelines.settings import Settings

NO_SPACE = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}


class EnvironmentFault(FreshcastError):
    """The machine, not the data or the code: disk, database lock, tracking server (exit 3)."""

    exit_code = 3


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def as_fault(exc: BaseException, settings: Settings) -> EnvironmentFault | None:
    """The environment fault behind ``exc`` (anywhere in its cause chain), or None."""
    if isinstance(exc, FreshcastError):
        return None
    resume = "the job resumes where it stopped when you run it again"
    for cause in _causes(exc):
        text = str(cause)
        if isinstance(cause, OSError) and cause.errno in NO_SPACE:
            where = cause.filename or settings.home
            return EnvironmentFault(f"no space left to write {where}: free disk space; {resume}")
        if "database or disk is full" in text or "disk I/O error" in text:
            return EnvironmentFault(
                f"the tracking database of {settings.tracking_uri} cannot be written (disk full?): "
                f"free disk space; {resume}"
            )
        if "database is locked" in text:
            return EnvironmentFault(
                f"a database is locked by another process ({settings.tracking_uri} or "
                f"{settings.layout.job_history_db}): try again in a moment; {resume}"
            )
        connection = type(cause).__name__ in ("ConnectionError", "ConnectTimeout", "MaxRetryError")
        if connection or "Max retries exceeded" in text or "Connection refused" in text:
            return EnvironmentFault(
                f"the MLflow tracking server at {settings.tracking_uri} cannot be reached: "
                f"start it or fix FRESHCAST_TRACKING_URI; {resume}"
            )
    return None
