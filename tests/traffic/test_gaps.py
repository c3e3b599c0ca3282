"""The gaps report: gap questions found from scores and feedback, clustered by topic, ranked by volume."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pytest
from typer.testing import CliRunner

from faq_search.cli.app import app as cli
from faq_search.errors import InputError
from faq_search.index.faq_index import FaqIndex
from faq_search.traffic import cluster
from faq_search.traffic.gaps import GapsOptions, find_gaps, gap_questions, parse_since
from faq_search.traffic.log import Feedback, LoggedMatch, QuestionLog, QuestionRecord, new_question_id
from faq_search.traffic.settings import DEFAULT_REVIEW_SCORE, Clustering, GapWeight, Ranking, TopicEncoder
from tests.traffic.conftest import RENTALS, SKI_WAX


def logged(question: str, score: float | None, min_score: float | None = None, at: float = 1000.0) -> QuestionRecord:
    matches = () if score is None else (LoggedMatch("orders-01", score),)
    answered = score is not None and (min_score is None or score >= min_score)
    return QuestionRecord(new_question_id(), at, question, answered, matches, min_score=min_score)


def test_a_gap_is_a_low_score_no_match_or_unhelpful_feedback() -> None:
    low, none, confident, disliked = (
        logged("low", 0.3), logged("none", None), logged("fine", 0.9), logged("disliked", 0.9),
    )  # fmt: skip
    strict = logged("strict", 0.6, min_score=0.7)  # below the threshold the server applied
    again = logged("LOW ", 0.2)  # the same question, case and spacing aside
    gaps = gap_questions([low, none, confident, disliked, strict, again], [Feedback(disliked.id, False)])
    assert [(g.text, g.asked, g.unanswered, g.unhelpful) for g in gaps] == [
        ("low", 2, 2, 0), ("none", 1, 1, 0), ("disliked", 1, 0, 1), ("strict", 1, 1, 0),
    ]  # fmt: skip
    assert [g.text for g in gap_questions([low, confident], [], min_score=0.95)] == ["low", "fine"]


def test_agglomeration_merges_by_similarity_and_numbers_topics_by_weight() -> None:
    vectors = np.array([[1, 0], [0.99, 0.14], [0, 1], [0.1, 0.99]], dtype=np.float32)
    assert cluster.agglomerate(vectors, [1, 1, 1, 1], similarity=0.9).tolist() == [0, 0, 1, 1]
    assert cluster.agglomerate(vectors, [1, 1, 5, 1], similarity=0.9).tolist() == [1, 1, 0, 0]
    assert sorted(cluster.agglomerate(vectors, [1] * 4, similarity=0.999).tolist()) == [0, 1, 2, 3]


def test_large_inputs_are_pre_clustered_with_kmeans(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 16))
    points = np.concatenate([c + 0.05 * rng.normal(size=(40, 16)) for c in centres]).astype(np.float32)
    monkeypatch.setattr(cluster, "DIRECT_LIMIT", 20)
    labels = cluster.agglomerate(points, [1] * 120, similarity=0.9)
    assert len(set(labels.tolist())) == 3
    assert all(len(set(labels[i * 40 : (i + 1) * 40].tolist())) == 1 for i in range(3))


@pytest.fixture(scope="module")
def planted_log(tmp_path_factory: pytest.TempPathFactory, sample_index: FaqIndex) -> Path:
    path = tmp_path_factory.mktemp("gaps") / "log.db"
    asked_log(path, sample_index).close()
    return path


def asked_log(path: Path, index: FaqIndex) -> QuestionLog:
    """A log of the planted topics, the FAQ's own labelled questions and feedback, asked of the real index."""
    log = QuestionLog(path)
    for question in (*RENTALS, *SKI_WAX):
        log.ask(index, question)
    with (Path(__file__).resolve().parents[2] / "data" / "queries.csv").open() as handle:
        for row in csv.DictReader(handle):
            log.ask(index, row["query"])
    disliked = log.ask(index, "my discount code does not work")
    log.add_feedback(disliked.question_id, helpful=False)
    return log


