"""Dense search at scale: 10k -> 100k -> 1M passages, exact flat vs approximate indexes.

    python benchmarks/scale.py                      # 10k, 100k, 1M
    python benchmarks/scale.py --sizes 10000 100000 # only those
    python benchmarks/scale.py --encode-only        # just fill the vector cache
    python benchmarks/scale.py --index-load 100000  # load time and RSS of a whole qa.Index
    python benchmarks/scale.py --serve-child 1000000 ivf --backend onnx-int8
                                                    # re-measure one built index
    python benchmarks/scale.py --storage 10000 100000 1000000 --baseline /tmp/v3
                                                    # save/load/RSS of whole saved indexes,
                                                    # this code vs the code in /tmp/v3
                                                    # (git worktree add /tmp/v3 COMMIT)

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
from dataclasses import replace
from pathlib import Path

import numpy as np

# SCALE_CODE: the checkout whose qa to measure (--storage's baseline), default this one
sys.path.insert(0, os.environ.get("SCALE_CODE") or str(Path(__file__).resolve().parent.parent))

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


def synthesize(
    base: np.ndarray, n: int, seed: int = 0, sources: np.ndarray | None = None
) -> np.ndarray:
    """`n` normalized vectors: the real ones first, then variations of them (see the
    module docstring), made in chunks so 1M x 384 float32 (1.5 GB) is the only copy.
    `sources`: filled with the real vector each one is mainly made of (`a`)."""
    out = np.empty((n, base.shape[1]), dtype=np.float32)
    real = min(n, len(base))
    out[:real] = base[:real]
    if sources is not None:
        sources[:real] = np.arange(real)
    rng = np.random.default_rng(seed)
    for start in range(real, n, 100_000):
        m = min(100_000, n - start)
        drawn = rng.integers(0, len(base), m)
        if sources is not None:
            sources[start : start + m] = drawn
        a = base[drawn]
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


def rss_mib(field: str = "VmRSS") -> float:
    """Resident memory now (not the peak): what serving holds. `field`: VmRSS (all),
    RssAnon (the process's own memory) or RssFile (mapped files' pages it touched)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
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


def base_texts(data: Path = DATA) -> list[str]:
    """The texts of `real_vectors`' base vectors, in the same order."""
    docs, _ = load_squad(data / "articles.jsonl", data / "questions.jsonl")
    paragraphs = [d.text[s:e] for d in docs for s, e in d.metadata["paragraphs"]]
    return paragraphs + [p[s:e] for p in paragraphs for s, e in sentence_bounds(p)]


def synthetic_index(n: int, encoder: object, sentences: bool = False) -> object:
    """A whole `qa.Index` of `n` passages for hybrid search at scale: the vectors of
    `synthesize`, each passage's text the SQuAD-dev paragraph or sentence its vector
    is mainly made of with 15% of its words dropped at random (so texts vary like
    the vectors do and BM25 has realistic postings), the saved IVF index of
    `build_child`, BM25 over the texts (cached), no sentence vectors (5M of them would
    not fit next to the other jobs here) unless `sentences`: then as many per passage as
    its source text has sentences (1.66 on average), each a copy of the passage's
    vector (what is stored matters here, not what it means)."""
    import bm25s

    import qa
    from qa.lexical import LexicalIndex, tokenize
    from qa.store import DocumentInfo

    base, _, _ = real_vectors()
    texts = base_texts()
    assert len(texts) == len(base)
    sources = np.empty(n, dtype=np.int64)
    vectors = synthesize(base, n, sources=sources)
    words = [t.split() for t in texts]
    tokens_of = [[tokenize(w) for w in ws] for ws in words]
    keep = np.random.default_rng(1).random(sum(len(words[s]) for s in sources)) >= 0.15
    passages, corpus, at = [], [], 0
    started = time.perf_counter()
    for row, src in enumerate(sources.tolist()):
        ws, ts, m = words[src], tokens_of[src], keep[at : at + len(words[src])].tolist()
        at += len(ws)
        if row < len(base):
            m = [True] * len(ws)  # the real texts stay whole
        text = " ".join(w for w, k in zip(ws, m, strict=True) if k)
        passages.append(qa.Passage(f"p{row}", f"s{src}", 0, len(text), text))
        corpus.append([t for tt, k in zip(ts, m, strict=True) if k for t in tt])
    log(f"{n} texts in {time.perf_counter() - started:.0f} s")
    bm25_dir = CACHE / f"bm25-{n}"
    started = time.perf_counter()
    if (bm25_dir / "params.index.json").exists():
        bm25 = bm25s.BM25.load(bm25_dir, allow_pickle=False, show_progress=False)
    else:
        bm25 = bm25s.BM25(k1=1.2, b=0.75, method="lucene")
        bm25.index(corpus, show_progress=False)
        bm25.save(bm25_dir, show_progress=False)
    log(f"BM25 over {n} in {time.perf_counter() - started:.0f} s")
    del corpus
    documents = {
        f"s{i}": DocumentInfo(f"s{i}", f"text {i}", "squad", "0" * 64) for i in range(len(texts))
    }
    file, described = CACHE / f"index-{n}-ivf.faiss", CACHE / f"built-{n}-ivf.json"
    if not file.exists():  # the dense rows' build: same vectors, same parameters
        (CACHE / f"built-{n}-ivf.json").write_text(json.dumps(build_child(n, "ivf")))
    built = json.loads(described.read_text())
    vi = vectors_mod.VectorIndex.from_bytes(np.fromfile(file, dtype=np.uint8), built["description"])
    started = time.perf_counter()
    sentence_vectors = counts = None
    if sentences:
        counts = np.asarray([len(sentence_bounds(t)) for t in texts], dtype=np.int64)[sources]
        sentence_vectors = vectors[np.repeat(np.arange(n), counts)]
    index = qa.Index(
        encoder, passages, vectors, documents, qa.SplitSettings(),
        lexical=LexicalIndex(bm25, n), index_kind="ivf", vector_index=vi,
        sentence_vectors=sentence_vectors, sentence_counts=counts,
    )  # fmt: skip
    log(f"qa.Index over {n} in {time.perf_counter() - started:.0f} s")
    return index


