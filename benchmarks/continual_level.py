"""What one neural refresh does to the forecast level, by what it trains on.

Usage::

    .venv/bin/python benchmarks/continual_level.py --series 0   # all 50k real series

Fits the Lightning model on the first 56 days (seed 0, the product's full fit), then
refreshes copies of it once, through day 57, on different window sets and settings (the
protocol's buffer and replay draw), with the level anchor off and on. Prints, per variant,
the next week's total forecast against the frozen model's and the published acc/wpe on
clean days; writes ``benchmarks/results/continual_level_<series>.json``. This is the
README's "the MAE fine-tune drags the level down" table.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import replace
from datetime import timedelta

os.environ.setdefault("OMP_WAIT_POLICY", "passive")  # see benchmarks/continual.py

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import polars as pl

from benchmarks.common import emit
from models.continual.replay import BufferConfig, ReplayBuffer, refresh_set, window_keys
from models.continual.strategies import update_model
from models.forecasters.neural import NeuralForecaster
from models.forecasters.panel import with_origin
from models.forecasters.update import NEURAL_REFRESH
from pipelines.features.panel import make_panel
from pipelines.training.fit import fit_model
from research.continual.protocol import load_history, model_config, score_origin

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "frn50k"
GROUP = "management_group_id"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, default=Path(os.environ.get("FRESHCAST_REAL_DATA", DEFAULT_DATA))
    )
    parser.add_argument("--series", type=int, default=2000, help="random subset (0 = all 50k)")
    parser.add_argument("--warm-days", type=int, default=56)
    args = parser.parse_args()
    panel, spec = make_panel(
        load_history(args.data, series=args.series or None), None, target="censored"
    )
    actuals = panel.select("series_id", "dt", "sale_amount", "stock_hour6_22_cnt")
    days = panel["dt"].unique().sort().to_list()
    t0, t = days[args.warm_days - 1], days[args.warm_days]
    n = panel["series_id"].n_unique()
    config = model_config("neural", "default", n_series=n, seed=0)
    warm = fit_model(
        "neural", panel.filter(pl.col("dt") <= t0), spec, target="censored", config=config
    )
    # The protocol's buffer and draw at its first step (seed 0).
    buffer = ReplayBuffer(BufferConfig(capacity=7 * n, seed=0))
    buffer.add(window_keys(panel, days=pl.col("dt") <= t0, group_column=GROUP))
    new = window_keys(panel, days=pl.col("dt") == t, group_column=GROUP)
    a3 = refresh_set(buffer, new, through=t, replay_ratio=2.0)
    # As many windows as A3's, drawn from every day the full fit could train on through t.
    first = days[0] + timedelta(days=warm.config.lookback + 6)
    every = window_keys(panel, days=pl.col("dt").is_between(first, t), group_column=GROUP)
    sets = {
        "new": new,
        "replay": a3.filter(pl.col("replay")),
        "new + replay (A3)": a3,
        "as the full fit draws": every.sample(min(a3.height, every.height), seed=0).sort(
            "dt", "series_id"
        ),
    }
    # Sales targets throughout: this table measured what refitting them does to the level.
    free = replace(NEURAL_REFRESH, seed=0, anchor_level=False, replay_targets="actual")
    plan: list[tuple[str, str, Any]] = [(name, name, free) for name in sets]
    plan += [
        ("new + replay (A3), lr 2e-3", "new + replay (A3)", replace(free, fine_tune_lr=2e-3)),
        ("new + replay (A3), lr 1e-4", "new + replay (A3)", replace(free, fine_tune_lr=1e-4)),
        ("new (A2), anchored", "new", replace(free, anchor_level=True)),
        ("new + replay (A3), anchored", "new + replay (A3)", replace(free, anchor_level=True)),
    ]
    frozen = float(warm.predict(with_origin(panel, t))["yhat"].sum())
    score = score_origin(warm, panel, actuals, t)
    rows = [_row("nothing (A0)", warm, 1.0, score, 0)]
    for label, set_name, update in plan:
        windows = sets[set_name].select("series_id", "dt")
        model, info = update_model(warm, panel, windows, through=t, config=update)
        level = float(model.predict(with_origin(panel, t))["yhat"].sum()) / frozen
        rows.append(_row(label, model, level, score_origin(model, panel, actuals, t), info["rows"]))
    emit(rows, f"continual_level_{n}")


def _row(label: str, model: Any, level: float, score: dict[str, float], rows: int) -> dict:
    return {
        "trained on": label,
        "trained windows": rows,
        "forecast / frozen": round(level, 4),
        "level_": round(model.level_ if isinstance(model, NeuralForecaster) else 1.0, 4),
        "acc": round(score["acc"], 4),
        "wpe": round(score["wpe"], 4),
    }


if __name__ == "__main__":
    main()
