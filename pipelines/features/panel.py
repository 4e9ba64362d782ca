"""The forecasting panel: history (with stage 1's recovered demand) and the forecast days.

:func:`make_panel` is what training, refresh, backtests and serving call; the recovery
seam (:data:`Recovery`) lets a caller hand in stage 1's output instead of running it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import polars as pl

from models.constants import Target
from pipelines.errors import FreshcastError
from pipelines.features.build import add_static_features, build_features, build_panel
from pipelines.features.config import FeatureConfig, FeatureSpec

# A stage-1 recovery: daily rows in, series_id/dt/demand_amount/imputed_hours out.
Recovery = Callable[[pl.LazyFrame], pl.DataFrame]
# Stage 1's columns as the daily job joins them onto history.
STAGE1_COLUMNS = ("demand_amount", "imputed_hours")


def default_recovery(history: pl.LazyFrame) -> pl.DataFrame:
    """Stage 1's default method (:func:`pipelines.recovery.recover.recover_demand`)."""
    try:
        from pipelines.recovery.recover import recover_demand
    except ImportError as exc:  # stage 1 lives in its own module; say so plainly
        raise FreshcastError(
            f"the recovered target needs stage 1 (pipelines.recovery.recover): {exc}"
        ) from None
    return recover_demand(history)


def sample_series(frame: pl.LazyFrame, n: int | None, *, seed: int = 0) -> pl.LazyFrame:
    """Keep ``n`` series chosen at random (all when ``n`` is None)."""
    if n is None:
        return frame
    ids = frame.select(pl.col("series_id").unique().sort()).collect()["series_id"]
    keep = ids.sample(min(n, len(ids)), seed=seed)
    return frame.filter(pl.col("series_id").is_in(keep.implode()))


def attach_recovery(
    history: pl.LazyFrame, *, target: Target, recovery: Recovery | None = None
) -> pl.LazyFrame:
    """Join stage-1 ``demand_amount`` and ``imputed_hours`` onto history rows (recovered only).

    Recovery runs on history only: running it over forecast days would read their sales.
    """
    if target == "censored":
        return history
    rec = (recovery or default_recovery)(history)
    cols = rec.select("series_id", "dt", "demand_amount", pl.col("imputed_hours").cast(pl.Int32))
    return history.join(cols.lazy(), on=["series_id", "dt"], how="left")


def make_panel(
    history: pl.LazyFrame,
    future: pl.LazyFrame | None,
    *,
    target: Target,
    feature_config: FeatureConfig | None = None,
    recovery: Recovery | None = None,
    features_from: date | None = None,
) -> tuple[pl.DataFrame, FeatureSpec]:
    """History (+ recovery) and forecast days, with every feature, collected.

    ``features_from``: compute features only for the days from then on (earlier rows keep
    their data columns, with null features). A forecast reads features on its forecast
    days alone, and this cuts the feature work to a 28-day window (see ``build_features``).
    """
    hist = attach_recovery(history, target=target, recovery=recovery)
    # Collected once: the windowed path reads the panel twice (features, then early rows).
    panel = build_panel(hist, future, target=target).collect().lazy()
    features, spec = build_features(panel, config=feature_config, features_from=features_from)
    if features_from is None:
        return features.collect(), spec
    # Same dtypes as the featured rows (the ids become categorical codes), null features.
    early = panel.filter(pl.col("dt") < features_from).pipe(add_static_features)
    stitched = pl.concat([early, features], how="diagonal").sort("series_id", "dt")
    return stitched.collect(), spec


def split_stage1(history: pl.DataFrame) -> tuple[pl.LazyFrame, Recovery]:
    """Split stage-1 columns off history and hand them back through the recovery seam."""
    recovered = history.select("series_id", "dt", *STAGE1_COLUMNS)

    def recovery(frame: pl.LazyFrame) -> pl.DataFrame:
        keys = frame.select("series_id", "dt").collect()
        return keys.join(recovered, on=["series_id", "dt"], how="left")

    return history.drop(STAGE1_COLUMNS, strict=False).lazy(), recovery
