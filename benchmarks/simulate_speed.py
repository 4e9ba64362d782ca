"""Time and peak memory of the simulator: ``simulate`` alone, then writing the files.

    python benchmarks/simulate_speed.py --series 50000

The full size (50,000 series × 97 days) should take at most 60 s and stay under 6 GB.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import emit, measure

from pipelines.data.simulate import SimulationConfig, simulate, write_simulation


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=50_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--eval-days", type=int, default=7)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default="simulate_speed", help="results file name")
    args = parser.parse_args(argv)
    config = SimulationConfig(
        series=args.series, days=args.days, eval_days=args.eval_days, seed=args.seed
    )
    common = {"task": "simulate", "series": config.series, "days": config.total_days}
    rows = []
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan
    with tempfile.TemporaryDirectory() as tmp:
        # End to end first (what `freshcast simulate` does), so its peak is not hidden
        # by an earlier step's.
        with measure() as m:
            paths = write_simulation(config, Path(tmp))
        size_mb = sum(p.stat().st_size for p in paths.values()) / 2**20
        rows.append(
            {**common, "method": "write_simulation", "scope": "end_to_end",
             "seconds": round(m.seconds, 2), "cpu_seconds": round(m.cpu_seconds, 2),
             "peak_mb": round(m.peak_mb, 1), "rows": None, "files_mb": round(size_mb, 1)}
        )  # fmt: skip
        gc.collect()
        with measure() as m:
            data = simulate(config)
        rows.append(
            {**common, "method": "simulate", "scope": "in_memory",
             "seconds": round(m.seconds, 2), "cpu_seconds": round(m.cpu_seconds, 2),
             "peak_mb": round(m.peak_mb, 1), "rows": data.train.height + data.eval.height, "files_mb": None}
        )  # fmt: skip
        rows[0]["rows"] = rows[1]["rows"]
    for row in rows:
        row["load_avg_before"] = round(load, 2)  # other work on the machine inflates seconds
    emit(rows, args.name)
    return rows


if __name__ == "__main__":
    main()
