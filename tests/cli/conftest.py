"""One sample index for the command tests, built once through the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.test_cli import run
from tests.conftest import DATA


@pytest.fixture(scope="session")
def sample_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "sample"
    result = run("index", str(DATA / "faq.csv"), "--out", str(out), "--quiet")
    assert result.returncode == 0, result.stderr
    assert "Indexed 48 entries" in result.stdout
    return out