@pytest.mark.model
def test_planted_topics_come_first_with_their_closest_entry(planted_log: Path, sample_index: FaqIndex) -> None:
    report = find_gaps(planted_log, sample_index)
    first = report.clusters[0]
    assert set(RENTALS[:4]) == set(first.questions) and first.volume == 5 and first.distinct == 4
    assert first.closest_id is not None and first.closest_score is not None and first.closest_score < 0.5
    skis = next(c for c in report.clusters if SKI_WAX[0] in c.questions)
    assert set(SKI_WAX) <= set(skis.questions) and skis.rank <= 3
    assert any("my discount code does not work" in c.questions and c.unhelpful == 1 for c in report.clusters)
    needed = [c.volume * c.novelty for c in report.clusters]  # the ranking: volume times novelty
    assert needed == sorted(needed, reverse=True) and report.ranking == "novelty" and report.encoder == "sentence"
    by_volume = find_gaps(planted_log, sample_index, ranking=Ranking.VOLUME, encoder=TopicEncoder.INDEX)
    assert [c.volume for c in by_volume.clusters] == sorted((c.volume for c in by_volume.clusters), reverse=True)
    assert by_volume.encoder == "index" and by_volume.gap_questions == report.gap_questions
    assert report.logged == len(RENTALS) + len(SKI_WAX) + 60 + 1
    kmeans = find_gaps(planted_log, sample_index, method=Clustering.KMEANS, clusters=4, top=2)
    assert len(kmeans.clusters) == 2 and kmeans.method == "kmeans" and kmeans.gap_questions == report.gap_questions


@pytest.mark.model
def test_gaps_command_prints_json_and_writes_csv(tmp_path: Path, planted_log: Path, sample_bundle: Path) -> None:
    from faq_search.traffic import gaps, topics

    out = tmp_path / "gaps.csv"
    with mock.patch.object(gaps, "topic_space", wraps=topics.topic_space) as built:
        result = CliRunner().invoke(
            cli, ["gaps", str(planted_log), "--index", str(sample_bundle), "--json", "--csv", str(out), "--top", "3"]
        )
    assert result.exit_code == 0, result.output
    assert built.call_args.kwargs == {"progress": True}  # a bar while the FAQ is embedded (on a terminal only)
    data = json.loads(result.output)
    assert len(data["clusters"]) == 3 and data["clusters"][0]["closest"]["id"]
    assert set(RENTALS[:4]) == set(data["clusters"][0]["questions"])
    with out.open() as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["volume"]) for r in rows] == [c["volume"] for c in data["clusters"]]
    text = CliRunner().invoke(cli, ["gaps", str(planted_log), "--index", str(sample_bundle)]).output
    assert "tent" in text and "closest entry" in text
    future = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 2 * 86400))
    later = CliRunner().invoke(cli, ["gaps", str(planted_log), "-i", str(sample_bundle), "--since", future])
    assert later.exit_code == 0 and "No gaps" in later.output


def test_novelty_puts_a_topic_the_faq_lacks_above_one_it_answers_weakly() -> None:
    """Two topics of equal volume: the one beside an FAQ question ranks below the one away from all of them."""
    from faq_search.traffic.gaps import gaps_report
    from faq_search.traffic.topics import TopicSpace

    space = TopicSpace(_Axes(), np.zeros(2, np.float32), np.array([[1.0, 0.0]], np.float32))  # type: ignore[arg-type]
    records = [logged(f"near {i}", 0.2) for i in range(3)] + [logged(f"new {i}", 0.2) for i in range(3)]
    args = {"space": space, "similarity": 0.9, "min_score": 0.5}
    novel = gaps_report(records, [], _NoMatches(), **args)  # type: ignore[arg-type]
    assert [c.representatives[0].split()[0] for c in novel.clusters] == ["new", "near"]
    assert novel.clusters[0].novelty > 0.7 > 0.1 > novel.clusters[1].novelty
    plain = gaps_report(records, [], _NoMatches(), ranking=Ranking.VOLUME, **args)  # type: ignore[arg-type]
    assert [c.representatives[0].split()[0] for c in plain.clusters] == ["near", "new"]  # equal volume: first asked


