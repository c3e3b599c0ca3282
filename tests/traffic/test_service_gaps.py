"""``GET /gaps`` and ``/indexes/{name}/gaps`` of a logging server, scoped tokens, and the page's gaps view."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from fastapi.testclient import TestClient

from faq_search.index.faq_index import FaqIndex
from faq_search.service import gaps as service_gaps
from faq_search.service.app import create_app
from faq_search.service.config import TOKENS_ENV, ServeConfig
from faq_search.traffic.settings import TopicEncoder
from tests.conftest import FakeEncoder
from tests.index.filter_samples import RandomEncoder, filter_entries
from tests.service.test_server import one_line_error, serving_fake
from tests.traffic.conftest import RENTALS, SKI_WAX

SHOP_TOKEN = "shop-token-123"
ADMIN_TOKEN = "admin-token-89"


@pytest.fixture(autouse=True)
def index_space() -> Iterator[None]:
    """The fake encoders have no sentence model: the server groups with the index's own encoder here."""
    with mock.patch.object(service_gaps, "SERVER_ENCODER", TopicEncoder.INDEX):
        yield


def test_gaps_lists_the_unanswered_topics_of_the_log(tmp_path: Path) -> None:
    with serving_fake(tmp_path, FakeEncoder(), log_path=str(tmp_path / "traffic.db")) as client:
        for question in (*RENTALS, *SKI_WAX, "where is my parcel"):
            assert client.post("/ask", json={"question": question}).status_code == 200
        body = client.get("/gaps", params={"min_score": 1.0, "top": 5}).json()  # every question is a gap
        assert body["logged"] == len(RENTALS) + len(SKI_WAX) + 1 == body["gap_askings"]
        assert body["gap_questions"] == body["logged"] - 1  # one rental question was asked twice
        assert body["index"] == "fake-index" and body["encoder"] == "index" and body["read_limit"] == 5000
        topics = body["clusters"]
        assert 1 <= len(topics) <= 5 and [t["rank"] for t in topics] == list(range(1, len(topics) + 1))
        assert sum(t["volume"] for t in topics) <= body["gap_askings"]
        asked = {q.casefold() for q in (*RENTALS, *SKI_WAX, "where is my parcel")}
        for topic in topics:
            assert {q.casefold() for q in topic["representatives"]} <= asked and "questions" not in topic
            assert topic["closest"]["id"] and 0.0 <= topic["novelty"] <= 2.0
        counts = client.get("/gaps", params={"top": 0, "min_score": 1.0}).json()
        assert counts["clusters"] == [] and counts["gap_askings"] == body["gap_askings"]
        assert client.get("/gaps", params={"limit": 2, "top": 0}).json()["logged"] == 2  # the newest two
        assert client.get("/gaps", params={"since": "2999-01-01", "top": 0}).json()["logged"] == 0
        one_line_error(client.get("/gaps", params={"since": "yesterday"}), 422, "--since")
        one_line_error(client.get("/gaps", params={"limit": 10**6}), 422)
        paths = client.get("/openapi.json").json()["paths"]
        assert "/gaps" in paths and "/indexes/{name}/gaps" in paths


def test_without_log_there_are_no_gaps_routes(tmp_path: Path) -> None:
    with serving_fake(tmp_path, FakeEncoder()) as client:
        assert client.get("/gaps").status_code == 404
        assert client.get("/indexes/fake-index/gaps").status_code == 404
        paths = client.get("/openapi.json").json()["paths"]
        assert not any(path.endswith("/gaps") for path in paths)
        page, script = client.get("/").text, client.get("/static/app.js").text
    assert 'id="gaps-view"' in page and 'id="views" role="tablist" aria-label="Views" hidden' in page
    assert "probeGaps" in script and "/indexes/{name}/gaps" in script  # shown when the schema lists the route


@contextmanager
def two_shops(tmp_path: Path, **env: str) -> Iterator[TestClient]:
    encoder = RandomEncoder()
    entries = filter_entries(40)
    folders = {name: tmp_path / name for name in ("shop", "support")}
    for position, folder in enumerate(folders.values()):
        FaqIndex.build(entries[position * 20 : (position + 1) * 20], encoder=encoder).save(folder)
    config = ServeConfig(
        index_dir=folders["shop"], named=tuple(folders.items()), watch_s=0, log_path=str(tmp_path / "t.db"),
        max_wait_ms=1.0,
    )  # fmt: skip
    with mock.patch.dict(os.environ, env):
        app = create_app(config, FaqIndex.load(folders["shop"], encoder=encoder))
    with TestClient(app) as client:
        yield client


