"""In-process FAISS vs a Milvus server on the same passages, measured in one run.

    unshare -n sh -c 'ip link set lo up && exec .venv/bin/python benchmarks/milvus.py'
    unshare -n sh -c 'ip link set lo up && exec .venv/bin/python benchmarks/milvus.py \\
        --passages 20000'                                  # a smaller point, for the trend

The Milvus server (``milvus-server`` of the PyPI package ``milvus==2.3.5``, started as
the tests start it: tests/milvus_server.py) listens on every interface, so this script
only runs inside a private network namespace (root: ``unshare -n``).

Passages: `--passages` synthetic vectors made by benchmarks/scale.py's `synthesize`
(real SQuAD-dev paragraph and sentence vectors first, then noisy mixtures of them),
each with a passage row whose text is the SQuAD-dev paragraph or sentence its vector
is mainly made of, so Milvus stores fields of realistic size. Vectors are computed
before anything is timed: ingestion is indexing only (encoding: BENCHMARKS.md,
"Encoding"). Queries: real SQuAD-dev question vectors, k = 10; recall@10 is against
exact inner product over all vectors.

Measured for each store, in this order, with nothing else of this script running:

- FAISS flat, ivf (what ``auto`` builds from 20,000 passages) and hnsw, through
  `qa.vectors`: built in a child process and saved (build s, file size), then loaded
  in a fresh one (RSS it added, plus the RSS of the passage rows as Python objects,
  which a `qa.Index` also holds), one question at a time, then 4 client threads.
- The Milvus server: `qa.milvus.MilvusStore` (HNSW, its default parameters) fed in
  batches; ingestion = insert + flush + index built; then release and load; server RSS
  (the server's processes, from /proc) over the empty server's; disk = its data
  folder; one client, 4 client threads sharing one client. Then, on the same
  collection, its index swapped for IVF_SQ8 and for FLAT (index build time, RSS,
  latency, recall).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.util
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
# Python puts this script's folder first on the path, where this file would shadow the
# `milvus` package (the server) that tests/milvus_server.py imports: take it off
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "benchmarks"]
sys.path.insert(0, str(ROOT))


def _load_scale() -> Any:
    """benchmarks/scale.py, whose vectors, texts and FAISS build this benchmark reuses."""
    spec = importlib.util.spec_from_file_location("scale", ROOT / "benchmarks" / "scale.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


scale = _load_scale()

from qa import vectors as vectors_mod  # noqa: E402

CACHE = scale.CACHE
BINARIES = Path("/tmp/semantic-qa-milvus/bin-cache")
FAISS_KINDS = ("flat", "ivf", "hnsw")
K = 10
COLLECTION = "bench_passages"
MODEL = "all-MiniLM-L6-v2"
INSERT_CHUNK = 10_000  # passages per MilvusStore.add call (it batches 1,000 per insert)
TARGET = vectors_mod.TARGET_RECALL + 0.015  # the margin qa.vectors tunes to

Search = Callable[[np.ndarray], Any]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def percentiles(times: list[float]) -> tuple[float, float]:
    return float(np.percentile(times, 50)), float(np.percentile(times, 95))


def single(search: Search, queries: np.ndarray, count: int) -> tuple[float, float]:
    """p50/p95 ms of `count` questions asked one at a time (after 5 to warm up)."""
    for q in queries[:5]:
        search(q[None, :])
    times = []
    for q in queries[:count]:
        started = time.perf_counter()
        search(q[None, :])
        times.append((time.perf_counter() - started) * 1000)
    return percentiles(times)


def concurrent(
    search: Search,
    queries: np.ndarray,
    clients: int,
    each: int,
    limit_s: float,
    setup: Callable[[], Any] | None = None,
) -> dict[str, Any]:
    """`clients` threads each asking `each` questions one at a time (different ones),
    all started together, each stopping early after `limit_s`: questions/s over the
    wall time and p50/p95 ms of every question. `setup` runs first in each thread."""
    times: list[list[float]] = [[] for _ in range(clients)]
    start = threading.Barrier(clients + 1)

    def client(c: int) -> None:
        mine = queries[(c * each) % len(queries) :][:each]
        if setup is not None:
            setup()
        start.wait()
        began = time.perf_counter()
        for q in mine:
            t = time.perf_counter()
            search(q[None, :])
            times[c].append((time.perf_counter() - t) * 1000)
            if time.perf_counter() - began > limit_s:
                break

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    start.wait()
    began = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - began
    every = [x for ts in times for x in ts]
    return {"qps": len(every) / wall, "ms": percentiles(every), "asked": len(every)}


def recall(found: Any, truth: np.ndarray) -> float:
    """Mean recall@10 of `found` (per question: keys, or (key, score) pairs)."""
    keys = [{h[0] if isinstance(h, tuple) else int(h) for h in f} for f in found]
    return float(np.mean([len(f & set(t.tolist())) / K for f, t in zip(keys, truth, strict=True)]))


def rss_mib(pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (the server's wrapper and the milvus binary it runs)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], list(children.get(pid, []))
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def server_rss_mib() -> float:
    total = 0.0
    for p in descendants(os.getpid()):
        with contextlib.suppress(OSError):  # a thread of it may just have ended
            total += rss_mib(p)
    return total


def folder_mib(path: Path, skip: tuple[str, ...] = ()) -> float:
    total = 0
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames[:] = [d for d in dirnames if d not in skip]
        for name in filenames:
            file = Path(dirpath) / name
            if not file.is_symlink():
                total += file.stat().st_size
    return total / 2**20


def disk_parts(path: Path) -> dict[str, float]:
    """MiB under each folder two levels below `path` (what the server keeps where)."""
    parts = {}
    for top in sorted(path.iterdir()):
        if top.is_dir() and not top.is_symlink() and top.name not in ("bin", "logs"):
            for sub in sorted(top.iterdir()):
                if sub.is_dir():
                    parts[f"{top.name}/{sub.name}"] = round(folder_mib(sub), 1)
    return parts


def passage_rows(n: int, sources: np.ndarray) -> list[Any]:
    """One `qa.milvus.Row` per passage: the SQuAD-dev text its vector is mainly made
    of, past the real ones with 15% of its words dropped at random (as scale.py's
    hybrid benchmark does), so every row holds its own text like a real index's."""
    from qa.milvus import Row

    texts = scale.base_texts()
    rng = np.random.default_rng(1)
    rows = []
    for i, s in enumerate(sources.tolist()):
        text = texts[s]
        if i >= len(texts):
            words = text.split()
            text = " ".join(
                w for w, keep in zip(words, rng.random(len(words)) >= 0.15, strict=True) if keep
            )
        rows.append(
            Row(f"p{i}", f"s{s}", 0, len(text), text, f"text {s}", "squad", {"part": s % 7})
        )
    return rows


