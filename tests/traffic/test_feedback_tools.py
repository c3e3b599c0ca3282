"""Feedback feeds the tools: confirmed question -> entry pairs for ``adapt --feedback`` and ``calibrate --feedback``."""

from __future__ import annotations

import csv
import json
import shutil
import time
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from typer.testing import CliRunner

from faq_search.cli.app import app as cli
from faq_search.errors import InputError
from faq_search.index.faq_index import FaqIndex
from faq_search.quality.queries import LabelledQuery, QueryFiles
from faq_search.traffic.labels import feedback_queries, with_feedback
from faq_search.traffic.log import Feedback, LoggedMatch, QuestionLog, QuestionRecord, new_question_id
from tests.conftest import DATA


def asked(log: QuestionLog, question: str, top: str | None) -> str:
    record = QuestionRecord(
        new_question_id(), time.time(), question, top is not None, (LoggedMatch(top, 0.9),) if top else ()
    )
    log.write([record])
    return record.id


def test_votes_become_labelled_queries(tmp_path: Path) -> None:
    with QuestionLog(tmp_path / "log.db") as log:
        shown = asked(log, "where is my parcel", "shipping-01")
        chose = asked(log, "can I pay later", "payments-01")
        again = asked(log, "Where is  my parcel", "shipping-01")  # the same question, spacing aside
        disputed = asked(log, "how do I return", "returns-01")
        gone = asked(log, "old question", "removed-01")
        nothing = asked(log, "do you sell bikes", None)
        log.write([], [
            Feedback(shown, True), Feedback(again, True), Feedback(chose, False, "payments-03"),
            Feedback(chose, True, "payments-02"), Feedback(disputed, True), Feedback(disputed, False),
            Feedback(gone, True), Feedback(nothing, True),
        ])  # fmt: skip
        known = {"shipping-01", "payments-01", "payments-02", "payments-03", "returns-01"}
        queries = feedback_queries(log, known_ids=known)
    assert sorted(queries, key=lambda q: q.query) == [
        LabelledQuery("can I pay later", frozenset({"payments-02"})),
        LabelledQuery("where is my parcel", frozenset({"shipping-01"})),
    ]


def confirmed_log(path: Path, index: FaqIndex) -> int:
    """The sample's labelled questions asked of ``index``, each confirmed on its first relevant entry."""
    with QuestionLog(path) as log, (DATA / "queries.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
        for row in rows:
            logged = log.ask(index, row["query"])
            log.add_feedback(logged.question_id, helpful=True, entry_id=row["relevant_ids"].split("|")[0])
    return len(rows)


@pytest.mark.model
def test_calibrate_feedback_fits_on_the_confirmed_questions(
    tmp_path: Path, sample_bundle: Path, sample_index: FaqIndex
) -> None:
    count = confirmed_log(tmp_path / "log.db", sample_index)
    bundle = Path(shutil.copytree(sample_bundle, tmp_path / "index"))
    result = CliRunner().invoke(cli, ["calibrate", "--feedback", str(tmp_path / "log.db"), "-i", str(bundle), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["queries"] == count and FaqIndex.load(bundle).manifest.min_score == report["threshold"]
    files = with_feedback(QueryFiles(DATA / "queries.csv"), tmp_path / "log.db", bundle, tmp_path)
    labelled, _ = files.read()
    assert len(labelled) == 2 * count  # the file's queries, then the log's
    missing = CliRunner().invoke(cli, ["calibrate", "-i", str(bundle)])
    assert missing.exit_code == 2 and "--feedback" in missing.output


def test_adapt_feedback_adds_the_confirmed_pairs_to_training(tmp_path: Path) -> None:
    with QuestionLog(tmp_path / "log.db") as log:
        question = asked(log, "my parcel never came", "orders-05")
        log.add_feedback(question, helpful=True)
    seen: dict[str, Any] = {}

    def stop(*args: Any, **kwargs: Any) -> None:
        seen.update(kwargs)
        raise InputError("stopped before training")

    with mock.patch("faq_search.quality.adapt.adapt_index", side_effect=stop):
        result = CliRunner().invoke(
            cli, ["adapt", str(DATA / "faq.csv"), "--feedback", str(tmp_path / "log.db"), "--queries",
                  str(DATA / "queries.csv"), "-o", str(tmp_path / "out")],
        )  # fmt: skip
    assert "stopped before training" in result.output
    queries = seen["queries"]
    assert queries[-1] == LabelledQuery("my parcel never came", frozenset({"orders-05"}))
    assert len(queries) == 61  # the 60 labelled queries of the file, then the log's one
