"""Running the app with uvicorn: ``serve()``, the port check, the log setup, and the ``--workers`` factory."""

from __future__ import annotations

import logging
import os
import socket
from typing import TYPE_CHECKING, Any

from faq_search.errors import InputError
from faq_search.service.config import CONFIG_ENV, TOKEN_ENV, TOKENS_ENV, ServeConfig, read_tokens

if TYPE_CHECKING:
    from fastapi import FastAPI

log = logging.getLogger("faq_search.service.runner")


def check_port(host: str, port: int) -> None:
    """Fail fast, with the fix, when the address cannot be bound."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        raise InputError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}); choose another --port or stop the other server"
        ) from None


def log_config(access_log: bool) -> dict[str, Any]:
    """uvicorn's logging setup plus this package's and asyncio's loggers, on stderr, repeats rate-limited."""
    import copy

    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = {"repeats": {"()": "faq_search.service.connections.RepeatFilter"}}
    config["handlers"]["default"]["filters"] = ["repeats"]
    config["loggers"]["faq_search"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    config["loggers"]["asyncio"] = {"handlers": ["default"], "level": "WARNING", "propagate": False}
    if not access_log:
        config["loggers"]["uvicorn.access"]["level"] = "WARNING"
    return config


def app_from_env() -> FastAPI:
    """App factory for ``--workers N``: each worker process rebuilds the app from ``$FAQ_SEARCH_SERVE_CONFIG``."""
    from faq_search.service.app import create_app

    text = os.environ.get(CONFIG_ENV)
    if not text:
        raise InputError(f"${CONFIG_ENV} is not set; start the server with `faq-search serve`")
    return create_app(ServeConfig.from_json(text))


def uvicorn_options(config: ServeConfig) -> dict[str, Any]:
    """The options ``uvicorn.run`` gets for ``config`` (less the app and workers)."""
    from faq_search.service.connections import protocol_class

    return {
        "host": config.host,
        "port": config.port,
        "log_config": log_config(config.access_log),
        "access_log": config.access_log,
        "timeout_graceful_shutdown": int(config.timeout_s) + 5,
        "timeout_keep_alive": config.keep_alive_s,
        "server_header": False,
        "http": protocol_class(config.max_connections, config.header_timeout_s),
    }


def __getattr__(name: str) -> Any:
    """``WorkerProtocol``: the guarded protocol for a ``--workers`` process, built from its environment."""
    if name != "WorkerProtocol":
        raise AttributeError(name)
    from faq_search.service.connections import protocol_class

    config = ServeConfig.from_json(os.environ[CONFIG_ENV])
    return protocol_class(config.max_connections, config.header_timeout_s)


def serve(config: ServeConfig) -> None:
    """Run the service until interrupted; the index is loaded and warmed before the port opens."""
    import uvicorn

    from faq_search.service.app import create_app
    from faq_search.service.reload import open_index

    check_port(config.host, config.port)
    if os.environ.get(TOKENS_ENV):
        read_tokens(os.environ[TOKENS_ENV])  # a broken token file is a one-line error before the port opens
    elif not os.environ.get(TOKEN_ENV) and config.host not in {"127.0.0.1", "localhost", "::1"}:
        log.warning("listening on %s without a token: set $%s to require one", config.host, TOKEN_ENV)
    common = uvicorn_options(config)
    from faq_search.bundle.files import read_bundle

    for _, folder in config.served[1:]:  # the app loads them; check them here for a one-line error
        read_bundle(folder)
    if config.workers == 1:
        index = open_index(config, index_dir=config.served[0][1])  # errors surface here, as one line from the CLI
        uvicorn.run(create_app(config, index), **common)
        return
    read_bundle(config.served[0][1])  # each worker loads it itself; check it once here for a one-line error
    os.environ[CONFIG_ENV] = config.to_json()
    common["http"] = "faq_search.service.runner:WorkerProtocol"  # a class bound to a guard cannot be pickled
    uvicorn.run("faq_search.service.runner:app_from_env", factory=True, workers=config.workers, **common)
