"""Shared fixtures: a seeded simulated dataset, and the real split when configured."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REAL_ENV = "FRESHCAST_REAL_DATA"
# Where CI and this project's machines keep the real split: ../shared beside the checkout.
SIBLING_REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "frn50k"


@pytest.fixture(scope="session")
def sim_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small seeded simulated dataset: train, eval and truth parquet files."""
    from pipelines.data.simulate import SimulationConfig, write_simulation

    out = tmp_path_factory.mktemp("sim")
    write_simulation(SimulationConfig(series=60, days=42, eval_days=7, seed=7), out)
    return out


@pytest.fixture(scope="session")
def real_dir() -> Path:
    """The real train split named by FRESHCAST_REAL_DATA, else ../shared/data/frn50k.

    Skips when neither is there (a user's fresh clone has no real data), and fails when
    the variable is set but the file is missing: CI must not silently lose coverage.
    """
    root = os.environ.get(REAL_ENV)
    if not root:
        if not SIBLING_REAL_DATA.is_dir():
            pytest.skip(f"{REAL_ENV} is not set and {SIBLING_REAL_DATA} does not exist")
        root = str(SIBLING_REAL_DATA)
    path = Path(root)
    if not (path / "train.parquet").is_file() and not (path / "data" / "train.parquet").is_file():
        pytest.fail(f"{REAL_ENV}={root} but no train.parquet is there")
    return path
