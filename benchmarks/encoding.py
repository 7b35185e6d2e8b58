"""Encoding speed: torch (sentence-transformers, the baseline) vs ONNX Runtime fp32 and
int8, measured in the same run; and one-question latency, quiet and under load.

    python benchmarks/encoding.py                          # ~15 minutes on 2 busy CPUs
    python benchmarks/encoding.py --passages 200 --rounds 1  # a quick look
    python benchmarks/encoding.py --sweep                  # onnx-int8 batch tokens x threads
    python benchmarks/encoding.py --device cuda --only torch  # torch on a GPU

Passages: the project's splitter (default settings) over ../shared/data/squad-dev, a
fixed sample (seed 0). Each round encodes the sample once with every encoder, in a
rotating order, so all of them see the same mix of machine load; the table gives the
median round. Cosine: each vector against the torch vector of the same passage.
Latency: 200 squad-dev questions encoded one at a time, p50/p95 in ms, first with the
machine as it is, then with 2 busy-loop processes added. The "threads trap" rows run a
question on the encoder's 2-thread pool, as torch does by default.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import multiprocessing
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from embeddings import DEFAULT_MODEL, SentenceTransformerEncoder
from embeddings.onnx import OnnxEncoder
from qa.evaluation import load_squad
from qa.passages import SplitSettings, split_document

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "squad-dev"


def sample_passages(encoder: SentenceTransformerEncoder, n: int) -> list[str]:
    docs, _ = load_squad(DATA / "articles.jsonl", DATA / "questions.jsonl")
    texts = [p.text for d in docs for p in split_document(d, encoder, SplitSettings())]
    return random.Random(0).sample(texts, min(n, len(texts)))


def sample_questions(n: int) -> list[str]:
    _, questions = load_squad(DATA / "articles.jsonl", DATA / "questions.jsonl")
    return [q["question"] for q in random.Random(0).sample(questions, n)]


def timed(encode: Callable[[list[str]], np.ndarray], texts: list[str]) -> tuple[float, np.ndarray]:
    started = time.perf_counter()
    vectors = encode(texts)
    return len(texts) / (time.perf_counter() - started), vectors


def latency(encode: Callable[[list[str]], object], questions: Sequence[str]) -> tuple[float, float]:
    for q in questions[:10]:
        encode([q])
    times = []
    for q in questions:
        started = time.perf_counter()
        encode([q])
        times.append((time.perf_counter() - started) * 1000)
    p50, p95 = np.percentile(times, [50, 95])
    return float(p50), float(p95)


def _spin() -> None:
    while True:
        pass


@contextlib.contextmanager
def busy(processes: int) -> Iterator[None]:
    """`processes` pure-Python busy loops for the duration."""
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_spin, daemon=True) for _ in range(processes)]
    for p in procs:
        p.start()
    time.sleep(1.0)
    try:
        yield
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.join()


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor()
    return next(
        (line.split(":", 1)[1].strip() for line in out.splitlines() if "Model name" in line),
        platform.processor(),
    )


def speed_table(
    encoders: dict[str, Callable[[list[str]], np.ndarray]], texts: list[str], rounds: int
) -> None:
    speeds: dict[str, list[float]] = {name: [] for name in encoders}
    vectors: dict[str, np.ndarray] = {}
    names = list(encoders)
    for name in names:  # warm-up: first calls allocate and pick kernels
        encoders[name](texts[:16])
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            speed, vectors[name] = timed(encoders[name], texts)
            speeds[name].append(speed)
            print(
                f"round {r + 1} {name}: {speed:.1f} passages/s (load {load()})",
                file=sys.stderr,
                flush=True,
            )
    base = statistics.median(speeds[names[0]])
    print(
        f"\n| encoder | passages/s (median of {rounds}) | all rounds | x {names[0]} | cosine to torch mean / min |"
    )
    print("|---|---|---|---|---|")
    ref = vectors.get("torch")
    for name in names:
        median = statistics.median(speeds[name])
        cells = ", ".join(f"{s:.1f}" for s in speeds[name])
        cos = ""
        if ref is not None and name != "torch" and ref.shape == vectors[name].shape:
            c = (ref * vectors[name]).sum(axis=1)
            cos = f"{c.mean():.4f} / {c.min():.4f}"
        print(f"| {name} | {median:.1f} | {cells} | {median / base:.2f} | {cos} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--passages", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--questions", type=int, default=200)
    ap.add_argument("--device", default="cpu", help="torch device (cpu, cuda)")
    ap.add_argument("--only", choices=["torch"], help="only the torch encoder (e.g. on a GPU)")
    ap.add_argument("--batch-size", type=int, nargs="*", default=None, help="torch batch sizes")
    ap.add_argument("--sweep", action="store_true", help="onnx-int8 batch tokens x threads")
    ap.add_argument("--fp32", action="store_true", help="also onnx-fp32 (about torch's speed)")
    ap.add_argument("--no-latency", action="store_true")
    ap.add_argument("--save-texts", type=Path, help="write the passages (JSON) and stop")
    args = ap.parse_args()

    print(
        f"{cpu_model()}, {os.cpu_count()} CPUs, {datetime.date.today()}, load at start {load()}",
        file=sys.stderr,
    )
    torch_enc = SentenceTransformerEncoder(DEFAULT_MODEL, device=args.device)
    texts = sample_passages(torch_enc, args.passages)
    if args.save_texts:
        args.save_texts.write_text(json.dumps(texts, ensure_ascii=False), encoding="utf-8")
        return 0
    print(
        f"{len(texts)} passages, {sum(torch_enc.count_tokens(texts)) / len(texts):.0f} tokens on average",
        file=sys.stderr,
    )

    if args.only == "torch":
        encoders: dict[str, Callable[[list[str]], np.ndarray]] = {}
        for bs in args.batch_size or [64]:
            torch_enc.batch_size = bs
            encoders[f"torch {args.device} batch {bs}"] = _with_batch(torch_enc, bs)
        speed_table(encoders, texts, args.rounds)
        return 0

    int8 = OnnxEncoder(DEFAULT_MODEL, quantized=True)
    if args.sweep:
        encoders = {"torch": torch_enc.encode_documents}
        for threads in (1, 2):
            for tokens in (512, 1024, 2048, 4096):
                enc = OnnxEncoder(DEFAULT_MODEL, threads=threads, batch_tokens=tokens)
                encoders[f"onnx-int8 threads {threads} batch {tokens} tokens"] = (
                    enc.encode_documents
                )
        speed_table(encoders, texts, args.rounds)
        return 0

    encoders = {"torch": torch_enc.encode_documents, "onnx-int8": int8.encode_documents}
    if args.fp32:
        encoders["onnx-fp32"] = OnnxEncoder(DEFAULT_MODEL, quantized=False).encode_documents
    speed_table(encoders, texts, args.rounds)
    if args.no_latency:
        return 0

    trap = OnnxEncoder(DEFAULT_MODEL, quantized=True, run_threads=int8.threads)
    rows: dict[str, Callable[[list[str]], object]] = {
        "torch (1 thread per question)": torch_enc.encode_queries,
        "torch, 2 threads (the trap)": lambda q: torch_enc.model.encode_query(
            q, normalize_embeddings=True
        ),
        "onnx-int8 (1 thread per question)": int8.encode_queries,
        f"onnx-int8, {trap.threads} threads (the trap)": trap.encode_queries,
    }
    questions = sample_questions(args.questions)
    quiet = {}
    print(f"latency, machine as it is (load {load()})", file=sys.stderr, flush=True)
    for name, encode in rows.items():
        quiet[name] = latency(encode, questions)
    with busy(2):
        print(f"latency, 2 busy loops added (load {load()})", file=sys.stderr, flush=True)
        loaded = {name: latency(encode, questions) for name, encode in rows.items()}
    print("\n| one question | p50 ms | p95 ms | p50 ms, 2 busy loops | p95 ms, 2 busy loops |")
    print("|---|---|---|---|---|")
    for name in rows:
        print(
            f"| {name} | {quiet[name][0]:.1f} | {quiet[name][1]:.1f} | {loaded[name][0]:.1f} | {loaded[name][1]:.1f} |"
        )
    return 0


def _with_batch(
    encoder: SentenceTransformerEncoder, batch_size: int
) -> Callable[[list[str]], np.ndarray]:
    def encode(texts: list[str]) -> np.ndarray:
        encoder.batch_size = batch_size
        return encoder.encode_documents(texts, progress=False)

    return encode


if __name__ == "__main__":
    sys.exit(main())
