"""``serve --log``: every answer logged with a question id, ``POST /feedback``, and nothing written without it."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from typer.testing import CliRunner

from faq_search.cli.app import app as cli
from faq_search.service.config import ServeConfig
from faq_search.traffic.log import QuestionLog
from tests.conftest import FakeEncoder
from tests.service.test_server import one_line_error, serving_fake


def test_every_answer_is_logged_with_the_id_feedback_refers_to(tmp_path: Path) -> None:
    log_path = tmp_path / "traffic.db"
    with serving_fake(tmp_path, FakeEncoder(), log_path=str(log_path)) as client:
        one = client.post("/ask", json={"question": "where is my parcel, I am ann@example.com", "k": 3}).json()
        batch = client.post("/ask/batch", json={"questions": ["how do I pay", "can I return shoes"]}).json()
        ids = [one["question_id"], *(r["question_id"] for r in batch["results"])]
        assert len(set(ids)) == 3 and all(len(i) == 32 for i in ids)
        assert client.post("/feedback", json={"question_id": ids[0], "helpful": True}).json() == {
            "recorded": True, "question_id": ids[0],
        }  # fmt: skip
        chosen = {"question_id": ids[1], "helpful": False, "entry_id": "payments-01"}
        assert client.post("/feedback", json=chosen).status_code == 200
        one_line_error(client.post("/feedback", json={"question_id": "f" * 32, "helpful": True}), 404, "no logged")
        one_line_error(client.post("/feedback", json={"question_id": "x", "helpful": True}), 422)
        one_line_error(client.post("/feedback", json={"question_id": ids[0], "helpful": "yes"}), 422)
        schema = client.get("/openapi.json").json()
        assert "/feedback" in schema["paths"]
        assert "question_id" in schema["components"]["schemas"]["AskResponse"]["properties"]
    with QuestionLog(log_path) as log:
        questions = {q.id: q for q in log.questions()}
        feedback = log.feedback()
    assert set(questions) == set(ids)
    first = questions[ids[0]]
    assert first.question == "where is my parcel, I am [email]" and first.generation == 1
    assert len(first.matches) == 3 and [m.id for m in first.matches] == [m["id"] for m in one["matches"]]
    assert first.latency_ms is not None and first.latency_ms > 0 and first.index == str(tmp_path / "fake-index")
    assert [(f.question_id, f.helpful, f.entry_id) for f in feedback] == [
        (ids[0], True, None), (ids[1], False, "payments-01"),
    ]  # fmt: skip


def test_the_log_keeps_matches_below_the_threshold(tmp_path: Path) -> None:
    log_path = tmp_path / "traffic.db"
    with serving_fake(tmp_path, FakeEncoder(), log_path=str(log_path)) as client:
        body = client.post("/ask", json={"question": "do you sell bicycles", "k": 2, "min_score": 1.0}).json()
    assert body["answered"] is False and body["matches"] == []
    with QuestionLog(log_path) as log:
        [stored] = log.questions()
    assert not stored.answered and len(stored.matches) == 2 and stored.min_score == 1.0


def test_no_redact_keeps_the_question_as_typed(tmp_path: Path) -> None:
    log_path = tmp_path / "traffic.db"
    with serving_fake(tmp_path, FakeEncoder(), log_path=str(log_path), redact=False) as client:
        client.post("/ask", json={"question": "refund to ann@example.com"})
    with QuestionLog(log_path) as log:
        assert [q.question for q in log.questions()] == ["refund to ann@example.com"]


def test_nothing_is_written_without_log(tmp_path: Path) -> None:
    before = set(tmp_path.rglob("*"))
    with serving_fake(tmp_path, FakeEncoder()) as client:
        body = client.post("/ask", json={"question": "where is my parcel"}).json()
        batch = client.post("/ask/batch", json={"questions": ["how do I pay"]}).json()
        assert "question_id" not in body and "question_id" not in batch["results"][0]
        assert client.post("/feedback", json={"question_id": "f" * 32, "helpful": True}).status_code == 404
        assert "/feedback" not in client.get("/openapi.json").json()["paths"]
    written = {p for p in set(tmp_path.rglob("*")) - before if "fake-index" not in p.parts}
    assert written == set()


def test_serve_passes_the_log_options_and_creates_the_file(tmp_path: Path) -> None:
    started: list[ServeConfig] = []
    with mock.patch("faq_search.service.app.serve", side_effect=started.append):
        result = CliRunner().invoke(
            cli, ["serve", "--index", str(tmp_path), "--log", str(tmp_path / "t.db"), "--no-redact",
                          "--retention-days", "30"],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        CliRunner().invoke(cli, ["serve", "--index", str(tmp_path)])
    with_log, without = started
    assert with_log.log_path == str((tmp_path / "t.db").resolve()) and with_log.redact is False
    assert with_log.retention_days == 30 and (tmp_path / "t.db").is_file()
    assert without.log_path is None and without.redact is True
    assert ServeConfig.from_json(with_log.to_json()) == with_log  # the config reaches --workers processes


def test_serve_refuses_a_bad_log_file_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "bad.db").write_text("not a database" * 200)
    with mock.patch("faq_search.service.app.serve") as run:
        result = CliRunner().invoke(cli, ["serve", "--index", str(tmp_path), "--log", str(tmp_path / "bad.db")])
    assert result.exit_code == 2 and "not a usable SQLite question log" in result.output and not run.called


@pytest.mark.parametrize("options", [{"retention_days": 0.0}, {"retention_days": -1.0}])
def test_retention_must_be_positive(options: dict[str, Any]) -> None:
    from faq_search.errors import InputError

    with pytest.raises(InputError, match="retention"):
        ServeConfig(index_dir=Path("x"), **options)


def test_each_named_index_logs_under_its_own_folder(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from faq_search.index.faq_index import FaqIndex
    from faq_search.service.app import create_app
    from tests.index.filter_samples import RandomEncoder, filter_entries

    encoder = RandomEncoder()
    entries = filter_entries(40)
    folders = {name: tmp_path / name for name in ("shop", "support")}
    for position, (_name, folder) in enumerate(folders.items()):
        FaqIndex.build(entries[position * 20 : (position + 1) * 20], encoder=encoder).save(folder)
    log_path = tmp_path / "traffic.db"
    config = ServeConfig(
        index_dir=folders["shop"], named=tuple(folders.items()), watch_s=0, log_path=str(log_path), max_wait_ms=1.0
    )
    with TestClient(create_app(config, FaqIndex.load(folders["shop"], encoder=encoder))) as client:
        for name in folders:
            body = client.post(f"/indexes/{name}/ask", json={"question": "where is my parcel"}).json()
            assert len(body["question_id"]) == 32
    with QuestionLog(log_path) as log:
        assert sorted(q.index for q in log.questions()) == sorted(str(f) for f in folders.values())
