"""Shared helpers for the benchmark scripts: time and peak memory, a printed table, and
the JSON rows written atomically to ``benchmarks/results/<name>.json``.

Rows follow the metrics contract of DESIGN.md section 4: a list of flat dicts such as
``{"task": ..., "method": ..., "scope": ..., "seconds": 1.2, "peak_mb": 300.0}``.
"""

from __future__ import annotations

import math
import os
import resource
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def current_rss_mb() -> float:
    """Resident memory of this process now, in MB (Linux /proc; else the lifetime peak)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * _PAGE_SIZE / 2**20
    except OSError:
        return peak_rss_mb()


def peak_rss_mb() -> float:
    """Peak resident memory of this process over its whole life, in MB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes vs KB


@dataclass
class Measurement:
    """Filled in by :func:`measure`: wall and CPU seconds, and peak RSS (MB) in the block.

    ``cpu_seconds`` counts all of the process's threads, so on a busy machine it shows
    how much of the wall time was this process's own work.
    """

    seconds: float = math.nan
    cpu_seconds: float = math.nan
    peak_mb: float = math.nan
    start_mb: float = math.nan
    _samples: list[float] = field(default_factory=list, repr=False)


@contextmanager
def measure(interval: float = 0.05) -> Iterator[Measurement]:
    """Time a block and sample its peak RSS from a background thread.

    The peak is the larger of the sampled maximum and, when the block set a new
    lifetime high, ``getrusage``'s peak, so short spikes between samples still count.
    """
    result = Measurement(start_mb=current_rss_mb())
    lifetime_before = peak_rss_mb()
    stop = threading.Event()
    peak = [result.start_mb]

    def sample() -> None:
        while not stop.wait(interval):
            peak[0] = max(peak[0], current_rss_mb())

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    start, cpu_start = time.perf_counter(), time.process_time()
    try:
        yield result
    finally:
        result.seconds = time.perf_counter() - start
        result.cpu_seconds = time.process_time() - cpu_start
        stop.set()
        thread.join()
        peak[0] = max(peak[0], current_rss_mb())
        lifetime_after = peak_rss_mb()
        if lifetime_after > lifetime_before:
            peak[0] = max(peak[0], lifetime_after)
        result.peak_mb = peak[0]


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:,.0f}"
    return str(value)


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """A plain-text table of the rows, columns in first-seen order."""
    if not rows:
        return "(no rows)"
    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    cells = [[_cell(row.get(c, "")) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)),
        "  ".join("-" * w for w in widths),
    ]
    for r in cells:
        lines.append(
            "  ".join(
                v.rjust(w) if _numeric(v) else v.ljust(w) for v, w in zip(r, widths, strict=True)
            )
        )
    return "\n".join(lines)


def _numeric(text: str) -> bool:
    try:
        float(text.replace(",", ""))
    except ValueError:
        return False
    return True


def emit(rows: list[dict[str, Any]], name: str, *, results_dir: Path | None = None) -> Path:
    """Print the rows as a table and write them to ``<results_dir>/<name>.json`` atomically."""
    from pipelines.data.io import write_json

    print(format_table(rows))
    path = (results_dir or RESULTS_DIR) / f"{name}.json"
    write_json(rows, path)
    print(f"wrote {path}")
    return path
