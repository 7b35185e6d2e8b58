"""Under load: `semantic-qa serve` on 127.0.0.1 with concurrent API clients, articles
added while they search, and a soak that watches the server's memory.

    python benchmarks/load.py                                  # the BENCHMARKS.md run
    python benchmarks/load.py --clients 2 --seconds 5 --soak 500  # a quick look

Indexes the bundled articles (data/articles) into a temporary folder and serves them
with `semantic-qa serve` (a real subprocess, a free port). Then, in order:

1. single user: one gradio_client asks for `--seconds` (the baseline);
2. N users: `--clients` gradio_client processes ask for `--seconds` at once,
   closed loop (each asks again as soon as it has its answer);
3. N users while articles are added: the same, while another process uploads
   small batches of articles through the form, as a browser does (each batch a
   JSON Lines file of 3 articles sharing a made-up word); the searchers also ask
   for those words and check that a batch shows up whole or not at all;
4. soak: `--soak` questions from the N clients; the server's resident memory
   (VmRSS) is read from /proc before, every half second during, and after it.

Prints throughput, p50/p95/p99 latency and errors for each phase.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
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
BATCH = 3  # articles per added batch


@dataclass
class Result:
    latencies: list[float] = field(default_factory=list)  # seconds
    errors: list[str] = field(default_factory=list)
    torn: list[str] = field(default_factory=list)  # batches seen in part
    seconds: float = 0.0


def batch_word(n: int) -> str:
    return f"zyxquokka{n}"


def batch_file(n: int) -> bytes:
    word = batch_word(n)
    rows = [
        {
            "id": f"load-{n}-{i}",
            "title": f"Load batch {n}, article {i}",
            "text": f"The {word} lives on island {i}. Every {word} eats leaves and sleeps "
            f"in the shade; researchers counted {i + 3} of them in {2000 + n}.",
        }
        for i in range(BATCH)
    ]
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def search_worker(
    url: str, start: float, until: float, seed: int, check_batches: int, out: Any
) -> None:
    """One client: ask from `start` until `until` (time.time()s), or until `out`'s
    quota is used up."""
    from gradio_client import Client

    result = Result()
    client = Client(url, verbose=False)
    time.sleep(max(0.0, start - time.time()))
    started = time.perf_counter()
    i = seed
    while time.time() < until:
        with out["lock"]:
            if out["quota"] is not None:
                if out["quota"].value <= 0:
                    break
                out["quota"].value -= 1
        i += 1
        question, batch = QUESTIONS[i % len(QUESTIONS)], None
        if check_batches and i % 3 == 0:
            batch = (i // 3) % check_batches
            question = f"What does the {batch_word(batch)} eat?"
        t = time.perf_counter()
        try:
            hits = client.predict(question, K, api_name="/search")
            result.latencies.append(time.perf_counter() - t)
            if batch is not None:
                seen = sum(h["doc_id"].startswith(f"load-{batch}-") for h in hits)
                if seen not in (0, BATCH):
                    result.torn.append(f"batch {batch}: {seen} of {BATCH} articles")
        except Exception as err:  # every failure counts, whatever it is
            result.errors.append(f"{type(err).__name__}: {str(err)[:200]}")
    result.seconds = time.perf_counter() - started
    out["queue"].put(result)


def add_worker(url: str, start: float, until: float, batches: int, out: Any) -> None:
    """Upload batches of articles through the form (as a browser does), one after the
    other, from `start` until `until` or `batches` are added."""
    from tests.form_client import FormClient

    form = FormClient(url)
    time.sleep(max(0.0, start - time.time()))
    added, errors = 0, []
    for n in range(batches):
        if time.time() >= until:
            break
        try:
            status = form.add_articles({f"batch-{n}.jsonl": batch_file(n)})
            if "Added 3 article(s)" in status:
                added += 1
            else:
                errors.append(status[:200])
        except Exception as err:
            errors.append(f"{type(err).__name__}: {str(err)[:200]}")
    out.put((added, errors))


def run_phase(
    url: str,
    clients: int,
    seconds: float,
    *,
    quota: int | None = None,
    add_batches: int = 0,
    check_batches: int = 0,
    on_progress: Any = None,
) -> tuple[Result, tuple[int, list[str]] | None]:
    ctx = mp.get_context("spawn")  # clean processes: no server state, own GIL each
    manager = ctx.Manager()
    out = {
        "queue": manager.Queue(),
        "lock": manager.Lock(),
        "quota": None if quota is None else manager.Value("i", quota),
    }
    # clients start (import gradio_client, read /config) before the clock starts
    start = time.time() + 10
    until = start + seconds
    procs = [
        ctx.Process(target=search_worker, args=(url, start, until, i * 7, check_batches, out))
        for i in range(clients)
    ]
    added_q = manager.Queue()
    if add_batches:
        procs.append(ctx.Process(target=add_worker, args=(url, start, until, add_batches, added_q)))
    for p in procs:
        p.start()
    last = time.time()
    while any(p.is_alive() for p in procs):
        if on_progress is not None:
            on_progress()
        if quota is not None and time.time() - last > 60:
            last = time.time()
            print(f"  ... {quota - out['quota'].value:,} of {quota:,} questions", flush=True)
        time.sleep(0.5)
    total = Result()
    for _ in range(clients):
        r: Result = out["queue"].get()
        total.latencies += r.latencies
        total.errors += r.errors
        total.torn += r.torn
        total.seconds = max(total.seconds, r.seconds)
    adds = added_q.get() if add_batches else None
    manager.shutdown()
    return total, adds


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))] if values else float("nan")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"semantic-qa serve exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "config", timeout=5):
                return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"semantic-qa serve did not answer on {url} in {timeout:.0f} s")


def row(name: str, clients: int, r: Result, base: float | None) -> str:
    n = len(r.latencies)
    p50, p95, p99 = (pct(r.latencies, q) * 1000 for q in (0.5, 0.95, 0.99))
    ratio = f"{p95 / base:.1f}x" if base else "1.0x"
    return (
        f"| {name} | {clients} | {n:,} | {n / r.seconds:.1f} | {p50:.0f} | {p95:.0f} | "
        f"{p99:.0f} | {ratio} | {len(r.errors)} |"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=30, help="length of phases 1-3")
    ap.add_argument("--soak", type=int, default=10_000, help="questions in the soak")
    ap.add_argument("--batches", type=int, default=20, help="article batches added in phase 3")
    args = ap.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="load-"))
    exe = Path(sys.executable).parent / "semantic-qa"
    env = {**os.environ, "SEMANTIC_QA_INDEX": str(folder / "index")}
    print(f"indexing data/articles into {folder / 'index'} ...", flush=True)
    subprocess.run(
        [exe, "index", ROOT / "data" / "articles", "--out", folder / "index"], check=True, env=env
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    server = subprocess.Popen(
        [exe, "serve", "--index", folder / "index", "--port", str(port), "--max-upload-files", "5"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(folder / "server.log", "wb"),  # noqa: SIM115 - lives as long as the server
    )
    lines = []
    try:
        wait_ready(url, server)
        started_rss = rss_mb(server.pid)
        print(f"serving on {url} (pid {server.pid}, {started_rss:.0f} MB)", flush=True)
        single, _ = run_phase(url, 1, args.seconds)
        base = pct(single.latencies, 0.95) * 1000
        lines.append(row("single user", 1, single, None))
        print(lines[-1], flush=True)
        many, _ = run_phase(url, args.clients, args.seconds)
        lines.append(row("concurrent", args.clients, many, base))
        print(lines[-1], flush=True)
        adding, adds = run_phase(
            url, args.clients, args.seconds, add_batches=args.batches, check_batches=args.batches
        )
        adds = adds or (0, [])
        lines.append(row(f"concurrent + adding ({adds[0]} batches)", args.clients, adding, base))
        print(lines[-1], flush=True)

        rss = [rss_mb(server.pid)]

        def sample() -> None:
            rss.append(rss_mb(server.pid))

        soak, _ = run_phase(url, args.clients, 24 * 3600, quota=args.soak, on_progress=sample)
        rss.append(rss_mb(server.pid))
        lines.append(row(f"soak ({args.soak:,} questions)", args.clients, soak, base))
        print(lines[-1], flush=True)
    finally:
        server.terminate()
        server.wait(timeout=30)
    errors = single.errors + many.errors + adding.errors + soak.errors
    print()
    print(f"# Under load ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    print(f"command: python benchmarks/load.py {' '.join(sys.argv[1:])}".rstrip())
    print()
    print(
        "| phase | clients | questions | per second | p50 ms | p95 ms | p99 ms | p95 vs single | errors |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    print("\n".join(lines))
    print()
    print(
        f"articles added during phase 3: {adds[0]} batches of {BATCH} "
        f"({len(adds[1])} refused or failed); batches seen in part by a search: "
        f"{len(adding.torn)}"
    )
    print(
        f"server memory (VmRSS): {started_rss:.0f} MB at start, {rss[0]:.0f} MB before the "
        f"soak, {rss[-1]:.0f} MB after it (max {max(rss):.0f} MB over {len(rss)} samples)"
    )
    for err in (errors + adds[1] + adding.torn)[:10]:
        print("  error:", err)
    shutil.rmtree(folder, ignore_errors=True)
    return 1 if errors or adds[1] or adding.torn else 0


if __name__ == "__main__":
    sys.exit(main())
