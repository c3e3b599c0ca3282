"""The HTTP service: endpoints, errors, the token, batching, hot reload, and `faq-search serve` itself.

Most tests drive the FastAPI app in-process (TestClient, which runs its
startup and shutdown) with the session's real encoder; timing-sensitive cases
use a slow fake encoder; one test starts the real CLI on a loopback port.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import httpx2 as httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from faq_search.cli import app as cli_app
from faq_search.corpus import FaqEntry, read_faq
from faq_search.errors import InputError
from faq_search.index.faq_index import FaqIndex, Match
from faq_search.service.app import TOKEN_ENV, ServeConfig, app_from_env, create_app
from faq_search.service.batching import Job, run_jobs
from tests.conftest import DATA, FakeEncoder
from tests.service.live import free_port

pytestmark = pytest.mark.model

CLI = str(Path(sys.executable).parent / "faq-search")
PARCEL = "my parcel never showed up, what now?"
BIKES = FaqEntry(
    id="bikes-01",
    questions=("Do you sell bicycles?",),
    answer="Yes: city bikes and mountain bikes are in the Sports section, delivered fully assembled.",
)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory, real_encoder: Any) -> Path:
    """The sample FAQ indexed with the session's encoder (read-only: tests that change it copy it)."""
    out = tmp_path_factory.mktemp("serve") / "index"
    FaqIndex.build(DATA / "faq.csv", encoder=real_encoder).save(out)
    return out


@pytest.fixture
def own_bundle(bundle: Path, tmp_path: Path) -> Path:
    """A copy of the bundle this test may replace or damage."""
    import shutil

    return Path(shutil.copytree(bundle, tmp_path / "index"))


@contextmanager
def serving(index_dir: Path, encoder: Any, token: str | None = None, **options: Any) -> Iterator[TestClient]:
    config = ServeConfig(index_dir=index_dir, **{"watch_s": 0.0, **options})
    with mock.patch.dict(os.environ, {TOKEN_ENV: token or ""}):
        app = create_app(config, FaqIndex.load(index_dir, encoder=encoder))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture(scope="module")
def client(bundle: Path, real_encoder: Any) -> Iterator[TestClient]:
    with serving(bundle, real_encoder) as client:
        yield client


def one_line_error(response: httpx.Response, status: int, *needles: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    data = response.json()
    assert isinstance(data["error"], str) and "\n" not in data["error"], data
    assert "Traceback" not in response.text
    for needle in needles:
        assert needle in data["error"], data["error"]
    return dict(data)


# -- the endpoints ---------------------------------------------------------------


def test_ask_returns_the_same_json_as_ask_cli(client: TestClient, bundle: Path, real_encoder: Any) -> None:
    response = client.post("/ask", json={"question": PARCEL, "k": 3})
    assert response.status_code == 200
    assert response.headers["x-faq-index-generation"] == "1"
    data = response.json()
    assert set(data) == {"question", "answered", "min_score", "matches"}
    assert data["question"] == PARCEL and data["answered"] is True
    expected = FaqIndex.load(bundle, encoder=real_encoder).ask(PARCEL, k=3)
    assert [m["id"] for m in data["matches"]] == [m.entry.id for m in expected]
    assert [m["rank"] for m in data["matches"]] == [1, 2, 3]
    assert data["matches"][0]["id"] == "shipping-05"
    assert set(data["matches"][0]) == set(expected[0].to_dict())
    for got, want in zip(data["matches"], expected, strict=True):
        assert got["score"] == pytest.approx(want.score, abs=1e-3)


def test_k_and_min_score(client: TestClient) -> None:
    assert len(client.post("/ask", json={"question": PARCEL, "k": 1}).json()["matches"]) == 1
    data = client.post("/ask", json={"question": "do you sell bicycles", "min_score": 1}).json()
    assert data == {"question": "do you sell bicycles", "answered": False, "min_score": 1, "matches": []}
    assert client.post("/ask", json={"question": PARCEL, "min_score": 1.5}).status_code == 422  # a confidence
    low = client.post("/ask", json={"question": PARCEL, "k": 100, "min_score": 0}).json()
    assert len(low["matches"]) == 48  # k beyond the FAQ's size returns every entry once


def test_ask_batch_answers_each_question_like_ask(client: TestClient) -> None:
    questions = [PARCEL, "can i pay with paypal", "how do i return a jacket"]
    response = client.post("/ask/batch", json={"questions": questions, "k": 2})
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["question"] for r in results] == questions
    for question, result in zip(questions, results, strict=True):
        single = client.post("/ask", json={"question": question, "k": 2}).json()
        assert [m["id"] for m in result["matches"]] == [m["id"] for m in single["matches"]]


