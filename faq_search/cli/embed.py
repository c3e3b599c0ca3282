"""``faq-search embed``: the vectors themselves, at sentence, token (word piece) or word level."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from faq_search.cli.options import EncoderModel, JsonFlag, Layer, PrecisionChoice, Threads
from faq_search.encoding.settings import Pooling, Precision
from faq_search.export.embeddings import Level, WordMerge


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
    layer: Layer = "-2",
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
    model: EncoderModel = "default",
    precision: PrecisionChoice = Precision.AUTO,
    max_seq_len: Annotated[int, typer.Option(min=8, help="Word pieces per model window.")] = 256,
    batch_size: Annotated[int, typer.Option(min=1, help="Most texts (or windows) per encoder batch.")] = 64,
    threads: Threads = None,
    as_json: JsonFlag = False,
) -> None:
    """Print or save the vectors themselves: sentence, token (word piece) or word level."""
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
