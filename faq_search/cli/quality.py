"""Commands that measure and improve retrieval: ``eval``, ``calibrate``, ``tune``, ``adapt``.

Each is parse -> one library call in :mod:`faq_search.quality` -> render; the
FAQ and query files are read here only to hand the library their records.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from faq_search.cli import render
from faq_search.cli.options import (
    DEFAULT_INDEX,
    AnswerColumn,
    EncoderModel,
    HybridWeight,
    IdColumn,
    IndexDir,
    JsonFlag,
    NegativesFile,
    QueriesFile,
    QueryColumn,
    QuestionColumns,
    QuietFlag,
    RelevantColumn,
    RuntimeChoice,
)
from faq_search.encoding.settings import Fields, Pooling
from faq_search.errors import InputError

FeedbackLog = Annotated[
    Path | None,
    typer.Option(
        "--feedback",
        help="A question log (`serve --log`): questions customers marked helpful count as labelled queries.",
    ),
]


def eval_command(
    queries: Annotated[
        Path, typer.Argument(help="Labelled queries: a query column and relevant ids (query_id,query,relevant_ids).")
    ],
    index_dir: IndexDir = DEFAULT_INDEX,
    negatives: NegativesFile = None,
    query_column: QueryColumn = "query",
    relevant_column: RelevantColumn = "relevant_ids",
    plot: Annotated[
        Path | None, typer.Option(help="Write a PNG of precision/coverage/false answers by threshold.")
    ] = None,
    runtime: RuntimeChoice = None,
    as_json: JsonFlag = False,
) -> None:
    """Measure an index on labelled queries: MRR@10, Recall@1/5/10, nDCG@10, and what each threshold does."""
    from faq_search.quality.evaluate import evaluate_index
    from faq_search.quality.queries import QueryFiles

    files = QueryFiles(queries, negatives, query_column=query_column, relevant_column=relevant_column)
    from faq_search.encoding.runtime import batch_runtime

    evaluation, rows = evaluate_index(index_dir, files, plot=plot, runtime=batch_runtime(runtime))
    negative_count = len(evaluation.negative_scores)
    if as_json:
        data = {
            "metrics": dataclasses.asdict(evaluation.metrics),
            "negatives": negative_count,
            "thresholds": [dataclasses.asdict(r) for r in rows],
        }
        typer.echo(json.dumps(data, indent=2))
        return
    typer.echo(render.metrics_line(evaluation.metrics))
    typer.echo(render.threshold_table(rows, negative_count))
    if plot:
        typer.echo(f"plot written to {plot}")


def calibrate(
    queries: Annotated[
        Path | None, typer.Argument(help="Labelled queries (as for eval); optional with --feedback.")
    ] = None,
    index_dir: IndexDir = DEFAULT_INDEX,
    negatives: NegativesFile = None,
    target_precision: Annotated[
        float, typer.Option(min=0.01, max=1.0, help="Share of answered questions whose top answer must be right.")
    ] = 0.9,
    query_column: QueryColumn = "query",
    relevant_column: RelevantColumn = "relevant_ids",
    plot: Annotated[
        Path | None, typer.Option(help="Write a PNG reliability diagram (held-out confidence against share right).")
    ] = None,
    feedback: FeedbackLog = None,
    as_json: JsonFlag = False,
) -> None:
    """Refit the confidence model on your labelled questions and store it with the min_score for a target precision.

    Cross-validated: precision, coverage and calibration error are measured on held-out questions.
    """
    from faq_search.quality.evaluate import calibrate_index
    from faq_search.quality.queries import QueryFiles

    columns = {"query_column": query_column, "relevant_column": relevant_column}
    files = QueryFiles(queries, negatives, **columns) if queries else None
    with tempfile.TemporaryDirectory(prefix="faq-search-feedback-") as scratch:
        if feedback is not None:
            from faq_search.traffic.labels import with_feedback

            files = with_feedback(files, feedback, index_dir, Path(scratch))
        if files is None:
            raise InputError("calibrate needs labelled queries: pass a query file, --feedback LOG.db, or both")
        report = calibrate_index(index_dir, files, target_precision, plot=plot)
    if as_json:
        typer.echo(json.dumps({"index": str(index_dir), **dataclasses.asdict(report)}, indent=2))
    else:
        typer.echo(render.calibration_summary(index_dir, report))
        if plot:
            typer.echo(f"plot written to {plot}")


def tune(
    queries: QueriesFile,
    file: Annotated[Path, typer.Argument(help="The FAQ file to tune for and index.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the index built with the winner.")] = (
        DEFAULT_INDEX
    ),
    layer: Annotated[
        list[str] | None, typer.Option(help="Layer spec to try; repeat. Default: -2, -1, -3, sum-last-4.")
    ] = None,
    pooling: Annotated[list[Pooling] | None, typer.Option(help="Pooling to try; repeat. Default: mean, max.")] = None,
    fields: Annotated[list[Fields] | None, typer.Option(help="Fields to try; repeat. Default: both choices.")] = None,
    weight: Annotated[
        list[float] | None,
        typer.Option(
            help="Hybrid fusion to try: 0 (off) or any positive weight (on); repeat. Default: both. "
            "The fusion weight itself lives in the confidence model (see calibrate)."
        ),
    ] = None,
    folds: Annotated[int, typer.Option(min=2, help="Held-out folds for the honest (cross-validated) score.")] = 5,
    seed: Annotated[int, typer.Option(help="Seed of the fold split.")] = 0,
    answer_column: AnswerColumn = "answer",
    question_column: QuestionColumns = None,
    id_column: IdColumn = None,
    query_column: QueryColumn = "query",
    relevant_column: RelevantColumn = "relevant_ids",
    top: Annotated[int, typer.Option(min=1, help="How many grid rows to print.")] = 15,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress messages.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Try layer x pooling x fields x hybrid on/off on labelled queries; index the FAQ with the winner."""
    from faq_search.corpus import read_faq
    from faq_search.quality.queries import QueryFiles
    from faq_search.quality.tune import DEFAULT_FIELDS, DEFAULT_LAYERS, DEFAULT_POOLINGS, DEFAULT_WEIGHTS, tune_index

    entries = read_faq(file, answer_column=answer_column, question_column=question_column or None, id_column=id_column)
    files = QueryFiles(queries, query_column=query_column, relevant_column=relevant_column)
    labelled, _ = files.read(known_ids=[e.id for e in entries])
    built, report = tune_index(
        entries, labelled, layers=layer or DEFAULT_LAYERS, poolings=pooling or DEFAULT_POOLINGS,
        fields=fields or DEFAULT_FIELDS, weights=weight or DEFAULT_WEIGHTS, folds=folds, seed=seed,
        source=file.name, on_step=None if quiet or as_json else lambda message: typer.echo(message, err=True),
    )  # fmt: skip
    built.save(out)
    if as_json:
        typer.echo(json.dumps(render.tune_dict(report, out), indent=2))
    else:
        typer.echo(render.tune_table(report, len(labelled), top, out))


