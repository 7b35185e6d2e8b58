"""The web form's "no good match" threshold, chosen by measurement on SQuAD-dev.

    python benchmarks/no_match.py            # ONNX int8 (the default) and torch
    python benchmarks/no_match.py --encoders torch --splits 20

Unanswerable questions are made the honest way: index only half of the articles and
ask every question; a question whose article is not in the index cannot be answered
by it. The form says "the articles do not seem to answer this" when the best score is
below the threshold, so "flagged" = best score < threshold and a flagged question is
correct when its article is missing. Precision: flagged questions that really were
unanswerable; recall: unanswerable questions that were flagged. "answered hidden":
answerable questions whose top passage does contain the answer, yet were flagged.

The threshold is chosen on one half-split and reported on the swapped split, then
checked over `--splits` random half-splits. Criterion: the best F0.5 of flagging, i.e.
precision counts twice as much as recall: telling a user "the articles do not seem to
answer this" when they do is worse than showing weak passages without the warning.

Each encoder (`--encoders`, default the ONNX int8 one new indexes use and torch, which
older indexes keep) gets its own table and choice, in the same run; the value the form
uses for each is `embeddings.models.NO_MATCH_BELOW`, printed beside the choice.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from embeddings import load_encoder
from embeddings.models import no_match_threshold
from qa import Index, SplitSettings, split_document
from qa.evaluation import is_hit, load_squad
from qa.store import DocumentInfo

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "squad-dev"
GRID = [round(t, 2) for t in np.arange(0.10, 0.61, 0.01)]


def fold(encoder, docs, passages, vectors, qvecs, questions, kept: set[str]) -> list[tuple]:
    """(best score, answerable, top hit correct) per question, over an index of `kept`."""
    rows = [i for i, p in enumerate(passages) if p.doc_id in kept]
    infos = {d.id: DocumentInfo(d.id, d.title, d.source, d.sha256) for d in docs if d.id in kept}
    index = Index(encoder, [passages[i] for i in rows], vectors[rows], infos, SplitSettings())
    out = []
    for q, hits in zip(questions, index.search_vectors(qvecs, 1), strict=True):
        answerable = q["article_id"] in kept
        out.append((hits[0].score, answerable, answerable and is_hit(hits[0], q)))
    return out


def rates(results: list[tuple], threshold: float) -> dict[str, float]:
    flagged = [(s < threshold, answerable, correct) for s, answerable, correct in results]
    tp = sum(f and not a for f, a, _ in flagged)
    fp = sum(f and a for f, a, _ in flagged)
    fn = sum(not f and not a for f, a, _ in flagged)
    correct = sum(c for _, _, c in flagged)
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    return {
        "threshold": threshold,
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "f0.5": 1.25 * precision * recall / (0.25 * precision + recall) if recall else 0.0,
        "answerable flagged": fp / max(1, sum(a for _, a, _ in flagged)),
        "answered hidden": sum(f and c for f, _, c in flagged) / max(1, correct),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--splits", type=int, default=10, help="random half-splits to check on")
    ap.add_argument(
        "--encoders",
        default="onnx-int8,torch",
        help="comma-separated backends to measure, each on its own (default: %(default)s)",
    )
    args = ap.parse_args()

    docs, questions = load_squad(args.data / "articles.jsonl", args.data / "questions.jsonl")
    chosen = {}
    for backend in args.encoders.split(","):
        chosen[backend] = measure(load_encoder(backend=backend), docs, questions, args.splits)
    print("\n| encoder | chosen here | the form uses |")
    print("|---|---|---|")
    for name, threshold in chosen.values():
        print(f"| {name} | {threshold:.2f} | {no_match_threshold(name):.2f} |")
    return 0


def measure(encoder, docs, questions, splits: int) -> tuple[str, float]:
    """Print the threshold table of one encoder; (its name, the chosen threshold)."""
    started = time.perf_counter()
    passages = [p for d in docs for p in split_document(d, encoder, SplitSettings())]
    vectors = encoder.encode_documents([p.text for p in passages], progress=False)
    qvecs = encoder.encode_queries([q["question"] for q in questions])
    print(f"{encoder.name}: encoded in {time.perf_counter() - started:.0f} s", file=sys.stderr)

    ids = [d.id for d in docs]
    even, odd = set(ids[0::2]), set(ids[1::2])
    tune = fold(encoder, docs, passages, vectors, qvecs, questions, even)
    test = fold(encoder, docs, passages, vectors, qvecs, questions, odd)
    best = max((rates(tune, t) for t in GRID), key=lambda r: r["f0.5"])
    chosen = best["threshold"]

    print(
        f"\nSQuAD-dev ({len(docs)} articles, {len(questions)} questions; each split indexes "
        f"half the articles), encoder {encoder.name}, default passages, {os.cpu_count()} CPUs, "
        f"{time.strftime('%Y-%m-%d')}\n"
    )
    print(
        "| closeness below | precision | recall | F1 | F0.5 | answerable flagged "
        "| answered hidden |"
    )
    print("|---|---|---|---|---|---|---|")
    for t in sorted(set(GRID[::5]) | {chosen, no_match_threshold(encoder.name)}):
        r = rates(test, t)
        mark = " **(chosen)**" if t == chosen else ""
        print(
            f"| {t:.2f}{mark} | {r['precision']:.3f} | {r['recall']:.3f} | {r['f1']:.3f} | "
            f"{r['f0.5']:.3f} | {r['answerable flagged']:.3f} | {r['answered hidden']:.3f} |"
        )
    print(
        f"\nchosen on the even-numbered articles (F0.5 {best['f0.5']:.3f}), table measured on "
        f"the odd-numbered ones: threshold {chosen:.2f}"
    )

    rng = random.Random(0)
    folds = [
        fold(
            encoder, docs, passages, vectors, qvecs, questions, set(rng.sample(ids, len(ids) // 2))
        )
        for _ in range(splits)
    ]
    for threshold in sorted({chosen, no_match_threshold(encoder.name)}):
        checks = [rates(results, threshold) for results in folds]
        for key in ("precision", "recall", "answerable flagged", "answered hidden"):
            values = [c[key] for c in checks]
            print(
                f"at {threshold:.2f}, {splits} random half-splits, {key}: mean "
                f"{statistics.mean(values):.3f}, min {min(values):.3f}, max {max(values):.3f}"
            )
    return encoder.name, chosen


if __name__ == "__main__":
    sys.exit(main())
