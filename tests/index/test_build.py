"""Building: what gets embedded (fields, shared texts), from files or entries, and the report of it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from faq_search.corpus import FaqEntry, read_faq
from faq_search.encoding.settings import Fields
from faq_search.errors import InputError
from faq_search.index.faq_index import FaqIndex
from tests.conftest import FakeEncoder
from tests.index.conftest import ENTRIES, QUESTIONS, dense

# -- what gets embedded ---------------------------------------------------------------


def test_identical_texts_are_embedded_once(fake_encoder: FakeEncoder) -> None:
    entries = [
        FaqEntry("mail", "Email us.", ("How do I contact you?",)),
        FaqEntry("phone", "Call us.", ("How do I contact you?",)),  # a question shared by two answers
        FaqEntry("echo", "Email us.", ("Email us.",)),  # an answer repeated, and a question equal to it
    ]
    index = FaqIndex.build(entries, encoder=fake_encoder)
    assert fake_encoder.calls == [["How do I contact you?", "Email us.", "Call us."]]
    assert index.report is not None
    assert index.report.unique_texts == 3
    assert index.report.vectors == 6 == len(index.store)
    assert index.report.entries == 3
    assert index.report.fields == ("question", "answer")
    assert index.store.row_entry.tolist() == [0, 0, 1, 1, 2, 2]
    assert index.store.row_field == ["question", "answer"] * 3
    # every row holds the vector of its own text
    texts = ["How do I contact you?", "Email us.", "How do I contact you?", "Call us.", "Email us.", "Email us."]
    np.testing.assert_allclose(index.store.index.reconstruct_n(0, 6), FakeEncoder().encode(texts), atol=1e-6)
    contact = index.ask("How do I contact you?", k=3)
    assert {m.entry.id for m in contact[:2]} == {"mail", "phone"}
    assert all(dense(m) == pytest.approx(1.0, abs=1e-6) for m in contact[:2])


@pytest.mark.parametrize("fields", ["answer", "ANSWER", Fields.ANSWER])
def test_fields_answer_embeds_only_answers(fake_encoder: FakeEncoder, fields: str | Fields) -> None:
    index = FaqIndex.build(ENTRIES, encoder=fake_encoder, fields=fields)
    assert fake_encoder.calls == [[e.answer for e in ENTRIES]]
    assert index.manifest.fields == ("answer",)
    assert len(index.store) == len(ENTRIES)
    assert index.store.row_field == ["answer"] * len(ENTRIES)
    for question in QUESTIONS:
        matches = index.ask(question, k=6)
        assert {m.field for m in matches} == {"answer"}
        assert len(matches) == len(ENTRIES)
    # a question text no longer matches exactly: only answers were embedded
    assert dense(index.ask("When will my parcel arrive?", k=1)[0]) < 0.999


def test_fields_default_embeds_questions_and_answers(fake_encoder: FakeEncoder) -> None:
    index = FaqIndex.build(ENTRIES, encoder=fake_encoder)
    texts = [t for e in ENTRIES for t in (*e.questions, e.answer)]
    assert fake_encoder.calls == [texts]
    assert index.manifest.fields == ("question", "answer")
    assert len(index.store) == len(texts)


def test_unknown_fields(fake_encoder: FakeEncoder) -> None:
    with pytest.raises(InputError, match=r"unknown fields 'questions'; use one of question\+answer, answer"):
        FaqIndex.build(ENTRIES, encoder=fake_encoder, fields="questions")
    assert fake_encoder.calls == []


def test_entries_without_questions(fake_encoder: FakeEncoder) -> None:
    entries = [
        FaqEntry("a", "Parcels ship within two days."),
        FaqEntry("b", "Returns are free for thirty days."),
        FaqEntry("c", "We accept PayPal."),
    ]
    index = FaqIndex.build(entries, encoder=fake_encoder)
    assert index.manifest.fields == ("answer",)
    assert len(index.store) == 3
    matches = index.ask("do you accept paypal", k=3)
    assert matches[0].entry.id == "c"
    assert all(m.field == "answer" and m.entry.question is None for m in matches)
    assert matches[0].to_dict()["question"] is None


def test_no_entries(fake_encoder: FakeEncoder) -> None:
    with pytest.raises(InputError, match="the FAQ has no entries"):
        FaqIndex.build([], encoder=fake_encoder)


# -- building from a file ---------------------------------------------------------------


@pytest.mark.parametrize("as_string", [False, True])
def test_build_from_a_path_reads_the_file(tmp_path: Path, fake_encoder: FakeEncoder, as_string: bool) -> None:
    path = tmp_path / "shop.csv"
    path.write_text(
        "id,question,answer,url\n"
        "ship,How long does shipping take?,Two days.,https://x.test/ship\n"
        "pay,Which cards do you accept?,Visa and Mastercard.,\n",
        encoding="utf-8",
    )
    index = FaqIndex.build(str(path) if as_string else path, encoder=fake_encoder)
    assert index.entries == read_faq(path)
    assert [e.id for e in index.entries] == ["ship", "pay"]
    assert index.entries[0].metadata == {"url": "https://x.test/ship"}
    assert index.manifest.source == "shop.csv"
    assert index.manifest.entry_count == 2
    assert fake_encoder.calls == [
        ["How long does shipping take?", "Two days.", "Which cards do you accept?", "Visa and Mastercard."]
    ]
    assert index.ask("which cards", k=1)[0].entry.id == "pay"


def test_build_from_a_path_reports_file_problems(tmp_path: Path, fake_encoder: FakeEncoder) -> None:
    path = tmp_path / "shop.csv"
    path.write_text("id,reply\na,b\n", encoding="utf-8")
    with pytest.raises(InputError, match="no answer column 'answer'"):
        FaqIndex.build(path, encoder=fake_encoder)
    with pytest.raises(InputError, match="file not found"):
        FaqIndex.build(tmp_path / "missing.csv", encoder=fake_encoder)
    assert fake_encoder.calls == []


def test_build_from_entries_has_no_source(index: FaqIndex) -> None:
    assert index.manifest.source is None
    assert index.manifest.entry_count == len(ENTRIES) == len(index)
    assert index.identity == FakeEncoder().identity
