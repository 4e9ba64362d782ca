"""The daily job's recover step, full vs incremental, on the real split.

    python benchmarks/recovery_incremental.py --data ../shared/data/frn50k
    python benchmarks/recovery_incremental.py --through 2024-06-22 --days 3

Runs ``pipelines.recovery.incremental.recover_history`` as the daily job does: a full
recovery of the history through ``--through`` (no earlier state), then ``--days`` days one
at a time, each incremental from the day before. Then a full recovery of the last day from
scratch (what every day cost before), and the same fitted recoverer run over the whole
history of the last day, to compare the days the incremental runs recovered:

* ``wape_*``: |incremental − full| / full over the recovered days' stockout days (in-stock
  hours are identical by construction), against a full recovery with the same fitted
  recoverer (``same_fit``: only the series statistics differ) and with a refit (``refit``);
* ``lost_*``: recovered minus observed demand on those days, incremental and full;
* ``churn_refit``: for scale, how much a full refit moves the days *before* those, between
  the full recovery through ``--through`` and the one through the last day.

Seconds include reading the history, recovering, and writing the recovered file and the
state; the step's MLflow logging is not included.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import emit, measure

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "frn50k"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--through", type=date.fromisoformat, default=None)
    parser.add_argument("--days", type=int, default=1)
    parser.add_argument("--method", default="lgbm")
    parser.add_argument("--name", default="recovery_incremental")
    args = parser.parse_args()

    import numpy as np
    import polars as pl

    from pipelines.data import io
    from pipelines.data.layout import Layout
    from pipelines.recovery.incremental import read_state, recover_history
    from pipelines.recovery.recover import recover_demand

    days = io.scan_days(args.data)
    last = days.select(pl.col("dt").max()).collect().item()
    first = args.through or last - timedelta(days=args.days)
    end = first + timedelta(days=args.days)

    def history(day: date) -> pl.LazyFrame:
        return days.filter(pl.col("dt") <= day)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        layout, scratch = Layout(Path(tmp) / "daily"), Layout(Path(tmp) / "scratch")
        runs = [(first, layout)] + [
            (first + timedelta(days=k), layout) for k in range(1, args.days + 1)
        ]
        runs.append((end, scratch))
        for day, where in runs:
            with measure() as m:
                result = recover_history(history(day), day=day, method=args.method, layout=where)
            rows.append(
                {
                    "day": day.isoformat(),
                    "mode": result.mode,
                    "days": result.days,
                    "rows": result.frame.height,
                    "seconds": round(m.seconds, 2),
                    "cpu_seconds": round(m.cpu_seconds, 2),
                    "peak_mb": round(m.peak_mb),
                    **{k: round(v, 2) for k, v in result.seconds.items()},
                }
            )
            print(rows[-1], flush=True)
        incremental = pl.read_parquet(layout.recovered(end.isoformat()))
        refit = pl.read_parquet(scratch.recovered(end.isoformat()))
        before = pl.read_parquet(layout.recovered(first.isoformat()))
        fitted = read_state(layout.recovery_state(first.isoformat())).recoverer
    same_fit = recover_demand(history(end), recoverer=fitted, fit=False)
    observed = history(end).select("series_id", "dt", "sale_amount").collect()

    def new_rows(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.filter(pl.col("dt") > first).join(observed, on=["series_id", "dt"])

    mine = new_rows(incremental)
    out = mine["imputed_hours"].to_numpy() > 0
    a = mine["demand_amount"].to_numpy()
    summary = {"day": f"{first + timedelta(days=1)}..{end}", "mode": "comparison"}
    for name, frame in (("same_fit", same_fit), ("refit", refit)):
        b = new_rows(frame)["demand_amount"].to_numpy()
        summary[f"wape_{name}"] = round(float(np.abs(a - b)[out].sum() / b[out].sum()), 4)
        summary[f"lost_{name}"] = round(float((b - new_rows(frame)["sale_amount"]).sum()), 1)
    summary["lost_incremental"] = round(float((a - mine["sale_amount"].to_numpy()).sum()), 1)
    old = before.filter(pl.col("dt") < first).join(
        refit.select("series_id", "dt", pl.col("demand_amount").alias("after")),
        on=["series_id", "dt"],
    )
    moved = (old["demand_amount"] - old["after"]).abs().sum() / old["after"].sum()
    summary["churn_refit"] = round(float(moved), 4)
    rows.append(summary)
    emit(rows, args.name)


if __name__ == "__main__":
    main()
