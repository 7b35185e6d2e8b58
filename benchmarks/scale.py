"""Dense search at scale: 10k -> 100k -> 1M passages, exact flat vs approximate indexes.

    python benchmarks/scale.py                      # 10k, 100k, 1M
    python benchmarks/scale.py --sizes 10000 100000 # only those
    python benchmarks/scale.py --encode-only        # just fill the vector cache
    python benchmarks/scale.py --index-load 100000  # load time and RSS of a whole qa.Index
    python benchmarks/scale.py --serve-child 1000000 ivf --backend onnx-int8
                                                    # re-measure one built index

Each (size, kind) is built in one process and saved under /tmp/semantic-qa-scale/,
then loaded and measured in a fresh one (RSS: what loading it added), one question
at a time on one thread. Encoder: torch (sentence-transformers) unless --backend.

How the 1M vectors are made (there is no 1M-passage corpus on this machine): every
SQuAD-dev paragraph and sentence (../shared/data/squad-dev/articles.jsonl) is encoded
with the packaged model (cached in /tmp/semantic-qa-scale/); those real vectors come
first, the rest are variations of them: normalize(a + w * b + s * g) with a, b two
random real vectors, w ~ U(0, 0.6) and g Gaussian noise (s = 0.35, i.e. cosine ~0.94
to the unperturbed mix). Queries are the real SQuAD-dev questions, encoded with the
same model; "exact" is brute-force inner product over all vectors.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from qa import vectors as vectors_mod
from qa.answers import sentence_bounds
from qa.evaluation import load_squad

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "squad-dev"
CACHE = Path("/tmp/semantic-qa-scale")


def real_vectors(data: Path = DATA) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(base vectors of SQuAD-dev paragraphs and sentences, question vectors, questions),
    encoded once with the packaged model and cached."""
    CACHE.mkdir(parents=True, exist_ok=True)
    base_file, query_file = CACHE / "base.npy", CACHE / "queries.npy"
    docs, questions = load_squad(data / "articles.jsonl", data / "questions.jsonl")
    texts = [q["question"] for q in questions]
    if base_file.exists() and query_file.exists():
        return np.load(base_file), np.load(query_file), texts
    from embeddings import load_encoder

    encoder = load_encoder(backend="torch")
    paragraphs = [d.text[s:e] for d in docs for s, e in d.metadata["paragraphs"]]
    sentences = [p[s:e] for p in paragraphs for s, e in sentence_bounds(p)]
    started = time.perf_counter()
    base = encoder.encode_documents(paragraphs + sentences, progress=True)
    queries = encoder.encode_queries(texts)
    log(
        f"encoded {len(base)} passages/sentences, {len(queries)} questions "
        f"in {time.perf_counter() - started:.0f} s"
    )
    np.save(base_file, base, allow_pickle=False)
    np.save(query_file, queries, allow_pickle=False)
    return base, queries, texts


