"""``faq-search ask``: ranked answers to one question, or "no confident answer"."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from faq_search.cli import render
from faq_search.cli.options import DEFAULT_INDEX, IndexDir, JsonFlag, MovedModel, RuntimeChoice, Threads


def ask(
    question: Annotated[str, typer.Argument(help="The customer's question, in quotes.")],
    index_dir: IndexDir = DEFAULT_INDEX,
    k: Annotated[int, typer.Option("-k", "--top", min=1, help="How many answers to return.")] = 5,
    min_score: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Leave out answers whose confidence (0-1: the estimated probability the answer is right) is "
            "below this. Default: the index's calibrated threshold (faq-search calibrate), else none.",
        ),
    ] = None,
    where: Annotated[
        list[str] | None,
        typer.Option(
            "--where",
            "-w",
            help="Only answers whose metadata pass this filter, e.g. 'plan=enterprise' or 'country in (DE, AT)'; "
            "repeat to require several (joined with and). Grammar: =, !=, in (...), not in, <, <=, >, >= on "
            "numbers, and/or/not, parentheses, 'quoted values'. Fields: the index's --metadata-column columns.",
        ),
    ] = None,
    model: MovedModel = None,
    threads: Threads = None,
    runtime: RuntimeChoice = None,
    as_json: JsonFlag = False,
) -> None:
    """Return the best-matching answers to QUESTION from an index, or say none is good enough."""
    from faq_search.index.faq_index import Answer, FaqIndex

    faq = FaqIndex.load(index_dir, model_path=model, threads=threads, runtime=runtime)
    threshold = faq.manifest.min_score if min_score is None else min_score
    answer = Answer.of(question, faq.ask(question, k=k, min_score=min_score, where=where or None), k, threshold)
    if as_json:
        typer.echo(json.dumps(answer.to_dict(), indent=2, ensure_ascii=False))
    elif not answer.answered:
        typer.echo(f"No confident answer (no entry reached confidence {threshold:.3f}).")
    else:
        typer.echo(render.matches_list(answer.matches))
