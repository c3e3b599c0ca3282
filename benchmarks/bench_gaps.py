"""Does the gaps report find what an FAQ lacks? And what does the question log cost a server?

Gap finding, per shared set (``--sets stackfaq:10 covidfaq_jhu:5``): remove N
entries from the FAQ (an entry is one FAQ question with all its answers:
stackfaq lists several answers per question), index the rest with
``faq-search index``, calibrate it as an operator would (``faq-search
calibrate --target-precision 0.9`` on half of the queries of the entries
kept: the server then answers only above that threshold), start
``faq-search serve --log`` on loopback and replay
every query of the set through ``POST /ask`` from 32 clients, then run the
gaps report (the library call behind ``faq-search gaps``) on the log. The
queries of a removed entry are those whose relevant ids all belonged to it.
A top-10 topic is *about* a removed entry when that entry's queries are the
most of its distinct questions and at least half of them (and at least 2);
an entry is *covered* when some top-10 topic is about it. Removed entries are
drawn at random (``--seed``) among those with at least 3 queries of their own
(a topic of one question cannot show up as a cluster). Each report runs once
per gap definition ``--gap weight@review`` (``askings@0.9``: the default of
``faq-search gaps``; ``askings@none``: the previous one, below the threshold
only; ``expected@0.9``: ``--weight expected``), topic encoder, clustering
and ranking, and per ``--answer-weight`` (how much the distance to the
closest FAQ answer counts in novelty: 0.5 is the default of ``faq-search
gaps``, 0 the previous rule, questions only). ``--workdir DIR`` keeps each
set's index and log and re-uses them on the next run with the same seed, so
definitions can be compared on one replayed log without indexing and
replaying again.

Overhead: the same index served with and without ``--log``, ``--repeat``
alternating runs of ``--requests`` ``POST /ask`` from ``--clients``
connections each (medians compared; the machine may be shared, the 1-minute
load average is printed beside every run).

    python benchmarks/bench_gaps.py                           # both sets, then the overhead
    python benchmarks/bench_gaps.py --sets stackfaq:10 --no-overhead --similarity 0.7 0.75 0.8
    python benchmarks/bench_gaps.py --no-overhead --no-kmeans --seed 0 --encoder sentence --ranking novelty \
        --answer-weight 0.5 0 1 --workdir /tmp/gaps   # docs/gaps.md (seeds 0-5); again: reuses the logs
    python benchmarks/bench_gaps.py --no-gaps --repeat 6 --requests 2000   # docs/gaps.md, the overhead

Only 127.0.0.1 is contacted; the shared data is read from ``--data`` and
copied only into a temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import dataclasses
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.bench_serve import CLI, Server, run_load  # noqa: E402
from faq_search.index.faq_index import FaqIndex  # noqa: E402
from faq_search.traffic.gaps import GapsOptions, GapsReport, find_gaps  # noqa: E402
from faq_search.traffic.settings import (  # noqa: E402
    DEFAULT_REVIEW_SCORE,
    DEFAULT_SIMILARITY,
    Clustering,
    GapWeight,
    Ranking,
    TopicEncoder,
)
from faq_search.traffic.topics import ANSWER_WEIGHT, topic_space  # noqa: E402

TOP = 10


@dataclass
class Split:
    """A set with some entries removed: the FAQ rows kept, and the queries of each removed entry."""

    rows: list[dict[str, str]]
    queries: list[str]
    removed: dict[str, set[str]]  # removed entry (its question) -> its queries
    labelled: list[dict[str, str]]  # half of the queries of the kept entries: what the operator calibrates with


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def split(folder: Path, count: int, seed: int) -> Split:
    """Remove ``count`` entries (FAQ questions with all their answers) drawn among those owning 3+ queries."""
    faq, queries = read_csv(folder / "faq.csv"), read_csv(folder / "queries.csv")
    entry_of = {row["id"]: row["question"] for row in faq}
    owned: dict[str, set[str]] = {}
    for query in queries:
        entries = {entry_of[i] for i in query["relevant_ids"].split("|") if i in entry_of}
        if len(entries) == 1:
            owned.setdefault(entries.pop(), set()).add(query["query"])
    eligible = sorted(entry for entry, texts in owned.items() if len(texts) >= 3)
    removed = random.Random(seed).sample(eligible, count)
    rows = [row for row in faq if row["question"] not in removed]
    kept = {row["id"] for row in rows}
    answerable = [q for q in queries if all(i in kept for i in q["relevant_ids"].split("|"))]
    random.Random(seed).shuffle(answerable)
    return Split(
        rows=rows,
        queries=[q["query"] for q in queries],
        removed={entry: owned[entry] for entry in removed},
        labelled=answerable[: len(answerable) // 2],
    )


def build(rows: list[dict[str, str]], workdir: Path, labelled: list[dict[str, str]], precision: float) -> Path:
    """``faq-search index`` the kept rows, then ``faq-search calibrate`` it on the labelled queries (if any)."""
    faq = workdir / "faq.csv"
    with faq.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["id", "question", "answer"])
        writer.writeheader()
        writer.writerows({k: row[k] for k in ("id", "question", "answer")} for row in rows)
    out = workdir / "index"
    env = {**os.environ, "FAQ_SEARCH_NO_PROGRESS": "1"}
    subprocess.run([CLI, "index", str(faq), "--out", str(out), "--quiet"], check=True, env=env, timeout=3600)
    if labelled:
        queries = workdir / "labelled.csv"
        with queries.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["query_id", "query", "relevant_ids"])
            writer.writeheader()
            writer.writerows(labelled)
        command = [CLI, "calibrate", str(queries), "--index", str(out), "--target-precision", str(precision)]
        subprocess.run(command, check=True, env=env, timeout=3600)
    return out


async def replay(index: Path, texts: list[str], log: Path, clients: int, workdir: Path) -> dict[str, Any]:
    """Every query once through ``POST /ask`` of a server started with ``--log``."""
    server = Server(index, batching=True, log=workdir / "server-replay.log", extra=["--log", str(log)])
    try:
        await server.wait_ready()
        result, _ = await run_load(server.port, "replay", len(texts), clients, 3600, texts, 5)
    finally:
        server.stop()
    return {"requests": result.requests, "failed": result.failed, "seconds": round(result.seconds, 1)}


def coverage(report: GapsReport, removed: dict[str, set[str]]) -> dict[str, Any]:
    """Which removed entries a top-10 topic is about, and how many of their queries were gaps at all."""
    owner = {text: entry for entry, texts in removed.items() for text in texts}
    about: list[str | None] = []
    for cluster in report.clusters[:TOP]:
        counts: dict[str, int] = {}
        for question in cluster.questions:
            if question in owner:
                counts[owner[question]] = counts.get(owner[question], 0) + 1
        best = max(counts, key=lambda e: counts[e], default=None)
        ok = best is not None and counts[best] >= 2 and counts[best] * 2 >= cluster.distinct
        about.append(best if ok else None)
    gap_texts = {q for c in report.clusters for q in c.questions}
    return {
        "covered": len({entry for entry in about if entry}),
        "removed": len(removed),
        "top_topics_about_removed": sum(entry is not None for entry in about),
        "removed_queries": sum(len(t) for t in removed.values()),
        "removed_queries_found_as_gaps": sum(len(t & gap_texts) for t in removed.values()),
        "top_sizes": [c.volume for c in report.clusters[:TOP]],
    }


def parse_gap(definition: str) -> tuple[GapWeight, float | None]:
    """``expected@0.9`` -> (GapWeight.EXPECTED, 0.9); ``askings@none``: the threshold alone (the previous rule)."""
    weight, _, review = definition.partition("@")
    return GapWeight(weight), None if review in ("", "none") else float(review)


def gaps_for_set(args: argparse.Namespace, name: str, count: int, workdir: Path) -> dict[str, Any]:
    data = split(args.data / name, count, args.seed)
    folder = workdir / f"{name}-{count}-{args.seed}{'' if args.calibrate else '-uncalibrated'}"
    folder.mkdir(exist_ok=True)
    started = time.perf_counter()
    index_dir = folder / "index"
    if not index_dir.is_dir():  # else reused (--workdir)
        build(data.rows, folder, data.labelled if args.calibrate else [], args.target_precision)
    built_s = time.perf_counter() - started
    log = folder / "traffic.db"
    replayed = {"requests": 0, "failed": 0, "seconds": 0.0, "reused": True}
    if not log.is_file():
        replayed = asyncio.run(replay(index_dir, data.queries, log, args.clients, folder))
    index = FaqIndex.load(index_dir)
    rows = []
    for encoder in args.encoder:
        started = time.perf_counter()
        built_space = topic_space(index, encoder)
        space_s = time.perf_counter() - started
        variants = [(Clustering.AGGLOMERATIVE, s, r, a) for s in args.similarity for r in args.ranking
                    for a in args.answer_weight]  # fmt: skip
        variants += [(Clustering.KMEANS, None, r, a) for r in args.ranking for a in args.answer_weight if args.kmeans]
        for definition in args.gap:
            weight, review = parse_gap(definition)
            for method, similarity, ranking, answer_weight in variants:
                started = time.perf_counter()
                options = GapsOptions(
                    review_score=review, weight=weight, similarity=similarity or DEFAULT_SIMILARITY, method=method,
                    ranking=ranking,
                )  # fmt: skip
                space = dataclasses.replace(built_space, answer_weight=answer_weight)
                report = find_gaps(log, index, options, space=space)
                rows.append({"encoder": encoder.value, "method": method.value, "similarity": similarity,
                             "ranking": ranking.value, "answer_weight": answer_weight, "gap": definition,
                             "seconds": space_s + time.perf_counter() - started,
                             "gap_questions": report.gap_questions, "topics": len(report.clusters),
                             **coverage(report, data.removed)})  # fmt: skip
    return {"set": name, "entries_removed": count, "seed": args.seed, "faq_rows_kept": len(data.rows),
            "queries": len(data.queries),
            "index_seconds": round(built_s, 1), "replay": replayed, "logged": report.logged, "runs": rows,
            "load_average": os.getloadavg()[0]}  # fmt: skip


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used (Linux /proc), all its threads included."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def overhead(args: argparse.Namespace, index: Path, texts: list[str], workdir: Path) -> list[dict[str, Any]]:
    """Alternating runs with and without ``--log`` (which goes first alternates too): throughput, CPU, p50, p99.

    Each round is a pair run back to back, so the machine's drift (other
    jobs) hits both alike; the report compares the pairs' ratios.
    """
    runs = []
    for repeat in range(args.repeat):
        for mode in ("no log", "log") if repeat % 2 == 0 else ("log", "no log"):
            extra = ["--log", str(workdir / f"overhead-{repeat}.db")] if mode == "log" else []
            server = Server(index, batching=True, log=workdir / f"server-{mode}-{repeat}.log", extra=extra)
            try:
                await server.wait_ready()
                await run_load(server.port, mode, 64, args.clients, 60, texts, 5)  # warm-up
                load, cpu = os.getloadavg()[0], cpu_seconds(server.process.pid)
                result, _ = await run_load(server.port, mode, args.requests, args.clients, 120, texts, 5)
                cpu = cpu_seconds(server.process.pid) - cpu
            finally:
                server.stop()
            runs.append({"mode": mode, "repeat": repeat, "throughput_rps": round(result.throughput, 1),
                         "server_cpu_ms_per_request": round(1000 * cpu / max(1, result.requests), 2),
                         "p50_ms": round(result.percentile(0.5), 1), "p99_ms": round(result.percentile(0.99), 1),
                         "failed": result.failed, "load_average": round(load, 2)})  # fmt: skip
            print(json.dumps(runs[-1]), file=sys.stderr, flush=True)
    return runs


def print_report(sets: list[dict[str, Any]], runs: list[dict[str, Any]]) -> None:
    for item in sets:
        replay = item["replay"]
        replayed = (
            "replayed earlier (index and log reused from --workdir)" if replay.get("reused")
            else f"replayed in {replay['seconds']} s ({replay['failed']} failed)"
        )  # fmt: skip
        print(f"\n## {item['set']}: {item['entries_removed']} entries removed (seed {item['seed']}, "
              f"{item['faq_rows_kept']} FAQ rows kept), {item['queries']} queries {replayed}, "
              f"load {item['load_average']:.1f}\n")  # fmt: skip
        print(
            "| gaps | encoder | clustering | similarity | ranking | answer weight | gap questions | topics "
            "| removed covered by a top-10 topic | top-10 topics about a removed entry | removed queries found as gaps "
            "| seconds |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in item["runs"]:
            similarity = "" if r["similarity"] is None else f"{r['similarity']:g}"
            print(f"| {r['gap']} | {r['encoder']} | {r['method']} | {similarity} | {r['ranking']} "
                  f"| {r['answer_weight']:g} | {r['gap_questions']} "
                  f"| {r['topics']} "
                  f"| **{r['covered']} / {r['removed']}** | {r['top_topics_about_removed']} / {TOP} "
                  f"| {r['removed_queries_found_as_gaps']} / {r['removed_queries']} "
                  f"| {r['seconds']:.1f} |")  # fmt: skip
    if runs:
        print("\n## Logging overhead (POST /ask, batched server)\n")
        print("| mode | repeat | throughput (req/s) | server CPU ms per request | p50 ms | p99 ms | failed | load |")
        print("|---|---|---|---|---|---|---|---|")
        for r in runs:
            print(f"| {r['mode']} | {r['repeat']} | {r['throughput_rps']} | {r['server_cpu_ms_per_request']} "
                  f"| {r['p50_ms']} | {r['p99_ms']} | {r['failed']} | {r['load_average']} |")  # fmt: skip
        modes = ("no log", "log")
        rps = {m: statistics.median(r["throughput_rps"] for r in runs if r["mode"] == m) for m in modes}
        cpu = {m: statistics.median(r["server_cpu_ms_per_request"] for r in runs if r["mode"] == m) for m in modes}
        pairs = [{r["mode"]: r for r in runs if r["repeat"] == n} for n in sorted({r["repeat"] for r in runs})]
        ratios = [p["log"]["throughput_rps"] / p["no log"]["throughput_rps"] for p in pairs if len(p) == 2]
        print(
            f"\nMedian throughput: {rps['no log']:.1f} req/s without the log, {rps['log']:.1f} with it "
            f"({1 - rps['log'] / rps['no log']:+.1%} cost). Median server CPU per request: "
            f"{cpu['no log']:.2f} ms without, {cpu['log']:.2f} ms with ({cpu['log'] / cpu['no log'] - 1:+.1%})."
        )
        print(
            "Throughput with the log / without it, per round: "
            + ", ".join(f"{r:.3f}" for r in ratios)
            + f"; median {statistics.median(ratios):.3f} (a cost of {1 - statistics.median(ratios):+.1%})."
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--sets", nargs="+", default=["stackfaq:10", "covidfaq_jhu:5"], help="name:entries to remove")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--similarity", type=float, nargs="+", default=[DEFAULT_SIMILARITY])
    parser.add_argument("--encoder", type=TopicEncoder, nargs="+", default=list(TopicEncoder), help="topic encoders")
    parser.add_argument("--ranking", type=Ranking, nargs="+", default=list(Ranking), help="topic rankings")
    parser.add_argument(
        "--answer-weight", type=float, nargs="+", default=[ANSWER_WEIGHT],
        help="novelty: exponent of the distance to the closest FAQ answer (0: questions only, the previous rule)",
    )  # fmt: skip
    parser.add_argument(
        "--gap",
        nargs="+",
        default=[f"{GapWeight.ASKINGS.value}@{DEFAULT_REVIEW_SCORE}", "askings@none", "expected@0.9"],
        help="gap definitions, weight@review: askings@0.9 (the default), askings@none (the previous one: below the "
        "threshold only), expected@0.9 (--weight expected)",
    )
    parser.add_argument("--kmeans", action=argparse.BooleanOptionalAction, default=True, help="also k-means rows")
    parser.add_argument(
        "--calibrate",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="calibrate each index on half of its kept entries' queries before serving it",
    )
    parser.add_argument("--target-precision", type=float, default=0.9)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=3000, help="per overhead run")
    parser.add_argument("--repeat", type=int, default=3, help="alternating overhead runs per mode")
    parser.add_argument("--no-gaps", action="store_true")
    parser.add_argument("--no-overhead", action="store_true")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--workdir", type=Path, help="keep indexes and logs here and reuse them (default: a temp dir)")
    args = parser.parse_args()
    for spec in args.sets:
        if not (args.data / spec.split(":")[0] / "faq.csv").is_file():
            raise SystemExit(f"no {spec.split(':')[0]}/faq.csv under {args.data}; pass --data DIR")
    with tempfile.TemporaryDirectory(prefix="bench-gaps-") as scratch:
        workdir = args.workdir or Path(scratch)
        workdir.mkdir(parents=True, exist_ok=True)
        sets = []
        if not args.no_gaps:
            for spec in args.sets:
                name, count = spec.split(":")
                sets.append(gaps_for_set(args, name, int(count), workdir))
                print(json.dumps(sets[-1]), file=sys.stderr, flush=True)
        runs: list[dict[str, Any]] = []
        if not args.no_overhead:
            name = args.sets[0].split(":")[0]
            index = workdir / f"{name}-full" / "index"
            if not index.is_dir():
                (workdir / f"{name}-full").mkdir(exist_ok=True)
                index = build(read_csv(args.data / name / "faq.csv"), workdir / f"{name}-full", [], 0.9)
            texts = [q["query"] for q in read_csv(args.data / name / "queries.csv")]
            runs = asyncio.run(overhead(args, index, texts, workdir))
    print_report(sets, runs)
    if args.json:
        args.json.write_text(json.dumps({"sets": sets, "overhead": runs}, indent=2))


if __name__ == "__main__":
    main()
