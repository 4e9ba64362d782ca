"""The neural forecaster's continual update: Lightning fine-tuning on a refresh set.

Fine-tunes every net of a ``NeuralForecaster`` (``net_`` and ``extra_nets_``) in place on the
refresh windows, every window once per epoch, optionally after shrink-and-perturb, then
re-anchors the forecast level (``level_``); a callback scores fixed probes every few
optimizer steps for the stability gap. With ``replay_targets="forecast"`` the replayed
windows are trained toward the nets' own pre-update outputs (:class:`DistilledReplay`).

The forecaster is typed here by what the fine-tune reads (:class:`NetModel`), so this
module does not import :mod:`models.forecasters.neural`, which calls it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any, Protocol

import lightning as L
import numpy as np
import numpy.typing as npt
import polars as pl
import torch

from models.constants import HORIZON
from models.forecasters.neural_net import (
    LEVEL_WINDOWS,
    Batch,
    FloatArray,
    IntArray,
    TiDENet,
    TrainModule,
    WindowArrays,
    weighted_loss,
)
from models.forecasters.panel import first_day, last_day
from models.forecasters.update import Probe, UpdateConfig, no_work
from models.training import cpu_trainer

BoolArray = npt.NDArray[np.bool_]


class FineTuneConfig(Protocol):
    """The options of ``NeuralConfig`` the fine-tune reads."""

    @property
    def lookback(self) -> int: ...

    @property
    def num_threads(self) -> int: ...


class NetModel(Protocol):
    """What the fine-tune reads and sets on ``NeuralForecaster``."""

    level_: float
    # Absent on models pickled before it: read it only after a ``hasattr`` check.
    fit_level_: float

    @property
    def config(self) -> FineTuneConfig: ...

    @property
    def bias_(self) -> float: ...

    def arrays(
        self, panel: pl.DataFrame, start: date, days: int
    ) -> tuple[npt.NDArray[np.int64], WindowArrays]: ...

    def new_net(self) -> TiDENet: ...

    def nets(self) -> list[TiDENet]: ...

    def set_nets(self, nets: list[TiDENet]) -> None: ...

    def in_sample_level(self, arrays: WindowArrays, s: IntArray, o: IntArray) -> float: ...


def window_index(
    model: NetModel, panel: pl.DataFrame, windows: pl.DataFrame
) -> tuple[WindowArrays, IntArray, IntArray, BoolArray]:
    """Dense arrays of the history, (series index, first-target index) per trainable window,
    and whether each was replayed (the ``replay`` column; none without it)."""
    c = model.config
    hist = panel.filter(~pl.col("is_future"))
    start, end = first_day(hist), last_day(hist)
    pad_start = start - timedelta(days=c.lookback)
    series, arrays = model.arrays(hist, pad_start, (end - pad_start).days + 1)
    w = windows.filter(pl.col("series_id").is_in(series.tolist()))
    s = np.searchsorted(series, w["series_id"].to_numpy())
    # The window ending at dt has its first target HORIZON-1 days earlier.
    o = (w["dt"] - pad_start).dt.total_days().to_numpy() - (HORIZON - 1)
    # As in the full fit, a window needs a lookback inside the history: a padded one scales
    # by ~0 and blows up its targets. (Replaying such early windows from the buffer biased
    # the refresh on 50k real series: clean-day wpe -0.08 and -0.12 after two updates, A1
    # -0.004 and -0.017.) It also needs an observed lookback day: its scale is a nanmean.
    inside = (o >= 2 * c.lookback) & (o < arrays.y.shape[1])
    ok = np.zeros(len(o), dtype=bool)
    ok[inside] = arrays.observed_lookback(s[inside], o[inside], c.lookback)
    replay = w["replay"].to_numpy() if "replay" in w.columns else np.zeros(len(o), dtype=bool)
    return arrays, s[ok], o[ok], replay[ok].astype(bool)


def fine_tune(
    model: NetModel,
    panel: pl.DataFrame,
    windows: pl.DataFrame,
    cfg: UpdateConfig,
    probes: list[Probe],
    *,
    scratch: bool,
) -> dict[str, Any]:
    """Train every net of ``model`` on the windows, in place: its current weights, or fresh
    ones with ``scratch`` (arm A4). ``panel`` holds no day after the refresh day."""
    c = model.config
    torch.set_num_threads(c.num_threads)
    arrays, s, o, replay = window_index(model, panel, windows)
    distil = cfg.replay_targets == "forecast" and not scratch and bool(replay.any())
    if len(s) == 0:  # nothing trainable (e.g. only windows without a full lookback)
        return no_work()
    nets = model.nets()
    probe = ProbeCallback(model, probes, cfg.probe_every) if probes else None
    callbacks: list[L.Callback] = [probe] if probe is not None else []
    # Every net of the model learns the same windows (each with its own seed), one after
    # the other; the probes score the served average throughout.
    for i, old in enumerate(nets):
        torch.manual_seed(cfg.seed + i)
        soft = None
        if scratch:
            net = model.new_net()
        else:
            net = old
            # The soft targets are this net's outputs before it changes (raw, scaled units);
            # new windows have none (their rows stay 0 and are not read).
            if distil:
                soft = torch.zeros((len(s), HORIZON, 4))
                soft[replay] = _net_outputs(net, arrays, s[replay], o[replay], c.lookback)
            if cfg.shrink < 1 or cfg.perturb > 0:
                with torch.no_grad():
                    for p in net.parameters():
                        p.mul_(cfg.shrink).add_(cfg.perturb * torch.randn_like(p))
        nets[i] = net
        model.set_nets(nets)
        net.train()
        # Fine-tune with the loss the model was trained with (old pickles predate it).
        point_loss = getattr(c, "point_loss", "mse")
        if scratch or soft is None:
            batches = WindowBatches(arrays, s, o, c.lookback, cfg.batch_size, cfg.seed + i)
            module: L.LightningModule = TrainModule(net, cfg.fine_tune_lr, point_loss)
        else:
            batches = WindowBatches(
                arrays, s, o, c.lookback, cfg.batch_size, cfg.seed + i, soft=(soft, replay)
            )
            module = DistilledReplay(net, cfg.fine_tune_lr, point_loss)
        cpu_trainer(max_epochs=cfg.epochs, callbacks=callbacks).fit(
            module, torch.utils.data.DataLoader(batches, batch_size=None)
        )
        net.eval()
    if scratch or cfg.anchor_level:
        _anchor_level(model, arrays, s, o, cfg.seed, scratch=scratch)
    return {
        "work": float(len(s) * cfg.epochs * len(nets)),
        "rows": len(s),
        "probe_curve": probe.curve if probe is not None else [],
        "probe_seconds": probe.seconds if probe is not None else 0.0,
        "probe_cpu_seconds": probe.cpu_seconds if probe is not None else 0.0,
    }


def _anchor_level(
    model: NetModel, arrays: WindowArrays, s: IntArray, o: IntArray, seed: int, *, scratch: bool
) -> None:
    """Put the forecast level on the trained windows back where the full fit left it.

    A scratch fit sets its own: ``fit_level_`` measured, ``level_`` 1, as a full fit does.
    A fine-tune rescales ``level_`` so its in-sample level equals ``fit_level_``. Without a
    usable level on either side (models pickled before ``fit_level_``, or windows with no
    sales) it is left at 1 rather than guessed. See ``in_sample_level``.
    """
    pick = np.random.default_rng([seed, 2]).permutation(len(s))[:LEVEL_WINDOWS]
    if scratch:
        model.level_ = 1.0
        model.fit_level_ = model.in_sample_level(arrays, s[pick], o[pick])
    elif hasattr(model, "fit_level_"):
        model.level_ = 1.0
        now = model.in_sample_level(arrays, s[pick], o[pick])
        target = model.fit_level_
        if np.isfinite(now) and np.isfinite(target) and now > 0 and target > 0:
            model.level_ = target / now


class WindowBatches(torch.utils.data.IterableDataset[Batch]):
    """Every refresh window once per epoch, shuffled with a per-epoch seed; with ``soft``
    (outputs (windows, 7, 4), replayed flags), each batch also carries its rows of both."""

    def __init__(
        self,
        arrays: WindowArrays,
        s: IntArray,
        o: IntArray,
        lookback: int,
        batch: int,
        seed: int,
        *,
        soft: tuple[torch.Tensor, BoolArray] | None = None,
    ) -> None:
        self.arrays, self.s, self.o, self.lb, self.batch, self.seed = (
            arrays,
            s,
            o,
            lookback,
            batch,
            seed,
        )
        self.soft = soft

    def __iter__(self) -> Iterator[Batch]:
        rng = np.random.default_rng(self.seed)
        self.seed += 1
        perm = rng.permutation(len(self.s))
        for b0 in range(0, len(perm), self.batch):
            idx = perm[b0 : b0 + self.batch]
            window = self.arrays.window(self.s[idx], self.o[idx], self.lb, with_target=True)
            if self.soft is None:
                yield window
            else:
                outputs, replayed = self.soft
                yield (*window, outputs[idx], torch.as_tensor(replayed[idx]))


def _net_outputs(
    net: TiDENet, arrays: WindowArrays, s: IntArray, o: IntArray, lookback: int
) -> torch.Tensor:
    """One net's raw outputs (windows, 7, 4) in scaled units, in eval mode."""
    net.eval()
    outs = []
    with torch.no_grad():
        for b0 in range(0, len(s), 8192):
            y, so, known, static, _ = arrays.window(
                s[b0 : b0 + 8192], o[b0 : b0 + 8192], lookback, with_target=False
            )
            outs.append(net(y, so, known, static))
    return torch.cat(outs)


