"""Match confidence: the model's fit and storage, its features, ECE, and that it ignores the FAQ's size."""

from __future__ import annotations

import itertools
import json
import string
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from faq_search.corpus import FaqEntry, read_faq
from faq_search.errors import InputError
from faq_search.index import confidence
from faq_search.index.confidence import ConfidenceModel, expected_calibration_error
from faq_search.index.faq_index import FaqIndex
from faq_search.index.lexical import entry_document
from faq_search.index.pool_lexical import PoolLexicon, pool_bm25
from faq_search.quality.queries import read_queries
from tests.conftest import DATA, FakeEncoder


def synthetic(n: int, weights: tuple[float, float], bias: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    rows = np.column_stack([rng.uniform(0.4, 1.1, n), rng.uniform(-0.3, 0.2, n)])
    labels = rng.random(n) < 1 / (1 + np.exp(-(rows @ np.array(weights) + bias)))
    return rows, labels


def test_fit_recovers_the_coefficients_of_a_logistic_truth() -> None:
    rows, labels = synthetic(40_000, (8.0, 12.0), -6.0)
    model = ConfidenceModel.fit(rows, labels, l2=0.01)
    assert model.weights == pytest.approx((8.0, 12.0), abs=0.5)
    assert model.bias == pytest.approx(-6.0, abs=0.4)


def test_a_fitted_model_survives_json_and_predicts_the_same() -> None:
    rows, labels = synthetic(2_000, (5.0, 9.0), -4.0, seed=1)
    model = ConfidenceModel.fit(rows, labels, fitted_on="synthetic")
    again = ConfidenceModel.from_dict(json.loads(json.dumps(model.to_dict())))
    assert again == model
    np.testing.assert_allclose(again.predict(rows), model.predict(rows), rtol=0, atol=1e-12)
    assert np.all((model.predict(rows) > 0) & (model.predict(rows) < 1))


@pytest.mark.parametrize(
    "change",
    [
        {"features": ["cosine", "margin"]},
        {"version": 99},
        {"weights": [1.0]},
        {"bias": float("nan")},
        {"weights": "many"},
    ],
)
def test_a_stored_model_for_other_features_or_broken_is_refused(change: dict[str, object]) -> None:
    data = {**confidence.default_model().to_dict(), **change}
    with pytest.raises(InputError, match="calibrate again"):
        ConfidenceModel.from_dict(data)


def test_fitting_needs_right_and_wrong_matches() -> None:
    with pytest.raises(InputError, match="both right and wrong"):
        ConfidenceModel.fit(np.ones((5, 2)), np.ones(5, dtype=bool))


def test_the_shipped_model_keeps_the_ranking_order() -> None:
    model = confidence.default_model()
    assert model.is_monotone()
    rng = np.random.default_rng(3)
    for _ in range(50):
        cosine = rng.uniform(0.2, 0.95, 100)
        lexical = np.where(rng.random(100) < 0.3, rng.exponential(5.0, 100), 0.0)
        positions, confidences = model.rank(cosine, lexical, 10)
        ranking = confidence.fuse(cosine, lexical, model.fusion_weight)
        assert np.all(np.diff(ranking[positions]) <= 0)
        assert np.all(np.diff(confidences) <= 1e-12)


def test_more_evidence_means_more_confidence() -> None:
    model = confidence.default_model()
    weak = model.rank(np.array([0.70, 0.69, 0.5]), np.zeros(3), 1)[1][0]
    clear_winner = model.rank(np.array([0.70, 0.55, 0.5]), np.zeros(3), 1)[1][0]
    closer_text = model.rank(np.array([0.85, 0.70, 0.65]), np.zeros(3), 1)[1][0]
    word_match = model.rank(np.array([0.70, 0.69, 0.5]), np.array([6.0, 0.0, 0.0]), 1)[1][0]
    assert weak < clear_winner < closer_text
    assert weak < word_match


def test_lexical_share_ignores_the_scale_of_bm25() -> None:
    lexical = np.array([0.0, 2.0, 7.5, 1.0])
    np.testing.assert_allclose(confidence.lexical_share(lexical), confidence.lexical_share(lexical * 3.7))
    np.testing.assert_array_equal(confidence.lexical_share(np.zeros(3)), np.zeros(3))


def test_candidate_pool_is_the_top_cosines_best_first() -> None:
    cosine = np.random.default_rng(5).normal(size=500)
    np.testing.assert_array_equal(confidence.candidate_pool(cosine, 100), np.argsort(-cosine, kind="stable")[:100])
    assert confidence.candidate_pool(cosine[:7], 100).tolist() == np.argsort(-cosine[:7], kind="stable").tolist()


def test_margins_are_the_lead_of_the_winner_and_the_gap_of_the_rest() -> None:
    np.testing.assert_allclose(confidence.margins(np.array([0.4, 0.9, 0.7])), [-0.5, 0.2, -0.2])
    np.testing.assert_array_equal(confidence.margins(np.array([0.4])), [0.0])


def test_siblings_do_not_count_against_each_other_in_the_margin() -> None:
    scores = np.array([0.9, 0.85, 0.6, 0.5])
    groups = np.array([4, 4, 2, 3])  # the two best answers are filed under one question
    np.testing.assert_allclose(confidence.distinct_margins(scores, groups), [0.3, 0.25, -0.3, -0.4])
    np.testing.assert_allclose(confidence.distinct_margins(scores, np.arange(4)), confidence.margins(scores))
    np.testing.assert_array_equal(confidence.distinct_margins(scores, np.zeros(4)), np.zeros(4))


def test_question_groups_link_entries_that_share_a_question() -> None:
    groups = confidence.question_groups([["How do I pay?"], ["how do  i PAY?", "Refunds?"], ["refunds?"], [], ["x"]])
    assert groups.tolist() == [0, 0, 0, 3, 4]


def test_a_version_1_model_still_loads_and_scores_with_the_runner_up_margin() -> None:
    old = {"version": 1, "kind": "logistic", "features": ["fused", "margin"], "weights": [11.0, 9.0], "bias": -10.0}
    model = ConfidenceModel.from_dict(old)
    assert model.version == 1
    assert model.to_dict()["features"] == ["fused", "margin"]
    cosine, lexical = np.array([0.9, 0.88, 0.5]), np.zeros(3)
    siblings = np.array([1, 1, 2])
    _, confidences = model.rank(cosine, lexical, 1, siblings)
    assert confidences[0] == pytest.approx(1 / (1 + np.exp(-(11.0 * 0.9 + 9.0 * 0.02 - 10.0))))


def test_fitted_weights_stay_non_negative() -> None:
    rng = np.random.default_rng(4)
    rows = np.column_stack([rng.uniform(0.4, 1.1, 3_000), rng.uniform(-0.3, 0.2, 3_000), rng.uniform(0.3, 1, 3_000)])
    labels = rng.random(3_000) < 1 / (1 + np.exp(-(8.0 * rows[:, 0] + 6.0 * rows[:, 1] - 4.0 * rows[:, 2] - 3.0)))
    model = ConfidenceModel.fit(rows, labels, l2=0.01)
    assert model.is_monotone()
    assert model.weights[2] == 0.0  # the feature that pulled the wrong way is left out
    assert model.weights[0] > 1.0 and model.weights[1] > 1.0


def test_the_shipped_model_doubts_an_out_of_scope_winner_more_than_a_close_match() -> None:
    """A clear winner among weak candidates (low cosine) is less sure than the same lead at a high cosine."""
    model = confidence.default_model()
    weak = model.rank(np.array([0.62, 0.5, 0.45]), np.zeros(3), 1)[1][0]
    strong = model.rank(np.array([0.92, 0.8, 0.75]), np.zeros(3), 1)[1][0]
    assert weak < 0.5 < strong


@pytest.mark.parametrize(
    ("conf", "right", "expected"),
    [
        ([0.8] * 10, [True] * 8 + [False] * 2, 0.0),
        ([0.9] * 4, [False] * 4, 0.9),
        ([0.25] * 4 + [0.75] * 4, [True, False, False, False, True, True, False, False], 0.125),
        ([1.0, 0.0], [True, False], 0.0),
    ],
)
def test_expected_calibration_error_of_known_cases(conf: list[float], right: list[bool], expected: float) -> None:
    assert expected_calibration_error(conf, right) == pytest.approx(expected)


def test_expected_calibration_error_needs_matching_input() -> None:
    with pytest.raises(InputError):
        expected_calibration_error([0.5, 0.6], [True])


def unrelated_entries(count: int, seed: int = 0) -> list[FaqEntry]:
    """Entries of made-up words (no word of the sample FAQ): answers only, 40 to 80 words each.

    Long texts of unrelated words keep the fake encoder's chance cosines with a question small, as a real
    encoder's are for unrelated text; a short one of random words can collide with a question's few words.
    """
    rng = np.random.default_rng(seed)
    letters = list(string.ascii_lowercase)

    def words(n: int) -> str:
        return " ".join("q" + "".join(rng.choice(letters, 6)) for _ in range(n))

    return [FaqEntry(id=f"noise-{n}", answer=words(int(rng.integers(40, 81)))) for n in range(count)]


@pytest.fixture(scope="module")
def sample() -> tuple[list[FaqEntry], list[str], list[frozenset[str]]]:
    entries = read_faq(DATA / "faq.csv")
    queries = read_queries(DATA / "queries.csv")
    return entries, [q.query for q in queries], [q.relevant for q in queries]


def top_matches(index: FaqIndex, questions: list[str], k: int) -> list[dict[str, float]]:
    return [{m.entry.id: m.score for m in matches} for matches in index.ask_batch(questions, k=k, min_score=0.0)]


def test_twenty_times_more_unrelated_entries_keep_confidences_and_precision(
    sample: tuple[list[FaqEntry], list[str], list[frozenset[str]]],
) -> None:
    entries, questions, relevant = sample
    encoder = FakeEncoder(dimension=256)
    small = FaqIndex.build(entries, encoder=encoder)
    large = FaqIndex.build([*entries, *unrelated_entries(20 * len(entries))], encoder=encoder)
    before, after = top_matches(small, questions, 1), top_matches(large, questions, 10)
    shifts = []
    for first, grown in zip(before, after, strict=True):
        ((entry, score),) = first.items()
        assert entry in grown, "an unrelated entry pushed a question's best entry out of its top 10"
        shifts.append(abs(grown[entry] - score))
    assert max(shifts) <= 0.05

    def precision_coverage(found: list[dict[str, float]], threshold: float) -> tuple[float, float]:
        tops = [next(iter(f.items())) for f in found]
        answered = [(e in r) for (e, s), r in zip(tops, relevant, strict=True) if s >= threshold]
        return (sum(answered) / len(answered) if answered else 1.0), len(answered) / len(tops)

    threshold = float(np.median([next(iter(f.values())) for f in before]))
    precision_small, coverage_small = precision_coverage(before, threshold)
    precision_large, coverage_large = precision_coverage(top_matches(large, questions, 1), threshold)
    assert coverage_small >= 0.4
    assert abs(precision_large - precision_small) <= 0.05
    assert abs(coverage_large - coverage_small) <= 0.05


@pytest.mark.parametrize("index_type", ["hnsw", "ivf"])
def test_approximate_indexes_give_the_flat_confidences_for_the_same_candidates(
    sample: tuple[list[FaqEntry], list[str], list[frozenset[str]]], index_type: str, tmp_path: Path
) -> None:
    entries, questions, _ = sample
    faq = [*entries, *unrelated_entries(300, seed=1)]  # more entries than the candidate pool
    encoder = FakeEncoder(dimension=256)
    flat = FaqIndex.build(faq, encoder=encoder)
    approximate = FaqIndex.build(faq, encoder=encoder, index_type=index_type)
    for exact, approx in zip(top_matches(flat, questions, 5), top_matches(approximate, questions, 5), strict=True):
        assert list(approx) == list(exact)
        # FAISS's float32 cosines differ from the flat kernel's in the last bits; the confidence's slope
        # (at most about 5 per unit of cosine) keeps that far below a thousandth
        np.testing.assert_allclose(list(approx.values()), list(exact.values()), atol=1e-3)


def test_more_matches_than_the_pool_can_be_asked_for(
    sample: tuple[list[FaqEntry], list[str], list[frozenset[str]]],
) -> None:
    entries, questions, _ = sample
    faq = [*entries, *unrelated_entries(150, seed=2)]
    index = FaqIndex.build(faq, encoder=FakeEncoder(dimension=256))
    matches = index.ask(questions[0], k=150, min_score=0.0)
    assert len(matches) == 150
    assert all(a.score >= b.score for a, b in itertools.pairwise(matches))


@pytest.mark.parametrize("with_questions", [True, False])
def test_hybrid_ask_equals_a_brute_force_oracle(
    sample: tuple[list[FaqEntry], list[str], list[frozenset[str]]], with_questions: bool
) -> None:
    """Replaces tests/quality/test_evaluate.py's oracle of the old z-score fusion (an FAQ smaller than the pool)."""
    entries, questions, _ = sample
    encoder = FakeEncoder()
    fields = "question+answer" if with_questions else "answer"
    index = FaqIndex.build(entries, encoder=encoder, fields=fields)
    model = confidence.default_model()
    lexicon = PoolLexicon([entry_document(e.questions if with_questions else (), e.answer) for e in entries])
    documents = [Counter(tokens) for tokens in lexicon.tokenize(lexicon.documents)]
    for question, matches in zip(questions[:12], index.ask_batch(questions[:12], k=3, min_score=0.0), strict=True):
        query = encoder.encode([question])[0]
        dense = np.array(
            [
                max(float(query @ v) for v in encoder.encode([*(e.questions if with_questions else ()), e.answer]))
                for e in entries
            ]
        )
        own = pool_bm25(lexicon.query_terms(question), documents, [sum(d.values()) for d in documents], 100)
        groups = confidence.question_groups([e.questions if with_questions else () for e in entries])
        rows = confidence.features(dense, own, model.fusion_weight, groups)
        expected = np.lexsort((np.arange(len(entries)), -rows[:, 0]))[:3]
        assert [m.entry.id for m in matches] == [entries[i].id for i in expected]
        capped = np.minimum.accumulate(model.predict(rows[expected]))  # never rising down the list
        for match, i, score in zip(matches, expected, capped, strict=True):
            assert match.score == pytest.approx(float(score), abs=1e-5)
            assert match.cosine == pytest.approx(float(dense[i]), abs=1e-5)
