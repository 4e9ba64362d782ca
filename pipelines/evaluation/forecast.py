"""The stage-2 evaluation protocol (``freshcast evaluate forecast``).

* When the folder has ``eval.parquet``: train on train, score the eval days. Otherwise hold
  out the last 7 days of train. ``folds=K`` adds rolling origins one week earlier each.
* Scopes: ``clean`` (the published protocol: rows with ``stock_hour6_22_cnt == 0``, against
  ``sale_amount``, acc/wpe per day then averaged), ``clean_psd<1`` and ``clean_psd>=1``
  (psd = the series' mean train sales), ``all`` (every row, stockout days included), and
  ``truth`` (against the simulator's ``demand_amount`` on all days, when truth.parquet exists).
* Every model runs on both targets (recovered and censored) in the same run, on the same
  panel rows, so the two-stage gain is measured side by side.
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import polars as pl

from models.constants import HORIZON, Target
from models.forecasters import Forecaster
from models.forecasters.ensemble import EnsembleForecaster
from models.metrics import score_forecast
from pipelines.data.io import scan_split, scan_truth, split_path, write_json
from pipelines.errors import DataError
from pipelines.features.panel import Recovery, make_panel, sample_series
from pipelines.training.fit import fit_model

DEFAULT_MODELS: tuple[str, ...] = (
    "lgbm",
    "neural",
    "ssa",
    "ensemble",
    "seasonal_naive",
    "moving_average",
)
TARGETS: tuple[Target, ...] = ("recovered", "censored")


def fold_splits(
    data_dir: Path, *, folds: int = 1, series: int | None = None, seed: int = 0
) -> list[tuple[pl.LazyFrame, pl.LazyFrame]]:
    """(history, forecast days) per fold, latest origin first.

    Fold 0 is train → eval when eval.parquet exists, else the last 7 train days held out.
    Each further fold moves the origin one week earlier inside train.
    """
    if folds < 1:
        raise ValueError("folds must be >= 1")
    train = sample_series(scan_split(data_dir, "train"), series, seed=seed)
    last = train.select(pl.col("dt").max()).collect().item()
    out: list[tuple[pl.LazyFrame, pl.LazyFrame]] = []
    if split_path(data_dir, "eval") is not None:
        ids = train.select("series_id").unique()
        out.append((train, scan_split(data_dir, "eval").join(ids, on="series_id", how="semi")))
        origins = [last - timedelta(days=HORIZON * k) for k in range(1, folds)]
    else:
        origins = [last - timedelta(days=HORIZON * k) for k in range(1, folds + 1)]
    for origin in origins:
        end = origin + timedelta(days=HORIZON)
        hist = train.filter(pl.col("dt") <= origin)
        fut = train.filter((pl.col("dt") > origin) & (pl.col("dt") <= end))
        out.append((hist, fut))
    return out


def _scopes(scored: pl.DataFrame, truth: pl.DataFrame | None) -> dict[str, dict[str, float]]:
    clean = scored.filter(pl.col("stock_hour6_22_cnt") == 0)
    scopes = {
        "clean": score_forecast(clean),
        "clean_psd<1": score_forecast(clean.filter(pl.col("psd") < 1)),
        "clean_psd>=1": score_forecast(clean.filter(pl.col("psd") >= 1)),
        "all": score_forecast(scored),
    }
    if truth is not None:
        with_truth = scored.join(truth, on=["series_id", "dt"], how="inner")
        scopes["truth"] = score_forecast(with_truth, actual="demand_amount")
    return scopes


def evaluate_forecast(
    data_dir: Path,
    *,
    models: tuple[str, ...] = DEFAULT_MODELS,
    targets: tuple[Target, ...] = TARGETS,
    folds: int = 1,
    series: int | None = None,
    profile: str = "default",
    recovery: Recovery | None = None,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Run the protocol and return metric rows (DESIGN.md section 4).

    Args:
        data_dir: a folder in the hub layout (train.parquet, optional eval/truth).
        models: model names; ``ensemble`` reuses the fitted ``lgbm`` and ``neural`` when
            they are in the run.
        targets: which targets to train on.
        folds: rolling origins (weeks), latest first.
        series: score a random subset of this many series (None: all).
        profile: model profile (``smoke`` for tests).
        recovery: stage-1 function for the recovered target (default: pipelines.recovery.recover).

    Returns:
        One row per model × target × scope (× fold when ``folds > 1``, plus the fold mean),
        each ``{"task": "forecast", "method", "target", "scope", "acc", "wpe", ...}``.
    """
    truth_lf = scan_truth(data_dir)
    truth = (
        truth_lf.select("series_id", "dt", "demand_amount").collect()
        if truth_lf is not None
        else None
    )
    rows: list[dict[str, Any]] = []
    for k, (hist, fut) in enumerate(fold_splits(data_dir, folds=folds, series=series, seed=seed)):
        actual = fut.select("series_id", "dt", "sale_amount", "stock_hour6_22_cnt").collect()
        if actual.height == 0:
            raise DataError(f"fold {k}: no forecast days to score", file=data_dir)
        psd = hist.group_by("series_id").agg(pl.col("sale_amount").mean().alias("psd")).collect()
        origin = hist.select(pl.col("dt").max()).collect().item()
        for target in targets:
            started = time.perf_counter()
            panel, spec = make_panel(hist, fut, target=target, recovery=recovery)
            feature_seconds = time.perf_counter() - started
            fitted: dict[str, Forecaster] = {}
            # The ensemble goes last so it can reuse its fitted members.
            for name in sorted(models, key=lambda m: m == "ensemble"):
                started = time.perf_counter()
                ens_cfg = _ensemble_config(profile)
                if name == "ensemble" and set(ens_cfg.members) <= fitted.keys():
                    model: Forecaster = EnsembleForecaster.from_fitted(
                        ens_cfg, [fitted[m] for m in ens_cfg.members], target=target
                    )
                else:
                    model = fit_model(name, panel, spec, target=target, profile=profile)
                fit_seconds = time.perf_counter() - started
                fitted[name] = model
                started = time.perf_counter()
                pred = model.predict(panel)
                predict_seconds = time.perf_counter() - started
                scored = pred.join(actual, on=["series_id", "dt"], how="inner").join(
                    psd, on="series_id", how="left"
                )
                for scope, metrics in _scopes(scored, truth).items():
                    rows.append(
                        {
                            "task": "forecast",
                            "method": name,
                            "target": target,
                            "scope": scope,
                            **metrics,
                            "fold": k,
                            "origin": str(origin),
                            "fit_seconds": round(fit_seconds, 3),
                            "feature_seconds": round(feature_seconds, 3),
                            "predict_seconds": round(predict_seconds, 3),
                        }
                    )
    return _with_fold_means(rows, folds)


def _ensemble_config(profile: str) -> Any:
    from models.forecasters import default_config

    return default_config("ensemble", profile)


def _with_fold_means(rows: list[dict[str, Any]], folds: int) -> list[dict[str, Any]]:
    """With one fold, drop the fold key; with several, append the mean over folds."""
    if folds == 1:
        return [{k: v for k, v in r.items() if k != "fold"} for r in rows]
    frame = pl.DataFrame(rows)
    metrics = [
        c for c in frame.columns if c not in {"task", "method", "target", "scope", "fold", "origin"}
    ]
    means = frame.group_by("task", "method", "target", "scope", maintain_order=True).agg(
        pl.col(metrics).mean()
    )
    return rows + [{**r, "fold": "mean"} for r in means.to_dicts()]


def run_evaluate_forecast(
    data_dir: Path, out: Path, **kwargs: Any
) -> tuple[Path, list[dict[str, Any]]]:
    """Run :func:`evaluate_forecast` and write its rows as JSON to ``out``."""
    rows = evaluate_forecast(data_dir, **kwargs)
    return write_json(rows, out), rows
