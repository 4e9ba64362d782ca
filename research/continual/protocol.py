"""The continual-refresh protocol (``freshcast evaluate continual``).

Warm-start both forecasters on the first ``warm_days`` days (through day t0). Then for each
later day t: update every arm with data through t only, forecast t+1..t+7, and score the
forecast with the published protocol (clean rows, per-day acc/wpe, averaged). The arms:

* ``A0`` frozen warm model;            * ``A1`` full retrain every day (the reference);
* ``A1w`` full retrain weekly;         * ``A2`` update on the new day's windows only;
* ``A3`` update on new + replay (the product's method);  * ``A4`` retrain on the buffer alone;
* ``A3w`` A3 plus the safety net's weekly full retrain: what the daily job runs.

Features are built once on the whole panel: every feature a model reads at a forecast day
depends only on targets up to the origin (see :mod:`pipelines.features.build`), and the forecast
panel of origin t is cut with ``with_origin``, which nulls ``y`` and the stockout count after
t. Every update trains on windows whose last target day is ≤ t; each step row records that
day as ``train_max_dt`` so the no-leakage rule is checked, not assumed.

The refresh job itself (:func:`refresh_model`, :func:`refresh`) lives in
:mod:`pipelines.training.refresh`; reporting (summary rows, plot, MLflow) in
:mod:`research.continual.report`.
"""

from __future__ import annotations

import os
import resource
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl

from models.constants import HORIZON, Target
from models.continual.replay import BufferConfig, ReplayBuffer, refresh_set, window_keys
from models.continual.strategies import (
    copy_model,
    full_fit_work,
    full_recipe,
    probe_wape,
    retrain_on_windows,
    update_model,
)
from models.forecasters import Forecaster, default_config
from models.forecasters.panel import first_day, last_day, with_origin
from models.forecasters.update import LGBM_REFRESH, NEURAL_REFRESH, Probe, UpdateConfig
from models.metrics import clean_rows, score_forecast
from pipelines.data.io import scan_days
from pipelines.errors import DataError
from pipelines.features.panel import Recovery, make_panel, sample_series
from pipelines.training.fit import fit_model

ARMS: tuple[str, ...] = ("A0", "A1", "A1w", "A2", "A3", "A4", "A3w")


@dataclass(frozen=True)
class ContinualConfig:
    """Protocol options (frozen).

    Attributes:
        warm_days: days in the warm-start fit; the first step's origin is the next day.
        steps: at most this many steps (None: every day with 7 scored days after it).
        target: ``"censored"`` or ``"recovered"``. Recovered runs stage 1 once over the whole
            span (a per-step stage 1 would multiply the cost by the step count), so imputed
            values on days <= t may borrow stage-1 statistics from later days; scoring is on
            clean rows against ``sale_amount`` either way.
        profile: model size, ``"default"``, ``"bench"`` (smaller, for shared machines) or ``"smoke"``.
        buffer_days: buffer capacity in days' worth of windows (x number of series).
        buffer_mode: ``"stratified"`` or ``"reservoir"``.
        retrain_every: A1w and A3w retrain every this many steps.
        probe_weeks: number of fixed probe tasks (weekly origins inside the warm period).
        probe_series: series per probe (a seeded subsample).
        lgbm_update, neural_update: the update strategies of A2/A3 (A3 draws
            ``replay_ratio`` replayed windows per new one); default the product's refresh
            (``models.forecasters.update.LGBM_REFRESH``, ``NEURAL_REFRESH``).
        variants: extra replay arms for the frontier, ``(label, model, update)``; each runs
            as arm ``A3:<label>`` for that model, drawing from the same buffer.
        warm_start: add the neural warm-start arms, each trained every step for the full
            fit's epochs at its learning rate, one pass per epoch over every window through t
            with a full lookback: ``WS0`` from fresh weights, ``WS`` from its current weights,
            ``WS:sp`` from them after shrink-and-perturb (``warm_start_shrink``,
            ``warm_start_perturb``). WS against WS0 (same windows, same passes) is the
            warm-start penalty; WS:sp against WS is what shrink-and-perturb recovers of it.
            WS0 is not A1: the full fit draws a fixed number of windows per epoch and refits
            after a calibration fit.
        reference: run A1, the reference every ratio is taken against. Off only for a run of
            extra arms that ``continual_report.merge_runs`` later joins to a run with A1 on
            the same seeds (its A0 rows prove the same warm fit); such a run has no summary.
    """

    warm_days: int = 56
    steps: int | None = None
    target: Target = "censored"
    profile: str = "bench"
    buffer_days: float = 7.0
    buffer_mode: Literal["stratified", "reservoir"] = "stratified"
    retrain_every: int = 7
    probe_weeks: int = 3
    probe_series: int = 500
    lgbm_update: UpdateConfig = LGBM_REFRESH
    neural_update: UpdateConfig = NEURAL_REFRESH
    variants: tuple[tuple[str, str, UpdateConfig], ...] = ()
    warm_start: bool = False
    # Ash & Adams (2020) shrink by 0.3-0.6 and add small noise; init weights here have a
    # standard deviation of ~0.05 (fan-in 128-256).
    warm_start_shrink: float = 0.5
    warm_start_perturb: float = 0.01
    reference: bool = True

    def __post_init__(self) -> None:
        if self.warm_days < 28 + HORIZON:
            raise ValueError(
                f"warm_days must be >= {28 + HORIZON} (28-day features plus a calibration week)"
            )
        if self.profile not in ("default", "bench", "smoke"):
            raise ValueError(f"unknown profile {self.profile!r}")


