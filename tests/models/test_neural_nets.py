"""NeuralConfig.nets: several seeds trained in one fit, their forecasts averaged."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl

from models.forecasters import default_config, make_forecaster
from pipelines.data.io import scan_split
from pipelines.training.fit import make_panel


def test_nets_average_the_forecasts_of_their_seeds(sim_dir: Path) -> None:
    panel, _ = make_panel(
        scan_split(sim_dir, "train"), scan_split(sim_dir, "eval"), target="censored"
    )
    cfg = replace(default_config("neural", "smoke"), nets=2)
    model = make_forecaster("neural", cfg, target="censored").fit(panel)
    assert len(model.extra_nets_) == 1  # type: ignore[attr-defined]
    both = model._predict_point(panel)  # type: ignore[attr-defined]
    nets = [model.net_, *model.extra_nets_]  # type: ignore[attr-defined]
    alone = []
    for net in nets:
        model.net_, model.extra_nets_ = net, []  # type: ignore[attr-defined]
        alone.append(model._predict_point(panel)["yhat"].to_numpy())  # type: ignore[attr-defined]
    assert not np.allclose(alone[0], alone[1])  # different seeds, different nets
    np.testing.assert_allclose(both["yhat"].to_numpy(), np.mean(alone, axis=0), rtol=1e-6)
    assert both.filter(pl.col("yhat") < 0).height == 0