def synthesize(base: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """`n` normalized vectors: the real ones first, then variations of them (see the
    module docstring), made in chunks so 1M x 384 float32 (1.5 GB) is the only copy."""
    out = np.empty((n, base.shape[1]), dtype=np.float32)
    real = min(n, len(base))
    out[:real] = base[:real]
    rng = np.random.default_rng(seed)
    for start in range(real, n, 100_000):
        m = min(100_000, n - start)
        a = base[rng.integers(0, len(base), m)]
        b = base[rng.integers(0, len(base), m)]
        w = rng.uniform(0.0, 0.6, (m, 1)).astype(np.float32)
        g = rng.standard_normal((m, base.shape[1]), dtype=np.float32)
        x = a + w * b + g * np.float32(0.35 / np.sqrt(base.shape[1]))
        out[start : start + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def truth_for(n: int, vectors: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Exact top-10 rows of each query (cached: brute force over 1M takes a while)."""
    file = CACHE / f"truth-{n}-{len(queries)}.npy"
    if file.exists():
        return np.load(file)
    started = time.perf_counter()
    truth = vectors_mod.exact_top(vectors, queries, 10)
    log(f"exact top-10 of {len(queries)} queries over {n}: {time.perf_counter() - started:.1f} s")
    np.save(file, truth, allow_pickle=False)
    return truth


def rss_mib() -> float:
    """Resident memory now (not the peak): what serving holds."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentiles(times: list[float]) -> tuple[float, float]:
    return float(np.percentile(times, 50)), float(np.percentile(times, 95))


def build_child(n: int, kind: str) -> dict:
    """Build one (size, kind) and save it to /tmp: the build half of a measurement."""
    base, _, _ = real_vectors()
    vectors = synthesize(base, n)
    params = vectors_mod.Params(flat_below=0, approximate="ivf" if kind == "flat" else kind)
    started = time.perf_counter()
    vi = vectors_mod.build(vectors, None, kind, params)
    build_s = time.perf_counter() - started
    vi.to_bytes().tofile(CACHE / f"index-{n}-{kind}.faiss")
    return {"build_s": build_s, "description": vi.describe()}


def serve_child(
    n: int, kind: str, questions: int, latency_questions: int, backend: str = "torch"
) -> dict:
    """Load a saved index in a fresh process and measure what serving it costs: RSS
    (this process's resident memory minus what it held before loading), recall of
    real questions, latency of one question at a time on one thread."""
    import faiss

    _, qvecs, texts = real_vectors()
    qvecs, texts = qvecs[:questions], texts[:questions]
    truth = np.load(CACHE / f"truth-{n}-{questions}.npy")
    built = json.loads((CACHE / f"built-{n}-{kind}.json").read_text())
    file = CACHE / f"index-{n}-{kind}.faiss"
    faiss.omp_set_num_threads(1)  # a server's query path (the threads trap)
    before = rss_mib()
    started = time.perf_counter()
    vi = vectors_mod.VectorIndex.from_bytes(np.fromfile(file, dtype=np.uint8), built["description"])
    load_s = time.perf_counter() - started
    search_ms = []
    for q in qvecs[:latency_questions]:
        started = time.perf_counter()
        vi.search(q[None, :], 10)
        search_ms.append((time.perf_counter() - started) * 1000)
    _, found = vi.search(qvecs, 10)
    recall = float(np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth, strict=True)]))
    serving = rss_mib() - before
    from embeddings import load_encoder

    encoder = load_encoder(backend=backend)
    encoder.encode_queries(["warm up"])
    encode_ms, e2e_ms = [], []
    for text in texts[:latency_questions]:
        started = time.perf_counter()
        vector = encoder.encode_queries([text])
        encoded = time.perf_counter()
        vi.search(vector, 10)
        e2e_ms.append((time.perf_counter() - started) * 1000)
        encode_ms.append((encoded - started) * 1000)
    own = built["description"]["recall_at_10"]
    return {
        "n": n,
        "kind": kind,
        "build_s": built["build_s"],
        "tune_s": own["seconds"] if own else 0.0,
        "params": {**built["description"]["build_params"], **built["description"]["search_params"]},
        "disk_mib": file.stat().st_size / 2**20,
        "load_s": load_s,
        "rss_mib": serving,
        "search_ms": percentiles(search_ms),
        "encode_ms": percentiles(encode_ms),
        "e2e_ms": percentiles(e2e_ms),
        "recall_self": own["value"] if own else 1.0,
        "recall_questions": recall,
        "load_average": os.getloadavg()[0],
        "backend": backend,
    }


def index_load_child(n: int) -> dict:
    """A whole saved `qa.Index` of `n` passages (real SQuAD-dev paragraph texts, each
    used n / 2067 times over, with the synthetic vectors; no sentence vectors): how
    long `load_index` takes and what it holds in memory, in a fresh process."""
    import shutil

    import qa
    from embeddings import load_encoder
    from qa.store import DocumentInfo

    base, _, _ = real_vectors()
    docs, _ = load_squad(DATA / "articles.jsonl", DATA / "questions.jsonl")
    paragraphs = [(d.id, s, e, d.text[s:e]) for d in docs for s, e in d.metadata["paragraphs"]]
    passages = [
        qa.Passage(
            f"p{i}", *paragraphs[i % len(paragraphs)][:3], paragraphs[i % len(paragraphs)][3]
        )
        for i in range(n)
    ]
    documents = {d.id: DocumentInfo(d.id, d.title, d.source, d.sha256) for d in docs}
    encoder = load_encoder(backend="torch")
    path = CACHE / f"qa-index-{n}"
    shutil.rmtree(path, ignore_errors=True)
    started = time.perf_counter()
    index = qa.Index(encoder, passages, synthesize(base, n), documents, qa.SplitSettings())
    derive_s = time.perf_counter() - started
    index.save(path)
    del index, passages
    import gc

    gc.collect()
    before = rss_mib()
    started = time.perf_counter()
    loaded = qa.load_index(path, model=encoder)
    load_s = time.perf_counter() - started
    rss = rss_mib() - before
    _, _, texts = real_vectors()
    loaded.search(texts[0], k=5, mode="dense")
    dense_ms = []
    for text in texts[:200]:
        started = time.perf_counter()
        loaded.search(text, k=5, mode="dense")
        dense_ms.append((time.perf_counter() - started) * 1000)
    return {
        "n": n,
        "kind": loaded.vector_index.kind,
        "dense_search_ms": percentiles(dense_ms),
        "build_s": derive_s,
        "load_s": load_s,
        "rss_mib": rss,
        "vectors_mib": loaded.vectors.nbytes / 2**20,
        "disk_mib": sum(f.stat().st_size for f in path.iterdir()) / 2**20,
    }


