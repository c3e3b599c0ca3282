"""The search page with several indexes: the index picker and the filter chips, in a headless browser.

Two indexes built with the fake encoder; the page lists both, shows chips for
the chosen one's filterable fields, and a chosen chip restricts the answers.
Skips (fails under CI) without chromium, like tests/service/test_web_page.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from faq_search.index.faq_index import FaqIndex
from faq_search.service.app import ServeConfig, create_app
from tests.index.filter_samples import RandomEncoder, filter_entries
from tests.service.live import browser_page, free_port, served


@pytest.fixture(scope="module")
def live_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    encoder = RandomEncoder()
    root = tmp_path_factory.mktemp("page-multi")
    FaqIndex.build(filter_entries(30), encoder=encoder, metadata_columns=["plan", "tags:list"]).save(root / "shop")
    FaqIndex.build(filter_entries(12, seed=5), encoder=encoder).save(root / "de")
    port = free_port()
    config = ServeConfig(index_dir=root / "shop", named=(("shop", root / "shop"), ("de", root / "de")), watch_s=0)
    app = create_app(config, FaqIndex.load(root / "shop", encoder=encoder))
    with served(app, port) as url:
        yield url


def test_the_page_picks_an_index_and_filters_with_chips(live_url: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    problems: list[str] = []
    with browser_page(problems) as page:
        page.goto(live_url + "/")
        expect(page.locator("#index-info")).to_contain_text("30 answers")
        expect(page.locator("#index-picker option")).to_have_count(2)
        expect(page.locator("#chips .chip-group")).to_have_count(2)  # plan and tags
        expect(page.locator("#chips .chip")).to_have_count(3 + 4)

        page.select_option("#k", "10")
        page.click("#chips .chip[data-field='plan'][data-value='pro']")
        page.click("#chips .chip[data-field='tags'][data-value='login']")
        page.click("#chips .chip[data-field='tags'][data-value='refunds']")
        page.fill("#question", "refund parcel")
        page.click("#ask-button")
        matches = page.locator("#results li.match")
        expect(matches.first).to_be_visible()
        expected = [
            e.id
            for e in filter_entries(30)
            if e.metadata["plan"] == "pro" and {"login", "refunds"} & set(e.metadata["tags"].split("|"))
        ]
        found = [matches.nth(i).get_attribute("data-id") for i in range(matches.count())]
        assert found and set(found) <= set(expected) and len(found) == min(10, len(expected)), (found, expected)
        page.screenshot(path=str(tmp_path / "chips.png"), full_page=True)

        page.select_option("#index-picker", "de")
        expect(page.locator("#index-info")).to_contain_text("12 answers")
        expect(page.locator("#chips .chip")).to_have_count(0)  # built without filterable columns
        page.click("#ask-button")
        expect(matches).to_have_count(10)
        ids = {matches.nth(i).get_attribute("data-id") for i in range(10)}
        assert ids <= {e.id for e in filter_entries(12, seed=5)}
    assert problems == []
