"""Passage retrieval on SQuAD-dev: the project's splitter vs the original paragraphs.

    python benchmarks/squad.py                       # default settings vs baselines
    python benchmarks/squad.py --sweep               # passage size / overlap ablation
    python benchmarks/squad.py --run-file run.jsonl  # also write the default run, for
                                                     # ../shared/tools/squad_bench.py score

Prints a Markdown table: Recall@1/5/20, MRR@10, nDCG@10, mean passage length, indexing
passages/s. Query vectors are encoded once and shared by all rows; single-question
latency (encoding + dense search, as `Index.search(mode="dense")` does it) is measured on
the default row.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from embeddings import load_encoder
from qa import Index, Passage, SplitSettings, split_document
from qa.evaluation import load_squad, metrics, run_file_rows
from qa.store import DocumentInfo

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "squad-dev"


def build(encoder, docs, passages: list[Passage]) -> tuple[Index, float]:
    started = time.perf_counter()
    vectors = encoder.encode_documents([p.text for p in passages], progress=False)
    seconds = time.perf_counter() - started
    infos = {d.id: DocumentInfo(d.id, d.title, d.source, d.sha256) for d in docs}
    return Index(encoder, passages, vectors, infos, SplitSettings()), seconds


def paragraphs(docs) -> list[Passage]:
    return [
        Passage(f"{d.id}#{i}", d.id, s, e, d.text[s:e])
        for d in docs
        for i, (s, e) in enumerate(d.metadata["paragraphs"])
    ]


def word_windows(docs, size: int = 128) -> list[Passage]:
    out = []
    for d in docs:
        words = [m.span() for m in re.finditer(r"\S+", d.text)]
        for i in range(0, len(words), size):
            s, e = words[i][0], words[min(i + size, len(words)) - 1][1]
            out.append(Passage(f"{d.id}@{s}", d.id, s, e, d.text[s:e]))
    return out


def evaluate(name: str, index: Index, seconds: float, qvecs, questions) -> dict:
    hits = index.search_vectors(qvecs, 20)
    run = {q["id"]: h for q, h in zip(questions, hits, strict=True)}
    m = metrics(run, questions)
    m["name"] = name
    m["passages"] = len(index)
    m["chars"] = statistics.mean(len(p.text) for p in index.passages)
    m["max_chars"] = max(len(p.text) for p in index.passages)
    m["passages/s"] = len(index) / seconds
    m["run"] = run
    return m


def latency(index: Index, questions, n: int) -> tuple[float, float]:
    times = []
    for q in questions[:n]:
        started = time.perf_counter()
        index.search(q["question"], k=20, mode="dense")
        times.append((time.perf_counter() - started) * 1000)
    return float(np.percentile(times, 50)), float(np.percentile(times, 95))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--sweep", action="store_true", help="passage size / overlap ablation")
    ap.add_argument("--latency-questions", type=int, default=300)
    ap.add_argument("--run-file", type=Path, help="write the default run here (JSONL)")
    args = ap.parse_args()

    docs, questions = load_squad(args.data / "articles.jsonl", args.data / "questions.jsonl")
    encoder = load_encoder()
    started = time.perf_counter()
    qvecs = encoder.encode_queries([q["question"] for q in questions])
    print(
        f"encoded {len(questions)} questions in {time.perf_counter() - started:.1f} s",
        file=sys.stderr,
    )

    rows = []
    base_index, secs = build(encoder, docs, paragraphs(docs))
    rows.append(evaluate("baseline: original SQuAD paragraphs", base_index, secs, qvecs, questions))
    rows.append(
        evaluate(
            "baseline: 128-word windows",
            *build(encoder, docs, word_windows(docs)),
            qvecs,
            questions,
        )
    )

    configs = [SplitSettings()]
    if args.sweep:
        configs += [
            SplitSettings(target_tokens=t, overlap_tokens=o)
            for t in (128, 160, 192, 254)
            for o in (0, 32)
            if (t, o) != (SplitSettings().target_tokens, SplitSettings().overlap_tokens)
        ]
    default_index = None
    for cfg in configs:
        started = time.perf_counter()
        passages = [p for d in docs for p in split_document(d, encoder, cfg)]
        split_secs = time.perf_counter() - started
        index, secs = build(encoder, docs, passages)
        label = f"splitter target={cfg.target_tokens} overlap={cfg.overlap_tokens}"
        if cfg == SplitSettings():
            label += " (default)"
            default_index = index
        rows.append(evaluate(label, index, secs + split_secs, qvecs, questions))
        print(f"done: {label}", file=sys.stderr)

    assert default_index is not None
    p50, p95 = latency(default_index, questions, args.latency_questions)
    p50b, p95b = latency(base_index, questions, args.latency_questions)

    print(
        f"\nSQuAD-dev ({len(docs)} articles, {len(questions)} questions), model {encoder.name}, "
        f"{os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d')}\n"
    )
    print(
        "| passages | R@1 | R@5 | R@20 | MRR@10 | nDCG@10 | count | mean chars | max chars | index passages/s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['name']} | {r['R@1']:.3f} | {r['R@5']:.3f} | {r['R@20']:.3f} | {r['MRR@10']:.3f} | "
            f"{r['nDCG@10']:.3f} | {r['passages']} | {r['chars']:.0f} | {r['max_chars']} | {r['passages/s']:.1f} |"
        )
    print(
        f"\nsingle-question latency (encode + search, k=20, {args.latency_questions} questions): "
        f"default p50 {p50:.1f} ms, p95 {p95:.1f} ms; paragraphs p50 {p50b:.1f} ms, p95 {p95b:.1f} ms"
    )

    if args.run_file:
        default_row = next(r for r in rows if r["name"].endswith("(default)"))
        with open(args.run_file, "w", encoding="utf-8") as f:
            for row in run_file_rows(default_row["run"]):
                f.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
