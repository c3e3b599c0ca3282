"""The ``faq-search`` command line: parse, one library call, render.

No retrieval logic lives here. Heavy modules (torch, transformers, FAISS) are
imported inside the commands, so ``faq-search --help`` starts fast. Library
errors become one line on stderr and a non-zero exit code.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from faq_search.encoding.settings import Fields, Pooling, Precision
from faq_search.errors import FaqSearchError
from faq_search.export.embeddings import Level, WordMerge
from faq_search.index.store import IndexType

if TYPE_CHECKING:
    from faq_search.index.faq_index import Match

DEFAULT_INDEX = Path(os.environ.get("FAQ_SEARCH_INDEX", "indexes/default"))

app = typer.Typer(
    name="faq-search",
    help="Semantic FAQ retrieval: index an FAQ with a BERT encoder, then ask it questions.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

IndexDir = Annotated[
    Path,
    typer.Option("--index", "-i", help="Index bundle directory (default: $FAQ_SEARCH_INDEX or indexes/default)."),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of a table.")]


@contextmanager
def _errors() -> Iterator[None]:
    """Turn library errors into one line on stderr and their exit code."""
    try:
        yield
    except FaqSearchError as exc:
        typer.echo(f"faq-search: error: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        typer.echo("faq-search: interrupted", err=True)
        raise typer.Exit(130) from None


@app.command()
def index(
    file: Annotated[Path, typer.Argument(help="FAQ file: .csv, .tsv, .json, .jsonl, .parquet or .xlsx.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Bundle directory to write (replaced atomically).")] = (
        DEFAULT_INDEX
    ),
    answer_column: Annotated[str, typer.Option(help="Column holding the answers.")] = "answer",
    question_column: Annotated[
        list[str] | None,
        typer.Option(help="Question column; repeat for paraphrase columns. Default: 'question' if present."),
    ] = None,
    id_column: Annotated[
        str | None,
        typer.Option(help="Column holding entry ids. Default: 'id' if present, else ids derived from the text."),
    ] = None,
    file_format: Annotated[
        str | None,
        typer.Option("--format", help="Format when the suffix does not tell: csv, tsv, json, jsonl, parquet, excel."),
    ] = None,
    fields: Annotated[Fields, typer.Option(help="Texts to embed per entry; the answer always is.")] = (
        Fields.QUESTION_ANSWER
    ),
    model: Annotated[
        str | None,
        typer.Option(
            help="Encoder: 'default' (bundled all-MiniLM-L6-v2), a model directory, or a cached hub id. "
            "Unset: the adapted encoder of the index at --out if it has one (faq-search adapt), else 'default'."
        ),
    ] = None,
    layer: Annotated[
        str, typer.Option(help="Hidden layer to pool: -2 (default), -1, 3, a list like -1,-2 (concat), or sum-last-4.")
    ] = "-2",
    pooling: Annotated[Pooling, typer.Option(help="How token vectors become one vector.")] = Pooling.MEAN,
    special: Annotated[
        bool, typer.Option("--special/--no-special", help="Count [CLS]/[SEP] in mean, max and last pooling.")
    ] = True,
    precision: Annotated[
        Precision, typer.Option(help="auto = bf16 where the CPU has native bf16, else fp32.")
    ] = Precision.AUTO,
    hybrid_weight: Annotated[
        float, typer.Option(min=0.0, max=10.0, help="Weight of BM25 fused into the dense score; 0 = dense only.")
    ] = 0.5,
    index_type: Annotated[
        IndexType,
        typer.Option(help="FAISS index: flat = exact (default); hnsw or ivf = approximate, for very large FAQs."),
    ] = IndexType.FLAT,
    batch_size: Annotated[int, typer.Option(min=1, help="Most texts per encoder batch.")] = 64,
    max_seq_len: Annotated[int, typer.Option(min=8, help="Most word pieces per text; longer text is cut.")] = 256,
    threads: Annotated[
        int | None,
        typer.Option(min=1, help="CPU threads for the encoder (default: torch's choice)."),
    ] = None,
    full: Annotated[
        bool,
        typer.Option("--full", help="Re-embed every text, even those the bundle at --out already has vectors for."),
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Embed every answer (and question) of an FAQ file and write an index bundle.

    Over an existing bundle only new and edited texts are embedded; a run that was killed resumes.
    """
    with _errors():
        from faq_search.corpus import read_faq
        from faq_search.encoding.settings import EncoderSettings
        from faq_search.index.lexical import HybridSettings
        from faq_search.index.update import update_bundle

        entries = read_faq(
            file,
            answer_column=answer_column,
            question_column=question_column or None,
            id_column=id_column,
            file_format=file_format,
        )
        settings = EncoderSettings(
            model=model or "default",
            layer=layer,
            pooling=pooling,
            include_special=special,
            max_seq_len=max_seq_len,
            precision=precision,
        )
        built = update_bundle(
            out,
            entries,
            settings=settings,
            fields=fields,
            hybrid=HybridSettings(weight=hybrid_weight),
            index_type=index_type.value,
            batch_size=batch_size,
            threads=threads,
            progress=not quiet,
            source_name=file.name,
            full=full,
            keep_adapted=model is None,
        )
        report = built.report
        if report is not None and report.reuse_note and not as_json:
            typer.echo(f"faq-search: note: {report.reuse_note}", err=True)
        if as_json:
            typer.echo(
                json.dumps({"index": str(out), **built.manifest.to_dict(), "update": _update_dict(report)}, indent=2)
            )
            return
        seconds = f" in {report.seconds:.1f} s" if report else ""
        typer.echo(
            f"Indexed {built.manifest.entry_count} entries ({built.manifest.vector_count} vectors: "
            f"{'+'.join(built.manifest.fields)}) with {built.identity.model_name}, layer {settings.layer}, "
            f"{settings.pooling.value} pooling, {built.manifest.precision}{seconds} -> {out}"
        )
        if report is not None:
            typer.echo(_render_update(report, built.manifest.min_score))


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The customer's question, in quotes.")],
    index_dir: IndexDir = DEFAULT_INDEX,
    k: Annotated[int, typer.Option("-k", "--top", min=1, help="How many answers to return.")] = 5,
    min_score: Annotated[
        float | None,
        typer.Option(help="Leave out answers scoring below this cosine (default: the index's calibrated one)."),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(help="Where the index's model now lives, if it moved (its weights must be identical)."),
    ] = None,
    threads: Annotated[int | None, typer.Option(min=1, help="CPU threads for the encoder.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Return the best-matching answers to QUESTION from an index, or say none is good enough."""
    with _errors():
        from faq_search.index.faq_index import Answer, FaqIndex

        faq = FaqIndex.load(index_dir, model_path=model, threads=threads)
        threshold = faq.manifest.min_score if min_score is None else min_score
        answer = Answer.of(question, faq.ask(question, k=k, min_score=min_score), k, threshold)
        if as_json:
            typer.echo(json.dumps(answer.to_dict(), indent=2, ensure_ascii=False))
            return
        if not answer.answered:
            typer.echo(f"No confident answer (no entry scored {threshold:.3f} or more).")
            return
        typer.echo(_render_matches(list(answer.matches)))


@app.command()
def info(index_dir: IndexDir = DEFAULT_INDEX, as_json: JsonFlag = False) -> None:
    """Show what an index holds and how it was built."""
    with _errors():
        from faq_search.bundle.files import read_bundle

        manifest, _ = read_bundle(index_dir)
        data = manifest.to_dict()
        if as_json:
            typer.echo(json.dumps(data, indent=2, ensure_ascii=False))
            return
        encoder, settings = data["encoder"], data["settings"]
        rows = [
            ("index", str(index_dir)),
            ("created", data["created"]),
            ("source", data["source"] or "-"),
            ("entries", data["entry_count"]),
            ("vectors", f"{data['vector_count']} ({'+'.join(data['fields'])})"),
            ("model", f"{encoder['model_name']} ({settings['model']})"),
            ("weights sha256", encoder["weights_sha256"][:16] + "..."),
            ("layer", settings["layer"]),
            ("pooling", f"{settings['pooling']} ({'with' if settings['include_special'] else 'without'} [CLS]/[SEP])"),
            ("max_seq_len", settings["max_seq_len"]),
            ("precision", f"{data['precision']} (setting: {settings['precision']})"),
            ("dimension", encoder["dimension"]),
            ("index type", data["index_type"]),
            ("hybrid", "off" if not data.get("hybrid") else f"BM25 weight {data['hybrid']['weight']:g}"),
            ("min score", "-" if data["min_score"] is None else data["min_score"]),
            ("adapted", _render_adaptation(data.get("adaptation"))),
            ("format", data["format_version"]),
        ]
        width = max(len(k) for k, _ in rows)
        typer.echo("\n".join(f"{k.ljust(width)}  {v}" for k, v in rows))


@app.command()
def check(
    index_dir: IndexDir = DEFAULT_INDEX,
    sample: Annotated[int, typer.Option(min=0, help="Rows to re-embed and compare with their stored vectors.")] = 32,
    model: Annotated[
        str | None,
        typer.Option(help="Where the index's model now lives, if it moved (its weights must be identical)."),
    ] = None,
    threads: Annotated[int | None, typer.Option(min=1, help="CPU threads for the encoder.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Verify an index: checksums, counts, vectors, and a re-embedded sample. Exit code 1 when anything is wrong."""
    with _errors():
        from faq_search.index.verify import check_bundle

        report = check_bundle(index_dir, sample=sample, model_path=model, threads=threads)
        if as_json:
            typer.echo(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
        else:
            width = max(len(f.name) for f in report.findings)
            lines = [f"{'ok  ' if f.ok else 'FAIL'}  {f.name.ljust(width)}  {f.detail}" for f in report.findings]
            lines.append(f"{index_dir}: {'OK' if report.ok else 'PROBLEMS FOUND'}")
            typer.echo("\n".join(lines))
        if not report.ok:
            raise typer.Exit(1)


@app.command()
def embed(
    texts: Annotated[
        list[str] | None,
        typer.Argument(help="Texts to embed, each in quotes; '-' reads one text per line from stdin."),
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option("--file", "-f", help="Read texts from .txt (one per line) or a table (.csv, .jsonl, ...)."),
    ] = None,
    column: Annotated[
        str | None, typer.Option(help="Column of --file holding the texts (default: 'text', or the only column).")
    ] = None,
    level: Annotated[
        Level, typer.Option(help="sentence: one unit vector per text; token: one per word piece; word: one per word.")
    ] = Level.SENTENCE,
    layer: Annotated[
        str, typer.Option(help="Hidden layer: -2 (default), -1, 3, a list like -1,-2 (concat), or sum-last-4.")
    ] = "-2",
    pooling: Annotated[
        Pooling | None, typer.Option(help="Sentence level: how token vectors become one (default: mean).")
    ] = None,
    merge: Annotated[
        WordMerge | None, typer.Option(help="Word level: which word-piece vectors make a word's (default: mean).")
    ] = None,
    special: Annotated[
        bool,
        typer.Option(
            "--special/--no-special",
            help="Sentence level: count [CLS]/[SEP] in the pool. Token level: return their vectors.",
        ),
    ] = True,
    windows: Annotated[
        bool | None,
        typer.Option(
            "--windows/--truncate",
            help="Token and word level: run long texts in overlapping windows (default), or cut them.",
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write to .npy (sentence level), .jsonl or .parquet.")
    ] = None,
    show_tokens: Annotated[
        bool, typer.Option("--show-tokens", help="List the word pieces (token/word level: with their vectors).")
    ] = False,
    model: Annotated[
        str, typer.Option(help="Encoder: 'default' (bundled all-MiniLM-L6-v2), a model directory, or a cached hub id.")
    ] = "default",
    precision: Annotated[
        Precision, typer.Option(help="auto = bf16 where the CPU has native bf16, else fp32.")
    ] = Precision.AUTO,
    hybrid_weight: Annotated[
        float, typer.Option(min=0.0, max=10.0, help="Weight of BM25 fused into the dense score; 0 = dense only.")
    ] = 0.5,
    max_seq_len: Annotated[int, typer.Option(min=8, help="Word pieces per model window.")] = 256,
    batch_size: Annotated[int, typer.Option(min=1, help="Most texts (or windows) per encoder batch.")] = 64,
    threads: Annotated[int | None, typer.Option(min=1, help="CPU threads for the encoder.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Print or save the vectors themselves: sentence, token (word piece) or word level."""
    with _errors():
        from faq_search.encoding.encoder import BertEncoder
        from faq_search.encoding.settings import EncoderSettings
        from faq_search.export.embeddings import check_options, check_output, read_texts
        from faq_search.export.embeddings import embed as embed_texts

        check_options(level, merge=merge, windows=windows, pooling=pooling)
        if out is not None:
            check_output(out, level)
        items = read_texts(texts or [], file=file, column=column)
        settings = EncoderSettings(
            model=model,
            layer=layer,
            pooling=pooling or Pooling.MEAN,
            include_special=special,
            max_seq_len=max_seq_len,
            precision=precision,
        )
        encoder = BertEncoder(settings, batch_size=batch_size, threads=threads)
        result = embed_texts(encoder, items, level, merge=merge, windows=windows, special=special)
        warning = result.truncation_warning()
        if warning:
            typer.echo(f"faq-search: warning: {warning}", err=True)
        if out is not None:
            result.save(out)
            if as_json:
                typer.echo(json.dumps({"out": str(out), **result.metadata()}, indent=2))
            else:
                typer.echo(
                    f"Wrote {result.vector_count} {level.value} vectors of {result.dimension} dims "
                    f"for {len(result.records)} texts -> {out}"
                )
            return
        if as_json:
            typer.echo(json.dumps(result.to_dict(), ensure_ascii=False))
        else:
            typer.echo(result.summary(show_tokens=show_tokens))


@app.command()
def serve(
    index_dir: IndexDir = DEFAULT_INDEX,
    host: Annotated[
        str, typer.Option(help="Address to listen on. 127.0.0.1 keeps it on this machine; 0.0.0.0 opens it to all.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port.")] = 8000,
    workers: Annotated[
        int, typer.Option(min=1, help="Processes; each loads its own model and batches only its own requests.")
    ] = 1,
    batching: Annotated[
        bool, typer.Option("--batching/--no-batching", help="Gather concurrent questions into shared encoder calls.")
    ] = True,
    max_batch: Annotated[int, typer.Option(min=1, help="Most questions per encoder call.")] = 32,
    max_wait_ms: Annotated[
        float, typer.Option(min=0, help="Longest a question waits for others to join its batch (ms).")
    ] = 5.0,
    timeout: Annotated[float, typer.Option(min=0.1, help="Seconds a request may take before it gets 504.")] = 30.0,
    watch: Annotated[
        float, typer.Option(min=0, help="Seconds between checks for a replaced bundle (hot reload); 0 = off.")
    ] = 1.0,
    model: Annotated[
        str | None,
        typer.Option(help="Where the index's model now lives, if it moved (its weights must be identical)."),
    ] = None,
    threads: Annotated[int | None, typer.Option(min=1, help="CPU threads for the encoder, per worker.")] = None,
    access_log: Annotated[bool, typer.Option("--access-log/--no-access-log", help="Log every request.")] = True,
) -> None:
    """Serve an index over HTTP: POST /ask, /ask/batch, /embed; a search page at /; API docs at /docs.

    Set $FAQ_SEARCH_TOKEN to require 'Authorization: Bearer <token>' on the API (/health, the page and /docs stay open).
    """
    with _errors():
        from faq_search.service.app import ServeConfig
        from faq_search.service.app import serve as run_server

        run_server(
            ServeConfig(
                index_dir=index_dir,
                host=host,
                port=port,
                workers=workers,
                model_path=model,
                threads=threads,
                batching=batching,
                max_batch=max_batch,
                max_wait_ms=max_wait_ms,
                timeout_s=timeout,
                watch_s=watch,
                access_log=access_log,
            )
        )


QueryColumn = Annotated[str, typer.Option(help="Column of the labelled query file holding the question.")]
RelevantColumn = Annotated[
    str, typer.Option(help="Column holding the ids of the entries that answer it, separated by '|'.")
]
NegativesFile = Annotated[
    Path | None,
    typer.Option(help="File of questions this FAQ cannot answer (the --query-column column, or its only column)."),
]


@app.command(name="eval")
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
    as_json: JsonFlag = False,
) -> None:
    """Measure an index on labelled queries: MRR@10, Recall@1/5/10, nDCG@10, and what each threshold does."""
    with _errors():
        from faq_search.index.faq_index import FaqIndex
        from faq_search.quality.evaluate import (
            display_thresholds,
            plot_thresholds,
            read_queries,
            read_questions,
            run,
            threshold_rows,
        )

        faq = FaqIndex.load(index_dir)
        labelled = read_queries(
            queries, query_column=query_column, relevant_column=relevant_column, known_ids=[e.id for e in faq.entries]
        )
        negative_questions = read_questions(negatives, query_column=query_column) if negatives else []
        evaluation = run(faq, labelled, negative_questions)
        rows = threshold_rows(evaluation, display_thresholds(evaluation))
        if plot:
            plot_thresholds(evaluation, plot)
        if as_json:
            typer.echo(
                json.dumps(
                    {
                        "metrics": dataclasses.asdict(evaluation.metrics),
                        "negatives": len(negative_questions),
                        "thresholds": [dataclasses.asdict(r) for r in rows],
                    },
                    indent=2,
                )
            )
            return
        typer.echo(_render_metrics(evaluation.metrics))
        typer.echo(_render_thresholds(rows, len(negative_questions)))
        if plot:
            typer.echo(f"plot written to {plot}")


@app.command()
def calibrate(
    queries: Annotated[Path, typer.Argument(help="Labelled queries (as for eval).")],
    index_dir: IndexDir = DEFAULT_INDEX,
    negatives: NegativesFile = None,
    target_precision: Annotated[
        float, typer.Option(min=0.01, max=1.0, help="Share of answered questions whose top answer must be right.")
    ] = 0.9,
    query_column: QueryColumn = "query",
    relevant_column: RelevantColumn = "relevant_ids",
    as_json: JsonFlag = False,
) -> None:
    """Pick the confidence threshold (min_score) for a target precision and store it in the index."""
    with _errors():
        from faq_search.index.faq_index import FaqIndex
        from faq_search.quality.evaluate import calibrate as pick_threshold
        from faq_search.quality.evaluate import read_queries, read_questions, run

        faq = FaqIndex.load(index_dir)
        labelled = read_queries(
            queries, query_column=query_column, relevant_column=relevant_column, known_ids=[e.id for e in faq.entries]
        )
        negative_questions = read_questions(negatives, query_column=query_column) if negatives else []
        row = pick_threshold(run(faq, labelled, negative_questions), target_precision)
        faq.set_min_score(round(row.threshold, 6))
        faq.save(index_dir)
        if as_json:
            typer.echo(json.dumps({"index": str(index_dir), **dataclasses.asdict(row)}, indent=2))
            return
        false_rate = (
            f", false-answer rate {row.false_answer_rate:.3f} on {len(negative_questions)} negatives"
            if row.false_answer_rate is not None
            else ""
        )
        typer.echo(
            f"min_score {row.threshold:.4f}: precision {row.precision:.3f}, coverage {row.coverage:.3f}{false_rate}"
            f" -> stored in {index_dir}"
        )


@app.command()
def tune(
    queries: Annotated[Path, typer.Argument(help="Labelled queries (as for eval).")],
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
        list[float] | None, typer.Option(help="Hybrid weight to try; repeat. Default: 0, 0.25, 0.5, 1.")
    ] = None,
    folds: Annotated[int, typer.Option(min=2, help="Held-out folds for the honest (cross-validated) score.")] = 5,
    seed: Annotated[int, typer.Option(help="Seed of the fold split.")] = 0,
    answer_column: Annotated[str, typer.Option(help="FAQ column holding the answers.")] = "answer",
    question_column: Annotated[list[str] | None, typer.Option(help="FAQ question column(s).")] = None,
    id_column: Annotated[str | None, typer.Option(help="FAQ id column (default: 'id' if present).")] = None,
    query_column: QueryColumn = "query",
    relevant_column: RelevantColumn = "relevant_ids",
    top: Annotated[int, typer.Option(min=1, help="How many grid rows to print.")] = 15,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress messages.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Try layer x pooling x fields x hybrid weight on labelled queries; index the FAQ with the winner."""
    with _errors():
        from faq_search.corpus import read_faq
        from faq_search.encoding.settings import EncoderSettings
        from faq_search.index.faq_index import FaqIndex
        from faq_search.index.lexical import HybridSettings
        from faq_search.quality.evaluate import read_queries
        from faq_search.quality.tune import DEFAULT_FIELDS, DEFAULT_LAYERS, DEFAULT_POOLINGS, DEFAULT_WEIGHTS
        from faq_search.quality.tune import tune as run_tune

        entries = read_faq(
            file, answer_column=answer_column, question_column=question_column or None, id_column=id_column
        )
        labelled = read_queries(
            queries, query_column=query_column, relevant_column=relevant_column, known_ids=[e.id for e in entries]
        )
        report = run_tune(
            entries,
            labelled,
            layers=layer or DEFAULT_LAYERS,
            poolings=pooling or DEFAULT_POOLINGS,
            fields=fields or DEFAULT_FIELDS,
            weights=weight or DEFAULT_WEIGHTS,
            folds=folds,
            seed=seed,
            on_step=None if quiet or as_json else lambda message: typer.echo(message, err=True),
        )
        best = report.best
        built = FaqIndex.build(
            entries,
            settings=EncoderSettings(layer=best.layer, pooling=best.pooling),
            fields=best.fields,
            hybrid=HybridSettings(weight=best.weight),
        )
        built.revise(source=file.name)
        built.save(out)
        if as_json:
            typer.echo(
                json.dumps(
                    {
                        "default": {"settings": report.default.candidate.label(), "mrr_at_10": report.default_mrr},
                        "tuned": {"settings": best.label(), "cross_validated_mrr_at_10": report.cross_validated_mrr},
                        "grid": [{"settings": r.candidate.label(), "mrr_at_10": r.mrr_at_10} for r in report.results],
                        "index": str(out),
                    },
                    indent=2,
                )
            )
            return
        width = max(len(r.candidate.label()) for r in report.results)
        lines = [f"{'settings'.ljust(width)}  MRR@10 (all {len(labelled)} queries)"]
        lines += [f"{r.candidate.label().ljust(width)}  {r.mrr_at_10:.3f}" for r in report.results[:top]]
        lines += [
            "",
            f"default: {report.default.candidate.label()}: MRR@10 {report.default_mrr:.3f}",
            f"tuned:   {best.label()}: MRR@10 {report.cross_validated_mrr:.3f} "
            f"(settings chosen on {report.folds - 1} of {report.folds} folds, scored on the held-out fold)",
            f"index written with the tuned settings -> {out}",
        ]
        typer.echo("\n".join(lines))


@app.command()
def adapt(
    file: Annotated[Path, typer.Argument(help="FAQ file with questions (or pass --queries) to adapt the encoder to.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Bundle directory to write, with the adapted encoder.")] = (
        DEFAULT_INDEX
    ),
    epochs: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Passes over the training pairs (early stopping may end sooner). "
            "Default: one pass, or as many (at most 50) as make about 90 training steps.",
        ),
    ] = None,
    max_pairs: Annotated[int | None, typer.Option(min=4, help="Train on at most this many pairs (sampled).")] = None,
    time_budget: Annotated[float | None, typer.Option(min=1, help="Stop training after this many seconds.")] = None,
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same adapted encoder.")] = 0,
    queries: Annotated[
        Path | None, typer.Option(help="Labelled queries (eval layout) to train on as well; a slice is held out.")
    ] = None,
    answer_column: Annotated[str, typer.Option(help="Column holding the answers.")] = "answer",
    question_column: Annotated[list[str] | None, typer.Option(help="Question column(s); default 'question'.")] = None,
    id_column: Annotated[str | None, typer.Option(help="Id column; default 'id' if present.")] = None,
    model: Annotated[str, typer.Option(help="Base encoder: 'default', a model directory, or a cached hub id.")] = (
        "default"
    ),
    layer: Annotated[str, typer.Option(help="Hidden layer to pool (kept through adaptation).")] = "-2",
    pooling: Annotated[Pooling, typer.Option(help="Pooling (kept through adaptation).")] = Pooling.MEAN,
    hybrid_weight: Annotated[float, typer.Option(min=0.0, max=10.0, help="BM25 weight of the index; 0 = off.")] = 0.5,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Train the encoder on the FAQ's own question/answer pairs and index the FAQ with it, if it helps."""
    with _errors():
        from faq_search.corpus import read_faq
        from faq_search.encoding.settings import EncoderSettings
        from faq_search.index.lexical import HybridSettings
        from faq_search.quality.adapt import AdaptSettings, adapt_index
        from faq_search.quality.evaluate import read_queries

        entries = read_faq(
            file, answer_column=answer_column, question_column=question_column or None, id_column=id_column
        )
        labelled = read_queries(queries, known_ids=[e.id for e in entries]) if queries else []
        with _loss_bar(enabled=not quiet and not as_json) as on_progress:
            built, report = adapt_index(
                entries,
                settings=EncoderSettings(model=model, layer=layer, pooling=pooling),
                adapt_settings=AdaptSettings(epochs=epochs, max_pairs=max_pairs, time_budget=time_budget, seed=seed),
                queries=labelled,
                hybrid=HybridSettings(weight=hybrid_weight),
                on_progress=on_progress,
            )
        built.revise(source=file.name)
        built.save(out)
        if as_json:
            typer.echo(json.dumps({"index": str(out), **report.to_dict()}, indent=2))
            return
        verdict = (
            "kept the adapted encoder"
            if report.kept
            else "kept the base encoder: adaptation did not improve the held-out score"
        )
        typer.echo(
            f"Adapted on {report.pairs} pairs in {report.seconds:.0f} s ({report.steps} steps, {report.stopped}); "
            f"held-out MRR@10 on {report.held_out_questions} questions: {report.before:.3f} -> {report.after:.3f}; "
            f"{verdict}. Index -> {out}"
        )


@contextmanager
def _loss_bar(enabled: bool) -> Iterator[Any]:
    """A progress bar showing the training loss, on a terminal; a no-op callback otherwise."""
    import sys

    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from tqdm import tqdm

    bar = tqdm(unit="step", desc="adapting", file=sys.stderr, leave=False)

    def update(step: int, total: int, loss: float) -> None:
        bar.total = total
        bar.n = step
        bar.set_postfix(loss=f"{loss:.3f}")

    try:
        yield update
    finally:
        bar.close()


def _update_dict(report: Any) -> dict[str, Any] | None:
    if report is None:
        return None
    return {
        **(report.changes.counts() if report.changes is not None else {}),
        "encoded": report.encoded,
        "reused": report.reused,
        "resumed": report.resumed,
        "note": report.reuse_note,
    }


def _render_update(report: Any, min_score: float | None) -> str:
    """What an (incremental) index run changed and how much it had to embed."""
    work = f"encoded {report.encoded} texts, reused {report.reused} embeddings"
    if report.resumed:
        work += f", resumed {report.resumed} from an interrupted run"
    if report.changes is None:
        return f"New index: {work}."
    counts = report.changes.counts()
    kept = f"; kept min_score {min_score:g}" if min_score is not None else ""
    return (
        f"Changes: {counts['added']} added, {counts['changed']} changed, {counts['removed']} removed, "
        f"{counts['unchanged']} unchanged; {work}{kept}."
    )


def _render_metrics(metrics: Any) -> str:
    return (
        f"queries {metrics.queries}  MRR@10 {metrics.mrr_at_10:.3f}  R@1 {metrics.recall_at_1:.3f}  "
        f"R@5 {metrics.recall_at_5:.3f}  R@10 {metrics.recall_at_10:.3f}  nDCG@10 {metrics.ndcg_at_10:.3f}"
    )


def _render_thresholds(rows: list[Any], negatives: int) -> str:
    head = "threshold  precision  coverage" + ("  false answers" if negatives else "")
    lines = [head]
    for row in rows:
        line = f"{row.threshold:9.3f}  {row.precision:9.3f}  {row.coverage:8.3f}"
        if negatives:
            line += f"  {row.false_answer_rate:13.3f}"
        lines.append(line)
    return "\n".join(lines)


def _render_adaptation(record: dict[str, Any] | None) -> str:
    if not record:
        return "no"
    report = record.get("report", {})
    verdict = "yes" if report.get("kept") else "no (the base encoder scored as well or better)"
    return (
        f"{verdict}; from {record.get('base_model')}, held-out MRR@10 "
        f"{report.get('before', float('nan')):.3f} -> {report.get('after', float('nan')):.3f}"
    )


def _render_matches(matches: list[Match]) -> str:
    """A readable ranked list: rank, score, id and field, then the question and the wrapped answer."""
    width = max(40, min(shutil.get_terminal_size((100, 20)).columns, 120)) - 7
    blocks = []
    for match in matches:
        head = f"{match.rank:>2}. {match.score:.3f}  {match.entry.id}  (matched {match.field})"
        lines = [head]
        if match.entry.question:
            lines += textwrap.wrap(
                "Q: " + match.entry.question, width, initial_indent="    ", subsequent_indent="       "
            )
        lines += textwrap.wrap(
            "A: " + match.entry.answer,
            width,
            initial_indent="    ",
            subsequent_indent="       ",
            max_lines=6,
            placeholder=" ...",
        )
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def main() -> None:
    """Console-script entry point."""
    app(prog_name="faq-search")


if __name__ == "__main__":  # pragma: no cover
    main()