def test_a_scoped_token_sees_only_the_questions_of_its_indexes(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({SHOP_TOKEN: ["shop"], ADMIN_TOKEN: ["shop", "support"]}))
    shop_questions = ["can i rent a tent", "do you rent tents"]
    support_questions = ["my secret support question one", "my secret support question two", "and three"]
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    shop = {"Authorization": f"Bearer {SHOP_TOKEN}"}
    with two_shops(tmp_path, **{TOKENS_ENV: str(tokens)}) as client:
        for name, questions in (("shop", shop_questions), ("support", support_questions)):
            for question in questions:
                assert (
                    client.post(f"/indexes/{name}/ask", json={"question": question}, headers=admin).status_code == 200
                )
        seen = client.get("/indexes/shop/gaps", params={"min_score": 1.0}, headers=shop).json()
        shown = {q for topic in seen["clusters"] for q in topic["representatives"]}
        assert seen["logged"] == len(shop_questions) and shown == set(shop_questions)
        one_line_error(client.get("/indexes/support/gaps", headers=shop), 403, "may not read index 'support'")
        assert client.get("/indexes/support/gaps", params={"min_score": 1.0}, headers=admin).json()["logged"] == 3
        assert client.get("/indexes/shop/gaps").status_code == 401
        assert client.get("/gaps", headers=admin).status_code == 404  # several indexes: only the named routes


def test_a_token_scoped_to_another_index_may_not_read_a_single_index_servers_gaps(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({SHOP_TOKEN: ["another-index"], ADMIN_TOKEN: "*"}))
    with (
        mock.patch.dict(os.environ, {TOKENS_ENV: str(tokens)}),
        serving_fake(tmp_path, FakeEncoder(), log_path=str(tmp_path / "t.db")) as client,
    ):
        one_line_error(client.get("/gaps", headers={"Authorization": f"Bearer {SHOP_TOKEN}"}), 403, "may not")
        admin = client.get("/gaps", params={"top": 0}, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        assert admin.status_code == 200 and admin.json()["logged"] == 0


def test_the_report_runs_off_the_event_loop(tmp_path: Path) -> None:
    """While a report is being made, the server still answers: the work is on a thread, not the loop."""
    started, answered = threading.Event(), threading.Event()
    seen: list[bool] = []

    def slow_report(*args: Any, **kwargs: Any) -> Any:
        started.set()
        seen.append(answered.wait(timeout=10))  # blocks until /health was answered meanwhile
        return real_find_gaps(*args, **kwargs)

    from faq_search.traffic import gaps as traffic_gaps

    real_find_gaps = traffic_gaps.find_gaps
    with serving_fake(tmp_path, FakeEncoder(), log_path=str(tmp_path / "traffic.db")) as client:
        client.post("/ask", json={"question": "can i rent a tent"})
        with mock.patch.object(traffic_gaps, "find_gaps", side_effect=slow_report):
            result: list[Any] = []
            worker = threading.Thread(target=lambda: result.append(client.get("/gaps", params={"min_score": 1.0})))
            worker.start()
            assert started.wait(timeout=10)
            if client.get("/health").status_code == 200:  # on the loop, this would wait out the report
                answered.set()
            worker.join(timeout=20)
    assert seen == [True] and result[0].status_code == 200 and result[0].json()["logged"] == 1


def test_the_server_groups_with_the_sentence_encoder(tmp_path: Path, sample_bundle: Path, real_encoder: Any) -> None:
    """The real path: the bundle's model at its last layer; topics the sample FAQ lacks come out as topics."""
    from tests.service.test_server import serving

    with (
        mock.patch.object(service_gaps, "SERVER_ENCODER", TopicEncoder.SENTENCE),
        serving(sample_bundle, real_encoder, log_path=str(tmp_path / "traffic.db")) as client,
    ):
        for question in (*RENTALS, *SKI_WAX):
            client.post("/ask", json={"question": question})
        body = client.get("/gaps", params={"min_score": 1.0}).json()
    assert body["encoder"] == "sentence" and body["gap_askings"] == len(RENTALS) + len(SKI_WAX)
    topics = [{q.casefold() for q in t["representatives"]} for t in body["clusters"]]
    rentals = {q.casefold() for q in RENTALS}
    assert any(topic <= rentals and len(topic) >= 3 for topic in topics), topics


def test_indexes_of_one_model_share_one_sentence_encoder(tmp_path: Path) -> None:
    """Two indexes built with the same model: the topic encoder is loaded once, and kept across reports."""
    from faq_search.traffic import topics

    loaded: list[Any] = []

    def load(index: FaqIndex) -> Any:
        loaded.append(RandomEncoder())
        return loaded[-1]

    with (
        mock.patch.object(service_gaps, "SERVER_ENCODER", TopicEncoder.SENTENCE),
        mock.patch.object(topics, "sentence_encoder", side_effect=load),
        two_shops(tmp_path) as client,
    ):
        for name in ("shop", "support", "shop"):
            client.post(f"/indexes/{name}/ask", json={"question": f"a question for {name}"})
            body = client.get(f"/indexes/{name}/gaps", params={"min_score": 1.0}).json()
            assert body["encoder"] == "sentence" and body["logged"] >= 1 and body["clusters"]
        assert len(loaded) == 1 and client.app.state.gaps.encoders() == 1  # type: ignore[attr-defined]
