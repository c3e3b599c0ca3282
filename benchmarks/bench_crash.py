"""Crash safety and corruption detection, measured: SIGKILL at random moments, every byte corrupted.

Part 1 (``--kills``, default 20): a bundle of a synthetic FAQ (``--old``
entries) is updated to a larger one (``--new`` entries) by real
``faq-search index`` runs, each killed with SIGKILL after a random delay
drawn uniformly over the length of the same update run uninterrupted. A run
that ends before its delay is not a kill and is not counted; the loop goes on
until ``--kills`` runs were killed. After every kill the bundle must load and
answer exactly as the old bundle or exactly as the complete new one; anything
else counts as corrupted. The resume cache is kept between kills (later runs
resume) except before every other kill (those start from scratch). A bundle
that reached the new version is put back to the old one. Writing the bundle
takes a small part of a run, so ``--write-kills`` more kills are aimed at it
(when the temporary bundle directory appears). Then one run is killed halfway
through embedding and rerun, to measure how much work the rerun resumes.

Part 2: corruption, on two one-entry bundles built with the real model: one
with the default settings (BM25 fusion on, so ``lexical/`` holds the BM25
index) and one adapted (``encoder/`` holds the encoder's weights and
tokenizer, 87 MiB; see :func:`adapted_bundle`). Every file of both, nested
ones included, is corrupted case by case and the bundle loaded; each case
must be refused with an error naming the file. Which cases, per file:

- a file the loader refuses after reading at most 1 MiB (``EXHAUSTIVE_READ``:
  the manifest plus the files it lists up to that one) is swept byte by byte:
  every byte set to each of its 255 other values, the file cut at every
  length, and the file removed. That is every file of the default bundle,
  and the adapted bundle's manifest and ``encoder/config.json``;
- the adapted bundle's other files sit behind the weights, so every case
  re-reads and re-hashes 87 MiB (about 0.3 s): there the first and last byte
  and ``--positions`` seeded random ones (default 64), each set to one other
  value; cuts at 0, at size-1 and at ``--truncations`` random lengths
  (default 16); and removal.

Last, a manifest of a newer format (correctly checksummed) must be refused.

    python benchmarks/bench_crash.py                    # 20 kills, exhaustive corruption
    python benchmarks/bench_crash.py --kills 5 --skip-corruption
    python benchmarks/bench_crash.py --skip-kills       # corruption only
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_incremental import synthetic_faq, write

CLI = str(Path(sys.executable).parent / "faq-search")
QUESTIONS = ["where is my parcel", "can I return a kayak", "how do I pay by invoice", "change my order", "warranty"]


def start(faq: Path, out: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "FAQ_SEARCH_NO_PROGRESS": "1"}
    return subprocess.Popen(
        [CLI, "index", str(faq), "--out", str(out), "--json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def answers(out: Path, encoder: Any) -> str:
    from faq_search.index.faq_index import FaqIndex

    index = FaqIndex.load(out, encoder=encoder)
    return json.dumps([[(m.entry.id, round(m.score, 6)) for m in index.ask(q, k=5)] for q in QUESTIONS])


def chunks(out: Path) -> int:
    return len(list(out.parent.glob(f".{out.name}.cache/*/chunk-*.npz")))


def kills(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from faq_search.encoding.encoder import BertEncoder

    encoder = BertEncoder()
    old_faq, new_faq = work / "old.csv", work / "new.csv"
    write(old_faq, synthetic_faq(args.old))
    write(new_faq, synthetic_faq(args.new))  # its first --old entries are the old FAQ's
    out, reference, saved = work / "idx", work / "reference", work / "old-copy"
    assert start(old_faq, out).wait() == 0
    shutil.copytree(out, saved)
    shutil.copytree(out, reference)
    old_answers = answers(out, encoder)

    began = time.perf_counter()  # the same update the killed runs do, uninterrupted: its length sets the delays
    process = start(new_faq, reference)
    stdout, stderr = process.communicate()
    if process.returncode != 0:
        raise SystemExit(stderr)
    full_seconds = time.perf_counter() - began
    full_update = json.loads(stdout)["update"]
    new_answers = answers(reference, encoder)
    print(
        f"uninterrupted update run: {full_seconds:.1f} s, encoded {full_update['encoded']} texts, "
        f"reused {full_update['reused']}"
    )

    rng = random.Random(args.seed)
    outcomes = {"old bundle intact": 0, "new bundle complete": 0, "corrupted or unloadable": 0}
    phases: dict[str, int] = {}
    finished_first = 0
    records = []

    def check(phase: str, note: str) -> None:
        try:
            state = answers(out, encoder)
            outcome = (
                "old bundle intact"
                if state == old_answers
                else "new bundle complete"
                if state == new_answers
                else "corrupted or unloadable"
            )
        except Exception as exc:  # any failure to load is what this benchmark counts
            outcome = f"corrupted or unloadable ({type(exc).__name__}: {exc})"
        outcomes[outcome.split(" (")[0]] += 1
        if outcome == "new bundle complete" and phase != "writing":
            phase = "after the swap (exiting)"  # the run had put the new bundle in place and cleared its cache
        phases[phase] = phases.get(phase, 0) + 1
        records.append({"phase": phase, "note": note, "outcome": outcome})
        print(f"kill {len(records):2d} {note}, {phase}: {outcome}")
        if outcome == "new bundle complete":
            shutil.rmtree(out)
            shutil.copytree(saved, out)

    while len(records) < args.kills:
        if len(records) % 2 == 0:
            shutil.rmtree(work / ".idx.cache", ignore_errors=True)  # half the runs start from scratch
        chunks_before = chunks(out)
        delay = rng.uniform(0.0, full_seconds)
        process = start(new_faq, out)
        deadline = time.perf_counter() + delay
        while process.poll() is None and time.perf_counter() < deadline:
            time.sleep(0.005)
        if process.poll() is not None:  # finished before its kill point: not a kill, not counted
            process.communicate()
            finished_first += 1
            shutil.rmtree(out)
            shutil.copytree(saved, out)
            continue
        writing = any(work.glob(".idx.tmp-*"))
        phase = "writing" if writing else "embedding" if chunks(out) > chunks_before else "before new vectors"
        process.send_signal(signal.SIGKILL)
        process.communicate()
        check(phase, f"at {delay:4.1f} s")

    for _ in range(args.write_kills):  # aimed at the short window while the new bundle is written
        process = start(new_faq, out)
        while process.poll() is None and not any(work.glob(".idx.tmp-*")):
            time.sleep(0.001)
        alive = process.poll() is None
        if alive:
            process.send_signal(signal.SIGKILL)
        process.communicate()
        check("writing" if alive else "finished first", "when the temporary bundle appeared")

    # resume: kill once half the embedding is cached, then rerun
    shutil.rmtree(work / ".idx.cache", ignore_errors=True)
    expected_chunks = max(2, full_update["encoded"] // 128)
    process = start(new_faq, out)
    while process.poll() is None and chunks(out) < expected_chunks // 2:
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    began = time.perf_counter()
    rerun = start(new_faq, out)
    stdout, _ = rerun.communicate()
    rerun_seconds = time.perf_counter() - began
    update = json.loads(stdout)["update"]
    final_ok = answers(out, encoder) == new_answers
    stale = sorted(p.name for p in work.iterdir() if p.name.startswith(".idx."))
    print(
        f"{len(records)} kills ({phases}): {outcomes}; {finished_first} runs finished before their kill point "
        "(not counted)"
    )
    print(
        f"rerun after a kill halfway through embedding: {rerun_seconds:.1f} s (uninterrupted: {full_seconds:.1f} s); "
        f"resumed {update['resumed']}, encoded {update['encoded']} of the {full_update['encoded']} texts to embed; "
        f"final bundle equals the uninterrupted one: {final_ok}; stale files left: {stale or 'none'}"
    )
    return {
        "kills": len(records),
        "phases": phases,
        "outcomes": outcomes,
        "finished_before_kill_point": finished_first,
        "uninterrupted_seconds": round(full_seconds, 2),
        "records": records,
        "resume": {
            "rerun_seconds": round(rerun_seconds, 2),
            "resumed": update["resumed"],
            "encoded": update["encoded"],
            "to_embed_uninterrupted": full_update["encoded"],
            "final_equals_uninterrupted": final_ok,
            "stale_files": stale,
        },
    }


EXHAUSTIVE_READ = 1 << 20
"""A file is swept byte by byte when refusing it makes the loader read at most this much (see the docstring)."""


def adapted_bundle(entries: list[Any], path: Path) -> None:
    """An adapted bundle as ``faq-search adapt`` writes it when it keeps the weights, without the training.

    ``adapt_index`` runs for real (it saves the encoder to ``encoder/`` with
    ``save_encoder``, indexes with it, records the adaptation in the manifest);
    only the training step is replaced by one that keeps the base weights.
    Training changes the weights' values, not which files are written or how
    they are checked, and takes minutes.
    """
    from unittest import mock

    from faq_search.quality import adapt as adapt_module

    def untrained(*args: object, **kwargs: object) -> Any:
        return adapt_module.AdaptReport(
            pairs=len(entries), held_out_questions=0, steps=0, seconds=0.0, before=0.0, after=0.0, kept=True,
            stopped="epochs", peak_memory_mb=0.0,
        )  # fmt: skip

    with mock.patch.object(adapt_module, "adapt", untrained):
        index, _ = adapt_module.adapt_index(entries)
    index.save(path)


def bundle_files(path: Path) -> list[tuple[str, int]]:
    """Every file of the bundle, nested ones included, in the order the loader checks them, with the bytes
    the loader reads before it can refuse that file (the manifest, then each listed file up to this one)."""
    from faq_search.bundle.files import MANIFEST

    listed = list(json.loads((path / MANIFEST).read_bytes())["files"])
    on_disk = sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file())
    if sorted([MANIFEST, *listed]) != on_disk:
        raise SystemExit(f"{path}: the files on disk {on_disk} differ from the manifest's list {listed}")
    read = (path / MANIFEST).stat().st_size
    out = [(MANIFEST, read)]
    for name in listed:
        read += (path / name).stat().st_size
        out.append((name, read))
    return out


def sweep_file(path: Path, name: str, exhaustive: bool, args: argparse.Namespace, refused: Any) -> dict[str, Any]:
    """Corrupt one file in place, case by case, and put it back; count the cases the loader refused."""
    original = (path / name).read_bytes()
    size = len(original)
    rng = random.Random(f"{args.seed}:{name}")
    if exhaustive:
        changes = [(position, value) for position in range(size) for value in range(256) if value != original[position]]
        lengths = list(range(size))
        mode = "every byte set to each of its 255 other values, every truncation"
    else:
        positions = sorted({0, size - 1, *rng.sample(range(size), min(size, args.positions))})
        changes = [(position, original[position] ^ rng.randrange(1, 256)) for position in positions]
        lengths = sorted({0, size - 1, *rng.sample(range(size), min(size, args.truncations))})
        mode = f"{len(changes)} sampled bytes (first and last included) changed, {len(lengths)} truncations"
    cases = detected = 0
    missed: list[str] = []
    began = time.perf_counter()

    def check(case: str) -> None:
        nonlocal cases, detected
        cases += 1
        if refused(name):
            detected += 1
        elif len(missed) < 5:
            missed.append(case)

    fd = os.open(path / name, os.O_RDWR)
    try:
        for position, value in changes:
            os.pwrite(fd, bytes([value]), position)
            check(f"byte {position} = {value}")
            os.pwrite(fd, original[position : position + 1], position)
        for length in lengths:
            os.ftruncate(fd, length)
            check(f"cut at {length}")
            os.pwrite(fd, original[length:], length)
    finally:
        os.close(fd)
    (path / name).unlink()
    check("removed")
    (path / name).write_bytes(original)
    if refused(name):
        raise SystemExit(f"{path}: the intact bundle is refused after sweeping {name}")
    seconds = time.perf_counter() - began
    print(f"  {name}: {size:,} bytes, {mode}, removal: {detected:,} of {cases:,} refused naming it ({seconds:.0f} s)")
    if missed:
        print(f"    NOT refused: {missed}")
    return {"bytes": size, "mode": mode, "cases": cases, "detected": detected, "not_refused": missed}


def corruption(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from faq_search.bundle import files as bundle
    from faq_search.corpus import FaqEntry
    from faq_search.encoding.encoder import BertEncoder
    from faq_search.errors import BundleError
    from faq_search.index.faq_index import FaqIndex

    entries = [FaqEntry("ship", "Parcels ship within two working days.", ("How long does shipping take?",), {"k": "v"})]
    bundles = {"default": work / "default", "adapted": work / "adapted"}
    FaqIndex.build(entries, encoder=BertEncoder()).save(bundles["default"])  # defaults: BM25 fusion on, lexical/
    adapted_bundle(entries, bundles["adapted"])

    results: dict[str, Any] = {}
    for label, path in bundles.items():

        def refused(name: str, path: Path = path) -> bool:
            try:
                FaqIndex.load(path)  # checks every file; the encoder is loaded on the first ask only
            except BundleError as exc:
                return name in str(exc)
            except Exception as exc:  # anything but a one-line BundleError is a failure to refuse
                print(f"    {name}: {type(exc).__name__}: {exc}")
                return False
            return False

        files = bundle_files(path)
        print(f"{label} bundle: {len(files)} files, {sum((path / n).stat().st_size for n, _ in files):,} bytes")
        per_file = {name: sweep_file(path, name, read <= EXHAUSTIVE_READ, args, refused) for name, read in files}
        data = json.loads((path / bundle.MANIFEST).read_bytes())
        original = (path / bundle.MANIFEST).read_bytes()
        data["format_version"] = bundle.FORMAT_VERSION + 1
        (path / bundle.MANIFEST).write_bytes(bundle.seal_manifest(data))
        newer = refused(bundle.MANIFEST)
        (path / bundle.MANIFEST).write_bytes(original)
        print(f"  manifest of a newer format version (correctly sealed) refused, naming manifest.json: {newer}")
        results[label] = {"files": per_file, "newer_format_refused": newer}

    newer = all(r["newer_format_refused"] for r in results.values())
    cases = sum(f["cases"] for r in results.values() for f in r["files"].values())
    detected = sum(f["detected"] for r in results.values() for f in r["files"].values())
    files = sum(len(r["files"]) for r in results.values())
    print(
        f"corruption: {cases:,} cases over {files} files of {len(results)} bundles: {detected:,} refused, "
        f"{cases - detected} undetected; manifests of a newer format refused: {newer}"
    )
    results["totals"] = {"cases": cases, "detected": detected, "undetected": cases - detected, "files": files}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20, help="kills at random moments (default 20)")
    parser.add_argument("--write-kills", type=int, default=5, help="kills aimed at writing the bundle (default 5)")
    parser.add_argument("--old", type=int, default=100, help="entries of the bundle being updated")
    parser.add_argument("--new", type=int, default=600, help="entries of the FAQ it is updated to")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--positions", type=int, default=64, help="random bytes changed per sampled file")
    parser.add_argument("--truncations", type=int, default=16, help="random truncations per such file")
    parser.add_argument("--skip-kills", action="store_true")
    parser.add_argument("--skip-corruption", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-crash-") as folder:
        if not args.skip_kills:
            results["kills"] = kills(args, Path(folder))
        if not args.skip_corruption:
            results["corruption"] = corruption(args, Path(folder))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
