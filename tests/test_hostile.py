"""Hostile input: every FAQ file, entry, question or bundle either works or gives one clean error line.

Property-based (hypothesis) over the library with the fake encoder; a few
runs of the real command line with the real model check the one-line errors
end to end. Never a crash, a hang or a traceback; loading never runs code.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import os
import re
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from faq_search.bundle import files as bundle
from faq_search.bundle import manifest as bundle_manifest
from faq_search.bundle.files import MANIFEST
from faq_search.corpus import FaqEntry, read_faq
from faq_search.errors import BundleError, FaqSearchError, InputError
from faq_search.index.faq_index import FaqIndex, Match
from faq_search.index.lexical import HybridSettings
from tests.conftest import DATA, REPO, FakeEncoder

MEGABYTE = "All work and no play makes a dull answer. " * (1_000_000 // 42)
CRAFTED = [
    "",
    " ",
    "\t\n \r\n",
    "\u3000\u00a0",
    "x",
    "?",
    "\x00",
    "a\x00b\x00",
    "\x01\x02\x1b[31mred\x1b[0m\x7f",
    "=cmd|' /C calc'!A0",
    '=HYPERLINK("http://evil.test","click")',
    "+1+1",
    "-2+3",
    "@SUM(A1:A9)",
    "<script>alert(1)</script>",
    "<b>bold</b> &amp; <i>it</i> </textarea><img src=x onerror=alert(1)>",
    "مرحبا بالعالم، كيف أعيد طلبي؟",
    "שלום, איפה החבילה שלי?",
    "\u202eevil\u202c text",
    "\u200b\u200c\u200d\u2060",
    "\ufeffBOM first",
    "😀👍🏽👨‍👩‍👧 parcel 📦",
    "e\u0301te\u0301",
    "Ã©tÃ© cafÃ©",  # UTF-8 read as Latin-1 (mojibake)
    "caf\xe9 cr\xe8me",
    "\U0010ffff\U000e0001",
    "\ud800 lone surrogate",
    '"quoted", with, commas\nand "newlines"',
    '{"json": [1, 2]}',
    "a" * 20_000,
]
texts = st.one_of(
    st.sampled_from(CRAFTED),
    st.text(max_size=300),
    st.text(st.characters(codec="utf-8"), max_size=50),
    st.text(st.characters(min_codepoint=0, max_codepoint=0x7F), max_size=80),
    st.text(st.characters(categories=["Cc", "Cf", "Cs", "Zs", "Mn"]), max_size=20),
)
HYPOTHESIS = settings(
    max_examples=int(os.environ.get("HOSTILE_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def one_line(error: FaqSearchError) -> None:
    message = str(error)
    assert message and "\n" not in message and "\r" not in message, repr(message)
    assert "Traceback" not in message


def valid(matches: list[Match], entries: int) -> None:
    assert isinstance(matches, list) and all(isinstance(m, Match) for m in matches)
    assert len({m.entry.id for m in matches}) == len(matches) <= entries
    assert [m.rank for m in matches] == list(range(1, len(matches) + 1))
    assert all(math.isfinite(m.score) and math.isfinite(m.cosine) for m in matches)
    assert all(0.0 <= m.score <= 1.0 for m in matches)  # a confidence, whatever the input
    assert all(a.score >= b.score for a, b in itertools.pairwise(matches))
    assert all(m.field in ("question", "answer") for m in matches)


@pytest.fixture(scope="module")
def sample_indexes() -> list[FaqIndex]:
    entries = read_faq(DATA / "faq.csv")
    return [
        FaqIndex.build(entries, encoder=FakeEncoder(), hybrid=HybridSettings(weight=0)),
        FaqIndex.build(entries, encoder=FakeEncoder()),
    ]


# -- questions ---------------------------------------------------------------------------------


@HYPOTHESIS
@given(question=texts, k=st.integers(min_value=-2, max_value=60))
def test_any_question_gives_matches_or_one_error_line(sample_indexes: list[FaqIndex], question: str, k: int) -> None:
    for index in sample_indexes:
        try:
            matches = index.ask(question, k=k)
        except InputError as exc:
            one_line(exc)
            assert k < 1 or not question.strip() or "not text" in str(exc)
            continue
        valid(matches, len(index))
        assert len(matches) == min(k, len(index))


@pytest.mark.parametrize("question", ["\x00", MEGABYTE, "\ud800", "\udcff\udcfe", " \x00 "])
def test_extreme_questions(sample_indexes: list[FaqIndex], question: str) -> None:
    for index in sample_indexes:
        try:
            valid(index.ask(question, k=3), len(index))
        except InputError as exc:
            one_line(exc)
            assert "not text" in str(exc)


# -- entries through the library -------------------------------------------------------------

entry_lists = st.lists(
    st.tuples(texts, texts, st.lists(texts, max_size=3), st.dictionaries(texts, texts, max_size=2)),
    min_size=0,
    max_size=6,
    unique_by=lambda row: row[0],
)


@HYPOTHESIS
@given(rows=entry_lists, question=texts)
def test_any_entries_build_save_load_and_answer_or_give_one_error_line(
    rows: list[tuple[str, str, list[str], dict[str, str]]], question: str
) -> None:
    entries = [FaqEntry(i, a, tuple(q), m) for i, a, q, m in rows]
    try:
        index = FaqIndex.build(entries, encoder=FakeEncoder())
    except InputError as exc:
        one_line(exc)
        return
    with tempfile.TemporaryDirectory() as folder:
        index.save(Path(folder) / "bundle")
        loaded = FaqIndex.load(Path(folder) / "bundle", encoder=FakeEncoder())
    assert loaded.entries == entries  # every character survives the bundle, control characters too
    try:
        valid(loaded.ask(question, k=5), len(entries))
    except InputError as exc:
        one_line(exc)


@HYPOTHESIS
@given(start=entry_lists, change=entry_lists, gone=st.lists(texts, max_size=3))
def test_any_upsert_and_delete_keep_the_index_equal_to_a_rebuild(
    start: list[tuple[str, str, list[str], dict[str, str]]],
    change: list[tuple[str, str, list[str], dict[str, str]]],
    gone: list[str],
) -> None:
    try:
        index = FaqIndex.build([FaqEntry(i, a, tuple(q), m) for i, a, q, m in start], encoder=FakeEncoder())
    except InputError:
        return
    for update in (
        lambda: index.upsert(FaqEntry(i, a, tuple(q), m) for i, a, q, m in change),
        lambda: index.delete(gone),
    ):
        try:
            update()
        except InputError as exc:
            one_line(exc)
    rebuilt = FaqIndex.build(index.entries, encoder=FakeEncoder())
    for question in ("parcel", "=cmd|calc", "😀"):
        ours, theirs = index.ask(question, k=10), rebuilt.ask(question, k=10)
        assert [m.entry.id for m in ours] == [m.entry.id for m in theirs]
        np.testing.assert_allclose([m.score for m in ours], [m.score for m in theirs], atol=1e-5)


# -- FAQ files ---------------------------------------------------------------------------------


def write_table(path: Path, header: list[str], rows: list[list[str]]) -> None:
    suffix = path.suffix
    if suffix in (".csv", ".tsv"):
        with open(path, "w", encoding="utf-8", newline="", errors="surrogatepass") as handle:
            writer = csv.writer(handle, delimiter="," if suffix == ".csv" else "\t")
            writer.writerow(header)
            writer.writerows(rows)
    elif suffix == ".jsonl":
        path.write_text("".join(json.dumps(dict(zip(header, r, strict=True))) + "\n" for r in rows), encoding="utf-8")
    elif suffix == ".json":
        path.write_text(json.dumps([dict(zip(header, r, strict=True)) for r in rows]), encoding="utf-8")
    else:
        import pandas as pd

        frame = pd.DataFrame(rows, columns=header)
        if suffix == ".parquet":
            frame.to_parquet(path)
        else:
            frame.to_excel(path, index=False)


@HYPOTHESIS
@given(
    header=st.sampled_from([["id", "question", "answer"], ["answer"], ["id", "answer", "extra"], ["q", "a"]]),
    cells=st.lists(st.lists(texts, min_size=3, max_size=3), max_size=5),
    suffix=st.sampled_from([".csv", ".tsv", ".jsonl", ".json", ".parquet", ".xlsx"]),
)
def test_any_faq_file_reads_and_indexes_or_gives_one_error_line(
    header: list[str], cells: list[list[str]], suffix: str
) -> None:
    rows = [row[: len(header)] for row in cells]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"faq{suffix}"
        try:
            write_table(path, header, rows)
        except Exception:  # the writer itself refuses (e.g. a surrogate in an Excel cell): not our input
            assume(False)
        try:
            entries = read_faq(path)
            index = FaqIndex.build(entries, encoder=FakeEncoder())
        except InputError as exc:
            one_line(exc)
            return
        index.save(Path(folder) / "bundle")
        assert FaqIndex.load(Path(folder) / "bundle", encoder=FakeEncoder()).entries == entries
        assert all(e.answer.strip() for e in entries)


@HYPOTHESIS
@given(
    data=st.one_of(
        st.binary(max_size=2000),
        st.sampled_from(
            [
                b"PK\x03\x04" + b"\x00" * 40,  # a zip header with nothing behind it
                b"PAR1" + b"\x00" * 20 + b"PAR1",
                b"\xef\xbb\xbf",  # a UTF-8 BOM and nothing else
                "id,answer\na,caf\xe9\n".encode("latin-1"),
                "id,answer\na,hello\n".encode("utf-16"),
                b"id,answer\na,\x00\x00\x00\n",
                b"[" * 50_000,
                b'{"answer": "x"}\n{"answer": ',
                b'[{"id": "\\udcff", "answer": "x"}]',
                b"\n\n\n,,,\n",
            ]
        ),
    ),
    suffix=st.sampled_from([".csv", ".tsv", ".json", ".jsonl", ".parquet", ".xlsx", ".txt"]),
)
def test_any_bytes_as_an_faq_file_read_or_give_one_error_line(data: bytes, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"faq{suffix}"
        path.write_bytes(data)
        try:
            entries = read_faq(path)
            FaqIndex.build(entries, encoder=FakeEncoder())
        except InputError as exc:
            one_line(exc)


# -- bundles -------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | texts,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)


@HYPOTHESIS
@given(changes=st.dictionaries(st.sampled_from(sorted(bundle_manifest._manifest_keys())), json_values, max_size=4))
def test_any_manifest_content_loads_or_gives_one_error_line(changes: dict[str, object]) -> None:
    """Even a manifest whose checksum matches (as if written by a buggy or hostile tool) cannot crash the loader."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bundle"
        FaqIndex.build(read_faq(DATA / "faq.csv")[:3], encoder=FakeEncoder()).save(path)
        data = json.loads((path / MANIFEST).read_bytes())
        data.update(changes)
        (path / MANIFEST).write_bytes(bundle.seal_manifest(data))
        try:
            FaqIndex.load(path, encoder=FakeEncoder())
        except BundleError as exc:
            one_line(exc)