def model_config(name: str, profile: str, *, n_series: int, seed: int) -> Any:
    """The full-fit config of ``name`` for a protocol profile.

    ``bench`` keeps each model's architecture but trims it so 6 arms x ~30 steps fit a
    shared 2-core machine: LightGBM as shipped (100 trees is already cheap); the neural
    net 128 wide, 3 epochs of 32 samples per series (the default is 5 x 400k).
    """
    base = default_config(name, "smoke" if profile == "smoke" else "default")
    if profile == "bench" and name == "neural":
        base = replace(
            base,
            hidden=128,
            epochs=3,
            samples_per_epoch=max(8192, 32 * n_series),
            batch_size=1024,
        )
    return replace(base, seed=seed)


@dataclass
class _Cost:
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    peak_mb: float = 0.0


@contextmanager
def measure_cost() -> Iterator[_Cost]:
    """Wall seconds, CPU seconds of the process (all threads) and the peak RSS rise (MB)
    above the start of the block (sampled).

    CPU time barely moves when other jobs share the cores, where wall time does; the
    protocol reports both.
    """
    cost = _Cost()
    start_mb = _rss_mb()
    peak = [start_mb]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.05):
            peak[0] = max(peak[0], _rss_mb())

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        yield cost
    finally:
        cost.seconds = time.perf_counter() - t0
        cost.cpu_seconds = time.process_time() - c0
        stop.set()
        thread.join()
        cost.peak_mb = max(peak[0], _rss_mb()) - start_mb


