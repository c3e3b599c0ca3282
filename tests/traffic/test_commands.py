"""The traffic commands as a user meets them: help for every option, and a fast start."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
from typer.testing import CliRunner

from faq_search.cli.app import app as cli
from faq_search.traffic.settings import GapWeight
from tests.conftest import REPO

OPTIONS = {
    "gaps": [
        "--index",
        "--since",
        "--min-score",
        "--review-score",
        "--no-review",
        "--weight",
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


def test_gaps_passes_one_options_record(tmp_path: Path) -> None:
    """parse -> one library call: the options arrive as a GapsOptions, the defaults being the library's."""
    from faq_search.index.faq_index import FaqIndex
    from faq_search.traffic import gaps as traffic_gaps

    log = tmp_path / "traffic.db"
    log.touch()
    empty = traffic_gaps.GapsReport(0, 0, 0, None, 0.5, "agglomerative", ())
    with (
        mock.patch.object(FaqIndex, "load", return_value="the index") as load,
        mock.patch.object(traffic_gaps, "find_gaps", return_value=empty) as find,
    ):
        assert CliRunner().invoke(cli, ["gaps", str(log), "-i", str(tmp_path)]).exit_code == 0
        default = find.call_args
        args = ["gaps", str(log), "-i", str(tmp_path), "--no-review", "--weight", "askings", "--top", "4", "--json"]
        result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0 and json.loads(result.output)["clusters"] == []
    assert load.call_count == 2 and default.args[1] == "the index"
    assert default.args[2] == traffic_gaps.GapsOptions(top=20)
    assert find.call_args.args[2] == traffic_gaps.GapsOptions(review_score=None, weight=GapWeight.ASKINGS, top=4)


def test_gaps_text_shows_the_need_only_when_it_is_not_the_volume() -> None:
    from faq_search.cli.traffic import gaps_text
    from faq_search.traffic.gaps import GapCluster, GapsReport

    topic = GapCluster(1, 4, 3, 2, 0, ("can i rent a tent",), "e1", "q?", 0.4, 0.7, (), need=2.35)
    counted = GapsReport(9, 4, 3, 0.6, 0.5, "agglomerative", (topic,), review_score=0.9, weight="askings", gap_need=4)
    text = gaps_text(counted)
    assert "below 0.6, answered below 0.9, or marked unhelpful." in text and "need" not in text
    expected = gaps_text(dataclasses.replace(counted, weight="expected", gap_need=2.35))
    assert "2.4 unserved askings expected" in expected and "1. need 2.4: 4 asked (3 distinct" in expected
    assert "answered below" not in gaps_text(dataclasses.replace(counted, review_score=None))