def test_loading_never_unpickles_or_trusts_remote_code() -> None:
    """No code path that could execute data: no pickle, numpy loads refuse objects, models never run repo code."""
    sources = {p.name: p.read_text(encoding="utf-8") for p in (REPO / "faq_search").glob("*.py")}
    for name, source in sources.items():
        assert not re.search(r"^\s*(import pickle|from pickle|import dill|import joblib)", source, re.M), name
        assert "allow_pickle=True" not in source, name
        assert "trust_remote_code=True" not in source, name
        assert "weights_only=False" not in source, name
        for call in re.findall(r"np\.load\([^)]*\)", source):
            assert "allow_pickle=False" in call, (name, call)
        for call in re.findall(r"from_pretrained\([^)]*\)", source):
            assert "local_files_only=True" in call, (name, call)


# -- the real command line ----------------------------------------------------------------------


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    from tests.cli.test_cli import CLI

    env = {**os.environ, "FAQ_SEARCH_NO_PROGRESS": "1"}
    return subprocess.run([CLI, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=600)


def assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("faq-search: error:"), result.stderr
    for needle in needles:
        assert needle in lines[0]


@pytest.mark.model
def test_cli_with_hostile_files_and_questions(tmp_path: Path) -> None:
    faq = tmp_path / "faq.csv"
    with open(faq, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "question", "answer"])
        for n, text in enumerate(t for t in CRAFTED if t.strip() and "\ud800" not in t):
            writer.writerow([f"e{n}", text[:200], f"Answer {n}: {text}"])
    indexed = run("index", str(faq), "--out", "idx", "--quiet", cwd=tmp_path)
    assert indexed.returncode == 0, indexed.stderr
    assert indexed.stderr == ""

    asked = run(
        "ask", "=cmd|' /C calc'!A0 <script>alert(1)</script> مرحبا 😀", "--index", "idx", "--json", cwd=tmp_path
    )
    assert asked.returncode == 0, asked.stderr
    matches = json.loads(asked.stdout)["matches"]
    assert matches and {m["id"] for m in matches} <= {f"e{n}" for n in range(len(CRAFTED))}

    from tests.cli.test_cli import CLI

    env = {**os.environ, "FAQ_SEARCH_NO_PROGRESS": "1"}
    raw = [CLI.encode(), b"ask", b"\xff\xfe parcel", b"-i", b"idx"]  # not UTF-8: Python passes lone surrogates on
    undecodable = subprocess.run(raw, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    assert_one_line_error(undecodable, "not text")

    files = {
        "latin1.csv": "id,answer\na,caf\xe9\n".encode("latin-1"),
        "binary.csv": bytes(range(256)) * 8,
        "garbage.xlsx": b"PK\x03\x04garbage",
        "garbage.parquet": b"PAR1garbagePAR1",
        "empty.jsonl": b"",
        "deep.json": b"[" * 100_000,
        "bad.json": b'[{"id": "\\udcff", "answer": "x"}]',
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        assert_one_line_error(run("index", name, "--out", f"idx-{name}", cwd=tmp_path), name)
    assert_one_line_error(run("check", "--index", "nothing-here", cwd=tmp_path), "no index at")


@pytest.mark.model
def test_real_model_with_a_megabyte(real_encoder) -> None:  # type: ignore[no-untyped-def]
    """A 1 MB question is cut to the model's window; answers are still ranked."""
    index = FaqIndex.build(read_faq(DATA / "faq.csv")[:8], encoder=real_encoder)
    valid(index.ask(MEGABYTE, k=3), 8)
    valid(index.ask("\x00\x01 😀 \u202e", k=3), 8)
