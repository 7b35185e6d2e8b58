"""Throughput of `semantic-qa serve`: the JSON API (`/api/search`) and the form's
`/search` against `Index.search` in one process, in the same run.

    python benchmarks/http_api.py                               # the BENCHMARKS.md run
    python benchmarks/http_api.py --requests 600 --soak 2000    # a quick look

Indexes the bundled articles (data/articles) into a temporary folder and serves them
with `semantic-qa serve` (a subprocess on 127.0.0.1, a free port). Then:

1. rounds: in process, `Index.search` from 1 and 2 threads (no HTTP: the baseline);
   `GET /api/search` (k=5, hybrid) from 1, 8 and 32 connections; the form's `/search`
   (Gradio: `POST /gradio_api/call/search`, then its event stream) from 8;
   `GET /api/health` from 8 (no search: what the HTTP layer costs by itself). Each
   phase runs `--rounds` times for a share of its requests, the phases taking turns,
   so that the other work on a shared machine weighs on all of them alike;
2. soak: `--soak` requests to `/api/search` from 8 connections while the server's
   resident memory (VmRSS, /proc) is read every half second.

The load comes from this process: asyncio, one keep-alive HTTP/1.1 connection per
client, written by hand (no HTTP library: about half a millisecond of CPU a request),
closed loop (each client asks again as soon as it has its answer). A phase stops at
its share of `--requests` answers or of `--seconds`, whichever comes first. An answer
that is not 200 with k hits is an error. Prints one Markdown table; "CPU ms" is the
CPU time the server process (in process: this one) spent per answer, "MB" the
server's VmRSS after the phase.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

QUESTIONS = [
    "When was the Bled Strategic Forum established?",
    "In which year did Kazakhstan chair the OSCE?",
    "Who officially launched the draft Code of Conduct?",
    "Who headed the Kazakhstan delegation to Slovenia?",
    "What did Miroslav Jenča say about Kazakhstan's membership on the Security Council?",
    "What is the Astana process?",
    "Who organizes the Bled Strategic Forum?",
    "What is preventive diplomacy?",
    "Which countries did Kazakhstan visit as chair of the 1267 committee?",
    "What is the Joint Plan of Action for Central Asia?",
]
K = 5
HEADER = (
    "| load | connections | answers | per second | p50 ms | p95 ms | p99 ms | CPU ms | MB | errors |\n"
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
)


@dataclass
class Phase:
    """One row of the table, added up over its rounds."""

    name: str
    clients: int
    latencies: list[float] = field(default_factory=list)  # seconds
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    cpu: float = 0.0  # seconds of CPU spent answering
    rss: float = float("nan")  # the server's VmRSS after the phase's last round, MB

    @property
    def per_second(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        values = sorted(self.latencies)
        if not values:
            return float("nan")
        return values[min(len(values) - 1, round(q * (len(values) - 1)))] * 1000

    def row(self) -> str:
        n = len(self.latencies)
        return (
            f"| {self.name} | {self.clients} | {n:,} | {self.per_second:.1f} | "
            f"{self.pct(0.5):.1f} | {self.pct(0.95):.1f} | {self.pct(0.99):.1f} | "
            f"{1000 * self.cpu / max(1, n):.1f} | {self.rss:.0f} | {len(self.errors)} |"
        ).replace("| nan |", "| |")  # no server in process


# -- in process ---------------------------------------------------------------------


def in_process(index: Any, phase: Phase, requests: int, seconds: float) -> None:
    """`Index.search` from `phase.clients` threads, closed loop, as the server's threads
    ask it."""
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds
    counter = iter(range(requests))

    def ask() -> None:
        while time.perf_counter() < deadline:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            started = time.perf_counter()
            hits = index.search(QUESTIONS[i % len(QUESTIONS)], K)
            took = time.perf_counter() - started
            with lock:
                phase.latencies.append(took)
                if len(hits) != K:
                    phase.errors.append(f"{len(hits)} hits")

    started, cpu = time.perf_counter(), time.process_time()
    with ThreadPoolExecutor(phase.clients) as pool:
        for future in [pool.submit(ask) for _ in range(phase.clients)]:
            future.result()
    phase.seconds += time.perf_counter() - started
    phase.cpu += time.process_time() - cpu


# -- a small HTTP/1.1 client --------------------------------------------------------


class Connection:
    """One keep-alive connection: requests one after the other, as a script with a
    session sends them."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        if self.reader is None or self.writer is None or self.writer.is_closing():
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
        if body:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        self.writer.write(head.encode() + b"\r\n" + body)
        status = int((await self.reader.readline()).split()[1])
        headers = {}
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding") == "chunked":
            data = bytearray()
            while size := int((await self.reader.readline()).strip(), 16):
                data += (await self.reader.readexactly(size + 2))[:-2]
            await self.reader.readline()
            content = bytes(data)
        else:
            content = await self.reader.readexactly(int(headers.get("content-length", 0)))
        if headers.get("connection") == "close":
            self.close()
        return status, content

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