class DistilledReplay(TrainModule):
    """Fine-tuning loss of ``replay_targets="forecast"``: a new window is trained toward
    its sales as in the fit, a replayed one toward the net's pre-update outputs (L1 on
    every head). Those were taken in eval mode, so from the first step the replayed rows
    also pull the net back against its own dropout noise."""

    def training_step(self, batch: Batch, _: int) -> torch.Tensor:
        y, so, known, static, target, scale, soft, replayed = batch
        out = self.net(y, so, known, static)
        w = scale / scale.mean()
        new = weighted_loss(out, target, w * ~replayed, self.point_loss)
        held: torch.Tensor = ((out - soft).abs().sum(dim=2) * (w * replayed)[:, None]).mean()
        loss = new + held
        self.log("train/loss", loss, prog_bar=False)
        return loss


class ProbeCallback(L.Callback):
    """Probe WAPE every ``every`` optimizer steps, in eval mode, without gradients."""

    def __init__(self, model: NetModel, probes: list[Probe], every: int) -> None:
        started, started_cpu = time.perf_counter(), time.process_time()
        self.model, self.every = model, every
        self.curve: list[float] = []
        self.tensors = [_probe_tensors(model, p) for p in probes]
        self.seconds = time.perf_counter() - started
        self.cpu_seconds = time.process_time() - started_cpu

    def on_train_batch_end(self, trainer: L.Trainer, *_: Any) -> None:
        if trainer.global_step % self.every:
            return
        started, started_cpu = time.perf_counter(), time.process_time()
        nets = self.model.nets()
        training = [net.training for net in nets]
        for net in nets:
            net.eval()
        scores = []
        with torch.no_grad():
            for inputs, scale, y, mask in self.tensors:
                # As predict serves it: each net clipped at 0, then averaged.
                per_net = [
                    np.maximum((n(*inputs)[..., 0] * scale[:, None]).numpy(), 0) for n in nets
                ]
                served = self.model.bias_ * self.model.level_
                pred = np.mean(per_net, axis=0) * served
                scores.append(
                    float(np.abs(pred - y)[mask].sum() / max(np.abs(y)[mask].sum(), 1e-9))
                )
        for net, was in zip(nets, training, strict=True):
            net.train(was)
        self.curve.append(float(np.mean(scores)))
        self.seconds += time.perf_counter() - started
        self.cpu_seconds += time.process_time() - started_cpu


ProbeTensors = tuple[Batch, torch.Tensor, FloatArray, BoolArray]


def _probe_tensors(model: NetModel, probe: Probe) -> ProbeTensors:
    c = model.config
    start = probe.origin - timedelta(days=c.lookback - 1)
    series, arrays = model.arrays(probe.panel, start, c.lookback + HORIZON)
    y, so, known, static, scale = arrays.window(
        np.arange(len(series)), np.full(len(series), c.lookback), c.lookback, with_target=False
    )
    days = [probe.origin + timedelta(days=h) for h in range(1, HORIZON + 1)]
    grid = pl.DataFrame({"series_id": np.repeat(series, HORIZON), "dt": days * len(series)})
    act = grid.join(probe.actuals, on=["series_id", "dt"], how="left", maintain_order="left")[
        "actual"
    ]
    mask = act.is_not_null().to_numpy().reshape(len(series), HORIZON)
    return (
        (y, so, known, static),
        scale,
        act.fill_null(0).to_numpy().reshape(len(series), HORIZON),
        mask,
    )
