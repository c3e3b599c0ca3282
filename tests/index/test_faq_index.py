"""FaqIndex with the fake encoder: ranking, thresholds, input checks, batching, threads, what gets embedded."""

from __future__ import annotations

import dataclasses
import itertools
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from faq_search.corpus import FaqEntry, read_faq
from faq_search.encoding.settings import Fields
from faq_search.errors import InputError
from faq_search.index.faq_index import FaqIndex, Match
from tests.conftest import DATA, FakeEncoder

ENTRIES = [
    FaqEntry(
        "ship",
        "Standard parcels ship within two working days.",
        ("How long does shipping take?", "When will my parcel arrive?"),
        {"topic": "shipping"},
    ),
    FaqEntry("returns", "Returns are free within thirty days of delivery.", ("Can I return an item?",)),
    FaqEntry("payment", "We accept credit cards, PayPal and invoices.", ("Which payment methods do you accept?",)),
    FaqEntry(
        "password",
        "To reset your password click 'forgot password' on the login page.",
        ("How do I reset my password?",),
    ),
    FaqEntry("gift", "Gift cards never expire and work online and in stores.", ()),
    FaqEntry("hours", "Our stores open at nine and close at six.", ("When do your stores open?",)),
]
QUESTIONS = [
    "how long does shipping take",
    "can I return an item I bought",
    "do you accept paypal",
    "reset my password",
    "do gift cards expire",
    "when do stores open",
    "parcel arrive",
    "something entirely unrelated xyz",
]


def key(matches: list[Match]) -> list[tuple[str, int, str, float]]:
    return [(m.entry.id, m.rank, m.field, round(m.score, 5)) for m in matches]


def cosine(a: str, b: str) -> float:
    vectors = FakeEncoder().encode([a, b])
    return float(vectors[0] @ vectors[1])


def dense(match: Match) -> float:
    """The match's cosine: its score, or its dense part where the score also holds other evidence."""
    return float(getattr(match, "cosine", match.score))


@pytest.fixture
def index(fake_encoder: FakeEncoder) -> FaqIndex:
    return FaqIndex.build(ENTRIES, encoder=fake_encoder)


# -- ranking ------------------------------------------------------------------------


@pytest.mark.parametrize("question", QUESTIONS)
@pytest.mark.parametrize("k", [1, 3, 6, 20])
def test_ask_ranks_entries(index: FaqIndex, question: str, k: int) -> None:
    matches = index.ask(question, k=k)
    assert isinstance(matches, list) and all(isinstance(m, Match) for m in matches)
    assert len(matches) == min(k, len(ENTRIES))
    assert [m.rank for m in matches] == list(range(1, len(matches) + 1))
    assert all(a.score >= b.score for a, b in itertools.pairwise(matches))
    assert len({m.entry.id for m in matches}) == len(matches)
    for match in matches:
        assert match.field in ("question", "answer")
        assert match.entry in ENTRIES
        # an entry scores its best text, and the field names a text with that score
        by_field = {"answer": [cosine(question, match.entry.answer)]}
        by_field["question"] = [cosine(question, q) for q in match.entry.questions]
        best = max(s for scores in by_field.values() for s in scores)
        assert dense(match) == pytest.approx(best, abs=1e-5)
        assert any(s == pytest.approx(dense(match), abs=1e-5) for s in by_field[match.field])


def test_ask_finds_the_obvious_answer(index: FaqIndex) -> None:
    assert index.ask("How long does shipping take?", k=1)[0].entry.id == "ship"
    assert index.ask("do gift cards expire", k=1)[0].entry.id == "gift"
    top = index.ask("When will my parcel arrive?", k=1)[0]
    assert top.entry.id == "ship" and top.field == "question"
    assert dense(top) == pytest.approx(1.0, abs=1e-6)
    top = index.ask("Gift cards never expire and work online and in stores.", k=1)[0]
    assert top.entry.id == "gift" and top.field == "answer"
    assert dense(top) == pytest.approx(1.0, abs=1e-6)


