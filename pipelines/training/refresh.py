"""The daily refresh job: update the champion's forecaster with replay (arm A3).

:func:`refresh_model` is the in-memory core the daily job's train step calls; :func:`refresh`
is the ``freshcast refresh`` command's job (champion or a model file in, refreshed model file
out). The replay buffer lives under ``data/replay/<model>/`` as ``windows.parquet`` plus
``manifest.json``; the manifest is written last, so it is the commit point of a refresh.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from models.continual.replay import BufferConfig, ReplayBuffer, refresh_set, window_keys
from models.continual.strategies import update_model
from models.forecasters import Forecaster
from models.forecasters.neural import NeuralForecaster
from models.forecasters.panel import first_day, with_origin
from models.forecasters.update import LGBM_REFRESH, NEURAL_REFRESH, UpdateConfig
from models.metrics import clean_rows, score_forecast
from pipelines.data import io
from pipelines.errors import DataError, FreshcastError
from pipelines.features.config import feature_config_of
from pipelines.features.panel import make_panel
from pipelines.settings import Settings

STAGE1_COLUMNS = ("demand_amount", "imputed_hours")


@dataclass(frozen=True)
class RefreshConfig:
    """Refresh options: the protocol's A3 defaults, plus the safety net.

    Attributes:
        buffer_days: buffer capacity in days' worth of windows (x number of series).
        lgbm_update, neural_update: the update strategy per model, replay ratio included.
        retrain_every_days: ask for a full retrain this many days after the last one.
        drift_ratio: ask for a full retrain when the pre-update WAPE on the newest week
            exceeds this multiple of the WAPE measured at the first refresh after a full fit.
    """

    buffer_days: float = 7.0
    # The protocol's A3, tuned by it (benchmarks/continual.py).
    lgbm_update: UpdateConfig = LGBM_REFRESH
    neural_update: UpdateConfig = NEURAL_REFRESH
    retrain_every_days: int = 7
    drift_ratio: float = 1.2


def load_buffer(buffer_dir: Path) -> ReplayBuffer | None:
    """The persisted buffer in ``buffer_dir``, or None when there is none yet."""
    manifest_path = buffer_dir / "manifest.json"
    if not manifest_path.is_file():
        return None
    manifest = io.read_json(manifest_path)
    windows = io.scan_parquet(buffer_dir / "windows.parquet").collect()
    try:
        return ReplayBuffer.from_frames(windows, manifest)
    except ValueError as exc:
        raise DataError(f"replay buffer is inconsistent ({exc})", file=buffer_dir) from None


def save_buffer(buffer: ReplayBuffer, buffer_dir: Path) -> Path:
    """Persist atomically: windows first, then the manifest (the commit point)."""
    windows, manifest = buffer.to_frames()
    io.write_parquet(windows, buffer_dir / "windows.parquet")
    return io.write_json(manifest, buffer_dir / "manifest.json")


def _panel(model: Forecaster, history: pl.DataFrame) -> pl.DataFrame:
    """The model's feature panel over history, stage-1 columns passed through the recovery seam."""
    fcfg = feature_config_of(model.metadata_)
    target = model.target_
    recovery = None
    if target == "recovered":
        missing = [c for c in STAGE1_COLUMNS if c not in history.columns]
        if missing:
            raise DataError(
                f"a recovered-target model needs stage-1 columns {missing} joined on history"
            )
        rec = history.select("series_id", "dt", *STAGE1_COLUMNS)

        def recovery(frame: pl.LazyFrame) -> pl.DataFrame:
            return (
                frame.select("series_id", "dt")
                .collect()
                .join(rec, on=["series_id", "dt"], how="left")
            )

    hist = history.drop(STAGE1_COLUMNS, "hours_sale", "hours_stock_status", strict=False).lazy()
    panel, _ = make_panel(hist, None, target=target, feature_config=fcfg, recovery=recovery)
    return panel