def data(n: int, questions: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(vectors, sources, question vectors, exact top-10 rows of each question)."""
    base, queries, _ = scale.real_vectors()
    sources = np.empty(n, dtype=np.int64)
    vectors = scale.synthesize(base, n, sources=sources)
    queries = queries[:questions]
    return vectors, sources, queries, scale.truth_for(n, vectors, queries)


# --- FAISS, in child processes -------------------------------------------------------


def faiss_build_child(n: int, kind: str) -> dict[str, Any]:
    """Build and save one FAISS index (scale.py's build: same vectors, ids 0..n-1,
    `qa.vectors` tuning its search parameter on pseudo-queries)."""
    built = scale.build_child(n, kind)
    (CACHE / f"built-{n}-{kind}.json").write_text(json.dumps(built))
    return built


def faiss_serve_child(n: int, kind: str, args: argparse.Namespace) -> dict[str, Any]:
    """Load one saved index in this fresh process and measure serving it."""
    import faiss

    built = json.loads((CACHE / f"built-{n}-{kind}.json").read_text())
    file = CACHE / f"index-{n}-{kind}.faiss"
    before = rss_mib()  # first: nothing freed yet whose memory loading could reuse
    started = time.perf_counter()
    vi = vectors_mod.VectorIndex.from_bytes(np.fromfile(file, dtype=np.uint8), built["description"])
    load_s = time.perf_counter() - started
    index_rss = rss_mib() - before
    vectors, sources, queries, truth = data(n, args.questions)
    del vectors  # only the saved index is served
    gc.collect()
    before = rss_mib()
    rows = passage_rows(n, sources)
    rows_rss = rss_mib() - before

    def project(q: np.ndarray) -> Any:
        return vi.search(q, K)

    one = single(project, queries, args.latency_questions)
    four = concurrent(project, queries, 4, args.each, args.limit_s)
    # the same 4 threads calling FAISS directly: qa.vectors runs one query on one
    # OpenMP thread under a process-wide lock, which makes concurrent searches take
    # turns. OpenMP's thread count is per thread: each client sets its own to 1.
    vi._apply_search_params()
    direct = concurrent(
        lambda q: vi.faiss_index.search(q, K),
        queries,
        4,
        args.each,
        args.limit_s,
        setup=lambda: faiss.omp_set_num_threads(1),
    )
    _, found = vi.search(queries, K)
    own = built["description"]["recall_at_10"]
    del rows
    return {
        "store": "faiss",
        "index": kind,
        "params": {**built["description"]["build_params"], **built["description"]["search_params"]},
        "n": n,
        "ingest_s": built["build_s"],
        "tune_s": own["seconds"] if own else 0.0,
        "disk_mib": file.stat().st_size / 2**20,
        "load_s": load_s,
        "memory_mib": index_rss,
        "rows_mib": rows_rss,
        "one_ms": one,
        "four": four,
        "four_direct": direct,
        "recall": recall(found, truth),
        "load_average": os.getloadavg()[0],
    }


def run_child(*args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, *args], check=True, stdout=subprocess.PIPE, text=True
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


# --- Milvus ---------------------------------------------------------------------------


def wait_indexed(client: Any, n: int, limit_s: float = 3600) -> float:
    """Seconds until the collection's vector index covers all `n` rows."""
    started = time.perf_counter()
    name = client.list_indexes(COLLECTION)[0]
    while time.perf_counter() - started < limit_s:
        info = client.describe_index(COLLECTION, name)
        if int(info.get("indexed_rows", 0)) >= n and int(info.get("pending_index_rows", 0)) == 0:
            return time.perf_counter() - started
        time.sleep(0.5)
    raise RuntimeError(f"Milvus index not built after {limit_s:.0f} s: {info}")


def reload(client: Any) -> float:
    """Release and load the collection (as after a restart): seconds to load."""
    client.release_collection(COLLECTION)
    started = time.perf_counter()
    client.load_collection(COLLECTION)
    return time.perf_counter() - started


def swap_index(client: Any, index_type: str, params: dict[str, Any], n: int) -> float:
    """Replace the collection's vector index; seconds to build the new one."""
    client.release_collection(COLLECTION)
    client.drop_index(COLLECTION, client.list_indexes(COLLECTION)[0])
    index = client.prepare_index_params()
    index.add_index("vector", index_type=index_type, metric_type="IP", params=params)
    started = time.perf_counter()
    client.create_index(COLLECTION, index)
    return time.perf_counter() - started + wait_indexed(client, n)


def raw_search(client: Any, params: dict[str, Any], consistency: str) -> Search:
    """A search through the client itself (`MilvusStore.search` knows HNSW and FLAT
    parameters only, and always reads with Strong consistency)."""

    def search(q: np.ndarray) -> list[list[int]]:
        found = client.search(
            COLLECTION,
            data=[v.tolist() for v in q],
            limit=K,
            output_fields=["id"],
            search_params={"metric_type": "IP", "params": params},
            anns_field="vector",
            consistency_level=consistency,
        )
        return [[int(h["id"]) for h in hits] for hits in found]

    return search


def measure_milvus(
    label: str,
    consistency: str,
    search: Search,
    queries: np.ndarray,
    truth: np.ndarray,
    args: argparse.Namespace,
    common: dict[str, Any],
) -> dict[str, Any]:
    one = single(search, queries, args.latency_questions)
    four = concurrent(search, queries, 4, args.each, args.limit_s)
    found = [f for start in range(0, len(queries), 100) for f in search(queries[start:][:100])]
    row = {
        **common,
        "index": label,
        "reads": consistency,
        "one_ms": one,
        "four": four,
        "recall": recall(found, truth),
        "memory_mib": server_rss_mib() - common["empty_rss_mib"],
        "load_average": os.getloadavg()[0],
    }
    log(f"  {label}: {json.dumps(row)}")
    return row


def milvus_rows(n: int, args: argparse.Namespace) -> list[dict[str, Any]]:
    from qa.milvus import MilvusStore
    from tests.milvus_server import milvus_server, unpack

    vectors, sources, queries, truth = data(n, args.questions)
    rows = passage_rows(n, sources)
    keys = np.arange(n, dtype=np.int64)
    out: list[dict[str, Any]] = []
    folder = tempfile.mkdtemp(prefix="semantic-qa-milvus-")
    try:
        with milvus_server(Path(folder) / "data", unpack(BINARIES)) as uri:
            time.sleep(5)  # let the fresh server settle before its baseline RSS
            empty = server_rss_mib()
            store = MilvusStore.open(uri, COLLECTION, model=MODEL, dimension=384)
            client = store.client
            started = time.perf_counter()
            for at in range(0, n, INSERT_CHUNK):
                end = min(n, at + INSERT_CHUNK)
                store.add(keys[at:end], vectors[at:end], rows[at:end], progress=False)
            insert_s = time.perf_counter() - started
            log(f"  inserted {n} in {insert_s:.1f} s")
            started = time.perf_counter()
            client.flush(COLLECTION)
            flush_s = time.perf_counter() - started
            index_s = flush_s + wait_indexed(client, n)
            log(f"  flushed and indexed in {index_s:.1f} s")
            load_s = reload(client)
            assert store.count() == n, store.count()
            segments = client.list_persistent_segments(COLLECTION)
            log(f"  segments: {segments}")
            common = {
                "store": "milvus",
                "n": n,
                "insert_s": insert_s,
                "empty_rss_mib": empty,
                "segments": len(segments),
                "server": client.get_server_version(),
            }
            disk = folder_mib(Path(folder) / "data", skip=("bin", "logs"))
            parts = disk_parts(Path(folder) / "data")
            hnsw = {
                **common,
                "ingest_s": insert_s + index_s,
                "index_s": index_s,
                "load_s": load_s,
                "disk_mib": disk,
                "disk_parts": parts,
                "index_mib": parts.get("data/index_files", 0.0),
                "params": {
                    "M": store.params.m,
                    "efConstruction": store.params.ef_construction,
                    "ef": store.params.ef,
                },
            }

            def strong(q: np.ndarray) -> Any:
                return store.search(q, K)

            def with_rows(q: np.ndarray) -> Any:
                found = store.search(q, K)
                return store.rows([key for key, _ in found[0]])

            log(f"  disk: {parts}")
            row = measure_milvus("HNSW", "Strong", strong, queries, truth, args, hnsw)
            row["one_rows_ms"] = single(with_rows, queries, args.latency_questions)
            out.append(row)
            # what a search costs without waiting for Strong consistency's time tick
            bounded = raw_search(client, {"ef": store.params.ef}, "Bounded")
            out.append(measure_milvus("HNSW", "Bounded", bounded, queries, truth, args, hnsw))
            if not args.skip_other_indexes:
                out.extend(other_indexes(client, n, queries, truth, args, common, folder))
            store.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return out


def swapped(
    common: dict[str, Any],
    data_folder: Path,
    index_files: float,
    index_s: float,
    load_s: float,
) -> tuple[dict[str, Any], float]:
    """The facts of a collection whose index was just swapped, and the MiB of index
    files now on disk. The dropped index's files stay until the server's garbage
    collection: the new index's are what the folder grew by."""
    parts = disk_parts(data_folder)
    log(f"  disk: {parts}")
    now = parts.get("data/index_files", 0.0)
    facts = {
        **common,
        "ingest_s": common["insert_s"] + index_s,
        "index_s": index_s,
        "load_s": load_s,
        "disk_mib": folder_mib(data_folder, skip=("bin", "logs")),
        "disk_parts": parts,
        "index_mib": now - index_files,
    }
    return facts, now


def other_indexes(
    client: Any,
    n: int,
    queries: np.ndarray,
    truth: np.ndarray,
    args: argparse.Namespace,
    common: dict[str, Any],
    folder: str,
) -> list[dict[str, Any]]:
    """IVF_SQ8 (nprobe tuned like qa.vectors tunes FAISS's, on the questions
    themselves: an upper bound on what tuning would pick) and FLAT, on the same
    collection."""
    out = []
    nlist = 1024
    data_folder = Path(folder) / "data"
    index_files = disk_parts(data_folder).get("data/index_files", 0.0)
    index_s = swap_index(client, "IVF_SQ8", {"nlist": nlist}, n)
    load_s = reload(client)
    nprobe = 8
    while nprobe < nlist:
        search = raw_search(client, {"nprobe": nprobe}, "Bounded")
        got = recall(
            [f for s in range(0, len(queries), 100) for f in search(queries[s:][:100])], truth
        )
        log(f"  IVF_SQ8 nprobe {nprobe}: recall@10 {got:.3f}")
        if got >= TARGET:
            break
        nprobe *= 2
    sq8, index_files = swapped(common, data_folder, index_files, index_s, load_s)
    sq8["params"] = {"nlist": nlist, "nprobe": nprobe}
    search = raw_search(client, {"nprobe": nprobe}, "Bounded")
    out.append(measure_milvus("IVF_SQ8", "Bounded", search, queries, truth, args, sq8))
    index_s = swap_index(client, "FLAT", {}, n)
    load_s = reload(client)
    flat, _ = swapped(common, data_folder, index_files, index_s, load_s)
    flat["params"] = {}
    search = raw_search(client, {}, "Bounded")
    out.append(measure_milvus("FLAT", "Bounded", search, queries, truth, args, flat))
    return out


# --- the table ------------------------------------------------------------------------


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| store | index | reads | parameters | ingest s | passages/s | on disk MiB | memory MiB "
        "| 1 client p50 / p95 ms | 4 clients q/s | 4 clients p50 / p95 ms | recall@10 |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        params = ", ".join(f"{k}={v}" for k, v in r["params"].items()) or "-"
        disk = f"{r['disk_mib']:.0f}"
        if "index_mib" in r:
            disk += f" (index {r['index_mib']:.0f})"
        memory = f"{r['memory_mib']:.0f}"
        if "rows_mib" in r:
            memory += f" (+{r['rows_mib']:.0f} rows)"
        lines.append(
            f"| {r['store']} | {r['index']} | {r.get('reads', 'in process')} | {params} "
            f"| {r['ingest_s']:.1f} "
            f"| {r['n'] / r['ingest_s']:,.0f} | {disk} | {memory} "
            f"| {r['one_ms'][0]:.2f} / {r['one_ms'][1]:.2f} | {r['four']['qps']:.0f} "
            f"| {r['four']['ms'][0]:.2f} / {r['four']['ms'][1]:.2f} | {r['recall']:.3f} |"
        )
    return "\n".join(lines)


def details(rows: list[dict[str, Any]]) -> str:
    lines = []
    for r in rows:
        if r["store"] == "faiss":
            d = r["four_direct"]
            lines.append(
                f"faiss {r['index']}: load {r['load_s']:.2f} s, tuning {r['tune_s']:.1f} s of "
                f"the build; 4 threads calling FAISS directly: {d['qps']:.0f} q/s, "
                f"p50/p95 {d['ms'][0]:.2f} / {d['ms'][1]:.2f} ms; load avg {r['load_average']:.1f}"
            )
        else:
            extra = ""
            if "one_rows_ms" in r:
                extra = (
                    f"; MilvusStore.search + rows() of the 10 hits, p50/p95 "
                    f"{r['one_rows_ms'][0]:.2f} / {r['one_rows_ms'][1]:.2f} ms"
                )
            lines.append(
                f"milvus {r['index']} {r['reads']}: insert {r['insert_s']:.1f} s + index "
                f"{r['index_s']:.1f} s, load {r['load_s']:.1f} s, {r['segments']} segments, "
                f"empty server RSS {r['empty_rss_mib']:.0f} MiB, disk MiB "
                f"{r['disk_parts']}{extra}; "
                f"load avg {r['load_average']:.1f}"
            )
    return "\n".join(lines)


def versions() -> str:
    import faiss
    import pymilvus

    return (
        f"python {platform.python_version()}, faiss {faiss.__version__}, "
        f"pymilvus {pymilvus.__version__}, milvus server 2.3.5 (PyPI milvus)"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--passages", type=int, default=200_000)
    ap.add_argument("--questions", type=int, default=1000, help="real questions for recall")
    ap.add_argument("--latency-questions", type=int, default=300, help="one client")
    ap.add_argument("--each", type=int, default=150, help="questions per client of 4")
    ap.add_argument("--limit-s", type=float, default=60.0, help="per client of 4, at most")
    ap.add_argument("--kinds", nargs="+", default=list(FAISS_KINDS))
    ap.add_argument("--skip-milvus", action="store_true")
    ap.add_argument("--skip-other-indexes", action="store_true", help="Milvus HNSW only")
    ap.add_argument("--results", type=Path, default=CACHE / "milvus-results.jsonl")
    ap.add_argument("--build-child", nargs=2, metavar=("N", "KIND"), help=argparse.SUPPRESS)
    ap.add_argument("--serve-child", nargs=2, metavar=("N", "KIND"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.build_child:
        print(json.dumps(faiss_build_child(int(args.build_child[0]), args.build_child[1])))
        return 0
    if args.serve_child:
        n, kind = int(args.serve_child[0]), args.serve_child[1]
        print(json.dumps(faiss_serve_child(n, kind, args)))
        return 0
    if not args.skip_milvus:
        from tests.milvus_server import private_network

        if not private_network():  # say so now, not after the FAISS half
            log(
                "the Milvus server listens on every interface: run this inside a private "
                "network namespace: unshare -n sh -c 'ip link set lo up && exec "
                ".venv/bin/python benchmarks/milvus.py' (or --skip-milvus)"
            )
            return 2
    n = args.passages
    started_at = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    log(f"{n} passages; {versions()}; load average {os.getloadavg()}")
    data(n, args.questions)  # vectors and exact answers cached before anything is timed
    child_args = ["--questions", str(args.questions), "--latency-questions"]
    child_args += [str(args.latency_questions), "--each", str(args.each)]
    child_args += ["--limit-s", str(args.limit_s)]
    rows: list[dict[str, Any]] = []
    for kind in args.kinds:
        log(f"faiss {kind} ...")
        run_child("--build-child", str(n), kind)
        rows.append(run_child("--serve-child", str(n), kind, *child_args))
        log(f"  {json.dumps(rows[-1])}")
    if not args.skip_milvus:
        log("milvus ...")
        rows.extend(milvus_rows(n, args))
    with args.results.open("a") as f:
        for row in rows:
            f.write(json.dumps({**row, "date": started_at}) + "\n")
    print(f"{n:,} passages, {started_at}, {versions()}")
    print(table(rows))
    print(details(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
