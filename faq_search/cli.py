"""The ``faq-search`` command line: parse, one library call, render.

No retrieval logic lives here. Heavy modules (torch, transformers, FAISS) are
imported inside the commands, so ``faq-search --help`` starts fast. Library
errors become one line on stderr and a non-zero exit code.
"""

from __future__ import annotations

import json
import os
import shutil
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from faq_search.errors import FaqSearchError
from faq_search.settings import Fields, Pooling, Precision

if TYPE_CHECKING:
    from faq_search.engine import Match

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
        str, typer.Option(help="Encoder: 'default' (bundled all-MiniLM-L6-v2), a model directory, or a cached hub id.")
    ] = "default",
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
    batch_size: Annotated[int, typer.Option(min=1, help="Most texts per encoder batch.")] = 64,
    max_seq_len: Annotated[int, typer.Option(min=8, help="Most word pieces per text; longer text is cut.")] = 256,
    threads: Annotated[
        int | None,
        typer.Option(min=1, help="CPU threads for the encoder (default: torch's choice)."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Embed every answer (and question) of an FAQ file and write an index bundle."""
    with _errors():
        from faq_search.corpus import read_faq
        from faq_search.engine import FaqIndex
        from faq_search.settings import EncoderSettings

        entries = read_faq(
            file,
            answer_column=answer_column,
            question_column=question_column or None,
            id_column=id_column,
            file_format=file_format,
        )
        settings = EncoderSettings(
            model=model,
            layer=layer,
            pooling=pooling,
            include_special=special,
            max_seq_len=max_seq_len,
            precision=precision,
        )
        built = FaqIndex.build(
            entries,
            settings=settings,
            fields=fields,
            batch_size=batch_size,
            threads=threads,
            progress=not quiet,
        )
        built.manifest = _with_source(built.manifest, file.name)
        built.save(out)
        report = built.report
        if as_json:
            typer.echo(json.dumps({"index": str(out), **built.manifest.to_dict()}, indent=2))
            return
        seconds = f" in {report.seconds:.1f} s" if report else ""
        typer.echo(
            f"Indexed {built.manifest.entry_count} entries ({built.manifest.vector_count} vectors: "
            f"{'+'.join(built.manifest.fields)}) with {built.identity.model_name}, layer {settings.layer}, "
            f"{settings.pooling.value} pooling, {built.manifest.precision}{seconds} -> {out}"
        )


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
        from faq_search.engine import FaqIndex

        faq = FaqIndex.load(index_dir, model_path=model, threads=threads)
        matches = faq.ask(question, k=k, min_score=min_score)
        threshold = faq.manifest.min_score if min_score is None else min_score
        if as_json:
            typer.echo(
                json.dumps(
                    {
                        "question": question,
                        "answered": bool(matches),
                        "min_score": threshold,
                        "matches": [m.to_dict() for m in matches],
                    },
                    indent=2,
                    ensure_ascii=False,
                )
            )
            return
        if not matches:
            typer.echo(f"No confident answer (no entry scored {threshold:.3f} or more).")
            return
        typer.echo(_render_matches(matches))


@app.command()
def info(index_dir: IndexDir = DEFAULT_INDEX, as_json: JsonFlag = False) -> None:
    """Show what an index holds and how it was built."""
    with _errors():
        from faq_search.bundle import read_bundle

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
            ("min score", "-" if data["min_score"] is None else data["min_score"]),
            ("format", data["format_version"]),
        ]
        width = max(len(k) for k, _ in rows)
        typer.echo("\n".join(f"{k.ljust(width)}  {v}" for k, v in rows))


def _with_source(manifest: Any, source: str) -> Any:
    import dataclasses

    return dataclasses.replace(manifest, source=source)


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