def refresh_model(
    model: Forecaster,
    history: pl.DataFrame,
    *,
    through: date,
    buffer_dir: Path,
    seed: int = 0,
    config: RefreshConfig | None = None,
    skip_when_due: bool = False,
) -> Forecaster:
    """Update ``model`` with the days after its last update through ``through`` (arm A3).

    Args:
        model: a fitted ``lgbm`` or ``neural`` forecaster (the champion's).
        history: daily rows (``series_id``, hub columns, ``dt`` as Date); for a recovered-target
            model also ``demand_amount`` and ``imputed_hours``. Rows after ``through`` are
            dropped first: the leakage guard.
        through: the business date; the refresh trains on windows ending on or before it.
        buffer_dir: the model's replay folder (e.g. ``data/replay/lgbm``); created on first use
            from the windows up to the model's ``train_end_``.
        seed: buffer and update seed (a buffer already on disk keeps its own seed).
        config: refresh options.
        skip_when_due: when the safety net already asks for a full retrain (periodic or
            drift, both judged before the update), do not update: the caller retrains, so the
            update would be thrown away. The buffer still takes the new days.

    Returns:
        A new forecaster (the input is not mutated) with ``train_end_ = through`` and
        ``refresh_log_`` extended by one entry: ``through``, ``new_windows``, ``replay_windows``,
        ``work``, ``seconds``, ``pre_wape``, ``needs_retrain`` (periodic or drift),
        ``updated`` and ``level`` (the neural level anchor). A skipped update returns a copy
        of the input, its weights and ``train_end_`` unchanged, with that entry (``updated``
        false, no replayed windows). When there is no new day, the input model is returned
        unchanged.
    """
    cfg = config or RefreshConfig()
    started = time.perf_counter()
    history = history.filter(pl.col("dt") <= through)
    panel = _panel(model, history)
    n_series = panel["series_id"].n_unique()
    buffer = load_buffer(buffer_dir)
    if buffer is None:
        buffer = ReplayBuffer(
            BufferConfig(capacity=max(1, round(cfg.buffer_days * n_series)), seed=seed)
        )
        buffer.add(
            window_keys(
                panel,
                days=pl.col("dt") <= model.train_end_,
                group_column=buffer.config.group_column,
            )
        )
    trained_end = model.train_end_
    # The buffer takes every day it has not seen; the model learns, as new, every day it has
    # not trained on. The two differ when a refreshed challenger was not promoted (its staged
    # buffer is a day ahead of the champion) or after a retrain that left the buffer behind.
    buffer_end = buffer.last_dt_ or trained_end
    offered = window_keys(
        panel,
        days=(pl.col("dt") > min(buffer_end, trained_end)) & (pl.col("dt") <= through),
        group_column=buffer.config.group_column,
    )
    new = offered.filter(pl.col("dt") > trained_end)
    if new.height == 0:
        return model
    upd = replace(cfg.lgbm_update if model.name == "lgbm" else cfg.neural_update, seed=seed)
    windows = refresh_set(buffer, new, through=through, replay_ratio=upd.replay_ratio)
    # After the draw (replay is strictly the past), before the update: the update keeps the
    # cached scores of exactly the windows the buffer now holds. Saved only after the update.
    # Only days it has not been offered: a re-offered window it dropped would count twice
    # in its strata's shares.
    buffer.add(offered.filter(pl.col("dt") > buffer_end))
    # Prequential check before learning the new days: the drift trigger's signal.
    pre = _pre_wape(model, panel, trained_end, through)
    log = model.refresh_log_
    full_end = log[0]["full_fit_end"] if log else str(model.train_end_)
    # Baseline: the mean prequential WAPE of the refreshes since the last full fit.
    past = [e["pre_wape"] for e in log if e["pre_wape"] == e["pre_wape"]]
    baseline = sum(past) / len(past) if past else pre
    periodic = (through - date.fromisoformat(full_end)).days >= cfg.retrain_every_days
    drift = pre > cfg.drift_ratio * baseline if baseline == baseline and pre == pre else False
    due = bool(periodic or drift)
    skipped = due and skip_when_due
    if skipped:
        updated, info = copy.copy(model), {"work": 0.0}
    else:
        updated, info = update_model(
            model, panel, windows, through=through, config=upd, replay_pool=buffer.windows_
        )
    save_buffer(buffer, buffer_dir)
    updated.log_refresh(
        {
            "through": through.isoformat(),
            "full_fit_end": full_end,
            "new_windows": new.height,
            "replay_windows": 0 if skipped else int(windows["replay"].sum()),
            "work": info["work"],
            "seconds": time.perf_counter() - started,
            "pre_wape": pre,
            "baseline_wape": baseline,
            "needs_retrain": due,
            "reason": "drift" if drift else ("periodic" if periodic else ""),
            "updated": not skipped,
            # The neural forecast-level anchor after this refresh (1: none applied).
            "level": updated.level_ if isinstance(updated, NeuralForecaster) else 1.0,
        }
    )
    return updated


def _pre_wape(model: Forecaster, panel: pl.DataFrame, since: date, through: date) -> float:
    """Prequential WAPE: the model's forecast from ``since`` scored on the new days, clean rows.

    The model has seen nothing after ``since``, so this is out-of-sample: the drift signal.
    """
    origin = since
    if origin < first_day(panel) + timedelta(days=28):
        return float("nan")
    pred = model.predict(with_origin(panel, origin))
    act = panel.filter((pl.col("dt") > origin) & (pl.col("dt") <= through)).select(
        "series_id", "dt", "sale_amount", "stock_hour6_22_cnt"
    )
    return float(
        score_forecast(clean_rows(pred.join(act, on=["series_id", "dt"]))).get("wape", float("nan"))
    )


def refresh(
    settings: Settings, data_dir: Path, through: date, *, model_path: Path
) -> tuple[Forecaster, dict[str, Any]]:
    """The ``freshcast refresh --model FILE`` job: refresh a model file through ``through``.

    History is the dataset's rows up to ``through``, with stage 1 run on them for a
    recovered-target model. Writes ``data/models/<through>/refreshed.pkl`` and nothing else:
    the champion's refresh, registered as challenger and gated, is the daily refresh job
    (:func:`pipelines.jobs.daily.refresh_job`), above the registry this stage cannot read.
    """
    from pipelines.features.panel import attach_recovery
    from pipelines.training.fit import load_model

    model = load_model(model_path)
    if model.name not in ("lgbm", "neural"):
        raise FreshcastError(
            f"refresh supports lgbm and neural models, not {model.name!r}; retrain instead"
        )
    daily = io.scan_days(data_dir).filter(pl.col("dt") <= through)
    if daily.select(pl.len()).collect().item() == 0:
        raise DataError(f"no rows on or before {through}", file=data_dir)
    target = model.target_
    history = attach_recovery(daily, target=target).collect()
    buffer_dir = settings.layout.replay(model.name)
    updated = refresh_model(model, history, through=through, buffer_dir=buffer_dir)
    out = settings.layout.refreshed_model(through.isoformat())
    io.write_bytes(updated.save(), out)
    last = (updated.refresh_log_ or [{}])[-1] if updated is not model else {"new_windows": 0}
    return updated, {"path": str(out), "buffer": str(buffer_dir), **last}
