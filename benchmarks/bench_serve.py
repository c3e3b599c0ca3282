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
    python benchmarks/bench_serve.py --hostile             # the probes of issue 14, a normal client meanwhile

``--hostile`` starts one batched server and runs each hostile probe for
``--probe-seconds`` from 127.0.0.2 (another loopback address, so the server
sees another client) while ``--normal-clients`` keep asking from 127.0.0.1,
and reports what the normal clients saw (p50/p99, failures), the server's
resident memory before and after, and how much its log grew. Probes:
stalled connections, over-long texts, bodies of 80,000 keys, abandoned
heavy batches, and one client keeping 17 heavy batches in flight.

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


# -- hostile mode ---------------------------------------------------------------------

HOSTILE_HOST = "127.0.0.2"  # another loopback address: the server sees the hostile client as a different client
PROBES = ("stalled", "long-texts", "many-keys", "abandoned", "heavy-batches")


def server_rss_mb(pid: int) -> float:
    """Resident memory of the server process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def raw_post(path: str, port: int, body: bytes, *, wait: bool = True) -> int:
    """One POST on a new connection from :data:`HOSTILE_HOST`; its status, or 0 when not waited for or failed."""
    try:
        reader, writer = await asyncio.open_connection(HOST, port, local_addr=(HOSTILE_HOST, 0))
    except OSError:
        return 0
    try:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        writer.write(head.encode() + body)
        await writer.drain()
        if not wait:
            return 0
        line = await asyncio.wait_for(reader.readline(), 120)
        return int(line.split()[1]) if line else 0
    except (OSError, asyncio.TimeoutError, ValueError, IndexError):
        return 0
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def probe_stalled(port: int, stop: asyncio.Event, args: argparse.Namespace) -> dict[str, Any]:
    """Finding 1: sockets that send a request line and a header, then stall."""
    sockets: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    failed = 0
    for _ in range(args.stall_sockets):
        if stop.is_set():
            break
        try:
            reader, writer = await asyncio.open_connection(HOST, port, local_addr=(HOSTILE_HOST, 0))
            writer.write(b"POST /ask HTTP/1.1\r\nHost: x\r\n")
            sockets.append((reader, writer))
        except OSError:
            failed += 1
    await stop.wait()
    closed = sum(1 for reader, writer in sockets if reader.at_eof() or writer.is_closing())
    for _, writer in sockets:
        writer.close()
    return {"sockets": len(sockets), "connect_failed": failed, "closed_by_server": closed}


async def loop_requests(make: Any, stop: asyncio.Event, clients: int) -> dict[str, int]:
    """``clients`` loops of ``await make()`` until ``stop``; counts of the statuses they got."""
    statuses: dict[str, int] = {}

    async def one() -> None:
        while not stop.is_set():
            status = await make()
            statuses[str(status)] = statuses.get(str(status), 0) + 1

    await asyncio.gather(*(one() for _ in range(clients)))
    return statuses


async def probe_long_texts(port: int, stop: asyncio.Event, args: argparse.Namespace) -> dict[str, Any]:
    """Finding 2: 32 clients sending /embed with a 1 MB text, and /ask/batch with a 500,000-character question."""
    embed = json.dumps({"texts": ["refund " * 142_000]}).encode()
    batch = json.dumps({"questions": ["x" * 500_000]}).encode()
    flip = [0]

    async def make() -> int:
        flip[0] += 1
        return await raw_post("/embed" if flip[0] % 2 else "/ask/batch", port, embed if flip[0] % 2 else batch)

    return await loop_requests(make, stop, 32)


async def probe_many_keys(port: int, stop: asyncio.Event, args: argparse.Namespace) -> dict[str, Any]:
    """Finding 4: two clients sending /ask bodies of 80,000 unknown keys."""
    body = json.dumps({"question": "refund", **{f"k{i}": 1 for i in range(80_000)}}, separators=(",", ":")).encode()
    return await loop_requests(lambda: raw_post("/ask", port, body), stop, 2)


def heavy_batch(tag: int) -> bytes:
    """64 questions of 2,000 characters: the most a batch may hold, so the server accepts it."""
    return json.dumps(
        {"questions": [(f"heavy {tag} {i} " + "parcel refund " * 143)[:2000] for i in range(64)]}
    ).encode()


async def probe_abandoned(port: int, stop: asyncio.Event, args: argparse.Namespace) -> dict[str, Any]:
    """Finding 5a: batches of 64 x 2,000 characters whose client closes right after sending them (30 at a time)."""
    sent = 0
    while not stop.is_set():
        await asyncio.gather(*(raw_post("/ask/batch", port, heavy_batch(sent + i), wait=False) for i in range(30)))
        sent += 30
        await asyncio.sleep(1.0)
    return {"abandoned_batches_sent": sent}


async def probe_heavy_batches(port: int, stop: asyncio.Event, args: argparse.Namespace) -> dict[str, Any]:
    """Finding 5b: one client keeping 17 in-limit heavy batches (64 x 2,000 characters) in flight."""
    counter = [0]

    async def make() -> int:
        counter[0] += 1
        return await raw_post("/ask/batch", port, heavy_batch(counter[0]))

    return await loop_requests(make, stop, 17)


PROBE_FUNCTIONS = {
    "stalled": probe_stalled,
    "long-texts": probe_long_texts,
    "many-keys": probe_many_keys,
    "abandoned": probe_abandoned,
    "heavy-batches": probe_heavy_batches,
}


async def probe_worker(args: argparse.Namespace) -> None:
    """Run one probe for ``--probe-seconds`` (+1 s of build-up) in this process; print what it saw as JSON.

    A process of its own, so that the hostile client's work never delays the
    normal client's event loop and its latencies measure the server.
    """
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(args.probe_seconds + 1.0, stop.set)
    seen = await PROBE_FUNCTIONS[args.probe_worker](args.port, stop, args)
    print(json.dumps(seen))


async def run_probe(server: Server, name: str, args: argparse.Namespace) -> dict[str, Any]:
    """One hostile probe (in a child process) while a normal client asks; what the normal client saw."""
    rss_before, log_before = server_rss_mb(server.process.pid), Path(server.log.name).stat().st_size
    command = [sys.executable, __file__, "--probe-worker", name, "--port", str(server.port)]
    command += ["--probe-seconds", str(args.probe_seconds), "--stall-sockets", str(args.stall_sockets)]
    hostile = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE)
    await asyncio.sleep(1.0)  # let the hostile load build up first
    normal, _ = await run_load(server.port, name, 10**9, args.normal_clients, args.probe_seconds, questions(), args.k)
    output, _ = await asyncio.wait_for(hostile.communicate(), 300)
    rss_after = server_rss_mb(server.process.pid)
    await asyncio.sleep(1.0)
    server.log.flush()
    return {
        "probe": name,
        "normal_requests": normal.requests,
        "normal_failed": normal.failed,
        "normal_statuses": normal.statuses,
        "p50_ms": round(normal.percentile(0.5), 1),
        "p99_ms": round(normal.percentile(0.99), 1),
        "rss_mb_before": round(rss_before, 1),
        "rss_mb_after": round(rss_after, 1),
        "log_bytes_added": Path(server.log.name).stat().st_size - log_before,
        "hostile": json.loads(output or b"{}"),
    }


async def hostile_async(args: argparse.Namespace) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as temp:
        workdir = Path(temp)
        index = Path(args.index) if args.index else workdir / "index"
        if not args.index:
            build_index(index)
        server = Server(index, batching=True, log=workdir / "server-hostile.log", extra=args.server_args)
        rows = []
        try:
            await server.wait_ready()
            await run_load(server.port, "warm-up", 64, 4, 60, questions(), args.k)
            baseline, _ = await run_load(
                server.port, "none", 10**9, args.normal_clients, args.probe_seconds, questions(), args.k
            )
            rows.append(
                {
                    "probe": "none",
                    "normal_requests": baseline.requests,
                    "normal_failed": baseline.failed,
                    "p50_ms": round(baseline.percentile(0.5), 1),
                    "p99_ms": round(baseline.percentile(0.99), 1),
                    "rss_mb_before": round(server_rss_mb(server.process.pid), 1),
                    "rss_mb_after": round(server_rss_mb(server.process.pid), 1),
                    "log_bytes_added": 0,
                    "hostile": {},
                }
            )
            for name in [p.strip() for p in args.probes.split(",")]:
                rows.append(await run_probe(server, name, args))
                print(f"{name}: {rows[-1]}", file=sys.stderr)
        finally:
            server.stop()
        return rows


def report_hostile(rows: list[dict[str, Any]], args: argparse.Namespace) -> bool:
    """Print the table and the verdict against the targets; True when every probe met them."""
    print(
        f"hostile mode: {args.normal_clients} normal clients asking for {args.probe_seconds:g} s during each probe, "
        f"on {os.cpu_count()} CPUs (targets: p99 <= {args.target_p99_ms:g} ms, 0 failed, "
        "memory growth <= 200 MB, log growth <= 1 MB)"
    )
    print(f"{'probe':<14} {'asked':>6} {'failed':>6} {'p50 ms':>8} {'p99 ms':>8} {'RSS MB':>15} {'log KB':>7}  met")
    ok_all = True
    for row in rows:
        grew = row["rss_mb_after"] - row["rss_mb_before"]
        ok = (
            row["normal_failed"] == 0
            and row["p99_ms"] <= args.target_p99_ms
            and grew <= 200
            and row["log_bytes_added"] <= 1 << 20
        )
        ok_all &= ok
        print(
            f"{row['probe']:<14} {row['normal_requests']:>6} {row['normal_failed']:>6} {row['p50_ms']:>8.1f} "
            f"{row['p99_ms']:>8.1f} {row['rss_mb_before']:>6.0f}->{row['rss_mb_after']:<6.0f} "
            f"{row['log_bytes_added'] / 1024:>7.1f}  {'yes' if ok else 'NO'}"
        )
        if row["hostile"]:
            print(f"  hostile client saw: {row['hostile']}")
    return ok_all


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
    parser.add_argument("--hostile", action="store_true", help="run the hostile probes instead of the load test")
    parser.add_argument("--probes", default=",".join(PROBES), help="hostile probes to run (comma-separated)")
    parser.add_argument("--probe-seconds", type=float, default=15, help="normal load per hostile probe")
    parser.add_argument("--normal-clients", type=int, default=4, help="normal clients during each probe")
    parser.add_argument("--stall-sockets", type=int, default=5000, help="stalled connections in the stalled probe")
    parser.add_argument("--target-p99-ms", type=float, default=250, help="p99 target for the normal client")
    parser.add_argument("--probe-worker", choices=PROBES, help=argparse.SUPPRESS)  # a probe's own process
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("server_args", nargs="*", help="extra `faq-search serve` options, after --")
    args = parser.parse_args()
    if args.probe_worker:
        asyncio.run(probe_worker(args))
        return
    if args.hostile:
        rows = asyncio.run(hostile_async(args))
        met = report_hostile(rows, args)
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
        sys.exit(0 if met else 1)
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
