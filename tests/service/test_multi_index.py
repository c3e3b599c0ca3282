"""Several named indexes in one service, filters over HTTP, and tokens scoped to indexes.

The app runs in-process (TestClient) with the fake encoder: every bundle here
is built with it, so the service shares the one encoder the first index
brought. Scoped tokens are checked on every endpoint of every index.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from fastapi.testclient import TestClient

from faq_search.errors import InputError
from faq_search.index.faq_index import FaqIndex
from faq_search.service.app import TOKEN_ENV, ServeConfig, create_app
from faq_search.service.config import TOKENS_ENV, parse_index_option, read_tokens
from faq_search.service.reload import SharedEncoders, open_index
from tests.conftest import FakeEncoder
from tests.index.filter_samples import COLUMNS, RandomEncoder, filter_entries

NAMES = ("shop", "support-de", "plain")
SHOP_TOKEN = "shop-token-123"
DE_TOKEN = "de-token-4567"
ADMIN_TOKEN = "admin-token-89"


@pytest.fixture(scope="module")
def encoder() -> RandomEncoder:
    return RandomEncoder()


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory, encoder: RandomEncoder) -> dict[str, Path]:
    """Three bundles of one encoder: two with filterable columns (different FAQs), one without."""
    root = tmp_path_factory.mktemp("multi")
    entries = filter_entries(120)
    out = {}
    for position, name in enumerate(NAMES):
        folder = root / name
        part = entries[position * 40 : (position + 1) * 40]
        columns = COLUMNS if name != "plain" else ()
        FaqIndex.build(part, encoder=encoder, metadata_columns=columns, index_type="hnsw" if position else "flat").save(
            folder
        )
        out[name] = folder
    return out


@contextmanager
def serving(bundles: dict[str, Path], encoder: RandomEncoder, **env: str) -> Iterator[TestClient]:
    named = tuple((name, bundles[name]) for name in NAMES)
    config = ServeConfig(index_dir=bundles["shop"], named=named, watch_s=0.05, max_wait_ms=1.0)
    first = FaqIndex.load(bundles["shop"], encoder=encoder)
    with mock.patch.dict(os.environ, env), TestClient(create_app(config, first)) as client:
        yield client


@pytest.fixture(scope="module")
def client(bundles: dict[str, Path], encoder: RandomEncoder) -> Iterator[TestClient]:
    with serving(bundles, encoder) as client:
        yield client


def test_indexes_lists_each_with_size_settings_and_filters(client: TestClient) -> None:
    data = client.get("/indexes").json()
    assert data["single"] is None
    listed = {item["name"]: item for item in data["indexes"]}
    assert list(listed) == list(NAMES)
    assert listed["shop"]["entries"] == 40 and listed["shop"]["index_type"] == "flat"
    assert listed["support-de"]["index_type"] == "hnsw"
    fields = {f["name"]: f for f in listed["shop"]["filters"]}
    assert fields["plan"] == {"name": "plan", "type": "string", "values": ["enterprise", "free", "pro"]}
    assert fields["price"]["type"] == "number" and fields["tags"]["type"] == "list"
    assert listed["plain"]["filters"] == []


def test_the_indexes_share_one_encoder_and_one_queue(client: TestClient, encoder: RandomEncoder) -> None:
    service = client.app.state.service  # type: ignore[attr-defined]
    held = [holder.current.index for holder in service.holders.values()]
    assert all(index.encoder is encoder for index in held)
    assert len(service.holders) == 3 and service.batcher is client.app.state.batcher  # type: ignore[attr-defined]


def test_each_index_answers_from_its_own_entries(client: TestClient, bundles: dict[str, Path]) -> None:
    for name in NAMES:
        ids = {e.id for e in FaqIndex.load(bundles[name]).entries}
        response = client.post(f"/indexes/{name}/ask", json={"question": "refund parcel", "k": 5, "min_score": 0})
        assert response.status_code == 200, response.text
        found = [m["id"] for m in response.json()["matches"]]
        assert len(found) == 5 and set(found) <= ids
    batch = client.post("/indexes/support-de/ask/batch", json={"questions": ["card", "login"], "k": 2})
    assert batch.status_code == 200 and len(batch.json()["results"]) == 2
    assert client.post("/indexes/plain/embed", json={"texts": ["hello"]}).json()["dimension"] == 64
    assert client.get("/indexes/shop").json()["name"] == "shop"


def test_the_single_index_paths_are_not_served_with_several(client: TestClient) -> None:
    response = client.post("/ask", json={"question": "refund"})
    assert response.status_code == 404 and "no endpoint /ask" in response.json()["error"]
    missing = client.post("/indexes/nope/ask", json={"question": "refund"})
    assert missing.status_code == 404 and "no index 'nope'" in missing.json()["error"]


def test_filters_over_http_equal_the_library(client: TestClient, bundles: dict[str, Path]) -> None:
    index = FaqIndex.load(bundles["support-de"], encoder=RandomEncoder())
    where = "plan in (pro, enterprise) and price < 70"
    expected = [m.entry.id for m in index.ask("refund parcel", k=10, min_score=0.0, where=where)]
    body = {"question": "refund parcel", "k": 10, "min_score": 0, "filter": where}
    found = [m["id"] for m in client.post("/indexes/support-de/ask", json=body).json()["matches"]]
    assert found == expected and found
    batch = client.post(
        "/indexes/support-de/ask/batch", json={"questions": ["refund parcel"], "k": 10, "min_score": 0, "filter": where}
    )
    assert [m["id"] for m in batch.json()["results"][0]["matches"]] == expected


@pytest.mark.parametrize(
    ("name", "where", "fragment"),
    [
        ("shop", "region=EU", "unknown filter field 'region'; the filterable fields are: plan, country"),
        ("shop", "plan=gold", "known values: enterprise, free, pro"),
        ("shop", "plan=(", "expected a value"),
        ("shop", "(" * 5000 + "a=b" + ")" * 5000, "too long"),
        ("shop", "(" * 200 + "a=b" + ")" * 200, "nests deeper"),
        ("shop", "plan='x' or __import__('os')", "expected an operator"),
        ("shop", "plan=x; drop table entries", "';' at position 7 is not allowed in a filter"),
        ("plain", "plan=pro", "no filterable fields"),
    ],
)
def test_bad_filters_are_one_line_422s(client: TestClient, name: str, where: str, fragment: str) -> None:
    response = client.post(f"/indexes/{name}/ask", json={"question": "refund", "filter": where})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert fragment in error and "\n" not in error


def test_each_index_reloads_on_its_own(bundles: dict[str, Path], encoder: RandomEncoder, tmp_path: Path) -> None:
    copies = {name: tmp_path / name for name in NAMES}
    for name in NAMES:
        shutil.copytree(bundles[name], copies[name])
    with serving(copies, encoder) as client:
        before = {item["name"]: item["generation"] for item in client.get("/indexes").json()["indexes"]}
        replacement = FaqIndex.build(filter_entries(7, seed=3), encoder=encoder, metadata_columns=["plan"])
        replacement.save(copies["support-de"])
        deadline = time.monotonic() + 20
        while client.get("/indexes/support-de").json()["generation"] == 1:
            assert time.monotonic() < deadline, "the watcher did not reload the replaced bundle"
            time.sleep(0.05)
        after = {
            item["name"]: (item["generation"], item["entries"]) for item in client.get("/indexes").json()["indexes"]
        }
        assert after["support-de"] == (2, 7)
        assert after["shop"] == (before["shop"], 40) and after["plain"] == (before["plain"], 40)
        reloaded = client.get("/indexes/support-de").json()
        assert [f["name"] for f in reloaded["filters"]] == ["plan"]
        assert client.app.state.service.holders["support-de"].current.index.encoder is encoder  # type: ignore[attr-defined]


def test_an_index_with_other_encoder_settings_gets_its_own(bundles: dict[str, Path], tmp_path: Path) -> None:
    """Shared encoders are offered in turn; one whose settings differ from the bundle's is never used."""
    first, other = FakeEncoder(64, "fake"), RandomEncoder(64, "other")
    FaqIndex.build(filter_entries(10), encoder=other).save(tmp_path / "other")
    shared = SharedEncoders()
    shared.add(first)
    config = ServeConfig(index_dir=tmp_path / "other")
    with mock.patch("faq_search.index.query_encoder.BertEncoder", side_effect=lambda *a, **k: other) as loaded:
        index = open_index(config, shared=shared)
    assert index.encoder is other and loaded.call_count == 1  # the fake one was refused, another loaded
    assert shared.candidates() == [first, other]
    again = open_index(config, shared=shared)
    assert again.encoder is other  # now found among the shared ones: nothing loaded
    fresh = RandomEncoder()
    with mock.patch("faq_search.index.query_encoder.BertEncoder", side_effect=lambda *a, **k: fresh) as loaded:
        same = open_index(ServeConfig(index_dir=bundles["shop"]), shared=SharedEncoders())
    assert same.encoder is fresh and loaded.call_count == 1  # with nothing shared, an index loads its own