def run_child(*args: str) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, *args], check=True, stdout=subprocess.PIPE, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--encode-only", action="store_true")
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--kinds", nargs="+", default=["flat", *vectors_mod.APPROXIMATE])
    ap.add_argument("--hnsw-max", type=int, default=1_000_000, help="skip hnsw above this size")
    ap.add_argument("--questions", type=int, default=1000, help="real questions for recall")
    ap.add_argument("--latency-questions", type=int, default=300)
    ap.add_argument("--index-load-child", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--build-child", nargs=2, metavar=("N", "KIND"), help=argparse.SUPPRESS)
    ap.add_argument("--serve-child", nargs=2, metavar=("N", "KIND"), help=argparse.SUPPRESS)
    ap.add_argument("--results", type=Path, default=CACHE / "results.jsonl")
    ap.add_argument("--backend", default="torch", help="query encoder: torch or onnx-int8")
    ap.add_argument(
        "--index-load", type=int, nargs="+", metavar="N", help="time loading a whole qa.Index"
    )
    args = ap.parse_args()
    if args.index_load_child:
        print(json.dumps(index_load_child(args.index_load_child)))
        return 0
    if args.build_child:
        print(json.dumps(build_child(int(args.build_child[0]), args.build_child[1])))
        return 0
    if args.serve_child:
        n, kind = int(args.serve_child[0]), args.serve_child[1]
        row = serve_child(n, kind, args.questions, args.latency_questions, args.backend)
        print(json.dumps(row))
        return 0
    if args.index_load:
        for n in args.index_load:
            log(f"qa.Index of {n} passages: {run_child('--index-load-child', str(n))}")
        return 0
    base, queries, _ = real_vectors()
    log(f"{len(base)} real passage/sentence vectors, {len(queries)} question vectors")
    if args.encode_only:
        return 0
    rows = []
    for n in args.sizes:
        truth_for(n, synthesize(base, n), queries[: args.questions])
        for kind in args.kinds:
            if kind == "hnsw" and n > args.hnsw_max:
                continue
            log(f"{n} {kind} ...")
            started = time.perf_counter()
            built = run_child("--build-child", str(n), kind)
            (CACHE / f"built-{n}-{kind}.json").write_text(json.dumps(built))
            row = run_child(
                "--serve-child", str(n), kind,
                "--questions", str(args.questions),
                "--latency-questions", str(args.latency_questions),
                "--backend", args.backend,
            )  # fmt: skip
            log(f"  done in {time.perf_counter() - started:.0f} s: {row}")
            with args.results.open("a") as f:
                f.write(json.dumps(row) + "\n")
            rows.append(row)
    print(table(rows))
    return 0


def table(rows: list[dict]) -> str:
    lines = [
        "| passages | index | build s (tune s) | parameters | on disk MiB | load s | RSS MiB "
        "| search p50/p95 ms | encode p50 ms | question e2e p50/p95 ms | recall@10 self-measured "
        "| recall@10 questions |",
        "|---:|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        params = ", ".join(f"{k}={v}" for k, v in r["params"].items()) or "-"
        lines.append(
            f"| {r['n']:,} | {r['kind']} | {r['build_s']:.1f} ({r['tune_s']:.1f}) | {params} "
            f"| {r['disk_mib']:.0f} | {r['load_s']:.2f} | {r['rss_mib']:.0f} "
            f"| {r['search_ms'][0]:.2f} / {r['search_ms'][1]:.2f} | {r['encode_ms'][0]:.1f} "
            f"| {r['e2e_ms'][0]:.1f} / {r['e2e_ms'][1]:.1f} "
            f"| {r['recall_self']:.3f} | {r['recall_questions']:.3f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