def _timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[Any, np.ndarray]:
    """``fn(*args, **kwargs)`` and its (wall, CPU) seconds."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return out, np.array([time.perf_counter() - t0, time.process_time() - c0])


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * resource.getpagesize() / 2**20
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_history(
    data_dir: Path, *, series: int | None, seed: int = 0, hourly: bool = False
) -> pl.LazyFrame:
    """Train (and eval, when present) daily rows of ``series`` sampled series.

    The hourly lists are dropped unless ``hourly`` (stage 1 reads them; features never do).
    """
    daily = scan_days(data_dir)
    if not hourly:
        daily = daily.drop("hours_sale", "hours_stock_status")
    return sample_series(daily, series, seed=seed)


def make_probes(
    panel: pl.DataFrame, actuals: pl.DataFrame, t0: date, *, weeks: int, n_series: int, seed: int
) -> list[Probe]:
    """Fixed probe tasks at weekly origins t0-14, t0-21, ... inside the warm period.

    Their targets lie in the warm model's training span (the last week before t0 is its
    calibration window, so it is skipped): forgetting is a rise in error on learned data.
    """
    ids = panel["series_id"].unique().sort()
    keep = ids.sample(min(n_series, len(ids)), seed=seed).implode()
    sub = panel.filter(pl.col("series_id").is_in(keep))
    probes = []
    for k in range(weeks):
        origin = t0 - timedelta(days=7 * (k + 2))
        if origin - timedelta(days=28) < first_day(panel):
            break
        end = origin + timedelta(days=HORIZON)
        act = clean_rows(actuals.filter((pl.col("dt") > origin) & (pl.col("dt") <= end)))
        probes.append(
            Probe(
                origin,
                with_origin(sub, origin),
                act.select("series_id", "dt", pl.col("sale_amount").alias("actual")),
            )
        )
    return probes


def score_origin(
    model: Forecaster, panel: pl.DataFrame, actuals: pl.DataFrame, origin: date
) -> dict[str, float]:
    """Forecast origin+1..origin+7 and score it: published protocol on clean rows.

    Reads ``sale_amount`` and ``stock_hour6_22_cnt`` of the scored days from ``actuals``.
    """
    pred = model.predict(with_origin(panel, origin))
    scored = pred.join(actuals, on=["series_id", "dt"])
    return score_forecast(clean_rows(scored))


def evaluate_continual(
    data_dir: Path,
    *,
    warm_days: int = 56,
    seeds: int = 1,
    first_seed: int = 0,
    series: int | None = None,
    models: tuple[str, ...] = ("lgbm", "neural"),
    arms: tuple[str, ...] = ARMS,
    config: ContinualConfig | None = None,
    recovery: Recovery | None = None,
    progress: Any = None,
) -> list[dict[str, Any]]:
    """Run the continual protocol and return its JSON rows (DESIGN.md section 4).

    Args:
        data_dir: a dataset folder in the hub layout.
        warm_days: days in the warm start (overrides ``config.warm_days``).
        seeds: repeats with seeds first_seed..first_seed+seeds-1 (models, buffer and update
            draws); runs of different seeds can be merged with ``continual_report.merge``.
        first_seed: the first seed.
        series: a seeded subsample of this many series (None: all).
        models: ``"lgbm"`` and/or ``"neural"``.
        arms: a subset of :data:`ARMS`; ``A1`` is always run (every ratio is to it) unless
            ``config.reference`` is off.
        config: protocol options.
        recovery: stage-1 function for ``target="recovered"``.
        progress: optional ``callable(str)`` for one line per step.

    Returns:
        ``scope="step"`` rows (one per seed, model, arm and step) with acc, wpe, wape,
        probe_wape, forgetting, stability_gap, seconds, work, peak_mb, train_max_dt; then
        ``scope="summary"`` rows per model and arm with means and ratios to A1.
    """
    from research.continual.report import summarise

    cfg = replace(config or ContinualConfig(), warm_days=warm_days)
    unknown = set(arms) - set(ARMS)
    if unknown:
        raise ValueError(f"unknown arms {sorted(unknown)}; choose from {ARMS}")
    arms = tuple(a for a in ARMS if a in {*arms, *(("A1",) if cfg.reference else ())})
    if "A3w" in arms and "A1" not in arms:
        raise ValueError("A3w takes over A1's weekly fit: it needs the reference arm A1")
    history = load_history(data_dir, series=series, hourly=cfg.target == "recovered")
    panel, spec = make_panel(history, None, target=cfg.target, recovery=recovery)
    actuals = panel.select("series_id", "dt", "sale_amount", "stock_hour6_22_cnt")
    days = panel["dt"].unique().sort().to_list()
    if len(days) < cfg.warm_days + HORIZON + 1:
        raise DataError(
            f"need at least {cfg.warm_days + HORIZON + 1} days for warm {cfg.warm_days}; the data has {len(days)}"
        )
    origins = days[cfg.warm_days : len(days) - HORIZON]
    origins = origins[: cfg.steps] if cfg.steps else origins
    n_series = panel["series_id"].n_unique()
    rows: list[dict[str, Any]] = []
    for seed in range(first_seed, first_seed + seeds):
        for name in models:
            rows += _run_model(
                name,
                panel,
                spec,
                actuals,
                days[cfg.warm_days - 1],
                origins,
                arms,
                cfg,
                n_series=n_series,
                seed=seed,
                progress=progress,
            )
    meta = {
        "series": n_series,
        "target": cfg.target,
        "warm_days": cfg.warm_days,
        "profile": cfg.profile,
    }
    return [{**r, **meta} for r in rows] + summarise(rows, meta)


def _run_model(
    name: str,
    panel: pl.DataFrame,
    spec: Any,
    actuals: pl.DataFrame,
    t0: date,
    origins: list[date],
    arms: tuple[str, ...],
    cfg: ContinualConfig,
    *,
    n_series: int,
    seed: int,
    progress: Any,
) -> list[dict[str, Any]]:
    mcfg = model_config(name, cfg.profile, n_series=n_series, seed=seed)
    upd = replace(cfg.lgbm_update if name == "lgbm" else cfg.neural_update, seed=seed)

    def full_fit(through: date) -> Forecaster:
        return fit_model(
            name, panel.filter(pl.col("dt") <= through), spec, target=cfg.target, config=mcfg
        )

    with measure_cost() as warm_cost:
        warm = full_fit(t0)
    probes = make_probes(
        panel, actuals, t0, weeks=cfg.probe_weeks, n_series=cfg.probe_series, seed=seed
    )
    warm_probe = [probe_wape(warm, [p]) for p in probes]
    buffer = ReplayBuffer(
        BufferConfig(
            capacity=max(1, round(cfg.buffer_days * n_series)),
            mode=cfg.buffer_mode,
            seed=seed,
        )
    )
    buffer.add(window_keys(panel, days=pl.col("dt") <= t0, group_column=buffer.config.group_column))
    variants = {f"A3:{label}": replace(u, seed=seed) for label, m, u in cfg.variants if m == name}
    warm_starts: dict[str, UpdateConfig] = {}
    if cfg.warm_start and name == "neural":
        warm_starts = {
            "WS": full_recipe(warm, seed=seed),
            "WS:sp": full_recipe(
                warm, seed=seed, shrink=cfg.warm_start_shrink, perturb=cfg.warm_start_perturb
            ),
        }
    arms = (*arms, *variants, *(("WS0", *warm_starts) if warm_starts else ()))
    # Update arms own a copy each, so they can update in place (no copy in their cost).
    in_place = ("A2", "A3", "A3w", *variants, *warm_starts)
    state = {a: copy_model(warm) if a in in_place else warm for a in arms}
    full_work = full_fit_work(warm)
    # The last target day each arm's current model has trained on (the no-leakage record).
    trained_max = dict.fromkeys(arms, t0)
    out: list[dict[str, Any]] = [
        {
            "task": "continual",
            "method": f"{name}/warm",
            "model": name,
            "arm": "warm",
            "scope": "warm",
            "seed": seed,
            "origin": t0,
            "train_max_dt": t0,
            "seconds": warm_cost.seconds,
            "cpu_seconds": warm_cost.cpu_seconds,
            "work": full_work,
            "probe_wape": float(np.mean(warm_probe)) if probes else None,
        }
    ]
    replay_arms = ("A3", "A3w", *variants)
    days0 = first_day(panel)
    for step, t in enumerate(origins, start=1):
        # The buffer bookkeeping (new keys, replay draw, insertion) is part of an update's
        # cost, so each arm that needs it is charged for it; a full fit needs none of it.
        new, keys_s = _timed(
            window_keys, panel, days=pl.col("dt") == t, group_column=buffer.config.group_column
        )
        overhead = {"A2": keys_s}
        # Every replay draw happens before the new day enters the buffer: replay is the past.
        sets = {"A2": (upd, new)}
        for arm, u in {"A3": upd, **variants}.items():
            drawn, draw_s = _timed(refresh_set, buffer, new, through=t, replay_ratio=u.replay_ratio)
            sets[arm] = (u, drawn)
            overhead[arm] = keys_s + draw_s
        # A draw is a function of (seed, day), so A3w's would equal A3's: it is shared.
        sets["A3w"], overhead["A3w"] = sets["A3"], overhead["A3"]
        _, add_s = _timed(buffer.add, new)
        for arm in (*replay_arms, "A4"):
            overhead[arm] = overhead.get(arm, keys_s) + add_s
        retrain_day = step % cfg.retrain_every == 0
        a1_cost: dict[str, float] = {}  # set by A1, which runs before A3w
        for arm in arms:
            before = probe_wape(state[arm], probes)
            info: dict[str, Any] = {"work": 0.0, "probe_curve": [], "windows": 0}
            with measure_cost() as cost:
                if arm == "A1" or (arm == "A1w" and retrain_day):
                    state[arm] = full_fit(t)
                    info["work"] = full_fit_work(state[arm])
                    trained_max[arm] = t  # the fit's calibration window ends at t
                elif arm == "A3w" and retrain_day:
                    # The weekly retrain is A1's fit of this step (same data, same seed), so
                    # it is taken over rather than fit twice, and charged at A1's cost.
                    state[arm] = copy_model(state["A1"])
                    info["work"] = full_fit_work(state[arm])
                    trained_max[arm] = t
                elif arm in sets:
                    u, windows = sets[arm]
                    state[arm], info = update_model(
                        state[arm],
                        panel,
                        windows,
                        through=t,
                        config=u,
                        probes=probes,
                        inplace=True,
                        # Replayable windows: their rows' scores are kept for the next draw.
                        replay_pool=buffer.windows_ if arm in replay_arms else None,
                    )
                    trained_max[arm] = max(trained_max[arm], last_day(windows))
                elif arm in warm_starts or arm == "WS0":
                    # Every window through t with a full lookback, as the full fit draws.
                    first = days0 + timedelta(days=warm.config.lookback + HORIZON - 1)
                    every = window_keys(
                        panel,
                        days=pl.col("dt").is_between(first, t),
                        group_column=buffer.config.group_column,
                    )
                    if arm == "WS0":
                        state[arm], info = retrain_on_windows(
                            state[arm], panel, every, through=t, seed=seed * 1000 + step
                        )
                    else:  # a new draw of shuffling (and noise) each step
                        recipe = replace(warm_starts[arm], seed=seed * 1000 + step)
                        state[arm], info = update_model(
                            state[arm], panel, every, through=t, config=recipe, inplace=True
                        )
                    trained_max[arm] = last_day(every)
                elif arm == "A4":
                    pool = buffer.windows_.select("series_id", "dt")
                    state[arm], info = retrain_on_windows(
                        state[arm], panel, pool, through=t, seed=seed
                    )
                    trained_max[arm] = last_day(pool)
            if arm == "A3w" and retrain_day:
                charged = a1_cost
            elif info["work"]:
                # Wall and CPU time of the update or fit alone: probe scoring (the
                # stability curve) is subtracted, the buffer bookkeeping it needed is added.
                extra = overhead.get(arm, np.zeros(2))
                charged = {
                    "seconds": cost.seconds - info.get("probe_seconds", 0.0) + extra[0],
                    "cpu_seconds": cost.cpu_seconds - info.get("probe_cpu_seconds", 0.0) + extra[1],
                    "peak_mb": cost.peak_mb,
                }
            else:
                charged = {"seconds": 0.0, "cpu_seconds": 0.0, "peak_mb": 0.0}
            if arm == "A1":
                a1_cost = charged
            score = score_origin(state[arm], panel, actuals, t)
            per_probe = [probe_wape(state[arm], [p]) for p in probes]
            after = float(np.mean(per_probe)) if probes else float("nan")
            curve = [*info.get("probe_curve", []), after]
            out.append(
                {
                    "task": "continual",
                    "method": f"{name}/{arm}",
                    "model": name,
                    "arm": arm,
                    "scope": "step",
                    "seed": seed,
                    "step": step,
                    "origin": t,
                    "train_max_dt": trained_max[arm],
                    "acc": score.get("acc"),
                    "wpe": score.get("wpe"),
                    "wape": score.get("wape"),
                    "rows": score.get("rows"),
                    "probe_wape": after,
                    # Worst rise over the fixed probes, against the warm model (the common start).
                    "forgetting": max(
                        (a - b for a, b in zip(per_probe, warm_probe, strict=True)),
                        default=float("nan"),
                    ),
                    # Worst probe WAPE seen during the update (every probe_every trees or
                    # optimizer steps) above its start.
                    "stability_gap": max(0.0, max(curve) - before) if probes else float("nan"),
                    **charged,
                    "work": info["work"],
                    "windows": info.get("windows", 0),
                    # Other jobs share the machine: the 1-minute load when the step ended.
                    "loadavg": os.getloadavg()[0],
                }
            )
            if progress:
                r = out[-1]
                progress(
                    f"seed {seed} {name} {arm} step {step} {t}: acc {r['acc']:.4f} wpe {r['wpe']:+.4f} "
                    f"{r['seconds']:.1f}s probe {after:.4f}"
                )
    return out