Ask = Callable[[Connection, str], Awaitable[str | None]]  # an error, or None


async def api_search(conn: Connection, question: str) -> str | None:
    query = urllib.parse.urlencode({"q": question, "k": K})
    status, body = await conn.request("GET", f"/api/search?{query}")
    hits = json.loads(body).get("hits") if status == 200 else None
    return None if hits and len(hits) == K else f"{status}: {body[:200]!r}"


async def api_health(conn: Connection, question: str) -> str | None:
    status, body = await conn.request("GET", "/api/health")
    return None if status == 200 else f"{status}: {body[:200]!r}"


async def form_search(conn: Connection, question: str) -> str | None:
    """The form's `/search` as any HTTP client calls it: start the event, then read its
    result from the event stream."""
    payload = json.dumps({"data": [question, K]}).encode()
    status, body = await conn.request("POST", "/gradio_api/call/search", payload)
    if status != 200:
        return f"{status}: {body[:200]!r}"
    event = json.loads(body)["event_id"]
    status, body = await conn.request("GET", f"/gradio_api/call/search/{event}")
    if status != 200 or b"event: complete" not in body:
        return f"{status}: {body[:200]!r}"
    data = body.split(b"event: complete\ndata: ", 1)[1].split(b"\n", 1)[0]
    return None if len(json.loads(data)[0]) == K else f"wrong hits: {data[:200]!r}"


async def load(
    url: str,
    ask: Ask,
    phase: Phase,
    requests: int,
    seconds: float,
    sample: Callable[[], None] | None = None,
) -> None:
    """`phase.clients` connections asking in a closed loop until `requests` answers or
    `seconds`; `sample()` is called every half second meanwhile."""
    parsed = urllib.parse.urlsplit(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 80
    left = [requests]
    deadline = time.perf_counter() + seconds

    async def client(seed: int) -> None:
        conn, i = Connection(host, port), seed
        try:
            while left[0] > 0 and time.perf_counter() < deadline:
                left[0] -= 1
                i += 1
                started = time.perf_counter()
                try:
                    error = await ask(conn, QUESTIONS[i % len(QUESTIONS)])
                except (OSError, ValueError, IndexError, asyncio.IncompleteReadError) as err:
                    error = f"{type(err).__name__}: {err}"
                    conn.close()
                if error is None:
                    phase.latencies.append(time.perf_counter() - started)
                else:
                    phase.errors.append(error)
        finally:
            conn.close()

    async def sampler() -> None:
        while sample is not None:
            sample()
            await asyncio.sleep(0.5)

    started = time.perf_counter()
    watch = asyncio.ensure_future(sampler())
    await asyncio.gather(*(client(i * 7) for i in range(phase.clients)))
    watch.cancel()
    phase.seconds += time.perf_counter() - started


# -- the server ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def semantic_qa(*args: str) -> list[str]:
    return [sys.executable, "-m", "qa.cli", *args]


def wait_ready(url: str, server: subprocess.Popen[bytes], timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"semantic-qa serve exited with {server.returncode}")
        try:
            with urllib.request.urlopen(url + "api/health", timeout=5):
                return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"semantic-qa serve did not answer on {url} in {timeout:.0f} s")


