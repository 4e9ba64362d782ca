"""Scoring stage 1: the masking protocol, simulator truth, and the decoupling score.

* **Masking protocol** (real or simulated data): on days with no real stockout in
  business hours, hide hours the way stockouts hide them (tails, heads, 1-3 day blocks;
  see :mod:`models.recovery.masks`), recover, and score the hidden hours against the
  sales that were there. ``uniform`` masks follow the published protocol;
  ``demand`` masks make high-sales days likelier to be hit, as real stockouts are.
  Each method is fit on the *masked* frame only, so hidden hours never reach training.
* **Truth** (simulator only): recovered demand against ``truth.parquet`` on the real
  stockout hours and stockout days.
* **Decoupling**: the mean within-series correlation between a day's business
  stockout hours and its daily sales (method ``zero_fill``) or recovered demand. Censoring
  pushes it down. With simulator truth, the latent demand's own score (method
  ``truth``) is reported too: when busy days are the ones that sell out, true demand is
  positively coupled with stockouts, so "toward zero" is not the right goal there.

Rows follow DESIGN.md section 4: ``{"task": "recovery", "method", "target", "scope",
<metric>: value, ...}``. ``zero_fill`` (no recovery: stockout hours keep their observed,
usually zero, sales) is the floor.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from models.recovery import METHODS, DayBlock, make_recoverer
from models.recovery.base import BUSINESS
from models.recovery.masks import MaskSpec, hidden_rate, sample_mask
from pipelines.data.contract import HOURS
from pipelines.data.io import scan_split, scan_truth, write_json
from pipelines.errors import DataError
from pipelines.recovery.recover import day_block_from_daily, prepare_daily

FLOOR = "zero_fill"
ALL_METHODS: tuple[str, ...] = (FLOOR, *METHODS)
MASK_VARIANTS: dict[str, bool] = {"uniform": False, "demand": True}


def resolve_methods(method: str) -> tuple[str, ...]:
    """``all`` -> every method with the floor; else a comma-separated list, checked."""
    if method == "all":
        return ALL_METHODS
    names = tuple(m.strip() for m in method.split(",") if m.strip())
    unknown = [m for m in names if m not in ALL_METHODS]
    if unknown or not names:
        raise DataError(
            f"unknown method {unknown or method!r}; choose from all, {', '.join(ALL_METHODS)}"
        )
    return names


def recover_with(method: str, block: DayBlock, **opts: Any) -> tuple[np.ndarray, float]:
    """Fit ``method`` on ``block`` and recover it; returns (demand (n, 24), seconds)."""
    t0 = time.perf_counter()
    if method == FLOOR:
        demand = block.sale.copy()
    else:
        demand = make_recoverer(method, **opts).fit_block(block).recover_block(block)
    return demand, time.perf_counter() - t0


def score_hidden(truth: np.ndarray, pred: np.ndarray, hidden: np.ndarray) -> dict[str, float]:
    """Scores of the hidden hours.

    Args:
        truth: (n, 24) true hourly values.
        pred: (n, 24) recovered values (equal to ``truth`` outside ``hidden``).
        hidden: (n, 24) the hours that were hidden.

    Returns:
        ``wape`` / ``wpe``: daily, over days with a hidden hour, against the day's true
        total (the published figures); ``hidden_wape``: the same absolute error over the
        hidden hours' true total (undiluted by visible hours); ``hourly_wape``: per
        hidden hour; and the counts ``days`` and ``hours``.
    """
    days = hidden.any(axis=1)
    err = ((pred - truth) * hidden).sum(axis=1)[days]
    day_true = np.abs(truth.sum(axis=1)[days]).sum()
    hid_true = np.abs(truth[hidden]).sum()
    return {
        "wape": _ratio(np.abs(err).sum(), day_true),
        "wpe": _ratio(err.sum(), day_true),
        "hidden_wape": _ratio(np.abs(err).sum(), hid_true),
        "hourly_wape": _ratio(np.abs(pred - truth)[hidden].sum(), hid_true),
        "days": int(days.sum()),
        "hours": int(hidden.sum()),
    }


def decoupling_score(block: DayBlock, daily: np.ndarray) -> float:
    """Mean over series of corr(business stockout hours, daily value) within the series.

    Series where either side is constant (e.g. never out of stock) have no correlation
    and are skipped.
    """
    x = block.stockout[:, BUSINESS].sum(axis=1).astype(np.float64)
    y = np.asarray(daily, dtype=np.float64)
    code, k = block.series_code, block.n_series
    cnt = np.bincount(code, minlength=k).astype(np.float64)

    def centred(v: np.ndarray) -> np.ndarray:
        return np.asarray(
            v - (np.bincount(code, weights=v, minlength=k) / np.maximum(cnt, 1))[code]
        )

    xc, yc = centred(x), centred(y)
    sxy = np.bincount(code, weights=xc * yc, minlength=k)
    sxx = np.bincount(code, weights=xc * xc, minlength=k)
    syy = np.bincount(code, weights=yc * yc, minlength=k)
    ok = (sxx > 1e-12) & (syy > 1e-12)
    return float(np.mean(sxy[ok] / np.sqrt(sxx[ok] * syy[ok]))) if ok.any() else float("nan")


def evaluate_masking(
    block: DayBlock,
    methods: Sequence[str],
    *,
    rates: Sequence[float] = (0.3,),
    variants: Sequence[str] = ("uniform", "demand"),
    seed: int = 0,
    method_opts: dict[str, dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """The masking protocol: one row per (rate, variant, method)."""
    rows = []
    for rate in rates:
        for variant in variants:
            spec = MaskSpec(rate=rate, demand_dependent=MASK_VARIANTS[variant], seed=seed)
            hidden = sample_mask(block.sale, block.stockout, block.series_code, spec)
            if not hidden.any():
                raise DataError("no stockout-free day to mask: the masking protocol needs some")
            masked = block.with_hours(np.where(hidden, 0.0, block.sale), block.stockout | hidden)
            achieved = hidden_rate(hidden, block.stockout)
            # Decoupling on the masked clean days, where the true sales are known: there
            # the right "after" value is the true sales' own score (about zero for uniform
            # masks, which ignore demand), unlike on real stockouts, whose truth is unknown.
            clean = np.flatnonzero(~block.stockout.any(axis=1))
            clean_block = masked.take(clean)
            true_coupling = decoupling_score(clean_block, block.sale[clean].sum(axis=1))
            for method in methods:
                opts = (method_opts or {}).get(method, {})
                pred, seconds = recover_with(method, masked, **opts)
                rows.append(
                    {
                        "task": "recovery",
                        "method": method,
                        "target": "sale",
                        "scope": f"masked_{variant}",
                        "missing_rate": rate,
                        "achieved_rate": round(achieved, 4),
                        **score_hidden(block.sale, pred, hidden),
                        "decoupling": decoupling_score(clean_block, pred[clean].sum(axis=1)),
                        "decoupling_truth": true_coupling,
                        "seconds": round(seconds, 3),
                        "series": block.n_series,
                    }
                )
    return rows


def evaluate_real_stockouts(
    block: DayBlock,
    methods: Sequence[str],
    *,
    truth: np.ndarray | None = None,
    method_opts: dict[str, dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Recover the unmasked data: decoupling score, and truth scores when given.

    Args:
        block: the data as observed.
        methods: methods to run (include ``zero_fill`` for the "before" score).
        truth: (n, 24) latent demand aligned with ``block`` (NaN rows are skipped).
    """
    rows = []
    if truth is not None:
        # The latent demand's own coupling with stockouts: where stockouts are driven by
        # demand (busy days sell out), the right "after" value is this, not zero.
        known = ~np.isnan(truth).any(axis=1)
        rows.append(
            {
                "task": "recovery",
                "method": "truth",
                "target": "demand",
                "scope": "all_days",
                "decoupling": decoupling_score(block, np.where(known, truth.sum(axis=1), 0.0)),
                "series": block.n_series,
            }
        )
    for method in methods:
        pred, seconds = recover_with(method, block, **(method_opts or {}).get(method, {}))
        rows.append(
            {
                "task": "recovery",
                "method": method,
                "target": "demand",
                "scope": "all_days",
                "decoupling": decoupling_score(block, pred.sum(axis=1)),
                "seconds": round(seconds, 3),
                "series": block.n_series,
            }
        )
        if truth is None:
            continue
        known = ~np.isnan(truth).any(axis=1)
        hours = block.stockout & known[:, None]
        days = hours.any(axis=1)
        t, p = np.where(known[:, None], truth, 0.0), pred
        for scope, err, denom in (
            ("stockout_hours", (p - t)[hours], np.abs(t[hours]).sum()),
            ("stockout_days", (p - t).sum(axis=1)[days], np.abs(t.sum(axis=1)[days]).sum()),
        ):
            rows.append(
                {
                    "task": "recovery",
                    "method": method,
                    "target": "truth",
                    "scope": scope,
                    "wape": _ratio(np.abs(err).sum(), denom),
                    "wpe": _ratio(err.sum(), denom),
                    "n": len(err),
                }
            )
    return rows


