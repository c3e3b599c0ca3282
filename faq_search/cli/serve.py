"""``faq-search serve``: the index over HTTP (the service layer does the work)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from faq_search.cli.options import DEFAULT_INDEX, MovedModel, RuntimeChoice


def serve(
    index: Annotated[
        list[str] | None,
        typer.Option(
            "--index",
            "-i",
            help="Index bundle directory (default: $FAQ_SEARCH_INDEX or indexes/default). Repeat as NAME=DIR to "
            "serve several, each under /indexes/NAME/ (shop=indexes/shop); indexes with equal encoder settings "
            "share one model.",
        ),
    ] = None,
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
    model: MovedModel = None,
    threads: Annotated[int | None, typer.Option(min=1, help="CPU threads for the encoder, per worker.")] = None,
    access_log: Annotated[bool, typer.Option("--access-log/--no-access-log", help="Log every request.")] = True,
    runtime: RuntimeChoice = None,
    max_connections: Annotated[
        int, typer.Option(min=1, help="Open connections per worker; past it the one idle longest is closed.")
    ] = 1000,
    header_timeout: Annotated[
        float, typer.Option(min=0.1, help="Seconds a connection may take to send a request's headers.")
    ] = 10.0,
    keep_alive: Annotated[float, typer.Option(min=0.1, help="Seconds an idle keep-alive connection stays open.")] = 5.0,
    log: Annotated[
        Path | None,
        typer.Option(
            "--log",
            help="Log every question, its top matches and feedback in this SQLite file (created if missing) "
            "and accept POST /feedback; without it nothing is logged.",
        ),
    ] = None,
    redact: Annotated[
        bool,
        typer.Option(
            "--redact/--no-redact", help="Mask e-mail addresses, phone, card and long numbers before logging them."
        ),
    ] = True,
    retention_days: Annotated[
        float | None, typer.Option(min=0.001, help="Delete logged questions older than this many days.")
    ] = None,
) -> None:
    """Serve an index over HTTP: POST /ask, /ask/batch, /embed; a search page at /; API docs at /docs.

    Set $FAQ_SEARCH_TOKEN to require 'Authorization: Bearer <token>' on the API (/health, the page and /docs stay open),
    or $FAQ_SEARCH_TOKENS to a JSON file of token: [index names] so that each token reads only its indexes.
    """
    from faq_search.service.app import ServeConfig
    from faq_search.service.app import serve as run_server
    from faq_search.service.config import parse_index_option

    if log is not None:  # create or upgrade it now, so a bad file is one line here, not a worker's traceback
        from faq_search.traffic.log import QuestionLog

        QuestionLog(log, retention_days=retention_days).close()

    index_dir, named = parse_index_option(index or [str(DEFAULT_INDEX)])
    run_server(
        ServeConfig(
            index_dir=index_dir,
            named=named,
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
            runtime=runtime,
            max_connections=max_connections,
            header_timeout_s=header_timeout,
            keep_alive_s=keep_alive,
            log_path=None if log is None else str(log.resolve()),
            redact=redact,
            retention_days=retention_days,
        )
    )
