"""Stage-2 features, read top-down: configuration, window features, the feature frame, the panel.

* :mod:`~pipelines.features.config`: :class:`FeatureConfig` (which windows) and
  :class:`FeatureSpec` (each column's role: origin or target day).
* :mod:`~pipelines.features.windows`: lags, rolling and expanding means of the target and
  of stockouts, from earlier days of the same series only.
* :mod:`~pipelines.features.build`: calendar, known-future covariates and static ids, and
  :func:`build_features` / :func:`build_panel`, which compose every step with ``.pipe()``.
* :mod:`~pipelines.features.panel`: :func:`make_panel`, history with stage 1's recovered
  demand joined on, plus the forecast days: what training, refresh and serving read.
"""

from pipelines.features.build import build_features, build_panel
from pipelines.features.config import FeatureConfig, FeatureSpec
from pipelines.features.panel import Recovery, make_panel, sample_series, split_stage1

__all__ = [
    "FeatureConfig",
    "FeatureSpec",
    "Recovery",
    "build_features",
    "build_panel",
    "make_panel",
    "sample_series",
    "split_stage1",
]