def truth_array(frame: pl.DataFrame, truth: pl.LazyFrame) -> np.ndarray:
    """Truth ``hours_demand`` as (n, 24), aligned with ``frame``'s rows (NaN if absent)."""
    t = (
        frame.select("series_id", "dt")
        .join(
            truth.select("series_id", "dt", "hours_demand").collect(),
            on=["series_id", "dt"],
            how="left",
            maintain_order="left",
        )
        .with_columns(
            pl.when(pl.col("hours_demand").list.len() == HOURS)
            .then(pl.col("hours_demand"))
            .otherwise(pl.lit([float("nan")] * HOURS, dtype=pl.List(pl.Float64)))
        )
    )
    return t["hours_demand"].explode().fill_null(float("nan")).to_numpy().reshape(-1, HOURS)


def subsample_series(daily: pl.LazyFrame, series: int | None, seed: int = 0) -> pl.LazyFrame:
    """Keep ``series`` randomly chosen (store, product) series; all when None."""
    if series is None:
        return daily
    keys = daily.select("store_id", "product_id").unique().sort("store_id", "product_id").collect()
    if series < keys.height:
        keys = keys.sample(series, seed=seed)
    return daily.join(keys.lazy(), on=["store_id", "product_id"], how="semi")


def evaluate_recovery(
    data_dir: Path,
    *,
    methods: Sequence[str] = ALL_METHODS,
    rates: Sequence[float] = (0.3,),
    variants: Sequence[str] = ("uniform", "demand"),
    series: int | None = None,
    seed: int = 0,
    method_opts: dict[str, dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """All recovery scores for a dataset folder: masking, decoupling, and truth if present."""
    for rate in rates:
        if not 0.0 < rate < 1.0:
            raise DataError(f"--missing-rate must be in (0, 1), got {rate}")
    daily = subsample_series(scan_split(data_dir, "train"), series, seed)
    frame = prepare_daily(daily)
    if frame.height == 0:
        raise DataError("the train split has no rows", file=data_dir)
    block = day_block_from_daily(frame)
    truth_lf = scan_truth(data_dir)
    truth = truth_array(frame, truth_lf) if truth_lf is not None else None
    rows = evaluate_masking(
        block, methods, rates=rates, variants=variants, seed=seed, method_opts=method_opts
    )
    rows += evaluate_real_stockouts(block, methods, truth=truth, method_opts=method_opts)
    return rows


def run_evaluate_recovery(data_dir: Path, out: Path, **kwargs: Any) -> list[dict[str, Any]]:
    """The ``evaluate recovery`` job: score and write the rows to ``out`` (JSON)."""
    rows = evaluate_recovery(data_dir, **kwargs)
    write_json(rows, out)
    return rows


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den > 0 else float("nan")
