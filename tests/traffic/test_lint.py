"""The FAQ lint on a planted FAQ (every planted conflict and duplicate is found) and on the shared sets."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from faq_search.cli.app import app as cli
from faq_search.index.faq_index import FaqIndex
from faq_search.traffic.lint import LintSettings, lint_entries, read_rows
from tests.conftest import FakeEncoder, shared_set

CLEAN = [
    ("hours-1", "What are your opening hours?", "Monday to Saturday, 9 to 18."),
    ("store-1", "Where is your store?", "Main Street 5, next to the station."),
    ("gift-1", "Do you offer gift cards?", "Yes, from 10 to 200 euros."),
]
PLANTED = [
    *CLEAN,
    ("pw-1", "How do I reset my password?", "Click Forgot password on the sign-in page."),
    ("pw-2", "How can I reset my password?", "Write to support and we reset it within a day."),  # conflict
    ("ship-1", "How long does delivery take?", "Delivery takes 2 to 3 working days."),
    ("ship-2", "How long does shipping take?", "Shipping takes 5 working days."),  # conflict
    ("ret-1", "Can I return an item?", "Yes, within 30 days."),
    ("ret-2", "Can I return an item?", "No, all sales are final."),  # conflict (same text)
    ("ret-3", "can I return an item", "Only unworn items, within 14 days."),  # same group
    ("abroad-1", "Do you ship abroad?", "We ship to all EU countries."),
    ("abroad-2", "Do you deliver outside the country?", "We ship to all  EU countries."),  # duplicate answer
    ("pay-1", "Which payment methods do you accept?", "We accept cards and PayPal."),
    ("pay-2", "Can I pay with PayPal?", "we accept cards and paypal."),  # duplicate answer
    ("empty-q", "", "Our newsletter comes out monthly."),  # no question
    ("empty-a", "Do you have a loyalty program?", ""),  # empty answer
    ("long-q", "Why " + "really " * 60 + "?", "Because."),
    ("long-a", "Tell me everything about sizes", "Sizes run small. " * 80),  # over the tests' limit of 1,000
]
CONFLICTS = [{"pw-1", "pw-2"}, {"ship-1", "ship-2"}, {"ret-1", "ret-2", "ret-3"}]
DUPLICATES = [{"abroad-1", "abroad-2"}, {"pay-1", "pay-2"}]


def write_faq(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "question", "answer"])
        writer.writerows(rows)
    return path


def found(report: Any, kind: str) -> list[set[str]]:
    return [set(issue.ids) for issue in report.issues if issue.kind == kind]


def test_every_planted_problem_is_found_with_a_fake_encoder(tmp_path: Path) -> None:
    """Identical questions conflict whatever the encoder; paraphrases need the real model (next test)."""
    entries, read_issues = read_rows(write_faq(tmp_path / "faq.csv", PLANTED))
    report = lint_entries(entries, FakeEncoder(), None, LintSettings(0.999, max_answer_chars=1000), read_issues)
    assert {"ret-1", "ret-2", "ret-3"} in found(report, "conflict")
    assert sorted(map(sorted, found(report, "duplicate_answer"))) == sorted(map(sorted, DUPLICATES))
    empty_row = next(n for n, row in enumerate(PLANTED, start=2) if row[0] == "empty-a")  # the header is row 1
    assert sorted(map(sorted, found(report, "empty"))) == [["empty-q"], [f"row {empty_row}"]]
    assert sorted(map(sorted, found(report, "too_long"))) == [["long-a"], ["long-q"]]
    assert report.skipped and "--index" in report.skipped[0] and report.rows == len(PLANTED)
    flagged = {i for issue in report.issues for i in issue.ids}
    assert not flagged & {row[0] for row in CLEAN}


@pytest.mark.model
def test_paraphrased_conflicts_and_unreachable_entries_with_the_real_model(tmp_path: Path, real_encoder: Any) -> None:
    faq = write_faq(tmp_path / "faq.csv", PLANTED)
    entries, read_issues = read_rows(faq)
    index = FaqIndex.build([e for e in entries if e.questions], encoder=real_encoder)
    report = lint_entries(entries, real_encoder, index, LintSettings(max_answer_chars=1000), read_issues)
    assert sorted(map(sorted, found(report, "conflict"))) == sorted(map(sorted, CONFLICTS))
    assert sorted(map(sorted, found(report, "duplicate_answer"))) == sorted(map(sorted, DUPLICATES))
    unreachable = {i for ids in found(report, "unreachable") for i in ids}
    assert "empty-q" in unreachable  # not in the index built from the entries with questions
    assert not unreachable & {row[0] for row in CLEAN}
    conflict = next(i for i in report.issues if i.kind == "conflict" and "pw-1" in i.ids)
    assert conflict.score is not None and conflict.score >= 0.9 and "different answers" in conflict.detail


def test_lint_command_exits_1_on_problems_and_0_on_a_clean_faq(tmp_path: Path) -> None:
    planted = write_faq(tmp_path / "planted.csv", PLANTED)
    clean = write_faq(tmp_path / "clean.csv", CLEAN)
    with _fake_model():
        bad = CliRunner().invoke(cli, ["lint", str(planted), "--json", "--similarity", "0.999"])
        good = CliRunner().invoke(cli, ["lint", str(clean)])
    assert bad.exit_code == 1, bad.output
    data = json.loads(bad.output)
    assert data["counts"]["duplicate_answer"] == 2 and data["counts"]["conflict"] >= 1 and data["rows"] == len(PLANTED)
    assert good.exit_code == 0 and "no problems found" in good.output and "skipped unreachable" in good.output


def _fake_model() -> Any:
    """The default encoder swapped for the fake one (the CLI's only heavy step without --index)."""
    from unittest import mock

    return mock.patch("faq_search.encoding.encoder.BertEncoder", lambda settings: FakeEncoder())


def test_the_real_conflicts_of_a_shared_set_are_reported() -> None:
    """stackfaq gives several answers per question: each such question is one conflict group (an oracle count)."""
    folder = shared_set("stackfaq")
    entries, read_issues = read_rows(folder / "faq.csv")
    report = lint_entries(entries, FakeEncoder(), None, LintSettings(similarity=0.999), read_issues)
    answers: dict[str, set[str]] = {}
    with (folder / "faq.csv").open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            answers.setdefault(" ".join(row["question"].split()).casefold(), set()).add(row["answer"])
    expected = sum(len(a) > 1 for a in answers.values())
    assert expected > 50 and len(found(report, "conflict")) == expected
