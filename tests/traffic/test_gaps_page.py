"""The search page's "Gaps" view in a headless browser: present with ``--log``, absent without it.

Skips (fails under CI) without chromium, like every page test (tests/service/live.py).
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

from faq_search.corpus import read_faq
from faq_search.index.faq_index import FaqIndex
from faq_search.service import gaps as service_gaps
from faq_search.service.app import ServeConfig, create_app
from faq_search.traffic.settings import TopicEncoder
from tests.conftest import DATA, FakeEncoder
from tests.service.live import browser_page, free_port, served
from tests.traffic.conftest import RENTALS


@contextmanager
def live(tmp_path: Path, log: bool) -> Iterator[str]:
    encoder = FakeEncoder()
    FaqIndex.build(read_faq(DATA / "faq.csv"), encoder=encoder).save(tmp_path / "shop")
    config = ServeConfig(
        index_dir=tmp_path / "shop", watch_s=0, log_path=str(tmp_path / "t.db") if log else None, max_wait_ms=1.0
    )
    with served(create_app(config, FaqIndex.load(tmp_path / "shop", encoder=encoder)), free_port()) as url:
        yield url


def test_the_gaps_view_shows_topics_only_with_a_log(tmp_path: Path) -> None:
    from playwright.sync_api import expect

    problems: list[str] = []
    with (
        mock.patch.object(service_gaps, "SERVER_ENCODER", TopicEncoder.INDEX),  # the fake encoder has no sentence model
        browser_page(problems) as page,
    ):
        with live(tmp_path / "plain", log=False) as url:
            page.goto(url + "/")
            expect(page.locator("#index-info")).to_contain_text("answers")
            expect(page.locator("#views")).to_be_hidden()
        with live(tmp_path / "logged", log=True) as url:
            for question in RENTALS:
                body = json.dumps({"question": question, "min_score": 1.0}).encode()
                request = urllib.request.Request(url + "/ask", body, {"Content-Type": "application/json"})
                with urllib.request.urlopen(request, timeout=30) as response:
                    assert response.status == 200
            page.goto(url + "/")
            expect(page.locator("#views")).to_be_visible()
            page.click("#tab-gaps")
            expect(page.locator("#search-view")).to_be_hidden()
            page.click("#gaps-button")
            topics = page.locator("#gaps li.topic")
            expect(topics.first).to_be_visible()
            expect(page.locator("#gaps-status")).to_contain_text(f"{len(RENTALS)} of {len(RENTALS)} logged")
            shown = page.locator("#gaps li.topic .representatives li").all_text_contents()
            assert shown and {q.casefold() for q in shown} <= {q.casefold() for q in RENTALS}
            expect(topics.first.locator(".closest")).to_contain_text("Closest entry")
            page.screenshot(path=str(tmp_path / "gaps.png"), full_page=True)
    assert problems == []
