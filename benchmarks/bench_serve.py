"""Load test of ``faq-search serve`` on loopback: throughput and latency with and without request batching.

Builds a bundle from ``data/faq.csv`` in a temporary directory, then for each
mode starts the real server (``faq-search serve --port P [--no-batching]``) on
127.0.0.1, sends a bounded load of ``POST /ask`` (``--requests`` in all, from
``--clients`` concurrent keep-alive connections, questions cycled from
``data/queries.csv``) and reports throughput, p50/p99 latency, failed
requests, how many questions each encoder call carried and how busy the
model was. ``--repeat N`` alternates the modes N times and compares medians
(the machine may be shared). ``--reload`` adds a batched run that rebuilds the
bundle mid-load with ``faq-search index`` (an atomic swap) and reports which
index generations answered and whether any request failed across the swap.

Every run stops by itself: at ``--requests`` requests or ``--max-seconds``
per mode, whichever comes first. Only 127.0.0.1 is contacted.

    python benchmarks/bench_serve.py                       # 5000 requests, 32 clients, both modes
    python benchmarks/bench_serve.py --repeat 3 --reload --json out.json
    python benchmarks/bench_serve.py --requests 500 --modes batched

The load generator is a minimal asyncio HTTP/1.1 client, so that on a small
machine (it shares the CPU with the server) the numbers measure the server
rather than the client library.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
CLI = str(Path(sys.executable).parent / "faq-search")
HOST = "127.0.0.1"


@dataclass
class Result:
    mode: str
    requests: int = 0
    failed: int = 0
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list, repr=False)
    statuses: dict[str, int] = field(default_factory=dict)
    generations: dict[str, int] = field(default_factory=dict)
    server: dict[str, Any] = field(default_factory=dict)
    reload: dict[str, Any] = field(default_factory=dict)
    stopped_by_time: bool = False
    load_average: tuple[float, float] = (0.0, 0.0)  # 1-minute load before and after: other work on the machine

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def summary(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("latencies_ms")
        return {
            **data,
            "throughput_rps": round(self.throughput, 1),
            "p50_ms": round(self.percentile(0.50), 1),
            "p99_ms": round(self.percentile(0.99), 1),
            "mean_ms": round(statistics.fmean(self.latencies_ms), 1) if self.latencies_ms else None,
        }


class Connection:
    """One keep-alive HTTP/1.1 connection to the server; just enough protocol for JSON POSTs."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, payload: bytes = b"") -> tuple[int, dict[str, str], bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(HOST, self.port)
        assert self.reader is not None
        head = f"{method} {path} HTTP/1.1\r\nHost: {HOST}:{self.port}\r\nContent-Type: application/json\r\n"
        self.writer.write(f"{head}Content-Length: {len(payload)}\r\n\r\n".encode() + payload)
        await self.writer.drain()
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name:
                headers[name.strip().lower()] = value.strip()
        body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return status, headers, body

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
        self.reader = self.writer = None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def questions() -> list[str]:
    with open(REPO / "data" / "queries.csv", encoding="utf-8", newline="") as handle:
        return [row["query"] for row in csv.DictReader(handle)]


def build_index(out: Path) -> None:
    env = {**os.environ, "FAQ_SEARCH_NO_PROGRESS": "1"}
    subprocess.run(
        [CLI, "index", str(REPO / "data" / "faq.csv"), "--out", str(out), "--quiet"], check=True, env=env, timeout=600
    )


class Server:
    """``faq-search serve`` as a child process on a free loopback port."""

    def __init__(self, index: Path, batching: bool, log: Path, extra: list[str]) -> None:
        self.port = free_port()
        args = [CLI, "serve", "--index", str(index), "--host", HOST, "--port", str(self.port), "--watch", "0.5"]
        args += ([] if batching else ["--no-batching"]) + ["--no-access-log", *extra]
        self.log = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)

    async def wait_ready(self, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"the server exited with {self.process.returncode}; see {self.log.name}")
            connection = Connection(self.port)
            try:
                status, _, _ = await asyncio.wait_for(connection.request("GET", "/health"), 2)
                if status == 200:
                    return
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError):
                pass
            finally:
                await connection.close()
            await asyncio.sleep(0.25)
        raise SystemExit(f"the server did not become ready within {timeout:.0f} s; see {self.log.name}")

    async def summary(self) -> dict[str, Any]:
        connection = Connection(self.port)
        try:
            _, _, body = await asyncio.wait_for(connection.request("GET", "/index"), 10)
            return dict(json.loads(body))
        finally:
            await connection.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.log.close()


