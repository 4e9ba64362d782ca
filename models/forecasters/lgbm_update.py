"""The LightGBM forecaster's continual update: continue or refit its boosters on a refresh set.

``continue`` adds ``trees`` trees per booster on the stacked rows of the windows, with the
old trees as the starting score; ``refit`` keeps every tree's structure and re-fits leaf
values on those rows (``Booster.refit`` with ``refit_decay``). Probes are scored every
``probe_every`` added trees (the stability curve).

A LightGBM update's cost is per row, not per tree: continuing from ~200 trees first needs
each row's score under all of them. So the rows are sampled by key before any feature is
read, the init scores are passed in rather than recomputed by ``init_model``, and each
replayable row's raw score is cached on the model (``replay_scores_``) with the number of
trees it covers: a row replayed later only runs the trees added since
(:mod:`models.forecasters.lgbm_scores`).

The forecaster is typed here by what the update reads (:class:`BoostedModel`), so this
module does not import :mod:`models.forecasters.lgbm`, which calls it.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

import lightgbm as lgb
import numpy as np
import numpy.typing as npt
import polars as pl
from lightgbm.basic import _safe_call
from lightgbm.libpath import _LIB

from models.constants import HORIZON
from models.forecasters.lgbm_rows import (
    KEY,
    FeatureRoles,
    row_keys,
    rows_for_keys,
    stack_horizons,
    window_rows,
)
from models.forecasters.lgbm_scores import (
    Matrix,
    cached_raw_scores,
    feature_hash,
    next_scores,
    prior_scores,
)
from models.forecasters.update import Probe, UpdateConfig

FloatArray = npt.NDArray[np.float64]


class TreeConfig(FeatureRoles, Protocol):
    """The options of ``LGBMConfig`` the update reads."""

    @property
    def strategy(self) -> str: ...

    @property
    def n_estimators(self) -> int: ...

    @property
    def row_fraction(self) -> float: ...

    @property
    def num_threads(self) -> int: ...

    @property
    def seed(self) -> int: ...


class BoostedModel(Protocol):
    """What the update reads and sets on ``LGBMForecaster``."""

    boosters_: list[lgb.Booster]
    replay_scores_: pl.DataFrame | None

    @property
    def config(self) -> TreeConfig: ...

    @property
    def feature_names_(self) -> list[str]: ...

    @property
    def bias_(self) -> float: ...

    def params(self) -> dict[str, Any]: ...

    def matrix(self, frame: pl.DataFrame) -> Matrix: ...


def horizon_groups(model: BoostedModel, rows: pl.DataFrame) -> list[pl.DataFrame]:
    """The rows of each booster: all of them, or one horizon per booster."""
    if model.config.strategy == "global":
        return [rows]
    return [rows.filter(pl.col("horizon") == h) for h in range(1, HORIZON + 1)]


def training_set(
    model: BoostedModel,
    rows: pl.DataFrame,
    *,
    x: Matrix | None = None,
    init_score: FloatArray | None = None,
) -> lgb.Dataset:
    """The LightGBM dataset of stacked ``rows`` (``x``: their matrix, when already built)."""
    cats = [model.feature_names_.index(n) for n in model.config.categorical]
    return lgb.Dataset(
        model.matrix(rows) if x is None else x,
        label=rows["y"].to_numpy(),
        init_score=init_score,
        feature_name=model.feature_names_,
        categorical_feature=cats,
        free_raw_data=False,
    )


def _prepend_trees(booster: lgb.Booster, front: lgb.Booster) -> None:
    """Put ``front``'s trees in front of ``booster``'s, in place (``front`` is not modified).

    This is LightGBM's C call ``LGBM_BoosterMerge``, the one its own ``init_model`` path
    (``Booster.__init__``) and ``Booster.refit`` make. The Python API has no public method
    for it: the public ways to continue a booster (``lgb.train(init_model=...)``,
    ``Booster(model_str=...)``) re-score every row with the old trees or round-trip them
    through a string, which is the per-update cost :func:`continue_boosting` avoids. Hence
    the one use of LightGBM's private ``_safe_call``, ``_LIB`` and ``_handle`` in freshcast.
    """
    _safe_call(_LIB.LGBM_BoosterMerge(booster._handle, front._handle))


def continue_boosting(
    booster: lgb.Booster, params: dict[str, Any], data: lgb.Dataset, trees: int
) -> lgb.Booster:
    """``lgb.train(params, data, trees, init_model=booster)`` with the init scores given.

    With ``init_model`` LightGBM scores every row with the whole ensemble to get the init
    scores, and round-trips the old model through a string. Here ``data`` already carries
    the init scores (``lgbm_scores.cached_raw_scores``): the new trees are trained alone, then the old trees
    are put in front (:func:`_prepend_trees`). Same trees as the ``init_model`` path
    (tested); the input booster is not modified.
    """
    new = lgb.train(params, data, num_boost_round=trees)
    _prepend_trees(new, booster)
    return new


def update_params(model: BoostedModel, cfg: UpdateConfig) -> dict[str, Any]:
    """The model's LightGBM parameters with the update's shrinkage and tree size."""
    params = {**model.params(), "learning_rate": cfg.learning_rate}
    # Smaller trees for small refresh sets: fewer leaves to fit one day's noise with.
    if cfg.num_leaves is not None:
        params["num_leaves"] = cfg.num_leaves
    if cfg.min_child_samples is not None:
        params["min_child_samples"] = cfg.min_child_samples
    params["bin_construct_sample_cnt"] = cfg.bin_sample_rows
    return params


def update_boosters(
    model: BoostedModel,
    panel: pl.DataFrame | pl.LazyFrame,
    windows: pl.DataFrame,
    cfg: UpdateConfig,
    probes: list[Probe],
    pool: pl.DataFrame | None,
) -> dict[str, Any]:
    """Continue or refit ``model``'s boosters on the windows, in place (new boosters are
    built; the old ones are not modified). ``panel`` holds no day after the refresh day."""
    if windows.height == 0:
        raise ValueError("no windows to train on")
    rows = rows_for_keys(
        model.config, panel, row_keys(windows, fraction=cfg.row_fraction, seed=cfg.seed)
    )
    base = [b.current_iteration() for b in model.boosters_]
    params = update_params(model, cfg)
    cache = model.replay_scores_
    new, fresh, valid = [], [], True
    for booster, g in zip(model.boosters_, horizon_groups(model, rows), strict=True):
        if g.height == 0:
            new.append(booster)
        elif cfg.strategy == "continue":
            grown, rows_scores, ok = _continue_group(model, booster, g, cache, params, cfg.trees)
            new.append(grown)
            fresh.append(rows_scores)
            valid &= ok
        else:
            new.append(_refit_group(model, booster, g, cfg.refit_decay))
    model.boosters_ = new
    # Refit changes every leaf, so no cached score survives it; nor does a cache that
    # failed its check, none of whose older entries can be trusted either.
    kept = next_scores(cache if valid else None, fresh, windows, pool)
    model.replay_scores_ = kept if cfg.strategy == "continue" else None
    n_trees = (
        sum(b.current_iteration() for b in new) - sum(base)
        if cfg.strategy == "continue"
        else sum(base)
    )
    # Refit visits every tree once per row (leaf lookup + one Newton step): rows x trees.
    work = float(rows.height * (cfg.trees if cfg.strategy == "continue" else sum(base) / len(base)))
    started, started_cpu = time.perf_counter(), time.process_time()
    curve = probe_curve(model, probes, base, cfg) if cfg.strategy == "continue" else []
    return {
        "work": work,
        "rows": rows.height,
        "trees_added": n_trees,
        "probe_curve": curve,
        "probe_seconds": time.perf_counter() - started,
        "probe_cpu_seconds": time.process_time() - started_cpu,
    }


def train_on_windows(
    model: BoostedModel, panel: pl.DataFrame, windows: pl.DataFrame
) -> dict[str, Any]:
    """New boosters trained from scratch with the model's own recipe on the windows' rows
    only (arm A4), in place. ``panel`` holds no day after the refresh day."""
    c = model.config
    rows = window_rows(c, panel, windows)
    if c.row_fraction < 1:  # the same row subsampling as the model's own full fit
        rows = rows.sort("series_id", "dt", "horizon").sample(fraction=c.row_fraction, seed=c.seed)
    params = model.params()
    model.boosters_ = [
        lgb.train(params, training_set(model, g), num_boost_round=c.n_estimators)
        for g in horizon_groups(model, rows)
    ]
    model.replay_scores_ = None  # scores of the old trees mean nothing to new ones
    return {"work": float(rows.height * c.n_estimators), "rows": rows.height, "probe_curve": []}


def _continue_group(
    model: BoostedModel,
    booster: lgb.Booster,
    rows: pl.DataFrame,
    cache: pl.DataFrame | None,
    params: dict[str, Any],
    trees: int,
) -> tuple[lgb.Booster, pl.DataFrame, bool]:
    """``booster`` with ``trees`` more trees fit on ``rows``, the rows' init scores (for the
    cache) and whether the cache passed its check."""
    x = model.matrix(rows)
    fhash = feature_hash(x)
    prior, done = prior_scores(cache, rows, fhash)
    init, ok = cached_raw_scores(booster, x, prior, done, num_threads=model.config.num_threads)
    grown = continue_boosting(
        booster, params, training_set(model, rows, x=x, init_score=init), trees
    )
    # Keyed by row, with the trees the score covers and the features it was read on.
    scores = rows.select(KEY).with_columns(
        pl.Series("raw", init),
        pl.lit(booster.current_iteration(), dtype=pl.Int32).alias("iters"),
        pl.Series("fhash", fhash),
    )
    return grown, scores, ok


def _refit_group(
    model: BoostedModel, booster: lgb.Booster, rows: pl.DataFrame, decay: float
) -> lgb.Booster:
    """``booster``'s trees with leaf values refit on ``rows`` (``decay`` of the old kept)."""
    cats = [model.feature_names_.index(n) for n in model.config.categorical]
    return booster.refit(
        model.matrix(rows),
        rows["y"].to_numpy(),
        decay_rate=decay,
        categorical_feature=cats,
    )