def adapt(
    file: Annotated[Path, typer.Argument(help="FAQ file with questions (or pass --queries) to adapt the encoder to.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Bundle directory to write, with the adapted encoder.")] = (
        DEFAULT_INDEX
    ),
    epochs: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Passes over the training pairs. "
            "Default: one pass, or as many (at most 50) as make about 90 training steps.",
        ),
    ] = None,
    max_pairs: Annotated[int | None, typer.Option(min=4, help="Train on at most this many pairs (sampled).")] = None,
    max_steps: Annotated[
        int | None, typer.Option(min=1, help="At most this many training steps per training run.")
    ] = None,
    time_budget: Annotated[
        float | None, typer.Option(min=1, help="Stop training after this many seconds (all runs together).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same adapted encoder.")] = 0,
    queries: Annotated[
        Path | None, typer.Option(help="Labelled queries (eval layout) to train on as well; a slice is held out.")
    ] = None,
    feedback: FeedbackLog = None,
    answer_column: AnswerColumn = "answer",
    question_column: QuestionColumns = None,
    id_column: IdColumn = None,
    model: EncoderModel = "default",
    layer: Annotated[str, typer.Option(help="Hidden layer to pool (kept through adaptation).")] = "-2",
    pooling: Annotated[Pooling, typer.Option(help="Pooling (kept through adaptation).")] = Pooling.MEAN,
    hybrid_weight: HybridWeight = 0.5,
    with_onnx: Annotated[
        bool, typer.Option("--onnx", help="Also add the query encoder as ONNX (see faq-search onnx), about 80 MB.")
    ] = False,
    quiet: QuietFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """Train the encoder on the FAQ's own question/answer pairs and index the FAQ with it, if it helps."""
    from faq_search.encoding.runtime import require_torch

    require_torch("faq-search adapt")
    from faq_search.corpus import read_faq
    from faq_search.encoding.settings import EncoderSettings
    from faq_search.index.lexical import HybridSettings
    from faq_search.quality.adapt import AdaptSettings, adapt_index
    from faq_search.quality.queries import read_queries

    entries = read_faq(file, answer_column=answer_column, question_column=question_column or None, id_column=id_column)
    known = [i for e in entries for i in e.ids]
    labelled = read_queries(queries, known_ids=known) if queries else []
    if feedback is not None:
        from faq_search.traffic.labels import feedback_queries

        labelled += feedback_queries(feedback, known_ids=known)
    with render.loss_bar(enabled=not quiet and not as_json) as on_progress:
        built, report = adapt_index(
            entries,
            settings=EncoderSettings(model=model, layer=layer, pooling=pooling),
            adapt_settings=AdaptSettings(
                epochs=epochs, max_pairs=max_pairs, max_steps=max_steps, time_budget=time_budget, seed=seed
            ),
            queries=labelled,
            hybrid=HybridSettings(weight=hybrid_weight),
            source=file.name,
            on_progress=on_progress,
        )
    built.save(out)
    if with_onnx:
        from faq_search.index.onnx_files import add_onnx

        add_onnx(out)
    if as_json:
        typer.echo(json.dumps({"index": str(out), **report.to_dict()}, indent=2))
    else:
        typer.echo(render.adapt_line(report, out))
        typer.echo(
            f"Guard ({report.held_out_questions} held-out questions, {report.folds} fold(s), served ranking): "
            f"MRR@10 {report.before:.3f} ± {report.before_error:.3f} -> {report.after:.3f} ± {report.after_error:.3f}; "
            f"gain {report.gain:+.3f} ± {report.gain_error:.3f} (kept only when larger than its standard error); "
            f"peak memory {report.peak_memory_mb:.0f} MiB"
        )