async def run_load(
    port: int,
    mode: str,
    total: int,
    clients: int,
    max_seconds: float,
    texts: list[str],
    k: int,
    until: asyncio.Event | None = None,
) -> tuple[Result, float]:
    """``total`` POST /ask from ``clients`` connections (and on until ``until`` is set); stops at ``max_seconds``."""
    result = Result(mode=mode)
    payloads = [json.dumps({"question": t, "k": k}).encode() for t in texts]
    issued = 0
    started = time.perf_counter()
    deadline = started + max_seconds

    async def client() -> None:
        nonlocal issued
        connection = Connection(port)
        try:
            while issued < total or (until is not None and not until.is_set()):
                if time.perf_counter() > deadline:
                    result.stopped_by_time = True
                    return
                payload = payloads[issued % len(payloads)]
                issued += 1
                sent = time.perf_counter()
                try:
                    status, headers, _ = await asyncio.wait_for(connection.request("POST", "/ask", payload), 120)
                except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
                    status, headers = 0, {}
                    result.statuses[type(exc).__name__] = result.statuses.get(type(exc).__name__, 0) + 1
                    await connection.close()
                result.latencies_ms.append((time.perf_counter() - sent) * 1000)
                result.requests += 1
                if status != 200:
                    result.failed += 1
                if status:
                    result.statuses[str(status)] = result.statuses.get(str(status), 0) + 1
                generation = headers.get("x-faq-index-generation", "?")
                result.generations[generation] = result.generations.get(generation, 0) + 1
        finally:
            await connection.close()

    await asyncio.gather(*(client() for _ in range(clients)))
    result.seconds = time.perf_counter() - started
    return result, started


async def reload_midway(index: Path, port: int, after_s: float, result: Result, done: asyncio.Event) -> None:
    """Rebuild the bundle with `faq-search index` while the load runs, then time until the server serves it."""
    try:
        await asyncio.sleep(after_s)
        started = time.perf_counter()
        env = {**os.environ, "FAQ_SEARCH_NO_PROGRESS": "1"}
        command = [CLI, "index", str(REPO / "data" / "faq.csv"), "--out", str(index), "--quiet"]
        process = await asyncio.create_subprocess_exec(*command, env=env, stdout=asyncio.subprocess.DEVNULL)
        code = await asyncio.wait_for(process.wait(), 600)
        written = time.perf_counter()
        connection = Connection(port)
        generation = None
        try:
            for _ in range(240):
                _, _, body = await asyncio.wait_for(connection.request("GET", "/index"), 30)
                generation = json.loads(body)["generation"]
                if generation > 1:
                    break
                await asyncio.sleep(0.05)
        finally:
            await connection.close()
        result.reload = {
            "index_exit_code": code,
            "index_seconds": round(written - started, 1),
            "served_after_write_s": round(time.perf_counter() - written, 2),
            "generation": generation,
        }
        await asyncio.sleep(1.0)  # keep the load going on the new index for a moment
    finally:
        done.set()


async def measure(args: argparse.Namespace, index: Path, mode: str, workdir: Path) -> Result:
    """One run: a fresh server in ``mode`` (batched, unbatched, or reload: batched with a rebuild midway)."""
    server = Server(index, batching=mode != "unbatched", log=workdir / f"server-{mode}.log", extra=args.server_args)
    try:
        await server.wait_ready()
        texts = questions()
        await run_load(server.port, mode, min(64, args.requests), args.clients, 60, texts, args.k)  # warm-up
        before = (await server.summary())["server"]
        reloader, served = None, None
        if mode == "reload":
            pending, served = Result(mode), asyncio.Event()
            reloader = asyncio.create_task(reload_midway(index, server.port, args.reload_after, pending, served))
        load_before = os.getloadavg()[0]
        result, _ = await run_load(
            server.port, mode, args.requests, args.clients, args.max_seconds, texts, args.k, until=served
        )
        result.load_average = (round(load_before, 2), round(os.getloadavg()[0], 2))
        if reloader is not None:
            await asyncio.wait_for(reloader, 600)
            result.reload = pending.reload
        after = (await server.summary())["server"]
        calls = after["batches"] - before["batches"]
        result.server = {
            "encoder_calls": calls,
            "mean_questions_per_call": round((after["texts"] - before["texts"]) / calls, 2) if calls else None,
            "largest_call": after["largest"],
            "model_busy": round((after["model_seconds"] - before["model_seconds"]) / result.seconds, 2),
        }
        return result
    finally:
        server.stop()