def test_novelty_is_the_distance_to_the_closest_question_times_the_root_of_that_to_the_closest_answer() -> None:
    """A topic beside what an FAQ answer talks about (though far from every FAQ question) is not new."""
    from faq_search.traffic.gaps import gaps_report
    from faq_search.traffic.topics import TopicSpace

    class Axes:  # the FAQ's question along x, its answer along y; "told ..." questions along y, "new ..." along z
        dimension = 3

        def encode(self, texts: list[str]) -> np.ndarray:
            return np.array([[0.0, 1.0, 0.01 * i] if t.startswith("told") else [0.01 * i, 0.0, 1.0] for i, t in
                             enumerate(texts)])  # fmt: skip

    space = TopicSpace(
        Axes(), np.zeros(3, np.float32), np.array([[1.0, 0.0, 0.0]], np.float32),  # type: ignore[arg-type]
        answers=np.array([[0.0, 1.0, 0.0]], np.float32),
    )  # fmt: skip
    between = np.array([[0.5, 0.5, np.sqrt(0.5)]], np.float32)  # cosine 0.5 to both
    assert space.novelty(between)[0] == pytest.approx(0.5 * np.sqrt(0.5), abs=1e-6)
    assert space.novelty(np.array([[0.0, 0.0, 1.0]], np.float32))[0] == pytest.approx(1.0)
    assert TopicSpace(Axes(), np.zeros(3), np.array([[1.0, 0, 0]])).novelty(between)[0] == pytest.approx(0.5)  # type: ignore[arg-type]
    records = [logged(f"told {i}", 0.2) for i in range(5)] + [logged(f"new {i}", 0.2) for i in range(3)]
    report = gaps_report(records, [], _NoMatches(), space=space, similarity=0.9, min_score=0.5)  # type: ignore[arg-type]
    assert [(c.representatives[0].split()[0], c.volume) for c in report.clusters] == [("new", 3), ("told", 5)]
    assert report.clusters[0].novelty > 0.9 and report.clusters[1].novelty < 0.02


def test_the_topic_space_encodes_a_text_that_is_both_a_question_and_an_answer_once() -> None:
    """An entry without questions stands for its answer among the questions: that answer is encoded once."""
    from types import SimpleNamespace

    from faq_search.corpus import FaqEntry
    from faq_search.traffic.topics import topic_space

    seen: list[str] = []

    class Counting:
        dimension = 3

        def encode(self, texts: list[str]) -> np.ndarray:
            seen.extend(texts)
            return np.array([[1.0, len(t), 0.5] for t in texts], dtype=np.float32)

    entries = [FaqEntry("a", "Refunds take five days."), FaqEntry("b", "Ships in a week.", ("When does it ship?",))]
    space = topic_space(SimpleNamespace(entries=entries), TopicEncoder.SENTENCE, Counting())  # type: ignore[arg-type]
    assert sorted(seen) == ["Refunds take five days.", "Ships in a week.", "When does it ship?"]
    assert len(space.reference) == 2 and space.answers is not None and len(space.answers) == 2
    assert np.allclose(space.reference[0], space.answers[0])  # the same text, the same vector


def test_the_index_topic_space_reads_the_stored_question_and_answer_rows_apart(sample_index: FaqIndex) -> None:
    from faq_search.index.rows import ANSWER
    from faq_search.traffic.topics import topic_space

    space = topic_space(sample_index, TopicEncoder.INDEX)
    fields = list(sample_index.store.row_field)
    assert space.answers is not None
    assert len(space.answers) == fields.count(ANSWER) and len(space.reference) == len(fields) - fields.count(ANSWER)
    assert len(space.reference) > 0
    answer = space.answers[:1]  # an FAQ answer itself: at distance 0 from the closest answer
    assert space.novelty(answer)[0] == pytest.approx(0.0, abs=1e-5)


