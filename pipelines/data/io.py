"""Locating, reading and atomically writing freshcast's files.

This is the only module that touches paths. Reads are lazy (``scan_parquet``); writes go
to a temporary file in the target folder and are renamed into place, so a crash never
leaves a half-written file behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl

from pipelines.data.contract import add_series_id
from pipelines.errors import DataError

SPLITS = ("train", "eval")


def split_path(root: Path, split: str) -> Path | None:
    """Where a split's file is: ``root/<split>.parquet`` or the hub's ``root/data/<split>.parquet``."""
    for candidate in (root / f"{split}.parquet", root / "data" / f"{split}.parquet"):
        if candidate.is_file():
            return candidate
        if candidate.is_symlink() and not candidate.exists():
            raise DataError(
                "a broken or looping link where a parquet file should be", file=candidate
            )
        if candidate.exists():
            raise DataError(
                "a directory (or device) where a parquet file should be", file=candidate
            )
    return None


def require_split(root: Path, split: str) -> Path:
    """Like :func:`split_path`, but a missing file is a :class:`DataError`."""
    if not root.exists():
        raise DataError("the data folder does not exist", file=root)
    if not root.is_dir():
        raise DataError("expected a folder holding train.parquet and eval.parquet", file=root)
    path = split_path(root, split)
    if path is None:
        raise DataError(
            f"no {split}.parquet here or under data/ (expected the hub layout)", file=root
        )
    return path


def has_dataset(root: Path) -> bool:
    """True when ``root`` holds at least a train split."""
    return root.is_dir() and split_path(root, "train") is not None


def read_parquet_schema(path: Path) -> dict[str, pl.DataType]:
    """The file's schema, read from its footer. A corrupt or non-parquet file is a DataError."""
    try:
        return dict(pl.read_parquet_schema(path))
    except Exception as exc:  # polars raises several error types for a bad footer
        raise DataError(f"not a readable parquet file ({_first_line(exc)})", file=path) from None


def scan_raw(path: Path) -> pl.LazyFrame:
    """Scan a raw hub file as it is, without typing it."""
    read_parquet_schema(path)
    return pl.scan_parquet(path)


def scan_split(root: Path, split: str = "train") -> pl.LazyFrame:
    """Scan one split in the hub layout, typed for freshcast.

    Returns the raw columns with ``dt`` as Date and a ``series_id`` key in front.
    Run :func:`pipelines.data.validate.validate_dataset` first to get readable errors.
    """
    path = require_split(root, split)
    return scan_raw(path).with_columns(pl.col("dt").str.to_date("%Y-%m-%d")).pipe(add_series_id)


def file_stamp(path: Path) -> str:
    """Size and modification time: enough to tell that a file changed since it was read."""
    stat = path.stat()
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def scan_days(root: Path) -> pl.LazyFrame:
    """Train and (when present) eval rows as one typed daily frame: the job's whole timeline."""
    frames = [scan_split(root, "train")]
    if split_path(root, "eval") is not None:
        frames.append(scan_split(root, "eval"))
    return pl.concat(frames, how="vertical")


def scan_truth(root: Path) -> pl.LazyFrame | None:
    """The simulator's latent demand, typed like the splits, or None when absent."""
    path = root / "truth.parquet"
    if not path.is_file():
        return None
    return scan_raw(path).with_columns(pl.col("dt").str.to_date("%Y-%m-%d")).pipe(add_series_id)


def scan_parquet(path: Path) -> pl.LazyFrame:
    """Scan a parquet file that freshcast itself wrote."""
    if not path.is_file():
        raise DataError("file not found", file=path)
    return scan_raw(path)


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        # mkstemp creates 0600; give the file the mode a plain open() would have.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_parquet(frame: pl.DataFrame | pl.LazyFrame, path: Path) -> Path:
    """Write a frame to parquet atomically. Returns ``path``."""
    df = frame.collect() if isinstance(frame, pl.LazyFrame) else frame
    with atomic_path(path) as tmp:
        # Row-group statistics let readers skip to one series; the output stays deterministic.
        # zstd level 1: on the 4.5 M-row recovered frame it writes in 2.9 s instead of 3.8 s
        # at level 3, for files 1 % larger.
        df.write_parquet(
            tmp, compression="zstd", compression_level=1, statistics=True, row_group_size=50_000
        )
    return path


def write_json(obj: Any, path: Path) -> Path:
    """Write JSON atomically, pretty-printed. Returns ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n")
    return path


def write_bytes(data: bytes, path: Path) -> Path:
    """Write bytes atomically. Returns ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


def read_json(path: Path) -> Any:
    """Read a JSON file that freshcast wrote."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError("file not found", file=path) from None
    except json.JSONDecodeError as exc:
        raise DataError(f"not valid JSON ({exc})", file=path) from None


def damage(path: Path) -> str | None:
    """Why a file freshcast wrote can't be trusted (missing, empty, truncated), or None.

    A cheap check of what a later step or the UI would read: a parquet file's footer and
    schema, a JSON document, a pickle's final STOP opcode, a folder's presence.
    """
    if path.is_dir():
        return None
    if not path.is_file():
        return "it is missing"
    if path.stat().st_size == 0:
        return "it is empty"
    try:
        if path.suffix == ".parquet":
            pl.read_parquet_schema(path)
        elif path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".pkl":
            with path.open("rb") as fh:
                fh.seek(-1, 2)
                if fh.read(1) != b".":  # every complete pickle ends with STOP
                    return "it is truncated"
    except Exception as exc:
        return f"it is unreadable ({_first_line(exc)})"
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
