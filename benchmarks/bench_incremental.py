"""Incremental re-indexing: full index of a 10k-entry FAQ vs re-indexing it after 1% changed.

Generates a synthetic FAQ (``--entries``, default 10000) deterministically
from the sentences and questions of ``data/faq.csv``, recombined with varied
openers, products and order numbers, so every text is distinct and of
realistic length. Then, each step a real ``faq-search index`` run timed from
process start to exit (imports and model loading included, as a user waits):

1. full index of the FAQ into a fresh bundle;
2. 1% of the entries change (``--change``): edited answers, reworded
   questions, removed entries and new ones, in equal parts;
3. ``faq-search index`` of the changed FAQ over the bundle (incremental);
4. unless ``--no-verify``: ``faq-search index --full`` of the changed FAQ into
   another directory, and both bundles are compared on ``--queries`` questions
   (same ids in the same order, largest score difference) and vector by vector.

Target: step 3 takes at most 10% of step 1.

    python benchmarks/bench_incremental.py                  # 10000 entries, 1% changed
    python benchmarks/bench_incremental.py --entries 2000 --json out.json
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
CLI = str(Path(sys.executable).parent / "faq-search")

OPENERS = ["", "Quick question: ", "Hi, ", "Hello team, ", "Please help: ", "I was wondering: ", "Urgent: ", "Hey, "]
PRODUCTS = ["kayak", "jacket", "tent", "backpack", "paddle", "sleeping bag", "headlamp", "boots", "stove", "rope"]
CLOSERS = ["", " Thanks!", " Thank you.", " Many thanks in advance.", " Cheers.", " Best regards."]


def synthetic_faq(count: int, seed: int = 0) -> list[dict[str, str]]:
    """``count`` distinct entries recombined from data/faq.csv; the same seed gives the same FAQ."""
    with open(REPO / "data" / "faq.csv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    sentences = [s.strip().rstrip(".") + "." for row in rows for s in row["answer"].split(". ") if len(s) > 20]
    rng = random.Random(seed)
    out = []
    for n in range(count):
        base = rows[n % len(rows)]
        product = PRODUCTS[rng.randrange(len(PRODUCTS))]
        question = (
            f"{rng.choice(OPENERS)}{base['question'].rstrip('?')} for my {product} (order {10000 + n})?"
            f"{rng.choice(CLOSERS)}"
        )
        picked = rng.sample(sentences, rng.randint(2, 4))
        answer = f"For the {product}: " + " ".join(picked) + f" Reference {n:05d}."
        out.append({"id": f"faq-{n:05d}", "question": question, "answer": answer})
    return out


def change(entries: list[dict[str, str]], share: float, seed: int = 1) -> tuple[list[dict[str, str]], dict[str, int]]:
    """``share`` of the entries changed: a quarter each edited answers, reworded questions, removed, added."""
    rng = random.Random(seed)
    total = max(4, round(len(entries) * share))
    quarter = total // 4
    picked = rng.sample(range(len(entries)), 3 * quarter)
    edited, reworded, removed = picked[:quarter], picked[quarter : 2 * quarter], set(picked[2 * quarter :])
    out = [dict(e) for e in entries]
    for n in edited:
        out[n]["answer"] += " This was updated this week."
    for n in reworded:
        out[n]["question"] = "Reworded: " + out[n]["question"]
    out = [e for n, e in enumerate(out) if n not in removed]
    for n in range(total - 3 * quarter):
        out.append(
            {"id": f"new-{n:04d}", "question": f"Do you sell gift wrapping number {n}?", "answer": f"Yes, option {n}."}
        )
    return out, {"edited": quarter, "reworded": quarter, "removed": quarter, "added": total - 3 * quarter}


def write(path: Path, entries: list[dict[str, str]]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["id", "question", "answer"])
        writer.writeheader()
        writer.writerows(entries)


def index(faq: Path, out: Path, *extra: str) -> tuple[float, dict[str, Any]]:
    """Run ``faq-search index``; (wall seconds, its --json output)."""
    env = {**os.environ, "FAQ_SEARCH_NO_PROGRESS": "1"}
    started = time.perf_counter()
    result = subprocess.run(
        [CLI, "index", str(faq), "--out", str(out), "--json", *extra], capture_output=True, text=True, env=env
    )
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"faq-search index failed: {result.stderr.strip()}")
    return seconds, json.loads(result.stdout)


def compare(incremental: Path, full: Path, questions: list[str]) -> dict[str, Any]:
    """Same answers from both bundles? Ids in order, largest score difference, largest vector difference."""
    import numpy as np

    from faq_search.index.faq_index import FaqIndex

    ours = FaqIndex.load(incremental)
    theirs = FaqIndex.load(full, encoder=ours.encoder)
    same_ids, worst = 0, 0.0
    for a, b in zip(ours.ask_batch(questions, k=10), theirs.ask_batch(questions, k=10), strict=True):
        same_ids += [m.entry.id for m in a] == [m.entry.id for m in b]
        if len(a) == len(b):
            worst = max(worst, max((abs(x.score - y.score) for x, y in zip(a, b, strict=True)), default=0.0))
    vectors_a, vectors_b = ours.stored_vectors(), theirs.stored_vectors()
    layout = (
        ours.store.row_entry.tolist() == theirs.store.row_entry.tolist()
        and ours.store.row_field == theirs.store.row_field
        and ours.entries == theirs.entries
    )
    vector_diff = float(np.abs(vectors_a - vectors_b).max()) if layout and vectors_a is not None else None
    return {
        "questions": len(questions),
        "same_ids_in_order": same_ids,
        "max_score_difference": worst,
        "same_rows_and_entries": layout,
        "max_vector_difference": vector_diff,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=10_000, help="FAQ size (default 10000)")
    parser.add_argument("--change", type=float, default=0.01, help="share of entries changed (default 0.01)")
    parser.add_argument("--queries", type=int, default=300, help="questions for the comparison (default 300)")
    parser.add_argument("--no-verify", action="store_true", help="skip the full rebuild and the comparison")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-incremental-") as folder:
        work = Path(folder)
        entries = synthetic_faq(args.entries)
        changed, kinds = change(entries, args.change)
        write(work / "faq.csv", entries)
        write(work / "faq-changed.csv", changed)

        full_seconds, full = index(work / "faq.csv", work / "bundle")
        print(f"full index: {args.entries} entries, {full['update']['encoded']} texts encoded in {full_seconds:.1f} s")
        incremental_seconds, incremental = index(work / "faq-changed.csv", work / "bundle")
        update = incremental["update"]
        ratio = incremental_seconds / full_seconds
        print(
            f"incremental after {args.change:.0%} changed ({kinds}): {incremental_seconds:.1f} s = {ratio:.1%} of full "
            f"(target <= 10%); {update['added']} added, {update['changed']} changed, {update['removed']} removed, "
            f"{update['unchanged']} unchanged; encoded {update['encoded']} texts, reused {update['reused']}"
        )
        results: dict[str, Any] = {
            "entries": args.entries,
            "changed_share": args.change,
            "changes": kinds,
            "full_seconds": round(full_seconds, 2),
            "full_encoded": full["update"]["encoded"],
            "incremental_seconds": round(incremental_seconds, 2),
            "incremental_update": update,
            "ratio": round(ratio, 4),
            "precision": incremental["precision"],
            "cpu_count": os.cpu_count(),
            "load_average": os.getloadavg(),
        }
        if not args.no_verify:
            rebuild_seconds, _ = index(work / "faq-changed.csv", work / "rebuilt", "--full")
            rng = random.Random(2)
            questions = [e["question"] for e in rng.sample(changed, min(args.queries // 2, len(changed)))]
            questions += [f"how do I return a {p} I bought" for p in PRODUCTS] * (args.queries // 2 // len(PRODUCTS))
            comparison = compare(work / "bundle", work / "rebuilt", questions)
            results |= {"rebuild_seconds": round(rebuild_seconds, 2), "comparison": comparison}
            print(
                f"full rebuild of the changed FAQ: {rebuild_seconds:.1f} s; incremental vs rebuild on "
                f"{comparison['questions']} questions: same ids in order {comparison['same_ids_in_order']}/"
                f"{comparison['questions']}, max score difference {comparison['max_score_difference']:.2e}, "
                f"same rows {comparison['same_rows_and_entries']}, "
                f"max vector difference {comparison['max_vector_difference']}"
            )
    results["total_seconds"] = round(time.perf_counter() - started, 1)
    print(f"precision {results['precision']}, {os.cpu_count()} CPUs, load average at the end {os.getloadavg()[0]:.2f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