def storage_save_child(n: int) -> dict:
    """Build the synthetic `n`-passage index (with sentence vectors) in memory and
    save it with the code under measurement (SCALE_CODE): the save half of --storage."""
    import qa
    from embeddings import load_encoder

    path = CACHE / f"storage-{n}-{_code_name()}"
    index = synthetic_index(n, load_encoder(backend="onnx-int8"), sentences=True)
    import shutil

    shutil.rmtree(path, ignore_errors=True)
    started = time.perf_counter()
    index.save(path)
    save_s = time.perf_counter() - started
    manifest = json.loads((path / "manifest.json").read_text())
    return {
        "n": n,
        "format": manifest["format_version"],
        "save_s": save_s,
        "disk_mib": sum(f.stat().st_size for f in path.iterdir()) / 2**20,
        "sentences": manifest["sentences"],
        "code": qa.__file__,
    }


def storage_load_child(n: int, questions: int) -> dict:
    """In a fresh process: load the index `storage_save_child` saved (the encoder
    loaded first, so the RSS growth is the index's), then answer `questions` hybrid
    questions one at a time (RSS while serving), then check every file's checksum as
    `semantic-qa verify` does (v4) or as every v3 load did."""
    import faiss

    import qa
    from embeddings import load_encoder
    from qa import store

    faiss.omp_set_num_threads(1)
    path = CACHE / f"storage-{n}-{_code_name()}"
    encoder = load_encoder(backend="onnx-int8")
    _, _, texts = real_vectors()
    encoder.encode_queries(texts[:2])
    import gc

    gc.collect()
    before = {f: rss_mib(f) for f in ("VmRSS", "RssAnon", "RssFile")}
    started = time.perf_counter()
    index = qa.load_index(path, model=encoder, cache=False)
    load_s = time.perf_counter() - started
    loaded = {f: rss_mib(f) - before[f] for f in before}
    times = []
    for text in texts[:questions]:
        started = time.perf_counter()
        index.search(text, k=5)
        times.append((time.perf_counter() - started) * 1000)
    serving = {f: rss_mib(f) - before[f] for f in before}
    vector_bytes = index.vectors.nbytes + (
        0 if index.sentence_vectors is None else index.sentence_vectors.nbytes
    )
    started = time.perf_counter()
    if hasattr(store, "check_files"):
        problems = store.check_files(path)
        assert not problems, problems
    checksum_s = time.perf_counter() - started
    return {
        "n": n,
        "load_s": load_s,
        "rss_loaded_mib": loaded,
        "rss_serving_mib": serving,
        "hybrid_ms": percentiles(times),
        "questions": questions,
        "passage_vectors_mib": index.vectors.nbytes / 2**20,
        "vector_mib": vector_bytes / 2**20,
        "checksum_all_s": checksum_s,
        "load_average": os.getloadavg()[0],
    }


def _code_name() -> str:
    return os.environ.get("SCALE_NAME", "current")