def test_every_sample_question_finds_its_own_entry(fake_encoder: FakeEncoder) -> None:
    entries = read_faq(DATA / "faq.csv")
    index = FaqIndex.build(entries, encoder=fake_encoder)
    assert len(index) == 48 and len(index.store) == 96
    results = index.ask_batch([e.question or "" for e in entries], k=1)
    assert [r[0].entry.id for r in results] == [e.id for e in entries]
    assert all(r[0].field == "question" and dense(r[0]) == pytest.approx(1.0, abs=1e-5) for r in results)


def test_an_entry_matching_by_question_and_answer_appears_once(fake_encoder: FakeEncoder) -> None:
    entries = [
        FaqEntry("pw", "Reset password: click reset password.", ("reset password", "password reset help")),
        FaqEntry("other", "Something else.", ("unrelated",)),
    ]
    index = FaqIndex.build(entries, encoder=fake_encoder)
    matches = index.ask("reset password", k=10)
    assert [m.entry.id for m in matches] == ["pw", "other"]
    assert matches[0].field == "question" and dense(matches[0]) == pytest.approx(1.0, abs=1e-6)
    assert [m.rank for m in matches] == [1, 2]


def test_k_larger_than_the_faq_returns_each_entry_once(index: FaqIndex) -> None:
    matches = index.ask("shipping", k=100)
    assert sorted(m.entry.id for m in matches) == sorted(e.id for e in ENTRIES)


def test_the_question_is_stripped(index: FaqIndex, fake_encoder: FakeEncoder) -> None:
    assert key(index.ask("  reset my password \n")) == key(index.ask("reset my password"))
    assert fake_encoder.calls[-2:] == [["reset my password"], ["reset my password"]]


def test_match_to_dict(index: FaqIndex) -> None:
    match = index.ask("How long does shipping take?", k=1)[0]
    data = match.to_dict()
    expected = {
        "rank": 1,
        "score": round(match.score, 6),
        "field": "question",
        "id": "ship",
        "question": "How long does shipping take?",
        "answer": "Standard parcels ship within two working days.",
        "metadata": {"topic": "shipping"},
    }
    assert {name: data[name] for name in expected} == expected
    assert json.loads(json.dumps(data)) == data


# -- thresholds -------------------------------------------------------------------


def test_min_score_filters_a_tail(index: FaqIndex) -> None:
    everything = index.ask("when do stores open", k=6)
    scores = sorted({round(m.score, 6) for m in everything}, reverse=True)
    assert len(scores) >= 3
    threshold = (scores[0] + scores[1]) / 2
    kept = index.ask("when do stores open", k=6, min_score=threshold)
    assert kept == [m for m in everything if m.score >= threshold]
    assert 1 <= len(kept) < len(everything)
    assert [m.rank for m in kept] == list(range(1, len(kept) + 1))


def test_min_score_keeps_a_match_exactly_at_the_threshold(index: FaqIndex) -> None:
    top = index.ask("do you accept paypal", k=1)[0]
    assert index.ask("do you accept paypal", k=1, min_score=top.score) == [top]


@pytest.mark.parametrize("margin", [1e-4, 1.0])
def test_nothing_good_enough_gives_an_empty_list(index: FaqIndex, margin: float) -> None:
    questions = ["how long does shipping take", "reset my password", "gift cards"]
    best = max(m.score for q in questions for m in index.ask(q, k=1))
    assert index.ask(questions[0], min_score=best + margin) == []
    assert index.ask_batch(questions, min_score=best + margin) == [[], [], []]


def test_a_low_min_score_keeps_everything(index: FaqIndex) -> None:
    assert index.ask("something entirely unrelated xyz", k=6, min_score=-1e9) == index.ask(
        "something entirely unrelated xyz", k=6
    )


