"""Errors a user can act on. The CLI prints them without a traceback."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


class FreshcastError(Exception):
    """An error caused by input or state the user controls.

    Attributes:
        exit_code: the process exit code the CLI uses for it.
    """

    exit_code = 1


class DataError(FreshcastError):
    """A data file that breaks the contract: names the file, and the column and row if known."""

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        file: Path | str | None = None,
        column: str | None = None,
        row: int | None = None,
    ) -> None:
        self.file = str(file) if file is not None else None
        self.column = column
        self.row = row
        self.detail = message
        where = []
        if file is not None:
            where.append(f"file {file}")
        if column is not None:
            where.append(f"column {column!r}")
        if row is not None:
            where.append(f"row {row}")
        prefix = f"{', '.join(where)}: " if where else ""
        super().__init__(prefix + message)


class UsageError(FreshcastError):
    """A command asked for something it must not do as given (e.g. an unsafe option)."""

    exit_code = 2


class DataQualityError(FreshcastError):
    """A day that keeps the contract but is implausible against its trailing weeks."""

    exit_code = 2

    def __init__(self, day: object, failed: Sequence[Any]) -> None:
        self.day = day
        self.failed = list(failed)
        lines = "\n".join(f"  {c.describe()}" for c in self.failed)
        super().__init__(
            f"day {day} fails the data-quality gate; nothing was changed:\n{lines}\n"
            f"If the day is right, rerun with `freshcast run --date {day} --accept-day {day}`."
        )
