"""Time and peak memory of validating the real train split (`freshcast validate`).

Usage: python benchmarks/validate_speed.py [--data ../shared/data/frn50k]
Writes benchmarks/results/validate_speed.json.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import emit, measure

from pipelines.data.validate import validate_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--data",
        type=Path,
        default=Path(os.environ.get("FRESHCAST_REAL_DATA", "../shared/data/frn50k")),
    )
    args = parser.parse_args()
    rows = []
    for strict in (False, True):
        with measure() as m:
            report = validate_dataset(args.data, strict=strict)
        rows.append(
            {
                "task": "validate",
                "method": "strict" if strict else "default",
                "scope": "real_train",
                "rows": report.summary.get("train", {}).get("rows"),
                "ok": report.ok,
                "invariant_breaks": sum(f.count for f in report.invariants),
                "seconds": round(m.seconds, 2),
                "cpu_seconds": round(m.cpu_seconds, 2),
                "peak_mb": round(m.peak_mb, 1),
            }
        )
    emit(rows, "validate_speed")


if __name__ == "__main__":
    main()
