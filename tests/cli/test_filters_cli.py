"""``index --metadata-column`` and ``ask --where`` as a user runs them (the real bundled model)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.test_cli import one_line_error, run, write

FAQ = """id,question,answer,plan,country,tags
ship-de,How long does shipping take?,Parcels within Germany arrive in two days.,free,DE,shipping
ship-at,How long does shipping take?,Parcels to Austria arrive in four days.,pro,AT,shipping
ship-fr,How long does shipping take?,Parcels to France arrive in five days.,enterprise,FR,shipping|customs
refund,Can I get a refund?,Refunds reach your card within a week.,free,DE,billing
invoice,Where is my invoice?,Invoices are in your account under Orders.,enterprise,FR,billing
"""


@pytest.fixture(scope="module")
def filtered_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("filters")
    out = folder / "bundle"
    faq = write(folder / "faq.csv", FAQ)
    result = run(
        "index", str(faq), "--out", str(out), "--quiet", "--metadata-column", "plan",
        "--metadata-column", "country", "--metadata-column", "tags:list",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return out


@pytest.mark.model
def test_ask_where_keeps_only_entries_that_pass(filtered_index: Path) -> None:
    def ids(*where: str) -> list[str]:
        args = [arg for w in where for arg in ("--where", w)]
        result = run("ask", "how long does shipping take", "-i", str(filtered_index), "-k", "5", "--json", *args)
        assert result.returncode == 0, result.stderr
        return [m["id"] for m in json.loads(result.stdout)["matches"]]

    assert set(ids("country in (AT, FR)", "tags=shipping")) == {"ship-at", "ship-fr"}
    assert set(ids("plan != free and not tags = customs")) == {"ship-at", "invoice"}
    assert set(ids("plan=enterprise or country=DE")) == {"ship-de", "ship-fr", "refund", "invoice"}


@pytest.mark.model
def test_ask_where_errors_are_one_line(filtered_index: Path) -> None:
    question = ["ask", "shipping", "-i", str(filtered_index)]
    one_line_error(run(*question, "--where", "region=EU"), "unknown filter field 'region'", "plan, country, tags")
    one_line_error(run(*question, "--where", "plan=gold"), "known values: enterprise, free, pro")