async def run(
    url: str, pid: int, index: Any, args: argparse.Namespace
) -> tuple[list[Phase], list[float]]:
    """The rounds, then the soak; the phases and the server's VmRSS samples."""
    rows = [Phase("in process, `Index.search`", n) for n in (1, 2)]
    rows += [Phase("`GET /api/search`", n) for n in (1, 8, 32)]
    rows.append(Phase("form's `/search` (Gradio)", 8))
    rows.append(Phase("`GET /api/health` (no search: HTTP alone)", 8))
    asks = {"`GET /api/search`": api_search, "form's `/search` (Gradio)": form_search}
    share, seconds = args.requests // args.rounds, args.seconds / args.rounds
    for phase in rows[2:]:  # warm up: connections, first calls, the server's threads
        ask = asks.get(phase.name, api_health)
        await load(url, ask, Phase("", phase.clients), 2 * phase.clients, 30)
    for round_ in range(args.rounds):
        for phase in rows:
            if phase.name.startswith("in process"):
                in_process(index, phase, share, seconds)
                continue
            cpu = cpu_seconds(pid)
            await load(url, asks.get(phase.name, api_health), phase, share, seconds)
            phase.cpu += cpu_seconds(pid) - cpu
            phase.rss = rss_mb(pid)
        print(f"round {round_ + 1} of {args.rounds} done", file=sys.stderr, flush=True)
    soak = Phase(f"soak: `GET /api/search`, {args.soak:,} requests", 8)
    rss = [rss_mb(pid)]
    cpu = cpu_seconds(pid)
    await load(url, api_search, soak, args.soak, args.soak_seconds, lambda: rss.append(rss_mb(pid)))
    soak.cpu = cpu_seconds(pid) - cpu
    rss.append(rss_mb(pid))
    soak.rss = rss[-1]
    return [*rows, soak], rss


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=3000, help="answers per phase, at most")
    ap.add_argument("--seconds", type=float, default=60, help="time per phase, at most")
    ap.add_argument("--rounds", type=int, default=3, help="turns the phases take")
    ap.add_argument("--soak", type=int, default=20_000, help="requests in the soak")
    ap.add_argument("--soak-seconds", type=float, default=900, help="length of the soak, at most")
    args = ap.parse_args()

    import qa

    folder = Path(tempfile.mkdtemp(prefix="http-api-"))
    # this checkout's code, in the server too
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    print(f"indexing data/articles into {folder / 'index'} ...", file=sys.stderr, flush=True)
    articles, index_path = str(ROOT / "data" / "articles"), str(folder / "index")
    subprocess.run(
        semantic_qa("index", articles, "--out", index_path), check=True, env=env, stdout=2
    )
    index = qa.load_index(index_path)
    for question in QUESTIONS:
        index.search(question, K)
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    command = semantic_qa("serve", "--index", index_path, "--port", str(port))
    command += ["--upload-dir", str(folder / "uploads")]
    with open(folder / "server.log", "wb") as log:
        server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_ready(url, server)
        started_rss = rss_mb(server.pid)
        phases, rss = asyncio.run(run(url, server.pid, index, args))
    finally:
        server.terminate()
        server.wait(timeout=30)
    report(phases, rss, started_rss)
    shutil.rmtree(folder, ignore_errors=True)
    return 1 if any(p.errors for p in phases) else 0


def report(phases: list[Phase], rss: list[float], started_rss: float) -> None:
    two, one_api, eight_api, soak = phases[1], phases[2], phases[3], phases[-1]
    print(f"# HTTP API ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, load average {os.getloadavg()[0]:.1f} at the end"
    )
    print(f"command: python benchmarks/http_api.py {' '.join(sys.argv[1:])}".rstrip())
    print()
    print(HEADER)
    print("\n".join(p.row() for p in phases))
    print()
    print(
        f"- `/api/search` at 8 connections: {eight_api.per_second / two.per_second:.0%} of "
        f"the in-process q/s with 2 threads (target: at least 50%); p95 "
        f"{eight_api.pct(0.95) / one_api.pct(0.95):.1f}x the single connection's "
        "(target: at most 3x)"
    )
    print(
        f"- server memory (VmRSS): {started_rss:.0f} MB when it answered, {rss[0]:.0f} MB "
        f"before the soak, {rss[-1]:.0f} MB after its {len(soak.latencies):,} answers "
        f"({(rss[-1] - rss[0]) / rss[0]:+.1%}; max {max(rss):.0f} MB over {len(rss)} "
        "samples; target: within 5%)"
    )
    for phase in phases:
        for error in phase.errors[:3]:
            print(f"  error in {phase.name}: {error}")


if __name__ == "__main__":
    sys.exit(main())