# -- the single-index API stays as it was ---------------------------------------------


def test_one_index_keeps_the_single_index_api(bundles: dict[str, Path], encoder: RandomEncoder) -> None:
    config = ServeConfig(index_dir=bundles["shop"], watch_s=0)
    with TestClient(create_app(config, FaqIndex.load(bundles["shop"], encoder=encoder))) as client:
        single = client.post("/ask", json={"question": "refund", "k": 3, "filter": "plan=pro"}).json()
        named = client.post("/indexes/shop/ask", json={"question": "refund", "k": 3, "filter": "plan=pro"}).json()
        assert single == named and all(m["metadata"]["plan"] == "pro" for m in single["matches"])
        assert client.get("/indexes").json()["single"] == "shop"
        assert client.get("/index").json()["name"] == "shop"


# -- scoped tokens ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def tokens_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tokens") / "tokens.json"
    scopes = {SHOP_TOKEN: ["shop"], DE_TOKEN: ["support-de", "plain"], ADMIN_TOKEN: "*"}
    path.write_text(json.dumps(scopes), encoding="utf-8")
    return path


def endpoints(name: str) -> list[tuple[str, str, dict[str, Any] | None]]:
    """Every endpoint of one index: (method, path, body)."""
    base = f"/indexes/{name}"
    return [
        ("POST", f"{base}/ask", {"question": "refund"}),
        ("POST", f"{base}/ask/batch", {"questions": ["refund"]}),
        ("POST", f"{base}/embed", {"texts": ["refund"]}),
        ("POST", f"{base}/reload", {}),
        ("GET", base, None),
        ("HEAD", base, None),
    ]


