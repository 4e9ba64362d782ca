"""Continual refresh of a fitted forecaster: the functions the refresh job and the protocol call.

:func:`update_model` takes a fitted forecaster, the panel through day t and the windows of a
refresh set (see :mod:`models.continual.replay`), and returns an updated *copy* (or, with
``inplace``, the model itself): :meth:`Forecaster.update` does the learning (LightGBM
continues or refits its boosters, the neural model fine-tunes its nets; see
:mod:`models.forecasters.update` for the options). :func:`retrain_on_windows` is arm A4 (from
scratch on the buffer alone, :meth:`Forecaster.fit_windows`). Probes score a model on fixed
past forecast tasks; ``probe_curve`` in the returned info is the probe WAPE every
``probe_every`` trees or optimizer steps during an update (the stability gap). Conformal
bands and the bias factor are kept from the last full fit: a refresh moves the point
forecast a little, a weekly retrain recalibrates.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

import numpy as np
import polars as pl

from models.forecasters.base import Forecaster
from models.forecasters.lgbm import LGBMForecaster
from models.forecasters.neural import NeuralForecaster
from models.forecasters.update import Probe, UpdateConfig


def copy_model(model: Forecaster) -> Forecaster:
    """A deep copy through the model's own serialisation."""
    return Forecaster.load(model.save())


def full_fit_work(model: Forecaster) -> float:
    """Compute units of a full fit: rows x trees (LightGBM) or samples x epochs (neural),
    summed over every model ``Forecaster.fit`` trained (the calibration fit and the refit)."""
    if isinstance(model, LGBMForecaster):
        # Models pickled before fit_work_ existed counted their last fit only.
        last = model.train_rows_ * model.config.n_estimators
        return float(getattr(model, "fit_work_", last))
    if isinstance(model, NeuralForecaster):
        c = model.config
        per_net = max(1, c.samples_per_epoch // c.batch_size) * c.batch_size * c.epochs
        return float(per_net * getattr(c, "nets", 1) * getattr(model, "fit_count_", 1))
    raise ValueError(f"continual refresh supports lgbm and neural, not {model.name!r}")


def probe_wape(model: Forecaster, probes: Sequence[Probe]) -> float:
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
    probes: Sequence[Probe] | None = None,
    inplace: bool = False,
    replay_pool: pl.DataFrame | None = None,
) -> tuple[Forecaster, dict[str, Any]]:
    """Update a copy of ``model`` (or, with ``inplace``, the model itself) on the windows.

    Args:
        model: a fitted forecaster.
        panel: feature panel (``series_id``, ``dt``, ``y``, ``is_future`` and the model's
            feature columns), contiguous days per series; rows after ``through`` are not
            read, so no target after it can be.
        windows: ``series_id``, ``dt`` (last target day) of the refresh set.
        through: the refresh day; a window ending later is an error.
        config: update options; None takes the model's own default (``LGBM_REFRESH``,
            ``NEURAL_REFRESH``).
        probes: optional fixed tasks for the stability curve.
        inplace: update ``model`` itself (the protocol, which discards the old state).
        replay_pool: ``series_id``, ``dt`` of the windows that may be replayed later (the
            replay buffer). LightGBM keeps the raw scores of their rows on the model
            (``replay_scores_``), so a later replay only runs the trees added since; None
            keeps only this update's.

    Returns:
        The updated model (``train_end_`` moved to ``through``) and the info dict of
        :meth:`Forecaster.update`: ``work`` (compute units), ``rows``, ``windows``,
        ``probe_curve``, ``probe_seconds`` and ``probe_cpu_seconds``.
    """
    # A copy's cost is the model's own business: LightGBM shares its boosters, which an
    # update replaces and never modifies; a neural copy is deep.
    out = model if inplace else model.copy()
    info = out.update(
        panel, windows, through=through, config=config, probes=probes or (), replay_pool=replay_pool
    )
    return out, info


def retrain_on_windows(
    model: Forecaster, panel: pl.DataFrame, windows: pl.DataFrame, *, through: date, seed: int = 0
) -> tuple[Forecaster, dict[str, Any]]:
    """Arm A4: the model's own recipe trained from scratch on the given windows only."""
    out = copy_model(model)
    info = out.fit_windows(panel, windows, through=through, seed=seed)
    return out, info


def full_recipe(model: Forecaster, *, seed: int = 0, **overrides: Any) -> UpdateConfig:
    """The neural full fit's epochs and learning rate as an update config (one pass over
    the given windows per epoch); see :meth:`NeuralForecaster.full_recipe`."""
    if not isinstance(model, NeuralForecaster):
        raise ValueError(
            f"the full-fit recipe as an update is the neural model's, not {model.name!r}"
        )
    return model.full_recipe(seed=seed, **overrides)