def test_the_bundle_min_score_is_the_default(index: FaqIndex, tmp_path: Path) -> None:
    everything = index.ask("when do stores open", k=6)
    assert index.manifest.min_score is None
    threshold = (everything[0].score + everything[1].score) / 2
    index.manifest = dataclasses.replace(index.manifest, min_score=threshold)
    assert index.ask("when do stores open", k=6) == everything[:1]
    assert index.ask("when do stores open", k=6, min_score=-1e9) == everything  # an explicit value wins
    assert index.ask("when do stores open", k=6, min_score=0.0) == [m for m in everything if m.score >= 0.0]

    index.save(tmp_path / "bundle")
    loaded = FaqIndex.load(tmp_path / "bundle", encoder=FakeEncoder())
    assert loaded.manifest.min_score == threshold
    assert key(loaded.ask("when do stores open", k=6)) == key(everything[:1])
    assert key(loaded.ask("when do stores open", k=6, min_score=-1e9)) == key(everything)


# -- input checks -----------------------------------------------------------------------


@pytest.mark.parametrize("k", [0, -1, -100])
def test_k_below_one(index: FaqIndex, fake_encoder: FakeEncoder, k: int) -> None:
    calls = len(fake_encoder.calls)
    with pytest.raises(InputError, match=f"k must be at least 1, got {k}"):
        index.ask("shipping", k=k)
    with pytest.raises(InputError, match="k must be at least 1"):
        index.ask_batch(["shipping"], k=k)
    assert len(fake_encoder.calls) == calls  # nothing was encoded


@pytest.mark.parametrize("question", ["", " ", "\n\t  ", "\u3000"])
def test_empty_questions(index: FaqIndex, fake_encoder: FakeEncoder, question: str) -> None:
    calls = len(fake_encoder.calls)
    with pytest.raises(InputError, match="the question is empty"):
        index.ask(question)
    with pytest.raises(InputError, match="the question is empty"):
        index.ask_batch(["reset my password", question])
    assert len(fake_encoder.calls) == calls


def test_a_question_that_is_not_text(index: FaqIndex) -> None:
    with pytest.raises(InputError):
        index.ask(None)  # type: ignore[arg-type]
    with pytest.raises(InputError):
        index.ask_batch(["ok", 42])  # type: ignore[list-item]


def test_ask_batch_wants_a_list(index: FaqIndex) -> None:
    with pytest.raises(InputError, match="ask_batch takes a list of questions"):
        index.ask_batch("reset my password")


def test_ask_batch_of_nothing(index: FaqIndex) -> None:
    assert index.ask_batch([]) == []


# -- batches and threads --------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 3, 6])
def test_ask_batch_equals_ask(index: FaqIndex, fake_encoder: FakeEncoder, k: int) -> None:
    before = len(fake_encoder.calls)
    batch = index.ask_batch(QUESTIONS, k=k)
    assert fake_encoder.calls[before:] == [QUESTIONS]  # one encoder call for the whole batch
    assert len(batch) == len(QUESTIONS)
    assert [key(m) for m in batch] == [key(index.ask(q, k=k)) for q in QUESTIONS]
    threshold = 0.3
    filtered = index.ask_batch(QUESTIONS, k=k, min_score=threshold)
    assert [key(m) for m in filtered] == [key(index.ask(q, k=k, min_score=threshold)) for q in QUESTIONS]


def test_ask_from_many_threads(fake_encoder: FakeEncoder) -> None:
    index = FaqIndex.build(read_faq(DATA / "faq.csv"), encoder=fake_encoder)
    questions = [*QUESTIONS, "my parcel never showed up", "can I pay with an invoice", "delete my account"]
    expected = [key(index.ask(q, k=5)) for q in questions]
    start = threading.Barrier(8)

    def worker(offset: int) -> list[tuple[int, list[tuple[str, int, str, float]]]]:
        start.wait(timeout=30)
        out = []
        for round_ in range(10):
            i = (offset + round_) % len(questions)
            out.append((i, key(index.ask(questions[i], k=5))))
        return out

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(worker, range(8)))
    assert sum(len(r) for r in results) == 80
    for per_thread in results:
        for i, got in per_thread:
            assert got == expected[i], questions[i]


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
