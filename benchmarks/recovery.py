"""Stage-1 recovery benchmark: full-split speed and memory, masking accuracy, decoupling.

    python benchmarks/recovery.py --data ../shared/data/frn50k
    python benchmarks/recovery.py --data DIR --series 5000 --rates 0.1,0.3,0.5 --skip-speed

* **speed**: each method in ``--speed-methods`` recovers the whole train split in a fresh
  subprocess (so peak memory is its own): read + fit + recover, and writing the parquet.
  Wall and CPU seconds are both reported; on a shared machine CPU seconds show the work.
* **accuracy**: the masking protocol (uniform and demand-dependent masks) on a random
  ``--series`` subsample, for zero_fill, profile, lgbm and neural, plus the decoupling
  score before (zero_fill) and after recovery on the real stockouts.

Targets (issue 3): default ≤ 120 s and ≤ 8 GB on the full split, profile ≤ 20 s; at rate
0.3 the default's daily WAPE ≤ half of zero_fill's and below profile's; |decoupling|
after ≤ half of before.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import emit, measure

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "frn50k"


def speed_one(data: Path, method: str) -> dict:
    """Recover the full train split with ``method``; one row of timings (this process)."""
    from models.recovery import make_recoverer
    from pipelines.data.io import scan_split, write_parquet
    from pipelines.recovery.recover import day_block_from_daily, prepare_daily, recovered_frame

    with measure() as total:
        with measure() as read:
            frame = prepare_daily(scan_split(data, "train"))
            block = day_block_from_daily(frame)
            frame = frame.select("series_id", "store_id", "product_id", "dt")
        with measure() as fit:
            model = make_recoverer(method).fit_block(block)
        with measure() as rec:
            result = recovered_frame(frame, block, model.recover_block(block))
        with tempfile.TemporaryDirectory() as tmp, measure() as write:
            write_parquet(result, Path(tmp) / "recovered.parquet")
    return {
        "task": "recovery",
        "method": method,
        "target": "demand",
        "scope": "full_train_speed",
        "series": block.n_series,
        "rows": result.height,
        "seconds": round(total.seconds, 2),
        "cpu_seconds": round(total.cpu_seconds, 2),
        "seconds_read": round(read.seconds, 2),
        "seconds_fit": round(fit.seconds, 2),
        "seconds_recover": round(rec.seconds, 2),
        "seconds_fit_recover_cpu": round(fit.cpu_seconds + rec.cpu_seconds, 2),
        "seconds_write": round(write.seconds, 2),
        "peak_mb": round(total.peak_mb, 0),
        "load_avg": round(os.getloadavg()[0], 2),
    }


def accuracy(data: Path, series: int | None, rates: tuple[float, ...], seed: int) -> list[dict]:
    from pipelines.evaluation.recovery import ALL_METHODS, evaluate_recovery

    rows = evaluate_recovery(data, methods=ALL_METHODS, rates=rates, series=series, seed=seed)
    # The ablation: lgbm also trained on rows from real sell-out days (busy days).
    sellout = evaluate_recovery(
        data,
        methods=["lgbm"],
        rates=rates,
        series=series,
        seed=seed,
        method_opts={"lgbm": {"stockout_day_weight": 0.5}},
    )
    rows += [{**r, "method": "lgbm_sellout_rows"} for r in sellout if r["method"] == "lgbm"]
    keep = (
        "method",
        "target",
        "scope",
        "missing_rate",
        "wape",
        "wpe",
        "hidden_wape",
        "hourly_wape",
        "decoupling",
        "decoupling_truth",
        "seconds",
        "series",
    )
    return [{"task": "recovery", **{k: r[k] for k in keep if k in r}} for r in rows]


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--series", type=int, default=5000, help="accuracy subsample")
    parser.add_argument("--rates", default="0.3", help="comma-separated missing rates")
    parser.add_argument("--speed-methods", default="profile,lgbm")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-accuracy", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default="recovery", help="results file name")
    parser.add_argument("--speed-one", help=argparse.SUPPRESS)  # internal: child process
    args = parser.parse_args(argv)
    if args.speed_one:
        print(json.dumps(speed_one(args.data, args.speed_one)))
        return []
    rows: list[dict] = []
    if not args.skip_speed:
        for method in args.speed_methods.split(","):
            cmd = [sys.executable, __file__, "--data", str(args.data), "--speed-one", method]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
            print(rows[-1], flush=True)
    if not args.skip_accuracy:
        rates = tuple(float(r) for r in args.rates.split(","))
        rows += accuracy(args.data, args.series, rates, args.seed)
    emit(rows, args.name)
    return rows


if __name__ == "__main__":
    main()
