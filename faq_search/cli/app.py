"""The ``faq-search`` typer app: registers the commands, translates library errors, and the entry point.

Every command (in :mod:`~faq_search.cli.build`, :mod:`~faq_search.cli.ask`,
:mod:`~faq_search.cli.embed`, :mod:`~faq_search.cli.serve`,
:mod:`~faq_search.cli.quality`) is parse -> one library call -> render, and
holds no retrieval logic. Heavy modules (torch, transformers, FAISS) are
imported inside the commands, so ``faq-search --help`` starts fast. Library
errors become one line on stderr and their exit code, here and only here.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import typer

from faq_search.cli import ask, build, embed, onnx, quality, serve, traffic
from faq_search.errors import FaqSearchError

app = typer.Typer(
    name="faq-search",
    help="Semantic FAQ retrieval: index an FAQ with a BERT encoder, then ask it questions.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@contextmanager
def one_line_errors() -> Iterator[None]:
    """Turn library errors into one line on stderr and their exit code; Ctrl-C into exit code 130."""
    try:
        yield
    except FaqSearchError as exc:
        typer.echo(f"faq-search: error: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        typer.echo("faq-search: interrupted", err=True)
        raise typer.Exit(130) from None


def _translated(command: Callable[..., None]) -> Callable[..., None]:
    """``command`` run inside :func:`one_line_errors`; typer reads its options through ``functools.wraps``."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> None:
        with one_line_errors():
            command(*args, **kwargs)

    return run


COMMANDS: dict[str, Callable[..., None]] = {
    "index": build.index,
    "ask": ask.ask,
    "info": build.info,
    "check": build.check,
    "embed": embed.embed,
    "serve": serve.serve,
    "eval": quality.eval_command,
    "calibrate": quality.calibrate,
    "tune": quality.tune,
    "adapt": quality.adapt,
    "onnx": onnx.onnx,
    "gaps": traffic.gaps,
    "lint": traffic.lint,
}
for _name, _command in COMMANDS.items():
    app.command(name=_name)(_translated(_command))


def main() -> None:
    """Console-script entry point."""
    app(prog_name="faq-search")


if __name__ == "__main__":  # pragma: no cover
    main()
