"""Update strategies for continual refresh, one interface for both forecasters.

:func:`update_model` takes a fitted forecaster, the panel through day t and the windows of a
refresh set (see :mod:`models.replay`), and returns an updated *copy* (the input is never
mutated). It composes with the fitted objects without editing their classes:

* **LightGBM** (``LGBMForecaster.boosters_``): ``continue`` adds ``trees`` trees per booster
  with ``init_model`` on the stacked rows of the windows; ``refit`` keeps every tree's
  structure and re-fits leaf values on those rows (``Booster.refit`` with ``refit_decay``).
* **Lightning** (``NeuralForecaster.net_``): fine-tunes the current weights for ``epochs``
  passes over the windows, optionally after shrink-and-perturb (Ash & Adams, 2020).

:func:`retrain_on_windows` is arm A4 (from scratch on the buffer alone). Probes score a
model on fixed past forecast tasks; ``probe_curve`` in the returned info is the probe WAPE
every ``probe_every`` trees or optimizer steps during an update (the stability gap).
Conformal bands and the bias factor are kept from the last full fit: a refresh moves the
point forecast a little, a weekly retrain recalibrates.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Literal

import lightgbm as lgb
import numpy as np
import polars as pl

from models.continual_neural import update_neural
from models.forecasters.base import HORIZON, Forecaster
from models.forecasters.lgbm import stack_horizons

STRATEGIES = ("continue", "refit")


@dataclass(frozen=True)
class UpdateConfig:
    """How one refresh updates a model.

    Attributes:
        strategy: LightGBM ``"continue"`` (add trees) or ``"refit"`` (leaf values only).
        trees: K, trees added per booster by ``continue``.
        learning_rate: LightGBM shrinkage of the added trees.
        refit_decay: ``refit`` keeps this share of the old leaf value.
        epochs: neural fine-tune passes over the refresh set.
        fine_tune_lr: neural AdamW learning rate while fine-tuning.
        batch_size: neural fine-tune batch size.
        shrink: shrink-and-perturb factor on the weights before fine-tuning (1.0 = off).
        perturb: standard deviation of the noise added after shrinking.
        probe_every: probe the stability gap every this many trees or optimizer steps.
        row_fraction: LightGBM share of the refresh set's stacked rows used (seeded), as the
            full fit subsamples its rows; the per-row costs (binning, init scores) dominate.
        num_leaves: LightGBM leaves of the added trees (None: the model's own).
        min_child_samples: LightGBM minimum rows per leaf of the added trees (None: own).
        seed: fine-tune shuffling and perturbation noise.
    """

    strategy: Literal["continue", "refit"] = "continue"
    trees: int = 50
    learning_rate: float = 0.05
    refit_decay: float = 0.9
    epochs: int = 2
    fine_tune_lr: float = 5e-4
    batch_size: int = 512
    shrink: float = 1.0
    perturb: float = 0.0
    probe_every: int = 10
    row_fraction: float = 1.0
    num_leaves: int | None = None
    min_child_samples: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}")
        if self.trees < 1 or self.epochs < 1 or self.probe_every < 1:
            raise ValueError("trees, epochs and probe_every must be >= 1")
        if not 0 < self.row_fraction <= 1:
            raise ValueError("row_fraction must be in (0, 1]")
        if not 0 < self.shrink <= 1 or self.perturb < 0:
            raise ValueError("shrink must be in (0, 1] and perturb >= 0")


@dataclass(frozen=True)
class Probe:
    """A fixed past forecast task: the panel cut at ``origin`` and its clean actuals.

    Attributes:
        origin: the probe's forecast origin.
        panel: the panel through ``origin + 7`` with ``is_future`` after the origin and the
            realised columns nulled there (``with_origin``).
        actuals: ``series_id``, ``dt``, ``actual`` for the rows that are scored.
    """

    origin: date
    panel: pl.DataFrame
    actuals: pl.DataFrame


def copy_model(model: Forecaster) -> Forecaster:
    """A deep copy through the model's own serialisation."""
    return Forecaster.from_bytes(model.to_bytes())


def full_fit_work(model: Forecaster) -> float:
    """Compute units of a full fit: rows x trees (LightGBM) or samples x epochs (neural)."""
    c = model.config
    if model.name == "lgbm":
        return float(model.train_rows_ * c.n_estimators)  # type: ignore[attr-defined]
    if model.name == "neural":
        return float(max(1, c.samples_per_epoch // c.batch_size) * c.batch_size * c.epochs)
    raise ValueError(f"continual refresh supports lgbm and neural, not {model.name!r}")


def probe_wape(model: Forecaster, probes: list[Probe]) -> float:
    """Mean WAPE of ``model`` over the probes (each probe scored as one pooled task)."""
    if not probes:
        return float("nan")
    return float(np.mean([_wape(model.predict(p.panel), p.actuals) for p in probes]))


def _wape(pred: pl.DataFrame, actuals: pl.DataFrame) -> float:
    j = pred.join(actuals, on=["series_id", "dt"])
    total = float(j["actual"].abs().sum())
    return float((j["yhat"] - j["actual"]).abs().sum()) / total if total > 0 else float("nan")


def update_model(
    model: Forecaster,
    panel: pl.DataFrame,
    windows: pl.DataFrame,
    *,
    through: date,
    config: UpdateConfig | None = None,
    probes: list[Probe] | None = None,
    inplace: bool = False,
) -> tuple[Forecaster, dict[str, Any]]:
    """Update a copy of ``model`` (or, with ``inplace``, the model itself) on the windows.

    Args:
        model: a fitted ``lgbm`` or ``neural`` forecaster.
        panel: feature panel (``series_id``, ``dt``, ``y``, ``is_future`` and the model's
            feature columns), contiguous days per series; rows after ``through`` are dropped
            here, so no target after it can be read.
        windows: ``series_id``, ``dt`` (last target day) of the refresh set.
        through: the refresh day; a window ending later is an error.
        config: update options.
        probes: optional fixed tasks for the stability curve.
        inplace: update ``model`` itself (the protocol, which discards the old state).

    Returns:
        The updated model (``train_end_`` moved to ``through``) and an info dict with
        ``work`` (compute units), ``rows``, ``windows``, ``probe_curve`` and
        ``probe_seconds`` (time spent scoring probes, not part of the update's cost).
    """
    cfg = config or UpdateConfig()
    _check_windows(windows, through)
    hist = panel.filter(pl.col("dt") <= through)
    out = model if inplace else copy_model(model)
    if model.name == "lgbm":
        info = _update_lgbm(out, hist, windows, cfg, probes or [])
    elif model.name == "neural":
        info = update_neural(out, hist, windows, cfg, probes or [], scratch=False)
    else:
        raise ValueError(f"continual refresh supports lgbm and neural, not {model.name!r}")
    out.train_end_ = through  # type: ignore[attr-defined]
    return out, {**info, "windows": windows.height}


def retrain_on_windows(
    model: Forecaster, panel: pl.DataFrame, windows: pl.DataFrame, *, through: date, seed: int = 0
) -> tuple[Forecaster, dict[str, Any]]:
    """Arm A4: the model's own recipe trained from scratch on the given windows only."""
    _check_windows(windows, through)
    hist = panel.filter(pl.col("dt") <= through)
    out = copy_model(model)
    if model.name == "lgbm":
        c = out.config
        rows = lgbm_rows(out, hist, windows)
        if c.row_fraction < 1:  # the same row subsampling as the model's own full fit
            rows = rows.sort("series_id", "dt", "horizon").sample(
                fraction=c.row_fraction, seed=c.seed
            )
        params = out._params()  # type: ignore[attr-defined]
        out.boosters_ = [  # type: ignore[attr-defined]
            lgb.train(params, _dataset(out, g), num_boost_round=c.n_estimators)
            for g in _groups(out, rows)
        ]
        info = {"work": float(rows.height * c.n_estimators), "rows": rows.height, "probe_curve": []}
    else:
        cfg = UpdateConfig(
            epochs=out.config.epochs,
            fine_tune_lr=out.config.learning_rate,
            seed=seed,
            batch_size=min(out.config.batch_size, 1024),
        )
        info = update_neural(out, hist, windows, cfg, [], scratch=True)
    out.train_end_ = through  # type: ignore[attr-defined]
    return out, {**info, "windows": windows.height}


def _check_windows(windows: pl.DataFrame, through: date) -> None:
    if windows.height and windows["dt"].max() > through:  # type: ignore[operator]
        raise ValueError(f"a refresh window ends after {through}: that would train on the future")


# -- LightGBM ---------------------------------------------------------------------------------


def lgbm_rows(model: Forecaster, panel: pl.DataFrame, windows: pl.DataFrame) -> pl.DataFrame:
    """The stacked training rows of the windows: one per (series, target day, horizon).

    Reads the model's feature columns from ``panel``; returns them with ``y`` and
    ``horizon``. Origin features are read at ``dt - h + 1`` (``stack_horizons``), so a row
    only sees targets up to its origin ``dt - h``.
    """
    c = model.config
    if windows.height == 0:
        raise ValueError("no windows to train on")
    keep = ("series_id", "dt", "y", *c.target_day_features, *c.categorical)
    targets = panel.join(
        windows.select("series_id", "dt"), on=["series_id", "dt"], how="semi"
    ).filter(pl.col("y").is_not_null() & ~pl.col("is_future"))
    targets = targets.select(keep)
    origins = panel.select("series_id", pl.col("dt").alias("_odt"), *c.origin_features)
    # A date join instead of stack_horizons' row shift: the same rows on a contiguous panel,
    # but it touches only the windows' rows, which matters for a sparse replay draw.
    parts = [
        targets.with_columns((pl.col("dt") - timedelta(days=h - 1)).alias("_odt"))
        .join(origins, on=["series_id", "_odt"], how="left")
        .drop("_odt")
        .with_columns(pl.lit(h, dtype=pl.Int32).alias("horizon"))
        for h in range(1, HORIZON + 1)
    ]
    return pl.concat(parts).select(*keep, *c.origin_features, "horizon")


def _groups(model: Forecaster, rows: pl.DataFrame) -> list[pl.DataFrame]:
    if model.config.strategy == "global":
        return [rows]
    return [rows.filter(pl.col("horizon") == h) for h in range(1, HORIZON + 1)]


def _dataset(model: Forecaster, rows: pl.DataFrame) -> lgb.Dataset:
    cats = [model.feature_names_.index(n) for n in model.config.categorical]  # type: ignore[attr-defined]
    return lgb.Dataset(
        model._matrix(rows),  # type: ignore[attr-defined]
        label=rows["y"].to_numpy(),
        feature_name=model.feature_names_,  # type: ignore[attr-defined]
        categorical_feature=cats,
        free_raw_data=False,
    )


def _update_lgbm(
    model: Forecaster,
    panel: pl.DataFrame,
    windows: pl.DataFrame,
    cfg: UpdateConfig,
    probes: list[Probe],
) -> dict[str, Any]:
    rows = lgbm_rows(model, panel, windows)
    if cfg.row_fraction < 1:
        rows = rows.sort("series_id", "dt", "horizon").sample(
            fraction=cfg.row_fraction, seed=cfg.seed
        )
    base = [b.current_iteration() for b in model.boosters_]  # type: ignore[attr-defined]
    params = {**model._params(), "learning_rate": cfg.learning_rate}  # type: ignore[attr-defined]
    # Smaller trees for small refresh sets: fewer leaves to fit one day's noise with.
    if cfg.num_leaves is not None:
        params["num_leaves"] = cfg.num_leaves
    if cfg.min_child_samples is not None:
        params["min_child_samples"] = cfg.min_child_samples
    new = []
    for booster, g in zip(model.boosters_, _groups(model, rows), strict=True):  # type: ignore[attr-defined]
        if g.height == 0:
            new.append(booster)
        elif cfg.strategy == "continue":
            new.append(
                lgb.train(params, _dataset(model, g), num_boost_round=cfg.trees, init_model=booster)
            )
        else:
            cats = [model.feature_names_.index(n) for n in model.config.categorical]  # type: ignore[attr-defined]
            new.append(
                booster.refit(
                    model._matrix(g),  # type: ignore[attr-defined]
                    g["y"].to_numpy(),
                    decay_rate=cfg.refit_decay,  # type: ignore[attr-defined]
                    categorical_feature=cats,
                )
            )
    model.boosters_ = new  # type: ignore[attr-defined]
    n_trees = (
        sum(b.current_iteration() for b in new) - sum(base)
        if cfg.strategy == "continue"
        else sum(base)
    )
    # Refit visits every tree once per row (leaf lookup + one Newton step): rows x trees.
    work = float(rows.height * (cfg.trees if cfg.strategy == "continue" else sum(base) / len(base)))
    curve: list[float] = []
    started = time.perf_counter()
    if probes and cfg.strategy == "continue":
        mats = [_lgbm_probe_matrix(model, p) for p in probes]
        for k in range(cfg.probe_every, cfg.trees + 1, cfg.probe_every):
            curve.append(
                float(np.mean([_lgbm_probe_wape(model, m, [b0 + k for b0 in base]) for m in mats]))
            )
    return {
        "work": work,
        "rows": rows.height,
        "trees_added": n_trees,
        "probe_curve": curve,
        "probe_seconds": time.perf_counter() - started,
    }


def _lgbm_probe_matrix(
    model: Forecaster, probe: Probe
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    c = model.config
    keep = ("series_id", "dt", *c.target_day_features, *c.categorical)
    fut = stack_horizons(
        probe.panel.filter(pl.col("dt") > probe.origin),
        origin_features=c.origin_features,
        keep=keep,
        horizons=range(1, HORIZON + 1),
        target_rows=pl.lit(True),
    ).filter((pl.col("dt") - pl.lit(probe.origin)).dt.total_days() == pl.col("horizon"))
    fut = fut.join(probe.actuals, on=["series_id", "dt"])
    return model._matrix(fut), fut["horizon"].to_numpy(), fut["actual"].to_numpy()  # type: ignore[attr-defined]


def _lgbm_probe_wape(
    model: Forecaster, mat: tuple[np.ndarray, np.ndarray, np.ndarray], iters: list[int]
) -> float:
    x, h, y = mat
    yhat = np.zeros(len(y))
    boosters = model.boosters_  # type: ignore[attr-defined]
    for i, (b, n) in enumerate(zip(boosters, iters, strict=True)):
        mask = np.ones(len(y), bool) if len(boosters) == 1 else h == i + 1
        if mask.any():
            yhat[mask] = b.predict(x[mask], num_iteration=n, num_threads=model.config.num_threads)
    yhat = np.maximum(yhat, 0.0) * model.bias_  # type: ignore[attr-defined]
    total = np.abs(y).sum()
    return float(np.abs(yhat - y).sum() / total) if total > 0 else float("nan")