def test_a_scoped_token_gets_403_on_every_other_index(
    bundles: dict[str, Path], encoder: RandomEncoder, tokens_file: Path
) -> None:
    scopes = {SHOP_TOKEN: {"shop"}, DE_TOKEN: {"support-de", "plain"}, ADMIN_TOKEN: set(NAMES)}
    with serving(bundles, encoder, **{TOKENS_ENV: str(tokens_file)}) as client:
        for token, allowed in scopes.items():
            auth = {"Authorization": f"Bearer {token}"}
            for name in (*NAMES, "unknown-index"):
                for method, path, body in endpoints(name):
                    response = client.request(method, path, json=body, headers=auth)
                    if name in allowed:
                        assert response.status_code == 200, (token, method, path, response.text)
                    elif name == "unknown-index" and token == ADMIN_TOKEN:
                        assert response.status_code == 404, (token, method, path)
                    else:
                        assert response.status_code == 403, (token, method, path, response.status_code)
                        if method != "HEAD":
                            error = response.json()["error"]
                            assert error.startswith(f"this token may not read index '{name}'; it may read: ")
            listed = [item["name"] for item in client.get("/indexes", headers=auth).json()["indexes"]]
            assert listed == [name for name in NAMES if name in allowed]
        for method, path, body in endpoints("shop"):  # no token, or a wrong one: 401, whatever the index
            assert client.request(method, path, json=body).status_code == 401
            wrong = client.request(method, path, json=body, headers={"Authorization": "Bearer nope-nope-nope"})
            assert wrong.status_code == 401
        assert client.get("/indexes").status_code == 401
        assert client.get("/health").status_code == 200 and client.get("/").status_code == 200


def test_scoped_tokens_cover_the_single_index_paths(
    bundles: dict[str, Path], encoder: RandomEncoder, tokens_file: Path
) -> None:
    config = ServeConfig(index_dir=bundles["support-de"], watch_s=0)
    index = FaqIndex.load(bundles["support-de"], encoder=encoder)
    env = {TOKENS_ENV: str(tokens_file), TOKEN_ENV: "the-old-single-token"}
    with mock.patch.dict(os.environ, env), TestClient(create_app(config, index)) as client:
        paths = [
            ("POST", "/ask", {"question": "refund"}),
            ("POST", "/ask/batch", {"questions": ["refund"]}),
            ("POST", "/embed", {"texts": ["refund"]}),
            ("POST", "/reload", {}),
            ("GET", "/index", None),
        ]
        for method, path, body in paths:
            shop = client.request(method, path, json=body, headers={"Authorization": f"Bearer {SHOP_TOKEN}"})
            assert shop.status_code == 403 and "may not read index 'support-de'" in shop.json()["error"]
            de = client.request(method, path, json=body, headers={"Authorization": f"Bearer {DE_TOKEN}"})
            assert de.status_code == 200, (path, de.text)
            old = client.request(method, path, json=body, headers={"Authorization": "Bearer the-old-single-token"})
            assert old.status_code == 200


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("not json", "is not valid JSON"),
        ("[]", "must be a JSON object"),
        ('{"short": ["shop"]}', "shorter than 8 characters"),
        ('{"long-enough-token": "shop"}', 'list of index names or "*"'),
        ('{"long-enough-token": []}', 'list of index names or "*"'),
    ],
)
def test_a_broken_tokens_file_is_one_line(tmp_path: Path, content: str, fragment: str) -> None:
    path = tmp_path / "tokens.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InputError, match=fragment.replace("*", r"\*")):
        read_tokens(path)
    with pytest.raises(InputError, match="cannot be read"):
        read_tokens(tmp_path / "missing.json")


def test_the_index_option_takes_a_directory_or_names() -> None:
    assert parse_index_option(["indexes/a"]) == (Path("indexes/a"), ())
    folder, named = parse_index_option(["shop=indexes/shop", "de=indexes/de"])
    assert folder == Path("indexes/shop") and named == (("shop", Path("indexes/shop")), ("de", Path("indexes/de")))
    with pytest.raises(InputError, match="NAME=DIR"):
        parse_index_option(["shop=indexes/shop", "indexes/de"])
    with pytest.raises(InputError, match="not allowed"):
        ServeConfig(index_dir="x", named=(("../etc", Path("x")),))
    with pytest.raises(InputError, match="must differ"):
        ServeConfig(index_dir="x", named=(("a", Path("x")), ("a", Path("y"))))
    config = ServeConfig(index_dir="x", named=(("a", Path("x")), ("b", Path("y"))))
    assert ServeConfig.from_json(config.to_json()) == config
