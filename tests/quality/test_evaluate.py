"""BM25, thresholds, calibration (the threshold and the refitted confidence model), and evaluation evidence.

The brute-force oracle of the served ranking is in tests/index/test_confidence.py and test_ranking.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from faq_search.corpus import FaqEntry, read_faq
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


# -- the former FAQ-wide fusion (benchmarks compare the confidence with it) -------------------


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


def test_hybrid_settings_are_stored_and_used_after_load(tmp_path: Path) -> None:
    index = FaqIndex.build(ENTRIES, encoder=FakeEncoder(), hybrid=HybridSettings(weight=0.75))
    index.save(tmp_path / "idx")
    loaded = FaqIndex.load(tmp_path / "idx", encoder=FakeEncoder())
    assert loaded.manifest.hybrid.weight == 0.75
    assert [m.to_dict() for m in loaded.ask("zebra umbrella")] == [m.to_dict() for m in index.ask("zebra umbrella")]
    dense_only = FaqIndex.build(ENTRIES, encoder=FakeEncoder(), hybrid=HybridSettings(weight=0))
    assert not dense_only.manifest.hybrid.enabled and dense_only.manifest.to_dict()["hybrid"] is None
    matches = dense_only.ask("zebra umbrella", k=5, min_score=0.0)
    assert all(m.lexical is None and 0.0 <= m.score <= 1.0 for m in matches)
    assert [m.cosine for m in matches] == sorted((m.cosine for m in matches), reverse=True)  # ranked by cosine
    assert matches[0].score > matches[1].score


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


def test_calibrate_index_stores_a_refitted_model_and_threshold_that_ask_uses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from faq_search.index import faq_index as faq_index_module
    from faq_search.quality.evaluate import calibrate_index
    from faq_search.quality.queries import QueryFiles

    FaqIndex.build(read_faq(DATA / "faq.csv"), encoder=FakeEncoder()).save(tmp_path / "idx")
    load = FaqIndex.load
    monkeypatch.setattr(faq_index_module.FaqIndex, "load", lambda path, **_: load(path, encoder=FakeEncoder()))
    files = QueryFiles(DATA / "queries.csv", DATA / "unanswerable.csv")
    report = calibrate_index(tmp_path / "idx", files, 0.3, plot=tmp_path / "reliability.png")
    assert (report.queries, report.negatives) == (60, 15)
    assert 0.0 < report.coverage <= 1.0 and 0.0 <= report.ece <= 1.0
    assert (tmp_path / "reliability.png").stat().st_size > 0
    loaded = FaqIndex.load(tmp_path / "idx", encoder=FakeEncoder())
    assert loaded.manifest.min_score == report.threshold
    model = loaded.manifest.confidence
    assert model is not None and model.fitted_on == "60 labelled questions" and model.is_monotone()
    matches = loaded.ask("where is my parcel", k=3, min_score=0.0)
    (entries, rows), *_ = loaded.candidate_features(["where is my parcel"])
    assert [m.entry.id for m in matches] == [loaded.entries[e].id for e in entries[:3]]
    assert [m.score for m in matches] == pytest.approx(model.predict(rows[:3]).tolist(), abs=1e-6)
    assert all(m.score >= report.threshold for m in loaded.ask("where is my parcel", k=3))