def test_gaps_errors_are_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["gaps", str(tmp_path / "missing.db"), "--index", str(tmp_path)])
    assert result.exit_code == 2 and "no question log there" in result.output
    with pytest.raises(InputError, match="not a date"):
        parse_since("last tuesday")
    assert parse_since("1970-01-02") == 86400.0


def test_expected_weight_counts_handovers_as_one_and_answers_as_their_chance_of_being_wrong() -> None:
    """Threshold 0.6 (the server's), review 0.9: what each asking adds to its question's need."""
    handed = logged("handed over", 0.4, min_score=0.6)  # not answered: 1
    doubtful = logged("doubtful", 0.75, min_score=0.6)  # answered, wrong with chance 0.25
    doubtful_again = logged("Doubtful", 0.85, min_score=0.6)  # the same question: + 0.15
    sure = logged("sure", 0.95, min_score=0.6)  # above the review level: not a candidate
    disliked = logged("disliked", 0.97, min_score=0.6)  # a customer said it was wrong: 1
    confirmed = logged("confirmed", 0.7, min_score=0.6)  # a customer said it helped: 0
    nothing = logged("nothing", None, min_score=0.6)  # no match at all: 1
    records = [handed, doubtful, doubtful_again, sure, disliked, confirmed, nothing]
    votes = [Feedback(disliked.id, False), Feedback(confirmed.id, True)]
    gaps = gap_questions(records, votes, review_score=0.9, weight=GapWeight.EXPECTED)
    assert [(g.text, g.asked, g.unanswered, g.unhelpful, round(g.need, 6)) for g in gaps] == [
        ("handed over", 1, 1, 0, 1.0), ("doubtful", 2, 0, 0, 0.4), ("disliked", 1, 0, 1, 1.0),
        ("nothing", 1, 1, 0, 1.0),
    ]  # fmt: skip
    counted = gap_questions(records, votes, review_score=0.9, weight=GapWeight.ASKINGS)  # 1 per candidate asking
    assert [(g.text, g.need) for g in counted] == [
        ("handed over", 1.0), ("doubtful", 2.0), ("disliked", 1.0), ("confirmed", 1.0), ("nothing", 1.0),
    ]  # fmt: skip
    before = gap_questions(records, votes)  # no review level: only below the threshold, or unhelpful
    assert [g.text for g in before] == ["handed over", "disliked", "nothing"]
    assert [g.text for g in gap_questions(records, [], min_score=0.8, review_score=0.5)] == [
        "handed over", "doubtful", "confirmed", "nothing",
    ]  # fmt: skip  # the review level never lowers the threshold


class _Axes:
    """A two-axis fake encoder: "near ..." questions point along x (where the FAQ's one question is), others y."""

    dimension = 2

    def encode(self, texts: list[str]) -> np.ndarray:
        return np.array([[1.0, 0.05 * i] if t.startswith("near") else [0.05 * i, 1.0] for i, t in enumerate(texts)])


class _NoMatches:
    def ask_batch(self, questions: list[str], k: int, min_score: float) -> list[list[object]]:
        return [[] for _ in questions]


