"""What the live-server tests share: the app served by uvicorn in a thread on a free port, a headless chromium page.

Without playwright or chromium the page tests skip, and fail under CI, with the command that installs them.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium() -> str:
    """The browser's path, or skip (fail under CI) with the command that installs it."""
    problem = None
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        problem = "playwright is not installed; run `make dev`"
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        problem = "chromium is not installed; run `make browser` (apt-get install chromium)"
    if problem is not None:
        if os.environ.get("CI"):
            pytest.fail(problem)
        pytest.skip(problem)
    assert found is not None
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def served(app: Any, port: int, options: dict[str, Any] | None = None) -> Iterator[str]:
    """``app`` served by uvicorn on 127.0.0.1:``port`` in a background thread; yields its URL.

    ``options``: more ``uvicorn.Config`` arguments (the server's own protocol limits, logging).
    """
    import uvicorn

    config = uvicorn.Config(app, **{"host": "127.0.0.1", "log_level": "warning", **(options or {}), "port": port})
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@contextmanager
def browser_page(problems: list[str]) -> Iterator[Any]:
    """A fresh headless chromium page; page errors and console errors are appended to ``problems``."""
    executable = chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, timeout=60_000)
        try:
            page = browser.new_page()
            page.set_default_timeout(20_000)
            page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
            page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
            yield page
        finally:
            browser.close()
