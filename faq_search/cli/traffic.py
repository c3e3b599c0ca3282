"""Commands that learn from traffic and check the FAQ: ``gaps`` (from ``serve --log``) and ``lint``.

Each is parse -> one library call in :mod:`faq_search.traffic` -> render.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from faq_search.cli.options import DEFAULT_INDEX, AnswerColumn, IdColumn, IndexDir, JsonFlag, QuestionColumns
from faq_search.traffic.settings import (
    DEFAULT_MIN_SCORE,
    DEFAULT_REVIEW_SCORE,
    DEFAULT_SIMILARITY,
    Clustering,
    GapWeight,
    Ranking,
    TopicEncoder,
)

if TYPE_CHECKING:
    from faq_search.traffic.gaps import GapsReport
    from faq_search.traffic.lint import LintReport

Similarity = Annotated[
    float | None, typer.Option(min=0.01, max=1.0, help="Cosine at which questions count as one topic.")
]


def gaps(
    log: Annotated[Path, typer.Argument(help="The question log `faq-search serve --log` wrote.")],
    index_dir: IndexDir = DEFAULT_INDEX,
    since: Annotated[
        str | None, typer.Option(help="Only questions asked from this date on (2026-11-01, UTC, or a full ISO time).")
    ] = None,
    min_score: Annotated[
        float | None,
        typer.Option(
            min=0.0, max=1.0, help="The threshold: below it a question was unanswered. Default: the server's, else 0.5."
        ),
    ] = None,
    review_score: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Answered questions below this confidence are gaps too: their answer is in doubt "
            "(default: calibrate's default target precision).",
        ),
    ] = DEFAULT_REVIEW_SCORE,
    no_review: Annotated[
        bool, typer.Option("--no-review", help="Only questions below the threshold are gaps.")
    ] = False,
    weight: Annotated[
        GapWeight,
        typer.Option(
            help="askings: each gap asking counts 1; expected: 1 unanswered or marked unhelpful, "
            "1 - confidence answered (unserved askings in expectation)."
        ),
    ] = GapWeight.ASKINGS,
    similarity: Similarity = None,
    method: Annotated[
        Clustering, typer.Option(help="agglomerative merges by --similarity; kmeans makes --clusters topics.")
    ] = Clustering.AGGLOMERATIVE,
    clusters: Annotated[
        int | None, typer.Option(min=1, help="kmeans: how many topics (default: one per 5 questions).")
    ] = None,
    top: Annotated[int, typer.Option(min=1, help="How many topics to report, most needed first.")] = 20,
    rank: Annotated[
        Ranking,
        typer.Option(
            help="novelty: need (gap askings, see --weight) times distance from the FAQ's questions and answers "
            "(missing topics first); volume: need alone."
        ),
    ] = Ranking.NOVELTY,
    encoder: Annotated[
        TopicEncoder,
        typer.Option(help="sentence: the bundle's model at its last layer (needs torch); index: the index's own."),
    ] = TopicEncoder.SENTENCE,
    csv_out: Annotated[Path | None, typer.Option("--csv", help="Also write the topics to this CSV file.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Questions the FAQ did not answer confidently (or whose answer was marked unhelpful), grouped by topic.

    Each topic shows its need (its gap askings, see --weight), its volume, its most central questions and the
    closest existing entry with its confidence: write a new entry for it, or reword the close one, then rebuild
    with `faq-search index`.
    """
    from faq_search.index.faq_index import FaqIndex
    from faq_search.traffic.gaps import GapsOptions, find_gaps, parse_since, write_csv
    from faq_search.traffic.log import existing_log

    since_s = parse_since(since) if since else None
    options = GapsOptions(
        min_score=min_score, review_score=None if no_review else review_score, weight=weight,
        similarity=DEFAULT_SIMILARITY if similarity is None else similarity, method=method, clusters=clusters,
        top=top, ranking=rank, encoder=encoder,
    )  # fmt: skip
    report = find_gaps(existing_log(log), FaqIndex.load(index_dir), options, since=since_s, progress=True)
    if csv_out is not None:
        write_csv(report, csv_out)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
        return
    typer.echo(gaps_text(report))
    if csv_out is not None:
        typer.echo(f"topics written to {csv_out}")


