"""The daily job over consecutive business days: the first a full fit, the rest refreshes.

    python benchmarks/daily_job.py                        # the full real train split
    python benchmarks/daily_job.py --series 2000          # a sample of real series
    python benchmarks/daily_job.py --data data/raw        # any folder in the hub layout

Each day is ``freshcast run --date D`` in its own process, in a fresh home, exactly as a
scheduler would start it: wall time and peak resident memory (the job process's VmHWM) cover the whole job (ingest,
recover, live, train, evaluate, register, gate, forecast, aggregates, MLflow included). The
table also gives each day's train mode, the seconds of its heaviest steps, its cost as a
share of the full-fit day's, and the gate's decision with both sides' acc and wpe.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import emit

DEFAULT_DATA = Path(
    os.environ.get("FRESHCAST_REAL_DATA")
    or Path(__file__).resolve().parents[2] / "shared" / "data" / "frn50k"
)
STEPS = ("ingest", "recover", "live", "train", "evaluate", "register", "gate", "forecast")


def sample_dataset(data: Path, series: int, out: Path, seed: int = 0) -> Path:
    """The dataset restricted to a random sample of ``series`` store×product series."""
    import polars as pl

    for split in ("train", "eval"):
        source = data / f"{split}.parquet"
        if not source.is_file():
            continue
        frame = pl.scan_parquet(source)
        if split == "train":
            keys = (
                frame.select("store_id", "product_id")
                .unique()
                .sort("store_id", "product_id")
                .collect()
                .sample(n=series, seed=seed)
            )
        frame.join(keys.lazy(), on=["store_id", "product_id"], how="semi").sink_parquet(
            out / f"{split}.parquet"
        )
    return out


def last_train_day(data: Path) -> date:
    import polars as pl

    dt = pl.scan_parquet(data / "train.parquet").select(pl.col("dt").max()).collect().item()
    return dt if isinstance(dt, date) else date.fromisoformat(str(dt)[:10])


def _high_water_mb(pid: int) -> float:
    """VmHWM of a live process (its peak resident memory so far), in MB; 0 once it is gone.

    Not the child's ru_maxrss: a forked child inherits its parent's high-water mark, so that
    would report this script's own peak."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _watch_peak(proc: subprocess.Popen[str], peak: list[float]) -> None:
    """Sample the job's high-water mark until it exits (the last sample is within 0.1 s)."""
    while proc.poll() is None:
        peak[0] = max(peak[0], _high_water_mb(proc.pid))
        time.sleep(0.1)


def run_day(home: Path, data: Path, day: date, profile: str) -> dict[str, Any]:
    """``freshcast run --date day``: wall seconds and the peak RSS of the job's process tree."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRESHCAST_")}
    env |= {"FRESHCAST_HOME": str(home), "FRESHCAST_DATA": str(data), "FRESHCAST_PROFILE": profile}
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", "run", "--date", day.isoformat()],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    peak = [0.0]
    watcher = threading.Thread(target=_watch_peak, args=(proc, peak), daemon=True)
    watcher.start()
    stderr = proc.stderr.read()
    proc.wait()
    seconds = time.perf_counter() - started
    watcher.join()
    if proc.returncode != 0:
        raise SystemExit(f"freshcast run --date {day} failed:\n{stderr[-3000:]}")
    markers = home / "data" / "jobs" / "daily" / day.isoformat()
    record = {s: json.loads((markers / f"{s}.json").read_text()) for s in STEPS}
    ev, gate = record["evaluate"], record["gate"]["decision"]
    champion = ev.get("champion_metrics") or {}
    return {
        "task": "daily_job",
        "day": day.isoformat(),
        "mode": record["train"]["mode"],
        "seconds": round(seconds, 1),
        "peak_mb": round(peak[0], 0),
        **{f"{s}_s": round(float(record[s].get("seconds", 0.0)), 1) for s in STEPS},
        "promote": gate["promote"],
        "cand_acc": round(ev["metrics"]["acc"], 4),
        "cand_wpe": round(ev["metrics"]["wpe"], 4),
        "champ_acc": None if "acc" not in champion else round(champion["acc"], 4),
        "champ_wpe": None if "wpe" not in champion else round(champion["wpe"], 4),
        "failed_checks": ",".join(gate["failed_checks"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="hub-layout folder")
    parser.add_argument("--series", type=int, default=None, help="sample this many series")
    parser.add_argument("--days", type=int, default=7, help="consecutive business days")
    parser.add_argument("--first", type=date.fromisoformat, default=None, help="first day")
    parser.add_argument("--profile", default="default", help="model profile (smoke: tiny)")
    parser.add_argument("--name", default=None, help="results file name")
    args = parser.parse_args()
    if not (args.data / "train.parquet").is_file():
        parser.error(f"no train.parquet in {args.data} (set --data or FRESHCAST_REAL_DATA)")
    with tempfile.TemporaryDirectory(prefix="freshcast-bench-") as scratch:
        data = args.data.resolve()
        if args.series:
            data = sample_dataset(data, args.series, Path(scratch))
        first = args.first or last_train_day(data) - timedelta(days=args.days - 1)
        home = Path(scratch) / "home"
        home.mkdir()
        rows = []
        for i in range(args.days):
            row = run_day(home, data, first + timedelta(days=i), args.profile)
            rows.append(row)
            print(json.dumps(row), flush=True)
    full = rows[0]["seconds"]
    for row in rows:
        row["share_of_full_fit"] = round(row["seconds"] / full, 3)
    name = args.name or f"daily_job_{args.series or 'all'}"
    emit(rows, name)


if __name__ == "__main__":
    main()
