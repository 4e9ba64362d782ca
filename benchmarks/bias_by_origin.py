"""Clean-day bias of the default recipe over rolling origins: the real split vs the simulator.

    python benchmarks/bias_by_origin.py [--sources real,sim] [--series 2000] [--origins 21]

For each business date D (the last ``--origins`` dates with a full week before them, ending
at the last train day), does what the daily job's gate does: stage 1 (``recover_demand``,
method ``lgbm``) on history through D, then the gate's backtest with the product's default
recipe (``Recipe("lgbm", "recovered", "default", "lgbm")``): fit on days ≤ D−7 (the
origin), forecast D−6..D with ``forecast_days``. The model is refit at every origin.

Per origin it reports the gate's figures, acc and wpe on clean days (no stockout hour in
6..21) against ``sale_amount``, and the same forecast scored on every row against latent
demand: stage 1's recovered demand (``*_rec``) and, for the simulator, the true demand it
censored (``*_true``). Clean days are picked after the fact and busy days stock out, so a
forecast of demand scores above sales there; the latent-demand columns show how much of
the clean-day wpe is that selection rather than the model.

Sources: ``real`` is a random sample of ``--series`` series of the real train split
(``--data``, else ``$FRESHCAST_REAL_DATA``, else ``../shared/data/frn50k``); ``sim`` is the
embedded default that ``freshcast run`` simulates (``pipelines.jobs.dataset``: 1,000
series, seed 2024, 90 + 7 days; ``--sim-series`` / ``--sim-seed`` change it). Writes the
rows to ``benchmarks/results/<name>.json`` (default ``bias_by_origin``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "passive")  # see the Makefile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import polars as pl

from benchmarks.common import emit
from models.constants import HORIZON
from models.metrics import clean_rows, score_forecast
from pipelines.data.io import scan_days, scan_split, scan_truth
from pipelines.features.panel import STAGE1_COLUMNS, sample_series, split_stage1
from pipelines.jobs.dataset import DEFAULT_SEED, DEFAULT_SERIES
from pipelines.recovery.recover import recover_demand
from pipelines.serving.forecast import forecast_days
from pipelines.training.recipe import Recipe, fit_recipe

REPO = Path(__file__).resolve().parents[1]
DEFAULT_REAL = REPO.parent / "shared" / "data" / "frn50k"
RECIPE = Recipe("lgbm", "recovered", "default", "lgbm")
KEYS = ["series_id", "dt"]


def load_real(root: Path, series: int, seed: int) -> tuple[pl.DataFrame, None, date]:
    """A random sample of the real train split (no latent truth), and its last day."""
    frame = sample_series(scan_split(root, "train"), series or None, seed=seed).collect()
    last = frame["dt"].max()
    assert isinstance(last, date)
    return frame, None, last


def load_sim(series: int, seed: int) -> tuple[pl.DataFrame, pl.DataFrame, date]:
    """The default as the job sees it (train + eval days), its true demand, last train day."""
    from pipelines.data.simulate import SimulationConfig, write_simulation

    config = SimulationConfig(series=series, seed=seed)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_simulation(config, root)
        frame = scan_days(root).collect()
        truth = scan_truth(root)
        assert truth is not None
        true = truth.select(*KEYS, pl.col("demand_amount").alias("demand_true")).collect()
    # The job's default business date is the last train day; the eval days follow it.
    return frame, true, config.start + timedelta(days=config.days - 1)


def business_dates(last_train_day: date, origins: int) -> list[date]:
    """The ``origins`` business dates ending at the last train day, oldest first."""
    return [last_train_day - timedelta(days=i) for i in range(origins - 1, -1, -1)]


def score_origin(
    frame: pl.DataFrame, truth: pl.DataFrame | None, day: date, method: str
) -> dict[str, Any]:
    """The gate's backtest at business date ``day``, scored on clean days and on latent demand."""
    started = time.perf_counter()
    history = frame.filter(pl.col("dt") <= day)
    recovered = recover_demand(history.lazy(), method=method)
    history = history.join(
        recovered.select(*KEYS, "demand_amount", "imputed_hours"), on=KEYS, how="left"
    )
    # The gate's backtest: fit on days up to the origin, forecast the week after it.
    origin = day - timedelta(days=HORIZON)
    past = history.filter(pl.col("dt") <= origin)
    window = history.filter(pl.col("dt") > origin)
    model = fit_recipe(RECIPE, past)
    hist, recovery = split_stage1(past)
    pred = forecast_days(model, hist, window.drop(STAGE1_COLUMNS).lazy(), recovery=recovery)
    actual = ("sale_amount", "stock_hour6_22_cnt", "demand_amount")
    scored = pred.join(window.select("store_id", "product_id", *KEYS, *actual),
                       on=["store_id", "product_id", "dt"])  # fmt: skip
    clean = clean_rows(scored)
    gate = score_forecast(clean)
    rec = score_forecast(scored, actual="demand_amount")
    row: dict[str, Any] = {
        "origin": str(origin),
        "business_date": str(day),
        "clean_share": round(clean.height / scored.height, 4),
        "acc_clean": gate.get("acc"),
        "wpe_clean": gate.get("wpe"),
        "acc_rec": rec.get("acc"),
        "wpe_rec": rec.get("wpe"),
    }
    # What picking clean days after the fact adds to the forecast's bias against demand.
    if "wpe" in gate and "wpe" in rec:
        row["selection"] = gate["wpe"] - rec["wpe"]
    if truth is not None:
        with_true = scored.join(truth, on=KEYS, how="left")
        true = score_forecast(with_true, actual="demand_true")
        row["acc_true"] = true.get("acc")
        row["wpe_true"] = true.get("wpe")
        # Stage 1's own bias: recovered against true demand over the window, pooled.
        row["rec_vs_true"] = float(
            with_true["demand_amount"].sum() / with_true["demand_true"].sum() - 1
        )
    row["seconds"] = round(time.perf_counter() - started, 1)
    return row


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean, min and max over origins of each figure, per source."""
    out = []
    for source in dict.fromkeys(r["source"] for r in rows):
        mine = [r for r in rows if r["source"] == source]
        for stat, fn in (("mean", statistics.fmean), ("min", min), ("max", max)):
            summary: dict[str, Any] = {"source": source, "origin": stat}
            for key, value in mine[0].items():
                if isinstance(value, float) and key != "seconds":
                    values = [r[key] for r in mine if isinstance(r.get(key), float)]
                    summary[key] = fn(values) if values else None
            out.append(summary)
    return out


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", default="real,sim", help="real and/or sim")
    parser.add_argument("--origins", type=int, default=21, help="business dates to backtest")
    parser.add_argument("--series", type=int, default=2000, help="real series sampled (0 = all)")
    parser.add_argument("--sample-seed", type=int, default=0)
    parser.add_argument("--sim-series", type=int, default=DEFAULT_SERIES)
    parser.add_argument("--sim-seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--recovery", default=RECIPE.recovery_method, help="stage-1 method")
    parser.add_argument("--data", type=Path, default=None, help="folder with train.parquet")
    parser.add_argument("--name", default="bias_by_origin", help="results file name")
    parser.add_argument(
        "--results-dir", type=Path, default=None, help="default: benchmarks/results"
    )
    args = parser.parse_args(argv)
    real_root = args.data or Path(os.environ.get("FRESHCAST_REAL_DATA") or DEFAULT_REAL)

    rows: list[dict[str, Any]] = []
    for source in args.sources.split(","):
        if source == "real":
            frame, truth, last_train = load_real(real_root, args.series, args.sample_seed)
            label = f"real ({frame['series_id'].n_unique()} series)"
        elif source == "sim":
            frame, truth, last_train = load_sim(args.sim_series, args.sim_seed)
            label = f"sim ({args.sim_series} series, seed {args.sim_seed})"
        else:
            raise SystemExit(f"unknown source {source!r}: use real and/or sim")
        for day in business_dates(last_train, args.origins):
            row = {"source": source, **score_origin(frame, truth, day, args.recovery)}
            rows.append(row)
            print(
                f"{label} origin {row['origin']}: clean wpe {row['wpe_clean']:+.4f} "
                f"acc {row['acc_clean']:.4f}; recovered wpe {row['wpe_rec']:+.4f}"
                + (f"; true wpe {row['wpe_true']:+.4f}" if "wpe_true" in row else "")
                + f" ({row['seconds']} s)",
                flush=True,
            )
    emit([*rows, *summarise(rows)], args.name, results_dir=args.results_dir)
    return rows


if __name__ == "__main__":
    main()
