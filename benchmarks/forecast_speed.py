"""Forecast time on the real train split: 50,000 series x 7 days, what `freshcast forecast` does.

Fits one model (default lgbm) through day 83, then times, several times each:

* ``forecast``: :func:`pipelines.serving.forecast.forecast_days` from the recovered history and the
  forecast days' covariates to the forecast frame: panel, features for the forecast days
  only (a 28-day window plus per-series priors), predict, bands. Stage 1 is not in it: the
  daily job's recover step runs it once and has its own budget (benchmarks/recovery.py).
* ``features_full``: the whole-history feature build training uses, for comparison.
* with ``--train``: training against the issue's mlforecast bar, interleaved so both see the
  same load: ``features+fit`` (whole-history features, then ``lgbm``'s fit: calibration
  model and refit) on the recovered target, and the bar's ``mlforecast fit`` (needs the
  ``bench`` extra).

The machine is shared, so each row carries the load average, and the minimum of the
repeats is the figure least inflated by other jobs.

Usage: ``python benchmarks/forecast_speed.py [--data DIR] [--series N] [--models lgbm,ensemble]
[--repeats 3] [--train]``. Writes ``benchmarks/results/forecast_speed.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import emit, measure  # noqa: E402
from pipelines.data.io import scan_split  # noqa: E402
from pipelines.features.panel import make_panel, sample_series  # noqa: E402
from pipelines.recovery.recover import recover_demand  # noqa: E402
from pipelines.serving.forecast import forecast_days  # noqa: E402
from pipelines.training.fit import fit_model  # noqa: E402

CUT = date(2024, 6, 18)  # day 83 of the 90-day train split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "frn50k")
    parser.add_argument("--series", type=int, default=None)
    parser.add_argument("--models", default="lgbm")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--train", action="store_true", help="also time training vs the bar")
    args = parser.parse_args()

    train = sample_series(scan_split(args.data, "train"), args.series, seed=0)
    hist = train.filter(pl.col("dt") <= CUT)
    fut = train.filter((pl.col("dt") > CUT) & (pl.col("dt") <= CUT + timedelta(days=7)))
    recovered = recover_demand(hist)

    def recovery(_history: pl.LazyFrame) -> pl.DataFrame:
        return recovered

    panel, spec = make_panel(hist, fut, target="recovered", recovery=recovery)
    n_series = panel["series_id"].n_unique()
    rows: list[dict[str, Any]] = []

    def record(what: str, model: str, m: Any, out_rows: int) -> None:
        rows.append(
            {
                "task": "forecast_speed",
                "series": n_series,
                "model": model,
                "what": what,
                "rows_out": out_rows,
                "seconds": round(m.seconds, 2),
                "cpu_seconds": round(m.cpu_seconds, 2),
                "peak_mb": round(m.peak_mb, 1),
                "load_avg": round(os.getloadavg()[0], 2),
            }
        )
        print(f"{model:>9} {what:>14} {m.seconds:6.2f} s (load {rows[-1]['load_avg']})", flush=True)

    for _ in range(args.repeats):
        with measure() as m:
            full, _ = make_panel(hist, fut, target="recovered", recovery=recovery)
        record("features_full", "-", m, full.height)
    del full
    if args.train:
        from benchmarks.forecast import run_mlforecast

        for _ in range(args.repeats):
            with measure() as m:
                again, spec_again = make_panel(hist, fut, target="recovered", recovery=recovery)
                fit_model("lgbm", again, spec_again, target="recovered")
            record("features+fit", "lgbm", m, again.height)
            del again
            started, cpu = time.perf_counter(), time.process_time()
            _, fit_s, fit_cpu = run_mlforecast(hist, fut)
            rows.append(
                {
                    "task": "forecast_speed",
                    "series": n_series,
                    "model": "mlforecast_bar",
                    "what": "mlforecast fit",
                    "seconds": round(fit_s, 2),
                    "cpu_seconds": round(fit_cpu, 2),
                    "seconds_with_io": round(time.perf_counter() - started, 2),
                    "cpu_seconds_with_io": round(time.process_time() - cpu, 2),
                    "load_avg": round(os.getloadavg()[0], 2),
                }
            )
            print(f"mlforecast fit {fit_s:6.2f} s (load {rows[-1]['load_avg']})", flush=True)
    for name in args.models.split(","):
        model = fit_model(name, panel, spec, target="recovered")
        for _ in range(args.repeats):
            with measure() as m:
                out = forecast_days(model, hist, fut, recovery=recovery)
            record("forecast", name, m, out.height)
    emit(rows, "forecast_speed")


if __name__ == "__main__":
    main()
