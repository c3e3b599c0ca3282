"""The traffic commands as a user meets them: help for every option, and a fast start."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from faq_search.cli.app import app as cli
from tests.conftest import REPO

OPTIONS = {
    "gaps": [
        "--index",
        "--since",
        "--min-score",
        "--similarity",
        "--method",
        "--clusters",
        "--top",
        "--rank",
        "--encoder",
        "--csv",
        "--json",
    ],
    "lint": ["--index", "--similarity", "--max-question-chars", "--max-answer-chars", "--json"],
    "serve": ["--log", "--no-redact", "--retention-days"],
    "calibrate": ["--feedback"],
    "adapt": ["--feedback"],
}


@pytest.mark.parametrize("command", sorted(OPTIONS))
def test_every_traffic_option_has_help(command: str) -> None:
    result = CliRunner().invoke(cli, [command, "--help"], terminal_width=200)
    assert result.exit_code == 0
    for option in OPTIONS[command]:
        assert option in result.output, option


def test_help_of_the_traffic_commands_loads_nothing_heavy() -> None:
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from faq_search.cli import app\n"
        "for args in (['gaps', '--help'], ['lint', '--help']):\n"
        "    assert CliRunner().invoke(app, args).exit_code == 0\n"
        "import faq_search\n"
        "faq_search.QuestionLog\n"
        "heavy = [m for m in ('torch', 'transformers', 'faiss', 'numpy', 'fastapi') if m in sys.modules]\n"
        "print(heavy)\n"
        "sys.exit(1 if heavy else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr
