"""Reliability: corruption is always detected, readers never see a mix, and SIGKILL never breaks a bundle.

``benchmarks/bench_crash.py`` runs the same experiments at full size (20 kills,
every value of every byte); these are the fast versions for the test suite.
"""

from __future__ import annotations

import csv
import fnmatch
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from faq_search.bundle.files import ENTRIES, MANIFEST, ROWS, VECTORS
from faq_search.corpus import FaqEntry
from faq_search.encoding.settings import ENCODER_DIR
from faq_search.errors import BundleError
from faq_search.index.cache import EmbeddingCache
from faq_search.index.faq_index import FaqIndex
from faq_search.index.lexical import LEXICAL_DIR
from tests.conftest import DATA, REPO, FakeEncoder, tree

SMALL = [
    FaqEntry("ship", "Parcels ship within two working days.", ("How long does shipping take?",), {"k": "v"}),
    FaqEntry("ret", "Returns are free within 30 days — Grüße.", ("Can I return an item?",)),
    FaqEntry("pay", "We accept cards and PayPal.", ()),
]
_TENSORS = b'{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'
ENCODER_FILES = {
    f"{ENCODER_DIR}/config.json": b'{"model_type": "bert", "hidden_size": 64}\n',
    f"{ENCODER_DIR}/model.safetensors": len(_TENSORS).to_bytes(8, "little") + _TENSORS + bytes(8),
    f"{ENCODER_DIR}/tokenizer.json": b'{"model": {"type": "WordPiece", "vocab": {"[UNK]": 0}}}\n',
    f"{ENCODER_DIR}/tokenizer_config.json": b'{"do_lower_case": true}\n',
}
"""Small stand-ins for the files ``faq-search adapt`` writes to ``encoder/`` (the loader checks them like any other;
``benchmarks/bench_crash.py`` sweeps a real adapted bundle)."""
FILE_GROUPS = (MANIFEST, VECTORS, ROWS, ENTRIES, f"{LEXICAL_DIR}/*", f"{ENCODER_DIR}/*")
"""Every file of a bundle, by name or folder: a bundle with fusion on (the default) and an adapted encoder."""


def every_kind_of_bundle(path: Path) -> Path:
    """A bundle holding every kind of file: the four top-level ones, ``lexical/`` and ``encoder/``."""
    index = FaqIndex.build(SMALL, encoder=FakeEncoder())
    index.extra_files = dict(ENCODER_FILES)
    return index.save(path)


def corruption_message(path: Path) -> str | None:
    """The load error for the bundle at ``path``, or None when it loaded (an undetected corruption)."""
    try:
        FaqIndex.load(path, encoder=FakeEncoder())
    except BundleError as exc:
        return str(exc)
    return None


# -- corruption --------------------------------------------------------------------------


def test_the_corruption_tests_cover_every_file_of_a_bundle(tmp_path: Path) -> None:
    path = every_kind_of_bundle(tmp_path / "bundle")
    names = set(tree(path))
    grouped = {group: {n for n in names if fnmatch.fnmatchcase(n, group)} for group in FILE_GROUPS}
    assert all(grouped.values()), grouped  # each group has files: lexical/ and encoder/ are there
    assert set().union(*grouped.values()) == names
    assert set(json.loads((path / MANIFEST).read_text())["files"]) == names - {MANIFEST}


@pytest.mark.parametrize("group", FILE_GROUPS)
def test_every_single_byte_corruption_is_detected(tmp_path: Path, group: str) -> None:
    """Each bit of each byte flipped, each byte inverted, each truncation, each removal: all refused, naming the file.

    (``benchmarks/bench_crash.py`` tries all 255 other values of every byte.)
    """
    path = every_kind_of_bundle(tmp_path / "bundle")
    names = [name for name in tree(path) if fnmatch.fnmatchcase(name, group)]
    assert names
    undetected: list[tuple[str, int, object, str | None]] = []
    for name in names:
        original = (path / name).read_bytes()
        fd = os.open(path / name, os.O_RDWR)  # bytes are changed in place and put back: no rewrite per case
        try:
            for position in range(len(original)):
                for mask in (*(1 << bit for bit in range(8)), 0xFF):
                    os.pwrite(fd, bytes([original[position] ^ mask]), position)
                    message = corruption_message(path)
                    if message is None or name not in message:
                        undetected.append((name, position, mask, message))
                os.pwrite(fd, original[position : position + 1], position)
            for length in range(len(original)):
                os.ftruncate(fd, length)
                message = corruption_message(path)
                if message is None or name not in message:
                    undetected.append((name, length, "truncated", message))
                os.pwrite(fd, original[length:], length)
        finally:
            os.close(fd)
        assert corruption_message(path) is None
        (path / name).unlink()
        message = corruption_message(path)
        assert message is not None and name in message and "missing" in message
        (path / name).write_bytes(original)
        assert corruption_message(path) is None
    assert undetected == []


def test_a_full_disk_while_writing_leaves_the_old_bundle_and_gives_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from faq_search.bundle import files as bundle
    from faq_search.errors import InputError

    path = tmp_path / "bundle"
    FaqIndex.build(SMALL, encoder=FakeEncoder()).save(path)
    before = tree(path)

    def full(where: Path, data: bytes) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(where))

    monkeypatch.setattr(bundle, "_write_file", full)
    with pytest.raises(InputError) as info:
        FaqIndex.build(SMALL[:2], encoder=FakeEncoder()).save(path)
    assert "No space left on device" in str(info.value) and "\n" not in str(info.value)
    assert tree(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]


# -- readers during writes ------------------------------------------------------------------

READER = """
import json, sys, time
sys.path.insert(0, sys.argv[3])
from faq_search.index.faq_index import FaqIndex
from tests.conftest import FakeEncoder
path, deadline = sys.argv[1], time.monotonic() + float(sys.argv[2])
seen, errors, encoder = {}, [], FakeEncoder()
while time.monotonic() < deadline:
    try:
        index = FaqIndex.load(path, encoder=encoder)
        key = json.dumps([[m.entry.id, round(m.score, 6)] for m in index.ask("shipping parcels returns", k=3)])
        seen[key] = seen.get(key, 0) + 1
    except Exception as exc:
        errors.append(f"{type(exc).__name__}: {exc}")
print(json.dumps({"seen": seen, "errors": errors[:5], "error_count": len(errors)}))
"""


def answer_key(index: FaqIndex) -> str:
    return json.dumps([[m.entry.id, round(m.score, 6)] for m in index.ask("shipping parcels returns", k=3)])


def test_readers_in_other_processes_see_the_old_or_the_new_bundle_never_a_mix(tmp_path: Path) -> None:
    path = tmp_path / "bundle"
    first = FaqIndex.build(SMALL, encoder=FakeEncoder())
    second = FaqIndex.build(
        [FaqEntry("ship", "Shipping is free for parcels over 50 euros.", ("Is shipping free?",)), *SMALL[1:]],
        encoder=FakeEncoder(),
    )
    expected = {answer_key(first), answer_key(second)}
    assert len(expected) == 2
    first.save(path)
    seconds = 4.0
    readers = [
        subprocess.Popen(
            [sys.executable, "-c", READER, str(path), str(seconds), str(REPO)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    writes = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        (second if writes % 2 == 0 else first).save(path)
        writes += 1
    outputs = [json.loads(reader.communicate(timeout=60)[0]) for reader in readers]
    for output in outputs:
        assert output["error_count"] == 0, output["errors"]
        assert set(output["seen"]) <= expected
        assert sum(output["seen"].values()) > 20
    assert writes > 20
    assert set().union(*(set(o["seen"]) for o in outputs)) == expected  # both versions were seen


# -- SIGKILL during a real `faq-search index` -----------------------------------------------------

COLOURS = ["red", "blue", "green", "black", "white", "yellow", "orange"]
QUESTIONS = ["my parcel never showed up", "can I pay with paypal", "return a jacket", "change the colour of my order"]


def write_faq(path: Path, extra: int, edit: int = 0) -> None:
    """data/faq.csv plus ``extra`` short entries; the first ``edit`` of those get another sentence."""
    with open(DATA / "faq.csv", encoding="utf-8") as handle:
        rows = [[row["id"], row["question"], row["answer"]] for row in csv.DictReader(handle)]
    for n in range(extra):
        colour = COLOURS[n % len(COLOURS)]
        answer = f"Yes, order {n} can still be changed to {colour} within {n % 24 + 1} hours."
        rows.append([f"short-{n}", f"Can I change order {n} to {colour}?", answer + (" Updated." if n < edit else "")])
    with open(path, "w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows([["id", "question", "answer"], *rows])


def cli(*args: str) -> list[str]:
    return [str(Path(sys.executable).parent / "faq-search"), *args]


def start(faq: Path, out: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "FAQ_SEARCH_NO_PROGRESS": "1"}
    return subprocess.Popen(
        cli("index", str(faq), "--out", str(out), "--json"),
        cwd=out.parent,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def kill_when(process: subprocess.Popen[str], condition: Callable[[], bool], timeout: float = 300) -> bool:
    """SIGKILL ``process`` as soon as ``condition`` holds; False when it finished first."""
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        if condition():
            process.send_signal(signal.SIGKILL)
            process.wait()
            return True
        time.sleep(0.002)
    process.communicate()
    return False


def chunk_count(out: Path) -> int:
    return len(list(out.parent.glob(f".{out.name}.cache/*/chunk-*.npz")))


def answers_of(out: Path, encoder) -> str:  # type: ignore[no-untyped-def]
    index = FaqIndex.load(out, encoder=encoder)  # raises if the bundle is broken
    return json.dumps([[(m.entry.id, round(m.score, 6)) for m in index.ask(q, k=5)] for q in QUESTIONS])


@pytest.mark.model
def test_sigkill_during_indexing_never_breaks_the_bundle_and_a_rerun_resumes(tmp_path: Path, real_encoder) -> None:  # type: ignore[no-untyped-def]
    """Four kills: at a random moment of start-up, twice mid-embedding, and while the new bundle is written.

    After each, the bundle loads and answers exactly as the old one (or, for the last, as the complete
    new one); the rerun after the mid-embedding kills resumes their work instead of starting over.
    """
    out = tmp_path / "idx"
    old_faq, new_faq, newer_faq = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "c.csv"
    write_faq(old_faq, extra=0)
    write_faq(new_faq, extra=150)  # 300 short texts the old bundle lacks: three resume chunks
    write_faq(newer_faq, extra=150, edit=12)

    first = start(old_faq, out)
    assert first.wait(timeout=600) == 0, first.communicate()[1]
    old_answers = answers_of(out, real_encoder)

    kill_points: list[Callable[[], Callable[[], bool]]] = [
        lambda: _after(random.Random().uniform(0.1, 1.5)),  # while starting: importing, loading the model
        lambda: lambda: chunk_count(out) >= 1,  # just after the first vectors reached the resume cache
        lambda: lambda: chunk_count(out) >= 2,  # the rerun resumed them, and wrote more
    ]
    for number, kill_point in enumerate(kill_points, start=1):
        process = start(new_faq, out)
        assert kill_when(process, kill_point()), f"run {number} finished before its kill point"
        assert answers_of(out, real_encoder) == old_answers  # the old bundle, answering exactly as before
    assert chunk_count(out) == 2
    cached = len(EmbeddingCache(next(tmp_path.glob(".idx.cache/*")), real_encoder.dimension).load())
    assert 128 <= cached < 300

    rerun = start(new_faq, out)
    stdout, stderr = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, stderr
    update = json.loads(stdout)["update"]
    assert (update["resumed"], update["encoded"], update["reused"]) == (cached, 300 - cached, 96)
    new_answers = answers_of(out, real_encoder)
    assert new_answers != old_answers
    assert not list(tmp_path.glob(".idx.cache"))

    killed = kill_when(start(newer_faq, out), lambda: any(tmp_path.glob(".idx.tmp-*")))
    index = FaqIndex.load(out, encoder=real_encoder)  # whole: the previous bundle or the complete new one
    if answers_of(out, real_encoder) != new_answers:
        from faq_search.corpus import read_faq

        assert index.entries == read_faq(newer_faq), f"killed={killed}: neither the old nor the new bundle"


def _after(seconds: float) -> Callable[[], bool]:
    deadline = time.monotonic() + seconds
    return lambda: time.monotonic() >= deadline
