"""The search page's "Gaps" view in a headless browser: present with ``--log``, absent without it.

Skips (fails under CI) without chromium, like tests/service/test_web_page.py.
"""

from __future__ import annotations

import json
import socket
import threading
import time
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
from tests.service.test_web_page import CHROMIUM_ARGS, chromium
from tests.traffic.conftest import RENTALS


@contextmanager
def live(tmp_path: Path, log: bool) -> Iterator[str]:
    import uvicorn

    encoder = FakeEncoder()
    FaqIndex.build(read_faq(DATA / "faq.csv"), encoder=encoder).save(tmp_path / "shop")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    config = ServeConfig(
        index_dir=tmp_path / "shop", watch_s=0, log_path=str(tmp_path / "t.db") if log else None, max_wait_ms=1.0
    )
    app = create_app(config, FaqIndex.load(tmp_path / "shop", encoder=encoder))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
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


def test_the_gaps_view_shows_topics_only_with_a_log(tmp_path: Path) -> None:
    executable = chromium()
    from playwright.sync_api import expect, sync_playwright

    problems: list[str] = []
    with (
        mock.patch.object(service_gaps, "SERVER_ENCODER", TopicEncoder.INDEX),  # the fake encoder has no sentence model
        sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, timeout=60_000)
        try:
            page = browser.new_page()
            page.set_default_timeout(20_000)
            page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
            page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
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
        finally:
            browser.close()
    assert problems == []
