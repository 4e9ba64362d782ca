"""Stage-2 ablations on a real subsample: what each design choice is worth in acc.

Same protocol as ``benchmarks/forecast.py`` (train through day 83, score days 84-90 on
clean rows, acc/wpe per day then averaged), recovered target, one stage-1 run shared by
every variant. Each row changes one thing against the shipped default:

* ``lgbm`` refit on all history after calibration (default) vs the calibration fit only;
  the shipped boosting budget (100 trees at 0.2, a third of the features per tree) vs the
  earlier one (300 trees at 0.08, half the features); a calibration model on all rows
  instead of a tenth; 127 leaves and 0.8 of the features; the l1 objective.
* ``neural`` with the MAE point loss (default) vs MSE.
* ``ssa`` (no fitting, so it isolates stage 1) on the recovered target scaled by
  0.75 / 1.25 / 1.5 around the sales it adds, and on the sell-out-rows recoverer: is the
  stage-1 level right?

Usage: ``python benchmarks/forecast_ablation.py [--data DIR] [--series 10000] [--only a,b]
[--name forecast_ablation]``. Writes ``benchmarks/results/<name>.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import emit  # noqa: E402
from models.forecasters import default_config, make_forecaster  # noqa: E402
from models.metrics import score_forecast  # noqa: E402
from models.recovery import make_recoverer  # noqa: E402
from pipelines.data.io import scan_split  # noqa: E402
from pipelines.recovery.recover import day_block_from_daily, prepare_daily, recovered_frame  # noqa: E402
from pipelines.training.fit import make_panel, sample_series, spec_dict  # noqa: E402

CUT = date(2024, 6, 18)  # day 83 of the 90-day train split


def model_variants() -> dict[str, tuple[str, Any, bool]]:
    """name -> (model, config, refit)."""
    lgbm, neural = default_config("lgbm"), default_config("neural")
    return {
        "lgbm/default": ("lgbm", lgbm, True),
        "lgbm/no_refit": ("lgbm", lgbm, False),
        "lgbm/300_trees_lr0.08_ff0.5": (
            "lgbm",
            replace(lgbm, n_estimators=300, learning_rate=0.08, feature_fraction=0.5),
            True,
        ),
        "lgbm/calibration_all_rows": ("lgbm", replace(lgbm, calibration_row_scale=1.0), True),
        "lgbm/127_leaves_ff0.8": (
            "lgbm",
            replace(lgbm, num_leaves=127, feature_fraction=0.8),
            True,
        ),
        "lgbm/l1": ("lgbm", replace(lgbm, objective="l1"), True),
        "neural/default": ("neural", neural, True),
        "neural/mse": ("neural", replace(neural, point_loss="mse"), True),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "frn50k")
    parser.add_argument("--series", type=int, default=10_000)
    parser.add_argument("--only", default=None, help="comma-separated variant names")
    parser.add_argument("--name", default="forecast_ablation", help="results file stem")
    args = parser.parse_args()
    only = set(args.only.split(",")) if args.only else None

    train = sample_series(scan_split(args.data, "train"), args.series, seed=0)
    hist = train.filter(pl.col("dt") <= CUT)
    fut = train.filter((pl.col("dt") > CUT) & (pl.col("dt") <= CUT + timedelta(days=7)))
    actual = fut.select("series_id", "dt", "sale_amount", "stock_hour6_22_cnt").collect()
    frame = prepare_daily(hist)
    block = day_block_from_daily(frame)
    keys = frame.select("series_id", "store_id", "product_id", "dt")
    default_demand = make_recoverer("lgbm").fit_block(block).recover_block(block)
    base = {"task": "forecast_ablation", "series": block.n_series, "train_end": str(CUT)}
    rows: list[dict[str, Any]] = []

    def run(variant: str, model: str, config: Any, refit: bool, demand: np.ndarray) -> None:
        if only is not None and variant not in only:
            return
        rec = recovered_frame(keys, block, demand)
        panel, spec = make_panel(hist, fut, target="recovered", recovery=lambda _h: rec)
        cpu, wall = time.process_time(), time.perf_counter()
        fitted = make_forecaster(model, config, target="recovered", features=spec_dict(spec))
        fitted.fit(panel, refit=refit)
        fit_cpu, fit_wall = time.process_time() - cpu, time.perf_counter() - wall
        scored = fitted.predict(panel).join(actual, on=["series_id", "dt"])
        clean = score_forecast(scored.filter(pl.col("stock_hour6_22_cnt") == 0))
        added = float((demand.sum() - block.sale.sum()) / block.sale.sum())
        rows.append(
            {
                **base,
                "method": variant,
                "target": "recovered",
                "scope": "clean",
                "acc": clean["acc"],
                "wpe": clean["wpe"],
                "coverage_p10_p90": clean.get("coverage_p10_p90"),
                "recovered_share_added": round(added, 4),
                "fit_seconds": round(fit_wall, 1),
                "fit_cpu_seconds": round(fit_cpu, 1),
                "load_avg": round(os.getloadavg()[0], 2),
            }
        )
        print(f"{variant:>28} acc {clean['acc']:.4f} wpe {clean['wpe']:+.4f}", flush=True)

    for variant, (model, config, refit) in model_variants().items():
        run(variant, model, config, refit, default_demand)
    run("ssa/recovered_x1", "ssa", None, True, default_demand)
    for scale in (0.75, 1.25, 1.5):
        scaled = block.sale + scale * (default_demand - block.sale)
        run(f"ssa/recovered_x{scale}", "ssa", None, True, scaled)
    sellout = make_recoverer("lgbm", stockout_day_weight=0.5).fit_block(block)
    run("ssa/recovered_sellout_rows", "ssa", None, True, sellout.recover_block(block))
    emit(rows, args.name)


if __name__ == "__main__":
    main()
