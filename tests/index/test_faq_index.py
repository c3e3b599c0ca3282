"""FaqIndex with the fake encoder: the match record, thresholds, input checks."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from faq_search.errors import InputError
from faq_search.index.faq_index import FaqIndex
from tests.conftest import FakeEncoder
from tests.index.conftest import key


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
