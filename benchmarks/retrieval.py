"""Retrieval quality on SQuAD-dev: each search mode and the ablations behind the defaults.

    python benchmarks/retrieval.py                  # full squad-dev (about 10 minutes)
    python benchmarks/retrieval.py --articles 4     # a quick look

One index is built with the project's own splitter and settings (sentence vectors
included); the questions are encoded once and shared by every row. Rows:

- modes: dense, lexical (BM25), hybrid by reciprocal rank fusion, hybrid by score
  fusion without and with the best-sentence signal (the default);
- fusion weight: the dense share of score fusion;
- answer sentence: how often the sentence marked in the first hit holds the answer.

Prints Markdown tables (Recall@1/5/20, MRR@10, nDCG@10, answer-sentence rate,
single-question latency p50/p95, encoding included) for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from embeddings import load_encoder
from qa import Index, build_index
from qa.evaluation import answer_sentence_rate, latency, load_squad, metrics, peak_memory_mib

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "squad-dev"
KEYS = ("R@1", "R@5", "R@20", "MRR@10", "nDCG@10")


def row(name: str, index: Index, mode: str, questions, texts, vectors, lat: bool) -> str:
    hits = index.search_batch(texts, 20, mode=mode, vectors=vectors)
    run = {q["id"]: h for q, h in zip(questions, hits, strict=True)}
    m = metrics(run, questions)
    cells = [f"{m[k]:.3f}" for k in KEYS] + [f"{answer_sentence_rate(run, questions):.3f}"]
    if lat:
        t = latency(index, texts[:200], 20, mode)
        cells += [f"{t['p50']:.1f}", f"{t['p95']:.1f}"]
    else:
        cells += ["", ""]
    print(f"done: {name}", file=sys.stderr, flush=True)
    return f"| {name} | " + " | ".join(cells) + " |"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--articles", type=int, default=None, help="only the first N articles")
    args = ap.parse_args()

    docs, questions = load_squad(args.data / "articles.jsonl", args.data / "questions.jsonl")
    if args.articles:
        docs = docs[: args.articles]
        ids = {d.id for d in docs}
        questions = [q for q in questions if q["article_id"] in ids]
    encoder = load_encoder()
    started = time.perf_counter()
    index = build_index(docs, model=encoder, sentences=False)
    passage_secs = time.perf_counter() - started
    started = time.perf_counter()
    full = build_index(docs, model=encoder)
    full_secs = time.perf_counter() - started
    texts = [q["question"] for q in questions]
    vectors = encoder.encode_queries(texts)

    head = (
        "| {} | R@1 | R@5 | R@20 | MRR@10 | nDCG@10 | answer sentence | p50 ms | p95 ms |\n"
        "|---|---|---|---|---|---|---|---|---|"
    )
    print(
        f"\nSQuAD-dev: {len(docs)} articles, {len(questions)} questions, {len(full)} passages "
        f"(max {max(len(p.text) for p in full.passages)} chars), model {encoder.name}, "
        f"{os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d')}\n"
    )
    print(head.format("mode"))
    print(row("dense", full, "dense", questions, texts, vectors, True))
    print(row("lexical (BM25)", full, "lexical", questions, texts, vectors, True))
    index.ranking = replace(index.ranking, ranker="fusion", fusion="rrf")
    print(row("hybrid, reciprocal rank fusion", index, "hybrid", questions, texts, vectors, False))
    index.ranking = replace(index.ranking, fusion="score")
    print(row("hybrid, score fusion", index, "hybrid", questions, texts, vectors, True))
    full.ranking = replace(full.ranking, ranker="fusion", fusion="rrf")
    print(row("hybrid + best sentence, RRF", full, "hybrid", questions, texts, vectors, False))
    full.ranking = replace(full.ranking, fusion="score")
    print(
        row(
            "**hybrid + best sentence, score fusion (default)**",
            full,
            "hybrid",
            questions,
            texts,
            vectors,
            True,
        )
    )

    print("\n" + head.format("dense share of score fusion"))
    for weight in (0.3, 0.4, 0.5, 0.6, 0.7):
        full.ranking = replace(full.ranking, weight=weight)
        index.ranking = replace(index.ranking, weight=weight)
        print(
            row(f"{weight} (passage + sentence)", full, "hybrid", questions, texts, vectors, False)
        )
        print(row(f"{weight} (passage only)", index, "hybrid", questions, texts, vectors, False))
    print(
        f"\nindexing: {len(index) / passage_secs:.1f} passages/s without sentence vectors, "
        f"{len(full) / full_secs:.1f} with; peak memory {peak_memory_mib():.0f} MiB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