def test_a_confidently_misanswered_new_topic_outranks_a_weak_topic_the_faq_has(tmp_path: Path) -> None:
    """On a real SQLite log: a missing topic answered with 0.8 (by a near neighbour) is invisible below the
    threshold alone, and comes first by gap askings x novelty; a weakly answered topic beside the FAQ's
    question follows it; a topic answered with 0.95 (above the review level) stays out."""
    from faq_search.traffic.topics import TopicSpace

    space = TopicSpace(_Axes(), np.zeros(2, np.float32), np.array([[1.0, 0.0]], np.float32))  # type: ignore[arg-type]
    log = QuestionLog(tmp_path / "traffic.db", redact=False)
    records = [logged(f"new {i % 3}", 0.8, min_score=0.6, at=1000.0 + i) for i in range(6)]
    records += [logged(f"near {i}", 0.5, min_score=0.6, at=2000.0 + i) for i in range(8)]
    records += [logged(f"fine {i}", 0.95, min_score=0.6, at=3000.0 + i) for i in range(30)]
    log.write(records)
    log.close()
    args: dict[str, Any] = {"space": space, "similarity": 0.9}
    report = find_gaps(tmp_path / "traffic.db", _NoMatches(), **args)  # type: ignore[arg-type]
    assert report.weight == "askings" and report.review_score == 0.9 and report.gap_questions == 11
    assert [(c.representatives[0].split()[0], c.volume, c.need) for c in report.clusters] == [
        ("new", 6, 6.0), ("near", 8, 8.0),
    ]  # fmt: skip
    assert report.clusters[0].novelty > 0.7 > 0.1 > report.clusters[1].novelty
    assert report.gap_need == 14.0 and report.gap_askings == 14
    by_need = find_gaps(tmp_path / "traffic.db", _NoMatches(), ranking=Ranking.VOLUME, **args)  # type: ignore[arg-type]
    assert [c.representatives[0].split()[0] for c in by_need.clusters] == ["near", "new"]
    expected = find_gaps(tmp_path / "traffic.db", _NoMatches(), weight=GapWeight.EXPECTED, **args)  # type: ignore[arg-type]
    assert [(c.representatives[0].split()[0], round(c.need, 4)) for c in expected.clusters] == [
        ("new", 1.2), ("near", 8.0),
    ]  # fmt: skip  # 6 x (1 - 0.8) x novelty ~0.9 still above 8 x 1 x novelty ~0
    before = GapsOptions(review_score=None)  # the threshold alone
    old = find_gaps(tmp_path / "traffic.db", _NoMatches(), before, **args)  # type: ignore[arg-type]
    assert [(c.representatives[0].split()[0], c.need) for c in old.clusters] == [("near", 8.0)]


def test_gaps_options_are_one_record_taken_whole_or_as_keywords() -> None:
    options = GapsOptions(similarity=0.7, top=3)
    assert options.revised(weight=GapWeight.EXPECTED) == GapsOptions(similarity=0.7, top=3, weight=GapWeight.EXPECTED)
    assert options.revised() is options
    with pytest.raises(TypeError):
        options.revised(colour="blue")
    assert GapsOptions().weight is GapWeight.ASKINGS and GapsOptions().review_score == DEFAULT_REVIEW_SCORE == 0.9


def test_report_dicts_keep_their_shape() -> None:
    from faq_search.traffic.gaps import GapCluster, GapsReport

    cluster = GapCluster(1, 3, 2, 1, 0, ("a", "b"), "e1", "q?", 0.4, 0.3, ("a", "b"), 1.5)
    assert cluster.to_dict() == {
        "rank": 1, "volume": 3, "distinct": 2, "unanswered": 1, "unhelpful": 0, "representatives": ["a", "b"],
        "closest": {"id": "e1", "question": "q?", "score": 0.4}, "novelty": 0.3, "questions": ["a", "b"], "need": 1.5,
    }  # fmt: skip
    report = GapsReport(5, 3, 2, None, 0.5, "agglomerative", (cluster,), "novelty", "sentence", 0.9, "expected", 1.5)
    body = report.to_dict()
    assert list(body) == [
        "logged", "gap_askings", "gap_questions", "min_score", "similarity", "method", "ranking", "encoder",
        "review_score", "weight", "gap_need", "clusters",
    ]  # fmt: skip
    assert body["clusters"] == [cluster.to_dict()] and json.loads(json.dumps(body)) == body
