"""The layout's rules that a linter does not check: short files, few type: ignores, one
owner of the on-disk layout, a README for users. Import direction and circles are checked
by import-linter (``make lint``, contracts in pyproject.toml)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ("app", "pipelines", "models")
MAX_LINES = 400
MAX_TYPE_IGNORES = 5


def _product_files() -> list[Path]:
    return sorted(p for pkg in PRODUCT for p in (ROOT / pkg).rglob("*.py"))


@pytest.mark.parametrize("path", _product_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_product_module_passes_400_lines(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(ROOT)} has {lines} lines: split it by concept"


def test_type_ignores_are_few_and_each_says_why() -> None:
    found = [
        (p.relative_to(ROOT), n, line)
        for p in _product_files()
        for n, line in enumerate(p.read_text().splitlines(), start=1)
        if "type: ignore" in line
    ]
    assert len(found) <= MAX_TYPE_IGNORES, found
    # The reason is the comment on the line itself or the line before it.
    for path, n, line in found:
        before = (ROOT / path).read_text().splitlines()[n - 2]
        assert re.search(r"#(?!\s*type: ignore)", line) or before.strip().startswith("#"), (
            f"{path}:{n} has a type: ignore without a reason"
        )


def test_only_the_layout_spells_paths_under_home() -> None:
    """``data/<kind>`` and ``mlruns/`` folders are named in pipelines/data/layout.py alone."""
    spelled = re.compile(
        r"""["'](recovered|forecasts|replay|aggregates|jobs|mlruns|metrics|ledger|live)["']\s*(/|\))"""
    )
    offenders = [
        f"{p.relative_to(ROOT)}:{n}"
        for p in _product_files()
        if p != ROOT / "pipelines" / "data" / "layout.py"
        for n, line in enumerate(p.read_text().splitlines(), start=1)
        if re.search(r"/\s*" + spelled.pattern, line)
    ]
    assert not offenders, offenders


def test_readme_is_for_users() -> None:
    readme = (ROOT / "README.md").read_text().splitlines()
    assert len(readme) <= 250
    assert any("make run" in line for line in readme)
    assert any("make test" in line for line in readme)
