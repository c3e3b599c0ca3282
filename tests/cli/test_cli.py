"""The command line as a user runs it: help, errors, and the README's main job end to end."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from faq_search.cli import app
from tests.conftest import REPO

BIN = Path(sys.executable).parent
CLI = str(BIN / "faq-search")
COMMANDS = ["index", "ask", "info", "check", "embed", "serve", "eval", "calibrate", "tune", "adapt"]


def run(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FAQ_SEARCH_NO_PROGRESS": "1"}
    return subprocess.run([CLI, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=600)


@pytest.mark.parametrize("command", [[], *[[c] for c in COMMANDS]])
def test_every_command_has_help(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0
    assert "Usage" in result.output
    for option in {"index": ["--out", "--layer", "--pooling", "--precision"], "ask": ["--index", "--json"]}.get(
        command[0] if command else "", []
    ):
        assert option in result.output


def test_help_and_import_do_not_load_torch() -> None:
    code = (
        "import sys, faq_search\n"
        "from typer.testing import CliRunner\n"
        "from faq_search.cli import app\n"
        "for args in (['--help'], ['index', '--help'], ['ask', '--help']):\n"
        "    assert CliRunner().invoke(app, args).exit_code == 0\n"
        "heavy = [m for m in ('torch', 'transformers', 'faiss') if m in sys.modules]\n"
        "print(heavy)\n"
        "sys.exit(1 if heavy else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("faq-search: error:")
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0]


def write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_readme_main_job_end_to_end() -> None:
    """The README's first command (make demo) indexes data/ and prints ranked answers."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "make demo" in readme and "make test" in readme
    venv = Path(sys.prefix)
    result = subprocess.run(
        ["make", "-s", "demo", f"VENV={venv}"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=900,
        env={**os.environ, "FAQ_SEARCH_NO_PROGRESS": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Indexed 48 entries" in result.stdout
    assert " 1. " in result.stdout
    assert "shipping-05" in result.stdout.split(" 2. ")[0]  # the lost-parcel answer ranks first
