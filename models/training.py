"""The one way freshcast builds a Lightning trainer: CPU, quiet, nothing written to disk."""

from __future__ import annotations

from typing import Any

import lightning as L


def cpu_trainer(**options: Any) -> L.Trainer:
    """A Trainer on one CPU device with no logger, checkpoints, progress bar or summary.

    Jobs report their own progress and the registry keeps the model, so Lightning's
    defaults (``lightning_logs/``, checkpoints, bars) would only add noise and files.
    ``options`` (``max_epochs``, ``max_steps``, ``callbacks``, …) pass through.
    """
    return L.Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **options,
    )
