"""Commands that build and inspect an index bundle: ``index``, ``info``, ``check``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from faq_search.cli import render
from faq_search.cli.options import (
    DEFAULT_INDEX,
    AnswerColumn,
    IdColumn,
    IndexDir,
    JsonFlag,
    Layer,
    MovedModel,
    PoolingChoice,
    PrecisionChoice,
    QuestionColumns,
    QuietFlag,
    Threads,
)
from faq_search.encoding.settings import Fields, Pooling, Precision
from faq_search.index.engine import Engine
from faq_search.index.store import IndexType


def index(
    file: Annotated[
        Path,
        typer.Argument(
            help="FAQ file: .csv, .tsv, .json, .jsonl, .parquet or .xlsx; with --engine ray also a directory "
            "or a glob of shards."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Bundle directory to write (replaced atomically).")] = (
        DEFAULT_INDEX
    ),
    answer_column: AnswerColumn = "answer",
    question_column: QuestionColumns = None,
    id_column: IdColumn = None,
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
    layer: Layer = "-2",
    pooling: PoolingChoice = Pooling.MEAN,
    special: Annotated[
        bool, typer.Option("--special/--no-special", help="Count [CLS]/[SEP] in mean, max and last pooling.")
    ] = True,
    precision: PrecisionChoice = Precision.AUTO,
    hybrid_weight: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=10.0,
            help="BM25 evidence in ranking and confidence: 0 = dense only, any positive value = on "
            "(the fusion weight itself lives in the confidence model).",
        ),
    ] = 0.5,
    keep_duplicate_answers: Annotated[
        bool,
        typer.Option(
            "--keep-duplicate-answers",
            help="Keep rows with the same answer text as separate entries. Default: merge them into one entry "
            "with every question and id, so one answer never fills several places of a ranking.",
        ),
    ] = False,
    index_type: Annotated[
        IndexType,
        typer.Option(
            help="FAISS index: flat = exact (default); hnsw or ivf = approximate, for very large FAQs; "
            "ivfpq = approximate and compressed, for millions of entries."
        ),
    ] = IndexType.FLAT,
    batch_size: Annotated[int, typer.Option(min=1, help="Most texts per encoder batch.")] = 64,
    max_seq_len: Annotated[
        int,
        typer.Option(min=8, help="Word pieces per model window; a longer text is embedded as overlapping windows."),
    ] = 256,
    threads: Annotated[
        int | None, typer.Option(min=1, help="CPU threads for the encoder (default: torch's choice).")
    ] = None,
    full: Annotated[
        bool,
        typer.Option("--full", help="Re-embed every text, even those the bundle at --out already has vectors for."),
    ] = False,
    engine: Annotated[
        Engine,
        typer.Option(
            help="Where the encoder runs: local (this process) or ray (an actor pool on a Ray cluster; needs "
            "pip install 'faq-search[ray]'). Both write the same bundle."
        ),
    ] = Engine.LOCAL,
    address: Annotated[
        str | None,
        typer.Option(help="With --engine ray: the cluster ('auto', ray://host:10001, host:6379); default a local one."),
    ] = None,
    actors: Annotated[
        int | None, typer.Option(min=1, help="With --engine ray: encoder actors (default: one per cluster CPU).")
    ] = None,
    metadata_column: Annotated[
        list[str] | None,
        typer.Option(
            "--metadata-column",
            help="A metadata column `ask --where` can filter on; repeat for several. NAME or NAME:TYPE with TYPE "
            "string, number, boolean or list (items separated by |); default: inferred. Unset: the columns of "
            "the bundle at --out.",
        ),
    ] = None,
    with_onnx: Annotated[
        bool,
        typer.Option(
            "--onnx",
            help="Also add the query encoder as an ONNX graph (as `faq-search onnx` does; about 80 MB), so the "
            "bundle answers without torch. A re-index keeps a graph the bundle already has.",
        ),
    ] = False,
    quiet: QuietFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """Embed every answer (and question) of an FAQ file and write an index bundle.

    Over an existing bundle only new and edited texts are embedded; a run that was killed resumes.
    """
    from faq_search.corpus import read_faq
    from faq_search.encoding.settings import EncoderSettings
    from faq_search.index.build import BuildOptions
    from faq_search.index.lexical import HybridSettings
    from faq_search.index.update import update_bundle

    settings = EncoderSettings(
        model=model or "default", layer=layer, pooling=pooling, include_special=special, max_seq_len=max_seq_len,
        precision=precision,
    )  # fmt: skip
    options = BuildOptions(
        settings=settings, fields=fields, hybrid=HybridSettings(weight=hybrid_weight), index_type=index_type.value,
        batch_size=batch_size, threads=threads, progress=not quiet, metadata_columns=metadata_column,
    )  # fmt: skip
    update: dict[str, Any] = dict(source_name=file.name, full=full, keep_adapted=model is None)
    if engine is Engine.RAY:
        from faq_search.index.ray_build import ReadOptions, index_on_ray

        read = ReadOptions(answer_column, question_column or None, id_column, file_format, keep_duplicate_answers)
        built = index_on_ray(out, file, options, read=read, address=address, actors=actors, **update)
    else:
        entries = read_faq(
            file, answer_column=answer_column, question_column=question_column or None, id_column=id_column,
            file_format=file_format, keep_duplicate_answers=keep_duplicate_answers,
        )  # fmt: skip
        built = update_bundle(out, entries, options, **update)
    report, manifest = built.report, built.manifest
    added = None
    if with_onnx and not built.has_onnx:
        from faq_search.index.onnx_files import add_onnx

        added = add_onnx(out, threads=threads)
    if report is not None and report.reuse_note and not as_json:
        typer.echo(f"faq-search: note: {report.reuse_note}", err=True)
    if as_json:
        data = {"index": str(out), **manifest.to_dict(), "update": render.update_dict(report)}
        if added is not None:
            data["onnx"] = added.to_dict()
        typer.echo(json.dumps(data, indent=2))
        return
    seconds = f" in {report.seconds:.1f} s" if report else ""
    typer.echo(
        f"Indexed {manifest.entry_count} entries ({manifest.vector_count} vectors: {'+'.join(manifest.fields)}) "
        f"with {built.identity.model_name}, layer {settings.layer}, {settings.pooling.value} pooling, "
        f"{manifest.precision}{seconds} -> {out}"
    )
    if report is not None:
        typer.echo(render.update_summary(report, manifest.min_score))
    if added is not None:
        typer.echo(f"Added the ONNX query encoder ({added.graph_bytes / 2**20:.0f} MiB): least cosine to torch fp32 "
                   f"{added.min_cosine:.6f} over {added.checked_texts} texts")  # fmt: skip


def info(index_dir: IndexDir = DEFAULT_INDEX, as_json: JsonFlag = False) -> None:
    """Show what an index holds and how it was built."""
    from faq_search.bundle.files import read_bundle

    manifest, _ = read_bundle(index_dir)
    data = manifest.to_dict()
    if as_json:
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        typer.echo(render.info_table(index_dir, data))


def check(
    index_dir: IndexDir = DEFAULT_INDEX,
    sample: Annotated[int, typer.Option(min=0, help="Rows to re-embed and compare with their stored vectors.")] = 32,
    model: MovedModel = None,
    threads: Threads = None,
    as_json: JsonFlag = False,
) -> None:
    """Verify an index: checksums, counts, vectors, and a re-embedded sample. Exit code 1 when anything is wrong."""
    from faq_search.index.verify import check_bundle

    report = check_bundle(index_dir, sample=sample, model_path=model, threads=threads)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    else:
        typer.echo(render.check_table(index_dir, report))
    if not report.ok:
        raise typer.Exit(1)
