"""The search page at / in a real headless browser (Debian's chromium, driven by Playwright).

A support agent opens the page, is asked for the access token, types a
question and reads ranked answers with scores; a question nothing answers
well says to hand over. The server runs in-process on a loopback port with the
session's encoder. Under CI (``CI`` set) a missing browser fails the test;
elsewhere it skips with the command that installs it (``make browser``).
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from faq_search.corpus import FaqEntry, read_faq
from faq_search.index.faq_index import FaqIndex
from faq_search.service.app import TOKEN_ENV, ServeConfig, create_app
from tests.conftest import DATA

pytestmark = pytest.mark.model

TOKEN = "agent-token"
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
HTML_ENTRY = FaqEntry(
    id="markup-01",
    questions=("Does the help page show answers with markup safely?",),
    answer='Answers are shown as text: <img src=x onerror="window.injected=1"> <b>stays visible</b>.',
)


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


@pytest.fixture(scope="module")
def live_url(tmp_path_factory: pytest.TempPathFactory, real_encoder: Any) -> Iterator[str]:
    """The app on a free 127.0.0.1 port, token required, in a background thread."""
    import uvicorn

    index_dir = tmp_path_factory.mktemp("page") / "index"
    FaqIndex.build([*read_faq(DATA / "faq.csv"), HTML_ENTRY], encoder=real_encoder).save(index_dir)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    with mock.patch.dict(os.environ, {TOKEN_ENV: TOKEN}):
        app = create_app(
            ServeConfig(index_dir=index_dir, port=port, watch_s=0), FaqIndex.load(index_dir, encoder=real_encoder)
        )
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=30)


def test_an_agent_searches_from_the_page(live_url: str, tmp_path: Path) -> None:
    executable = chromium()
    from playwright.sync_api import expect, sync_playwright

    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, timeout=60_000)
        try:
            page = browser.new_page()
            page.set_default_timeout(20_000)
            page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
            page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
            page.goto(live_url + "/")
            expect(page.locator("#index-info")).to_contain_text("access token")

            # Without the token the search says what to do, and opens the token box.
            page.fill("#question", "my parcel never showed up, what now?")
            page.click("#ask-button")
            expect(page.locator("#status")).to_contain_text("Enter the access token")
            problems.clear()  # the 401s above are logged by the browser as failed loads; expected
            page.fill("#token", TOKEN)
            page.locator("#token").dispatch_event("change")
            expect(page.locator("#index-info")).to_contain_text("49 answers")

            # The ranked answers, best first, with scores.
            page.click("#ask-button")
            matches = page.locator("#results li.match")
            expect(matches).to_have_count(3)
            expect(matches.first).to_have_attribute("data-id", "shipping-05")
            expect(matches.first.locator(".question")).to_contain_text("parcel")
            scores = [float(text) for text in page.locator("#results .score").all_inner_texts()]
            assert scores == sorted(scores, reverse=True) and scores[-1] > 0 and scores[0] < 2, scores
            expect(page.locator("#status")).to_contain_text("3 answers")
            page.screenshot(path=str(tmp_path / "answers.png"), full_page=True)

            # Answer text is shown as text, never run as markup.
            page.fill("#question", "does the help page show answers with markup safely")
            page.press("#question", "Enter")
            expect(matches.first).to_have_attribute("data-id", "markup-01")
            expect(matches.first.locator(".answer")).to_contain_text("<b>stays visible</b>")
            assert page.evaluate("window.injected") is None

            # Nothing scores high enough: hand over to a person.
            page.select_option("#k", "5")
            page.fill("#min-score", "1")
            page.fill("#question", "do you sell bicycles")
            page.click("#ask-button")
            expect(page.locator("#status")).to_contain_text("No confident answer")
            expect(page.locator("#status")).to_contain_text("Hand the customer over")
            expect(matches).to_have_count(0)
        finally:
            browser.close()
    assert problems == []
