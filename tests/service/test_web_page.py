"""The search page at / in a real headless browser (Debian's chromium, driven by Playwright).

A support agent opens the page, is asked for the access token, types a
question and reads ranked answers with scores; a question nothing answers
well says to hand over. The server runs in-process on a loopback port with the
session's encoder. Under CI (``CI`` set) a missing browser fails the test;
elsewhere it skips with the command that installs it (``make browser``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from faq_search.corpus import FaqEntry, read_faq
from faq_search.index.faq_index import FaqIndex
from faq_search.service.app import TOKEN_ENV, ServeConfig, create_app
from tests.conftest import DATA
from tests.service.live import browser_page, free_port, served

pytestmark = pytest.mark.model

TOKEN = "agent-token"
HTML_ENTRY = FaqEntry(
    id="markup-01",
    questions=("Does the help page show answers with markup safely?",),
    answer='Answers are shown as text: <img src=x onerror="window.injected=1"> <b>stays visible</b>.',
)


@pytest.fixture(scope="module")
def live_url(tmp_path_factory: pytest.TempPathFactory, real_encoder: Any) -> Iterator[str]:
    """The app on a free 127.0.0.1 port, token required, in a background thread."""
    index_dir = tmp_path_factory.mktemp("page") / "index"
    FaqIndex.build([*read_faq(DATA / "faq.csv"), HTML_ENTRY], encoder=real_encoder).save(index_dir)
    port = free_port()
    with mock.patch.dict(os.environ, {TOKEN_ENV: TOKEN}):
        app = create_app(
            ServeConfig(index_dir=index_dir, port=port, watch_s=0), FaqIndex.load(index_dir, encoder=real_encoder)
        )
    with served(app, port) as url:
        yield url


def test_an_agent_searches_from_the_page(live_url: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    problems: list[str] = []
    with browser_page(problems) as page:
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
    assert problems == []
