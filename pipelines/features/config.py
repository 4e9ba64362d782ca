"""The feature set's configuration and names: which windows to build, and each column's role."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from models.constants import HORIZON
from pipelines.data.contract import BUSINESS_HOURS, HIERARCHY_COLUMNS

TARGET_COLUMN = "y"


COVARIATE_WINDOW = 28  # days of known-future covariates in the relative-discount window


BUSINESS_HOUR_COUNT = len(BUSINESS_HOURS)


# Columns derived from the realised day; they are unknown for forecast days and must only
# ever be read shifted (the past). `build_panel` nulls them on forecast rows.
PAST_ONLY_COLUMNS: tuple[str, ...] = (
    TARGET_COLUMN,
    "sale_amount",
    "stock_hour6_22_cnt",
    "imputed_hours",
    "demand_amount",
)


@dataclass(frozen=True)
class FeatureConfig:
    """Which windows to build. Frozen; the defaults are the measured production set."""

    lags: tuple[int, ...] = (1, 2, 3, 4, 5, 6)
    seasonal_lags: tuple[int, ...] = (7, 14, 21, 28)
    windows: tuple[int, ...] = (7, 14, 28)
    stockout_windows: tuple[int, ...] = (7, 28)

    @property
    def lookback(self) -> int:
        """Days of history that any lag or window of a row reads."""
        return max(
            *self.lags, *self.seasonal_lags, *self.windows, *self.stockout_windows, COVARIATE_WINDOW
        )

    def __post_init__(self) -> None:
        if any(lag < 1 for lag in self.lags):
            raise ValueError("lags must be >= 1 (lag 0 would be the target itself)")
        # Same-weekday lags must reach back past the whole horizon to be known at horizon 7.
        if any(lag < HORIZON for lag in self.seasonal_lags):
            raise ValueError(f"seasonal lags must be >= {HORIZON}")


def feature_config_of(metadata: Mapping[str, Any]) -> FeatureConfig:
    """The feature configuration a model was fit with, from its ``metadata_`` (default if none)."""
    recorded = metadata.get("feature_config", {})
    return FeatureConfig(**{k: tuple(v) for k, v in recorded.items()})


@dataclass(frozen=True)
class FeatureSpec:
    """The feature columns a model reads, by role. Stored inside fitted models."""

    origin: tuple[str, ...]
    target_day: tuple[str, ...]
    categorical: tuple[str, ...] = field(default=HIERARCHY_COLUMNS)

    @property
    def all(self) -> tuple[str, ...]:
        return (*self.origin, *self.target_day, *self.categorical)