def report(results: list[Result], args: argparse.Namespace) -> None:
    print(
        f"load: {args.requests} POST /ask from {args.clients} concurrent clients, k={args.k}, on {os.cpu_count()} CPUs"
    )
    print(
        f"{'mode':<10} {'done':>6} {'failed':>6} {'seconds':>8} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'per call':>8} {'model busy':>10}  load avg"
    )
    for r in results:
        print(
            f"{r.mode:<10} {r.requests:>6} {r.failed:>6} {r.seconds:>8.1f} {r.throughput:>8.1f} "
            f"{r.percentile(0.5):>8.1f} {r.percentile(0.99):>8.1f} {r.server.get('mean_questions_per_call')!s:>8} "
            f"{r.server.get('model_busy')!s:>10}  {r.load_average[0]:.1f}->{r.load_average[1]:.1f}"
            + ("  (stopped by --max-seconds)" if r.stopped_by_time else "")
        )
        if r.failed:
            print(f"  statuses: {r.statuses}")
        if r.reload:
            print(f"  rebuild during the load: {r.reload}; answers by index generation: {r.generations}")
    rates = {mode: [r.throughput for r in results if r.mode == mode] for mode in ("batched", "unbatched")}
    if rates["batched"] and rates["unbatched"] and min(rates["unbatched"]) > 0:
        batched, unbatched = statistics.median(rates["batched"]), statistics.median(rates["unbatched"])
        runs = f" (medians of {len(rates['batched'])} runs each)" if len(rates["batched"]) > 1 else ""
        print(
            f"batching speed-up: {batched / unbatched:.2f}x throughput ({batched:.1f} vs {unbatched:.1f} req/s){runs}"
        )
    print(f"failed requests in all runs: {sum(r.failed for r in results)}")


async def main_async(args: argparse.Namespace) -> list[Result]:
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as temp:
        workdir = Path(temp)
        index = Path(args.index) if args.index else workdir / "index"
        if not args.index:
            build_index(index)
        modes = [m.strip() for m in args.modes.split(",")] * args.repeat + (["reload"] if args.reload else [])
        results = []
        for mode in modes:
            results.append(await measure(args, index, mode, workdir))
            print(f"{mode}: {results[-1].summary()}", file=sys.stderr)
        return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000, help="requests per mode")
    parser.add_argument("--clients", type=int, default=32, help="concurrent connections")
    parser.add_argument("--k", type=int, default=5, help="answers per question")
    parser.add_argument("--modes", default="batched,unbatched", help="batched, unbatched or both (comma-separated)")
    parser.add_argument("--max-seconds", type=float, default=900, help="stop a mode's load after this long")
    parser.add_argument("--repeat", type=int, default=1, help="run the modes this many times, alternating")
    parser.add_argument("--reload", action="store_true", help="add a batched run that rebuilds the bundle midway")
    parser.add_argument("--reload-after", type=float, default=10, help="seconds into the load to start the rebuild")
    parser.add_argument("--index", help="serve this bundle instead of one built from data/faq.csv (not with --reload)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("server_args", nargs="*", help="extra `faq-search serve` options, after --")
    args = parser.parse_args()
    if args.requests < 1 or args.clients < 1 or args.repeat < 1:
        parser.error("--requests, --clients and --repeat must be at least 1")
    if args.reload and args.index:
        parser.error("--reload rebuilds the bundle from data/faq.csv; leave out --index")
    results = asyncio.run(main_async(args))
    report(results, args)
    if args.json:
        Path(args.json).write_text(json.dumps([r.summary() for r in results], indent=2) + "\n", encoding="utf-8")
    if any(r.failed for r in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