def test_embed_returns_the_bundles_sentence_vectors(client: TestClient, real_encoder: Any) -> None:
    texts = ["where is my parcel", "refund please"]
    data = client.post("/embed", json={"texts": texts}).json()
    assert (data["model"], data["layer"], data["pooling"], data["dimension"]) == ("all-MiniLM-L6-v2", "-2", "mean", 384)
    vectors = np.asarray(data["vectors"], dtype=np.float32)
    assert vectors.shape == (2, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    cosines = np.sum(vectors * real_encoder.encode(texts), axis=1)
    assert cosines.min() > 0.999


def test_health_index_and_docs(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok", "generation": 1, "entries": 48}
    summary = client.get("/index").json()
    assert summary["entry_count"] == 48 and summary["generation"] == 1 and summary["reloads"] == 0
    assert summary["encoder"]["model_name"] == "all-MiniLM-L6-v2" and summary["settings"]["layer"] == "-2"
    assert "files" not in summary and summary["server"]["batching"] is True
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/ask", "/ask/batch", "/embed", "/health", "/index", "/reload"} <= set(paths)
    assert client.get("/docs").status_code == 200


def test_the_page_and_its_script_are_served(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'id="ask-form"' in page.text and "/static/app.js" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    script = client.get("/static/app.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert '"/ask"' in script.text and "innerHTML" not in script.text
    one_line_error(client.get("/static/secrets.txt"), 404)


# -- errors ------------------------------------------------------------------------

JSON = {"content-type": "application/json"}


@pytest.mark.parametrize(
    ("path", "body", "headers", "status", "needle"),
    [
        ("/ask", b'{"question": ', JSON, 400, "not valid JSON"),
        ("/ask", b"question=hello", {"content-type": "application/x-www-form-urlencoded"}, 422, "Content-Type"),
        ("/ask", b"[1, 2]", JSON, 422, "JSON object"),
        ("/ask", b"{}", JSON, 422, "question is required"),
        ("/ask", b'{"question": "   "}', JSON, 422, "question is empty"),
        ("/ask", b'{"question": 5}', JSON, 422, "question"),
        ("/ask", json.dumps({"question": "x" * 2001}).encode(), JSON, 422, "too long"),
        ("/ask", b'{"question": "hi", "k": 0}', JSON, 422, "k"),
        ("/ask", b'{"question": "hi", "k": 101}', JSON, 422, "k"),
        ("/ask", b'{"question": "hi", "top_k": 3}', JSON, 422, "top_k is not a known field"),
        ("/ask", b'{"question": "hi", "min_score": NaN}', JSON, 422, "min_score"),
        ("/ask/batch", json.dumps({"questions": ["q"] * 65}).encode(), JSON, 422, "questions"),
        ("/ask/batch", b'{"questions": ["fine", " "]}', JSON, 422, "questions.1 is empty"),
        ("/embed", b'{"texts": []}', JSON, 422, "texts"),
        ("/ask", json.dumps({"question": "x" * (2 << 20)}).encode(), JSON, 413, "larger than"),
    ],
)
def test_bad_requests_get_one_line_json_errors(
    client: TestClient, path: str, body: bytes, headers: dict[str, str], status: int, needle: str
) -> None:
    one_line_error(client.post(path, content=body, headers=headers), status, needle)


def test_unknown_endpoints_and_methods(client: TestClient) -> None:
    one_line_error(client.get("/nope"), 404, "/docs")
    one_line_error(client.get("/ask"), 405, "GET")


def test_a_chunked_body_over_the_limit_is_refused(client: TestClient) -> None:
    chunks = (b"x" * 65536 for _ in range(20))  # no Content-Length: the limit applies while reading
    one_line_error(client.post("/ask", content=chunks, headers=JSON), 413, "larger than")


def test_token_guards_every_endpoint_but_health_and_the_page(bundle: Path, real_encoder: Any) -> None:
    with serving(bundle, real_encoder, token="s3cret") as client:
        body = {"question": PARCEL}
        refused = one_line_error(client.post("/ask", json=body), 401, "no bearer token", TOKEN_ENV)
        assert "s3cret" not in json.dumps(refused)
        assert client.post("/ask", json=body).headers["www-authenticate"] == "Bearer"
        one_line_error(client.post("/ask", json=body, headers={"Authorization": "Bearer nope"}), 401, "wrong")
        one_line_error(client.post("/ask", json=body, headers={"Authorization": "Basic s3cret"}), 401)
        for method, path in [("GET", "/index"), ("POST", "/reload"), ("POST", "/embed"), ("POST", "/ask/batch")]:
            one_line_error(client.request(method, path), 401)
        one_line_error(client.post("/ask", content=b"x" * (2 << 20), headers=JSON), 401)  # before reading the body
        assert client.post("/ask", json=body, headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert client.get("/health").status_code == 200
        assert client.get("/").status_code == 200 and client.get("/static/app.js").status_code == 200
        assert "HTTPBearer" in json.dumps(client.get("/openapi.json").json()["components"])


# -- batching --------------------------------------------------------------------


def post_concurrently(client: TestClient, bodies: Sequence[dict[str, Any]], path: str = "/ask") -> list[httpx.Response]:
    with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
        return list(pool.map(lambda body: client.post(path, json=body), bodies))


def test_concurrent_requests_share_encoder_calls(bundle: Path, real_encoder: Any) -> None:
    questions = [PARCEL, "can i pay with paypal", "how do i return a jacket", "change my address"] * 6
    with serving(bundle, real_encoder, max_wait_ms=100, max_batch=32) as client:
        responses = post_concurrently(client, [{"question": q, "k": 3} for q in questions])
        stats = client.get("/index").json()["server"]
    assert [r.status_code for r in responses] == [200] * len(questions)
    index = FaqIndex.load(bundle, encoder=real_encoder)
    for question, response in zip(questions, responses, strict=True):
        assert [m["id"] for m in response.json()["matches"]] == [m.entry.id for m in index.ask(question, k=3)]
    assert stats["requests"] == stats["texts"] == len(questions)  # the start-up warm-up is not counted
    assert stats["batches"] < len(questions) and stats["largest"] >= 2


def test_with_batching_off_each_request_calls_the_encoder(bundle: Path, real_encoder: Any) -> None:
    with serving(bundle, real_encoder, batching=False) as client:
        responses = post_concurrently(client, [{"question": PARCEL, "k": 1}] * 6)
        stats = client.get("/index").json()["server"]
    assert all(r.status_code == 200 and r.json()["matches"][0]["id"] == "shipping-05" for r in responses)
    assert stats["batches"] == 6 and stats["largest"] == 1 and stats["batching"] is False


class SlowEncoder(FakeEncoder):
    """The fake encoder, taking ``delay`` seconds per call (the model thread is busy meanwhile)."""

    def __init__(self, delay: float, poison: str | None = None) -> None:
        super().__init__()
        self.delay = delay
        self.poison = poison

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if self.poison is not None and any(self.poison in t for t in texts):
            raise RuntimeError("this text breaks the model")
        time.sleep(self.delay)
        return super().encode(texts)


@contextmanager
def serving_fake(tmp_path: Path, encoder: FakeEncoder, **options: Any) -> Iterator[TestClient]:
    index_dir = tmp_path / "fake-index"
    FaqIndex.build(read_faq(DATA / "faq.csv"), encoder=encoder).save(index_dir)
    with serving(index_dir, encoder, **options) as client:
        yield client


def test_batches_are_bounded_and_the_event_loop_stays_free(tmp_path: Path) -> None:
    encoder = SlowEncoder(delay=0.3)
    with serving_fake(tmp_path, encoder, max_batch=4, max_wait_ms=50) as client, ThreadPoolExecutor(12) as pool:
        encoder.calls.clear()
        asked = [pool.submit(client.post, "/ask", json={"question": f"where is parcel {i}"}) for i in range(12)]
        time.sleep(0.1)  # the model thread is busy now
        started = time.perf_counter()
        assert client.get("/health").status_code == 200
        health_seconds = time.perf_counter() - started
        codes = [future.result(timeout=30).status_code for future in asked]
        stats = client.get("/index").json()["server"]
    assert codes == [200] * 12
    assert health_seconds < 0.25  # answered while the model works, not after it
    assert max(len(call) for call in encoder.calls) <= 4 and stats["largest"] <= 4
    assert stats["batches"] >= 3 and stats["texts"] == 12


def test_a_slow_answer_times_out_with_504(tmp_path: Path) -> None:
    with serving_fake(tmp_path, SlowEncoder(delay=1.0), timeout_s=0.2) as client:
        started = time.perf_counter()
        one_line_error(client.post("/ask", json={"question": "hello"}), 504, "--timeout")
        assert time.perf_counter() - started < 0.9


def test_too_many_waiting_questions_get_503(tmp_path: Path) -> None:
    with serving_fake(tmp_path, SlowEncoder(delay=0.4), max_pending=1, max_batch=1) as client:
        responses = post_concurrently(client, [{"question": f"question {i}"} for i in range(5)])
    codes = sorted(r.status_code for r in responses)
    assert 200 in codes and 503 in codes, codes
    busy = next(r for r in responses if r.status_code == 503)
    one_line_error(busy, 503, "overloaded")
    assert busy.headers["retry-after"] == "1"


def test_one_failing_request_does_not_fail_the_others_in_its_batch() -> None:
    encoder = SlowEncoder(delay=0.0, poison="boom")
    index = FaqIndex.build(read_faq(DATA / "faq.csv"), encoder=encoder)
    jobs = [Job(index, "ask", ("where is my parcel",), k=2), Job(index, "ask", ("boom",)), Job(index, "embed", ("x",))]
    results = run_jobs(jobs)
    assert isinstance(results[1], RuntimeError)
    assert [len(m) for m in results[0]] == [2] and isinstance(results[0][0][0], Match)
    assert results[2].shape == (1, encoder.dimension)
    assert len(encoder.calls) == 3  # the ask group failed, then ran job by job; the embed group once


def test_a_request_error_is_json_even_from_the_model(tmp_path: Path) -> None:
    with serving_fake(tmp_path, SlowEncoder(delay=0.0, poison="boom")) as client:
        one_line_error(client.post("/ask", json={"question": "boom"}), 500, "internal error", "server log")
        assert client.post("/ask", json={"question": "fine"}).status_code == 200


# -- hot reload --------------------------------------------------------------------


def wait_for_generation(client: TestClient, generation: int, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        summary = client.get("/index").json()
        if summary["generation"] >= generation:
            return dict(summary)
        time.sleep(0.05)
    raise AssertionError(f"generation {generation} not served within {timeout} s: {summary}")


def test_a_replaced_bundle_is_served_without_failing_a_request(own_bundle: Path, real_encoder: Any) -> None:
    with serving(own_bundle, real_encoder, watch_s=0.1) as client:
        stop = threading.Event()
        seen: list[tuple[int, str]] = []

        def keep_asking() -> None:
            while not stop.is_set():
                response = client.post("/ask", json={"question": PARCEL, "k": 1})
                seen.append((response.status_code, response.headers.get("x-faq-index-generation", "?")))

        with ThreadPoolExecutor(max_workers=4) as pool:
            for _ in range(4):
                pool.submit(keep_asking)
            time.sleep(0.3)
            entries = [*read_faq(DATA / "faq.csv"), BIKES]
            FaqIndex.build(entries, encoder=real_encoder).save(own_bundle)  # the atomic swap `index` does
            summary = wait_for_generation(client, 2)
            time.sleep(0.3)
            stop.set()
        answer = client.post("/ask", json={"question": "do you sell bicycles", "k": 1}).json()
        holder = client.app.state.holder  # type: ignore[attr-defined]
    assert {status for status, _ in seen} == {200}, seen
    assert {"1", "2"} <= {generation for _, generation in seen}
    assert summary["entry_count"] == 49 and summary["reloads"] == 1 and summary["last_reload_error"] is None
    assert answer["matches"][0]["id"] == "bikes-01"
    assert holder.current.index.encoder is real_encoder  # same encoder identity: the loaded model is reused


def test_a_request_in_flight_finishes_on_the_index_it_started_with(tmp_path: Path) -> None:
    encoder = SlowEncoder(delay=0.5)
    with serving_fake(tmp_path, encoder) as client, ThreadPoolExecutor(max_workers=1) as pool:
        in_flight = pool.submit(client.post, "/ask", json={"question": "do you sell bicycles", "k": 1})
        time.sleep(0.1)  # the request is in the model now
        FaqIndex.build([*read_faq(DATA / "faq.csv"), BIKES], encoder=encoder).save(tmp_path / "fake-index")
        reloaded = client.post("/reload", json={})
        old = in_flight.result(timeout=30)
        new = client.post("/ask", json={"question": "do you sell bicycles", "k": 1})
    assert reloaded.status_code == 200 and reloaded.json()["generation"] == 2
    assert old.status_code == 200 and old.headers["x-faq-index-generation"] == "1"
    assert new.headers["x-faq-index-generation"] == "2" and new.json()["matches"][0]["id"] == "bikes-01"
    assert old.json()["matches"][0]["id"] != "bikes-01"


def test_a_broken_bundle_is_reported_and_the_old_one_keeps_serving(own_bundle: Path, real_encoder: Any) -> None:
    with serving(own_bundle, real_encoder, watch_s=0.1) as client:
        assert client.post("/reload", json={}).json()["generation"] == 2
        with open(own_bundle / "vectors.faiss", "r+b") as handle:  # damage it in place: checksums no longer match
            handle.write(b"garbage")
        one_line_error(client.post("/reload", json={}), 500, "reload failed", "still serving generation 2", "corrupt")
        assert client.post("/ask", json={"question": PARCEL}).status_code == 200
        assert "corrupt" in client.get("/index").json()["last_reload_error"]
        # a bundle built by another encoder: the loaded one cannot be reused, and 'fake' is no model on this machine
        FaqIndex.build(read_faq(DATA / "faq.csv"), encoder=FakeEncoder()).save(own_bundle)
        deadline = time.monotonic() + 30
        while "fake" not in (client.get("/index").json()["last_reload_error"] or "") and time.monotonic() < deadline:
            time.sleep(0.05)
        summary = client.get("/index").json()
        assert "cannot load model 'fake'" in summary["last_reload_error"]
        assert summary["generation"] == 2 and summary["encoder"]["model_name"] == "all-MiniLM-L6-v2"
        assert client.post("/ask", json={"question": PARCEL}).json()["matches"][0]["id"] == "shipping-05"


def test_a_bundle_with_other_encoder_settings_loads_its_own_encoder(own_bundle: Path, real_encoder: Any) -> None:
    from faq_search.encoding.encoder import BertEncoder
    from faq_search.encoding.settings import EncoderSettings

    with serving(own_bundle, real_encoder) as client:
        other = BertEncoder(EncoderSettings(layer="-1", precision="fp32"))
        FaqIndex.build(read_faq(DATA / "faq.csv"), encoder=other).save(own_bundle)
        summary = client.post("/reload", json={}).json()
        assert summary["generation"] == 2 and summary["settings"]["layer"] == "-1"
        holder = client.app.state.holder  # type: ignore[attr-defined]
        assert holder.current.index.encoder is not real_encoder
        data = client.post("/ask", json={"question": PARCEL, "k": 1}).json()
        assert data["matches"][0]["id"] == "shipping-05"
        vector = np.asarray(client.post("/embed", json={"texts": [PARCEL]}).json()["vectors"][0])
        assert float(vector @ other.encode([PARCEL])[0]) > 0.999


# -- the command -------------------------------------------------------------------


def test_serve_has_help() -> None:
    result = CliRunner().invoke(cli_app, ["serve", "--help"])
    assert result.exit_code == 0
    for option in ["--index", "--host", "--port", "--workers", "--no-batching", "--watch", "FAQ_SEARCH_TOKEN"]:
        assert option in result.output
    for option in ["--max-connections", "--header-timeout", "--keep-alive"]:
        assert option in result.output


def test_serve_passes_the_connection_limits(tmp_path: Path) -> None:
    started: list[ServeConfig] = []
    with mock.patch("faq_search.service.app.serve", side_effect=started.append):
        limits = ["--max-connections", "7", "--header-timeout", "2.5", "--keep-alive", "1.5"]
        assert CliRunner().invoke(cli_app, ["serve", "--index", str(tmp_path), *limits]).exit_code == 0
        assert CliRunner().invoke(cli_app, ["serve", "--index", str(tmp_path)]).exit_code == 0
        refused = CliRunner().invoke(cli_app, ["serve", "--index", str(tmp_path), "--max-connections", "0"])
    given, default = started
    assert (given.max_connections, given.header_timeout_s, given.keep_alive_s) == (7, 2.5, 1.5)
    fresh = ServeConfig(index_dir=tmp_path)
    assert (default.max_connections, default.header_timeout_s, default.keep_alive_s) == (
        fresh.max_connections, fresh.header_timeout_s, fresh.keep_alive_s,
    )  # fmt: skip
    assert refused.exit_code == 2 and "--max-connections" in refused.output


def test_serve_errors_are_one_line(tmp_path: Path, bundle: Path) -> None:
    missing = subprocess.run(
        [CLI, "serve", "--index", str(tmp_path / "none"), "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1, missing.stderr
    assert "no index at" in missing.stderr and "Traceback" not in missing.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = subprocess.run(
            [CLI, "serve", "--index", str(bundle), "--port", str(port)], capture_output=True, text=True, timeout=120
        )
    assert busy.returncode == 2 and "cannot listen on 127.0.0.1" in busy.stderr and "--port" in busy.stderr


def test_workers_rebuild_the_app_from_the_environment(bundle: Path) -> None:
    config = ServeConfig(index_dir=bundle, workers=2, max_batch=8)
    assert ServeConfig.from_json(config.to_json()) == config
    with mock.patch.dict(os.environ, {"FAQ_SEARCH_SERVE_CONFIG": config.to_json()}):
        assert app_from_env().title == "faq-search"
    with mock.patch.dict(os.environ, {"FAQ_SEARCH_SERVE_CONFIG": ""}), pytest.raises(InputError, match="serve"):
        app_from_env()


def test_cli_serve_answers_over_loopback(bundle: Path) -> None:
    port = free_port()
    env = {**os.environ, TOKEN_ENV: "t0ken", "FAQ_SEARCH_NO_PROGRESS": "1"}
    args = [CLI, "serve", "--index", str(bundle), "--port", str(port), "--no-access-log"]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, process.communicate(timeout=10)
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not start within 90 s"
            time.sleep(0.2)
        assert httpx.post(f"{base}/ask", json={"question": PARCEL}, timeout=30).status_code == 401
        auth = {"Authorization": "Bearer t0ken"}
        data = httpx.post(f"{base}/ask", json={"question": PARCEL, "k": 2}, headers=auth, timeout=30).json()
        assert data["answered"] is True and data["matches"][0]["id"] == "shipping-05"
    finally:
        process.send_signal(signal.SIGINT)
        try:
            _, stderr = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0, stderr
    assert f"serving {bundle}: 48 entries" in stderr and "Traceback" not in stderr