def gaps_text(report: GapsReport) -> str:
    threshold = (
        f"{report.min_score:g}"
        if report.min_score is not None
        else f"the server's threshold ({DEFAULT_MIN_SCORE:g} where it had none)"
    )
    review = "" if report.review_score is None else f", answered below {report.review_score:g}"
    expected = report.weight == GapWeight.EXPECTED.value  # else a topic's need is its volume
    lines = [
        f"{report.gap_askings} of {report.logged} logged questions were gaps "
        f"({report.gap_questions} distinct): confidence below {threshold}{review}, or marked unhelpful"
        + (f"; {report.gap_need:.1f} unserved askings expected." if expected else ".")
    ]
    for c in report.clusters:
        closest = (
            f"closest entry {c.closest_id} ({c.closest_score:.2f}): {c.closest_question!r}"
            if c.closest_id
            else "no close entry"
        )
        lines.append(
            f"{c.rank:>3}. {f'need {c.need:.1f}: ' if expected else ''}"
            f"{c.volume} asked ({c.distinct} distinct, {c.unhelpful} unhelpful), "
            f"novelty {c.novelty:.2f}; "
            f"{closest}"
        )
        lines += [f"       - {question}" for question in c.representatives]
    if not report.clusters:
        lines.append("No gaps: every logged question got a confident answer.")
    return "\n".join(lines)


def lint(
    faq: Annotated[Path, typer.Argument(help="The FAQ file to check (as for `faq-search index`).")],
    index_dir: Annotated[
        Path | None,
        typer.Option(
            "--index", "-i", help="The index built from this FAQ: its encoder is used, and reachability is checked."
        ),
    ] = None,
    similarity: Similarity = None,
    max_question_chars: Annotated[int, typer.Option(min=1, help="Longer questions are reported.")] = 300,
    max_answer_chars: Annotated[int, typer.Option(min=1, help="Longer answers are reported.")] = 4000,
    answer_column: AnswerColumn = "answer",
    question_column: QuestionColumns = None,
    id_column: IdColumn = None,
    as_json: JsonFlag = False,
) -> None:
    """Check an FAQ file: conflicting near-duplicate questions, repeated answers, unreachable entries, bad fields.

    Exits with 1 when it finds something, 0 when the FAQ is clean.
    """
    from faq_search.traffic.lint import LintSettings, lint_entries, read_rows

    settings = LintSettings(max_question_chars=max_question_chars, max_answer_chars=max_answer_chars)
    if similarity is not None:
        settings = LintSettings(similarity, max_question_chars, max_answer_chars)
    entries, found = read_rows(
        faq, answer_column=answer_column, question_column=question_column or None, id_column=id_column
    )
    if index_dir is not None:
        from faq_search.index.faq_index import FaqIndex

        index = FaqIndex.load(index_dir)
        report = lint_entries(entries, index.encoder, index, settings, found)
    else:
        from faq_search.encoding.encoder import BertEncoder
        from faq_search.encoding.settings import EncoderSettings

        report = lint_entries(entries, BertEncoder(EncoderSettings()), None, settings, found)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    else:
        typer.echo(lint_text(report))
    if report.issues:
        raise typer.Exit(1)


def lint_text(report: LintReport) -> str:
    counts = ", ".join(f"{n} {kind.replace('_', ' ')}" for kind, n in report.counts().items() if n)
    lines = [f"{report.rows} rows: {counts or 'no problems found'}."]
    for issue in report.issues:
        shown = ", ".join(issue.ids[:6]) + (f" and {len(issue.ids) - 6} more" if len(issue.ids) > 6 else "")
        lines.append(f"  {issue.kind} [{shown}]: {issue.detail}")
    lines += [f"  skipped {reason}" for reason in report.skipped]
    return "\n".join(lines)