def storage_rows(
    sizes: list[int], baseline: Path | None, questions: int, code: Path | None = None
) -> str:
    """--storage: each size saved and loaded by the baseline code and by this code (or
    the checkout `code`), in that order, one process each (the saved index is deleted
    after its row)."""
    import shutil

    lines = [
        "| passages | code (format) | save s | on disk MiB | load s | RSS after load MiB "
        "(anon + file) | RSS after N questions MiB (anon + file) | vectors MiB (passage + "
        "sentence) | RSS / vectors | hybrid p50 / p95 ms | checksum every file s | load avg |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n in sizes:
        for name, checkout in [("baseline", baseline), ("current", code)]:
            if name == "baseline" and checkout is None:
                continue
            env = {**os.environ, "SCALE_NAME": name}
            if checkout is not None:
                env["SCALE_CODE"] = str(checkout)
            saved = run_child("--storage-save-child", str(n), env=env)
            log(f"{n} {name}: saved {saved}")
            row = run_child("--storage-load-child", str(n), "--questions", str(questions), env=env)
            log(f"{n} {name}: loaded {row}")
            shutil.rmtree(CACHE / f"storage-{n}-{name}", ignore_errors=True)
            with (CACHE / "storage.jsonl").open("a") as f:
                f.write(json.dumps({"saved": saved, "loaded": row}) + "\n")
            a, s = row["rss_loaded_mib"], row["rss_serving_mib"]
            lines.append(
                f"| {n:,} | {name} (v{saved['format']}) | {saved['save_s']:.1f} "
                f"| {saved['disk_mib']:,.0f} | {row['load_s']:.2f} "
                f"| {a['VmRSS']:,.0f} ({a['RssAnon']:,.0f} + {a['RssFile']:,.0f}) "
                f"| {s['VmRSS']:,.0f} ({s['RssAnon']:,.0f} + {s['RssFile']:,.0f}) "
                f"| {row['vector_mib']:,.0f} ({row['passage_vectors_mib']:,.0f} + "
                f"{row['vector_mib'] - row['passage_vectors_mib']:,.0f}) "
                f"| {s['VmRSS'] / row['vector_mib']:.2f} "
                f"| {row['hybrid_ms'][0]:.1f} / {row['hybrid_ms'][1]:.1f} "
                f"| {row['checksum_all_s']:.1f} | {row['load_average']:.1f} |"
            )
            log(lines[-1])
    return "\n".join(lines)


def hybrid_child(n: int, latency_questions: int, backends: str, exact_questions: int) -> dict:
    """One question at a time, one thread, through `Index.search` (encoding
    included): dense, lexical and hybrid over the synthetic `n`-passage index, and,
    as the baseline, hybrid scoring of every passage (the path below the flat
    threshold) on a few questions. `backends`: query encoders, comma-separated (the
    vectors are the torch ones; int8 query vectors are close enough to time)."""
    import faiss

    from embeddings import load_encoder
    from qa import ranking
    from qa.fusion import fuse

    faiss.omp_set_num_threads(1)
    names = backends.split(",")
    index = synthetic_index(n, load_encoder(backend=names[0]))
    _, _, texts = real_vectors()
    row: dict = {"n": n, "kind": index.vector_index.kind, "by_encoder": {}}
    for name in names:
        encoder = index.encoder = load_encoder(backend=name)
        index.search(texts[0], k=5)
        got: dict = {"encoder": encoder.name}
        for mode in ("dense", "hybrid", "lexical"):
            times = []
            for text in texts[:latency_questions]:
                started = time.perf_counter()
                index.search(text, k=5, mode=mode)
                times.append((time.perf_counter() - started) * 1000)
            got[mode] = percentiles(times)
            log(f"{name} {mode}: {got[mode]}")
        encode, scored, exact, same = [], [], [], 0
        for text in texts[:exact_questions]:
            started = time.perf_counter()
            vector = encoder.encode_queries([text])[0]
            encode.append((time.perf_counter() - started) * 1000)
            scored.append(len(ranking.candidates(index, text, vector, 5, "hybrid", None).rows))
            started = time.perf_counter()
            sentences = index.best_sentences(None, vector)
            scores = fuse(index.vectors @ vector, index.lexical.scores(text), sentences)
            top = ranking.top(scores, 5)[:5]
            exact.append((time.perf_counter() - started) * 1000 + encode[-1])
            same += f"p{top[0]}" == index.search(text, k=1)[0].id
        got["encode"] = percentiles(encode)
        got["hybrid_all"] = percentiles(exact)
        got["scored"] = float(np.mean(scored))
        got["same_first"] = same / max(1, len(exact))
        got["load_average"] = os.getloadavg()[0]
        log(json.dumps(got))
        row["by_encoder"][name] = got
    return row


def hybrid_quality(data: Path = DATA, k: int = 10) -> str:
    """SQuAD-dev (1,183 passages, below the flat threshold) searched in hybrid mode by
    scoring every passage (the exact path) and through the candidate path that an
    approximate vector index takes (IVF over the same vectors, only the union of its
    nearest and BM25's best scored), with several candidate counts; dense rows show
    what the IVF alone changes. One index, questions encoded once, same run."""
    import qa
    from embeddings import load_encoder
    from qa import ranking
    from qa.evaluation import metrics

    docs, questions = load_squad(data / "articles.jsonl", data / "questions.jsonl")
    encoder = load_encoder()
    exact = qa.build_index(docs, model=encoder, cache=True)
    ivf = qa.Index(
        encoder, exact.passages, exact.vectors, exact.documents, exact.settings,
        sentence_vectors=exact.sentence_vectors, index_kind="ivf",
        sentence_counts=exact._sentence_counts,
    )  # fmt: skip
    texts = [q["question"] for q in questions]
    file = CACHE / f"squad-questions-{encoder.name.replace('/', '_')}.npy"
    if file.exists():
        vectors = np.load(file)
    else:
        started = time.perf_counter()
        vectors = encoder.encode_queries(texts)
        log(f"encoded {len(texts)} questions in {time.perf_counter() - started:.0f} s")
        np.save(file, vectors, allow_pickle=False)
    lines = [
        f"SQuAD-dev: {len(exact)} passages, {len(texts)} questions, encoder {encoder.name}, "
        f"k={k}, IVF {ivf.vector_index.describe()['build_params']} "
        f"{ivf.vector_index.describe()['search_params']}",
        "| mode | scored | candidates per side | R@1 | R@5 | MRR@10 | mean scored | "
        "same top-10 as exact |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    baseline: dict[str, list] = {}
    rows = [("dense", exact, None), ("dense", ivf, None), ("hybrid", exact, None)]
    rows += [("hybrid", ivf, c) for c in (100, 200, 400)]
    for mode, index, c in rows:
        scored: list[int] = []
        real = ranking._hybrid_candidates
        if c is not None:
            index.ranking = replace(index.ranking, candidates=c)
            ranking._hybrid_candidates = lambda i, q, v, kk, real=real, scored=scored: (  # type: ignore[assignment]
                scored.append(len((out := real(i, q, v, kk)).rows)) or out
            )
        hits = index.search_batch(texts, k, mode=mode, vectors=vectors, ranker="fusion")
        ranking._hybrid_candidates = real
        ids = [[h.id for h in hh] for hh in hits]
        baseline.setdefault(mode, ids)
        same = np.mean([a == b for a, b in zip(ids, baseline[mode], strict=True)])
        m = metrics({q["id"]: h for q, h in zip(questions, hits, strict=True)}, questions)
        lines.append(
            f"| {mode} | {'all (flat)' if index is exact else 'ivf'} "
            f"| {'-' if c is None else max(c, 10 * k + 10)} "
            f"| {m['R@1']:.4f} | {m['R@5']:.4f} | {m['MRR@10']:.4f} "
            f"| {np.mean(scored) if scored else len(exact):.0f} | {same:.3f} |"
        )
        log(lines[-1])
    return "\n".join(lines)


def run_child(*args: str, env: dict[str, str] | None = None) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, *args], check=True, stdout=subprocess.PIPE, text=True, env=env
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
    ap.add_argument(
        "--hybrid-quality", action="store_true", help="SQuAD-dev: candidate path vs exact"
    )
    ap.add_argument(
        "--hybrid", type=int, nargs="+", metavar="N", help="hybrid vs dense through qa.Index"
    )
    ap.add_argument("--exact-questions", type=int, default=20, help="for hybrid over all")
    ap.add_argument(
        "--storage", type=int, nargs="+", metavar="N", help="save/load/RSS of saved indexes"
    )
    ap.add_argument("--baseline", type=Path, help="--storage: a checkout to measure first")
    ap.add_argument("--code", type=Path, help="--storage: the checkout to measure (default: this)")
    ap.add_argument("--storage-save-child", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--storage-load-child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.storage:
        print(storage_rows(args.storage, args.baseline, args.latency_questions, args.code))
        return 0
    if args.storage_save_child:
        print(json.dumps(storage_save_child(args.storage_save_child)))
        return 0
    if args.storage_load_child:
        print(json.dumps(storage_load_child(args.storage_load_child, args.questions)))
        return 0
    if args.hybrid:
        for n in args.hybrid:
            row = hybrid_child(n, args.latency_questions, args.backend, args.exact_questions)
            log(json.dumps(row))
            with args.results.open("a") as f:
                f.write(json.dumps({"hybrid": row}) + "\n")
        return 0
    if args.hybrid_quality:
        print(hybrid_quality())
        return 0
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
