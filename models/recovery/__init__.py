"""Stage 1: recover latent demand in stockout hours.

Methods share the :class:`~models.recovery.base.Recoverer` interface; build one by name
with :func:`make_recoverer`. Imports of the heavy learners (LightGBM, torch) are deferred
to :func:`make_recoverer`, so importing this package stays cheap.
"""

from __future__ import annotations

from typing import Any

from models.recovery.base import (
    DayBlock,
    Recoverer,
    SeriesMemory,
    enforce_invariants,
    to_day_block,
)

METHODS: tuple[str, ...] = ("profile", "lgbm", "neural")
DEFAULT_METHOD = "lgbm"

__all__ = [
    "DEFAULT_METHOD",
    "METHODS",
    "DayBlock",
    "Recoverer",
    "SeriesMemory",
    "enforce_invariants",
    "make_recoverer",
    "to_day_block",
]


def make_recoverer(name: str, **opts: Any) -> Recoverer:
    """A fresh, unfitted recoverer by method name.

    Args:
        name: one of :data:`METHODS`.
        **opts: keyword options of that method's class (e.g. ``n_estimators=50``).

    Raises:
        ValueError: for an unknown name.
    """
    if name == "profile":
        from models.recovery.profile import ProfileRecoverer

        return ProfileRecoverer(**opts)
    if name == "lgbm":
        from models.recovery.lgbm import LGBMRecoverer

        return LGBMRecoverer(**opts)
    if name == "neural":
        from models.recovery.neural import NeuralRecoverer

        return NeuralRecoverer(**opts)
    raise ValueError(f"unknown recovery method {name!r}; choose one of {', '.join(METHODS)}")
