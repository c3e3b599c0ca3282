"""Hybrid fusion, thresholds, calibration, and the evidence an evaluation collects."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from faq_search.corpus import FaqEntry, read_faq
from faq_search.encoding.settings import Fields
from faq_search.errors import InputError
from faq_search.index.faq_index import FaqIndex
from faq_search.index.lexical import HybridSettings, LexicalIndex, entry_document, fuse
from faq_search.quality.evaluate import Evaluation, Metrics, calibrate, collect_evidence, threshold_rows
from faq_search.quality.queries import read_queries, read_questions
from tests.conftest import DATA, FakeEncoder

ENTRIES = [
    FaqEntry("ship", "Parcels ship within two working days.", ("How long does shipping take?",)),
    FaqEntry("returns", "Returns are free within thirty days.", ("Can I return an item?",)),
    FaqEntry("pay", "We accept credit cards, PayPal and invoices.", ("Which payment methods do you accept?",)),
    FaqEntry("gift", "Gift vouchers never expire.", ()),
    FaqEntry("zebra", "The zebra-stripe umbrella is sold out until spring.", ("Is the striped umbrella back?",)),
]


# -- fusion ------------------------------------------------------------------


def test_fuse_with_weight_zero_is_the_dense_score() -> None:
    dense = np.random.default_rng(0).random((3, 7)).astype(np.float32)
    lexical = np.random.default_rng(1).random((3, 7)).astype(np.float32)
    np.testing.assert_array_equal(fuse(dense, lexical, 0.0), dense)


def test_fuse_ranks_like_the_sum_of_z_scores() -> None:
    rng = np.random.default_rng(2)
    dense, lexical = rng.random((5, 40)), rng.random((5, 40)) * 10
    fused = fuse(dense, lexical, 0.5)
    z = (dense - dense.mean(1, keepdims=True)) / dense.std(1, keepdims=True)
    z += 0.5 * (lexical - lexical.mean(1, keepdims=True)) / lexical.std(1, keepdims=True)
    for row in range(5):
        assert np.argsort(-fused[row]).tolist() == np.argsort(-z[row]).tolist()


def test_fuse_keeps_the_cosine_where_no_entry_shares_a_word() -> None:
    dense = np.array([[0.2, 0.9, 0.5]], dtype=np.float32)
    np.testing.assert_allclose(fuse(dense, np.zeros((1, 3), dtype=np.float32), 1.0), dense)


def test_bm25_scores_shared_stemmed_words_only() -> None:
    lexical = LexicalIndex([entry_document(e.questions, e.answer) for e in ENTRIES])
    scores = lexical.scores(["shipping of parcels", "qwerty asdf"])
    assert scores.shape == (2, len(ENTRIES))
    assert int(np.argmax(scores[0])) == 0  # "shipping"/"parcels" stem to words of the first entry
    assert np.all(scores[1] == 0)


def test_hybrid_settings_validate() -> None:
    with pytest.raises(InputError, match="hybrid weight"):
        HybridSettings(weight=-1)
    with pytest.raises(InputError, match="k1"):
        HybridSettings(b=2.0)
    with pytest.raises(InputError, match="stemmer"):
        LexicalIndex(["x"], HybridSettings(language="klingon"))
    assert HybridSettings.from_dict(None).enabled is False


@pytest.mark.parametrize("weight", [0.25, 0.5, 2.0])
@pytest.mark.parametrize("fields", [Fields.QUESTION_ANSWER, Fields.ANSWER])
def test_hybrid_ask_equals_a_brute_force_oracle(weight: float, fields: Fields) -> None:
    encoder = FakeEncoder()
    index = FaqIndex.build(ENTRIES, encoder=encoder, fields=fields, hybrid=HybridSettings(weight=weight))
    questions = ["is the zebra umbrella back", "paypal payment", "free returns", "nothing in common here"]
    with_questions = fields is Fields.QUESTION_ANSWER
    for question, matches in zip(questions, index.ask_batch(questions, k=3), strict=True):
        query = encoder.encode([question])[0]
        dense = np.array(
            [
                max(float(query @ v) for v in encoder.encode([*(e.questions if with_questions else ()), e.answer]))
                for e in ENTRIES
            ]
        )
        lexical = LexicalIndex([entry_document(e.questions if with_questions else (), e.answer) for e in ENTRIES])
        fused = fuse(dense[None], lexical.scores([question]), weight)[0]
        expected = np.argsort(-fused, kind="stable")[:3]
        assert [m.entry.id for m in matches] == [ENTRIES[i].id for i in expected]
        for match, i in zip(matches, expected, strict=True):
            assert match.score == pytest.approx(float(fused[i]), abs=1e-5)
            assert match.cosine == pytest.approx(float(dense[i]), abs=1e-5)
            assert match.lexical is not None


def test_hybrid_settings_are_stored_and_used_after_load(tmp_path: Path) -> None:
    index = FaqIndex.build(ENTRIES, encoder=FakeEncoder(), hybrid=HybridSettings(weight=0.75))
    index.save(tmp_path / "idx")
    loaded = FaqIndex.load(tmp_path / "idx", encoder=FakeEncoder())
    assert loaded.manifest.to_dict()["hybrid"] is not None and loaded.hybrid.weight == 0.75
    assert [m.to_dict() for m in loaded.ask("zebra umbrella")] == [m.to_dict() for m in index.ask("zebra umbrella")]
    dense_only = FaqIndex.build(ENTRIES, encoder=FakeEncoder(), hybrid=HybridSettings(weight=0))
    assert dense_only.manifest.to_dict()["hybrid"] is None and not dense_only.hybrid.enabled
    assert all(m.lexical is None and m.score == m.cosine for m in dense_only.ask("zebra umbrella"))


# -- metrics, thresholds, calibration ---------------------------------------------


def evidence(scores: list[float], correct: list[bool], negatives: list[float]) -> Evaluation:
    metrics = Metrics(len(scores), 0.0, 0.0, 0.0, 0.0, 0.0)
    return Evaluation(metrics, tuple(scores), tuple(correct), tuple(negatives))


def test_threshold_rows_count_answered_negatives_as_wrong() -> None:
    ev = evidence([0.9, 0.8, 0.7, 0.6], [True, True, False, True], [0.85, 0.5])
    rows = {r.threshold: r for r in threshold_rows(ev, [0.55, 0.75, 0.95])}
    assert rows[0.55].precision == pytest.approx(3 / 5)  # 4 answered (3 right) + 1 negative answered
    assert rows[0.55].coverage == 1.0 and rows[0.55].false_answer_rate == 0.5
    assert rows[0.75].precision == pytest.approx(2 / 3)
    assert rows[0.75].coverage == 0.5
    assert rows[0.95].coverage == 0.0 and rows[0.95].false_answer_rate == 0.0


def test_calibrate_picks_the_lowest_threshold_reaching_the_target() -> None:
    ev = evidence([0.9, 0.8, 0.7, 0.6, 0.5], [True, True, True, False, True], [0.55])
    row = calibrate(ev, 0.9)
    assert row.threshold == 0.7 and row.precision == 1.0 and row.coverage == 0.6
    assert calibrate(ev, 0.5).threshold == 0.5
    with pytest.raises(InputError, match="no threshold reaches precision"):
        calibrate(evidence([0.9], [False], []), 0.9)
    with pytest.raises(InputError, match="target precision"):
        calibrate(ev, 1.5)


def test_run_on_the_sample_faq_with_the_fake_encoder() -> None:
    index = FaqIndex.build(read_faq(DATA / "faq.csv"), encoder=FakeEncoder())
    queries = read_queries(DATA / "queries.csv", known_ids=[e.id for e in index.entries])
    evaluation = collect_evidence(index, queries, read_questions(DATA / "unanswerable.csv"))
    assert evaluation.metrics.queries == 60
    assert len(evaluation.top_scores) == 60 and len(evaluation.negative_scores) == 15
    assert 0.0 < evaluation.metrics.mrr_at_10 <= 1.0
    assert evaluation.metrics.recall_at_1 <= evaluation.metrics.recall_at_5 <= evaluation.metrics.recall_at_10
