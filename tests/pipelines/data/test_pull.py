"""`freshcast pull` offline: a clear error, a non-zero exit, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipelines.cli import app


def test_pull_offline_fails_cleanly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    out = tmp_path / "raw"
    result = CliRunner().invoke(app, ["pull", "--out", str(out)])
    assert result.exit_code == 1
    assert "could not download train.parquet" in result.output
    assert "Traceback" not in result.output
    assert not out.exists() or not any(out.glob("*.parquet"))