def probe_curve(
    model: BoostedModel, probes: list[Probe], base: list[int], cfg: UpdateConfig
) -> list[float]:
    """Probe WAPE after every ``probe_every`` of the added trees (the stability curve)."""
    if not probes:
        return []
    mats = [_probe_matrix(model, p) for p in probes]
    return [
        float(np.mean([_probe_wape(model, m, [b0 + k for b0 in base]) for m in mats]))
        for k in range(cfg.probe_every, cfg.trees + 1, cfg.probe_every)
    ]


ProbeMatrix = tuple[Matrix, npt.NDArray[np.int32], FloatArray]


def _probe_matrix(model: BoostedModel, probe: Probe) -> ProbeMatrix:
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
    return model.matrix(fut), fut["horizon"].to_numpy(), fut["actual"].to_numpy()


def _probe_wape(model: BoostedModel, mat: ProbeMatrix, iters: list[int]) -> float:
    x, h, y = mat
    yhat = np.zeros(len(y))
    boosters = model.boosters_
    for i, (b, n) in enumerate(zip(boosters, iters, strict=True)):
        mask = np.ones(len(y), bool) if len(boosters) == 1 else h == i + 1
        if mask.any():
            yhat[mask] = b.predict(x[mask], num_iteration=n, num_threads=model.config.num_threads)
    yhat = np.maximum(yhat, 0.0) * model.bias_
    total = np.abs(y).sum()
    return float(np.abs(yhat - y).sum() / total) if total > 0 else float("nan")
