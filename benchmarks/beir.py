"""A second domain: any BEIR-format collection (SciFact, NFCorpus, ...), each search
mode side by side, document-level metrics as BEIR reports them.

    python benchmarks/beir.py DATASET_DIR            # e.g. scifact/ (corpus.jsonl, queries.jsonl,
                                                     # qrels/test.tsv): ~10 min for SciFact here
    python benchmarks/beir.py DATASET_DIR --split dev --queries 100
    python benchmarks/beir.py ../shared/data/arguana --ignore-identical-ids   # ArguAna

The BEIR hosts cannot be reached from this machine; ArguAna is in ../shared/data
(a rebuild in BEIR's layout, its README says how to score it). Elsewhere,
`beir.util.download_and_unzip(".../BEIR/datasets/scifact.zip", "data")` gives a folder.

Each corpus row ({"_id", "title", "text"}) becomes a Document whose text is the title
and the abstract (as BEIR's BM25 baselines index them), split by the project's own
splitter and settings into passages. A question's passages are turned into a ranking
of documents by each document's best passage (its first appearance; documents listed
in a hit's `also_in` hold the same text and take the same place). Metrics over the
documents, as pytrec_eval computes BEIR's: nDCG@10 with the qrels' graded gains,
Recall@10/100 (share of the relevant documents retrieved) and MRR@10. Modes: hybrid
with the learned ranker (the default), hybrid with the fixed fusion, lexical (BM25) and
dense. `--ignore-identical-ids` drops a document whose id is the query's own, as BEIR
does for ArguAna (each query is also a corpus document). A query longer than a
question may be (`qa.query.MAX_QUESTION_CHARS`, ArguAna has some) is cut there: the
model reads about its first 250 words anyway.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import random
import re
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from qa import Document, Hit, build_index
from qa.evaluation import variant
from qa.query import MAX_QUESTION_CHARS

MODES = ("hybrid", "hybrid-fusion", "lexical", "dense")
# Control characters a question may not hold (ArguAna has U+0097 from a mis-decoded
# dash): a space instead, as a user's pasted text would be cleaned.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
KEYS = ("nDCG@10", "R@10", "R@100", "MRR@10")
# Passages fetched per question; documents are fewer (several passages per abstract).
DEPTH = 200


def load_beir(
    folder: str | Path, split: str = "test"
) -> tuple[list[Document], dict[str, str], dict[str, dict[str, int]]]:
    """(documents, {query id: text}, {query id: {doc id: grade}}) of a BEIR folder;
    only the queries judged in `qrels/{split}.tsv`."""
    folder = Path(folder)
    docs = []
    with open(folder / "corpus.jsonl", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                row = json.loads(line)
                title, body = row.get("title", "") or "", row.get("text", "") or ""
                text = f"{title}\n\n{body}" if title and body else title or body
                if text.strip():
                    docs.append(Document(str(row["_id"]), text, title, str(folder)))
    qrels: dict[str, dict[str, int]] = {}
    with open(folder / "qrels" / f"{split}.tsv", encoding="utf-8", newline="") as f:
        for rec in csv.DictReader(f, delimiter="\t"):
            qrels.setdefault(rec["query-id"], {})[rec["corpus-id"]] = int(rec["score"])
    queries = {}
    with open(folder / "queries.jsonl", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                row = json.loads(line)
                if str(row["_id"]) in qrels:
                    queries[str(row["_id"])] = row["text"]
    return docs, queries, {q: qrels[q] for q in queries}


def doc_ranking(hits: Sequence[Hit], drop: str | None = None) -> list[str]:
    """Document ids in order of their best passage (without `drop`)."""
    ranking: dict[str, None] = {}
    for h in hits:
        for doc_id in (h.doc_id, *h.also_in):
            if doc_id != drop:
                ranking.setdefault(doc_id, None)
    return list(ranking)


def doc_metrics(
    run: Mapping[str, Sequence[str]], qrels: Mapping[str, Mapping[str, int]]
) -> dict[str, float]:
    """nDCG@10 (graded gains, ideal from every judged document), Recall@10/100 and
    MRR@10 over documents, averaged over the judged queries (a query missing from
    `run` scores 0), as BEIR reports them."""
    sums = dict.fromkeys(KEYS, 0.0)
    judged = [q for q, rel in qrels.items() if any(g > 0 for g in rel.values())]
    for q in judged:
        rel = qrels[q]
        ranking = list(run.get(q, []))
        gains = [rel.get(d, 0) for d in ranking[:10]]
        dcg = sum(g / math.log2(i + 2) for i, g in enumerate(gains) if g > 0)
        ideal = sorted((g for g in rel.values() if g > 0), reverse=True)[:10]
        sums["nDCG@10"] += dcg / sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
        relevant = {d for d, g in rel.items() if g > 0}
        for k in (10, 100):
            sums[f"R@{k}"] += len(relevant.intersection(ranking[:k])) / len(relevant)
        first = next((i for i, d in enumerate(ranking[:10], 1) if d in relevant), None)
        sums["MRR@10"] += 1 / first if first else 0.0
    return {key: value / len(judged) for key, value in sums.items()} if judged else sums


def evaluate_beir(
    docs: Sequence[Document],
    queries: Mapping[str, str],
    qrels: Mapping[str, Mapping[str, int]],
    *,
    model: Any = None,
    depth: int = DEPTH,
    ignore_identical_ids: bool = False,
) -> dict[str, Any]:
    """Index `docs` in memory, search every query in each mode, score documents."""
    started = time.perf_counter()
    index = build_index(list(docs), model=model)
    seconds = time.perf_counter() - started
    ids = list(queries)
    texts = [_CONTROL.sub(" ", t).strip()[:MAX_QUESTION_CHARS] for t in queries.values()]
    vectors = index.encoder.encode_queries(texts)
    report: dict[str, Any] = {
        "documents": len(docs),
        "passages": len(index),
        "queries": len(ids),
        "model": index.encoder.name,
        "index_passages_per_s": round(len(index) / seconds, 1),
        "modes": {},
    }
    for mode in MODES:
        hits = index.search_batch(texts, depth, vectors=vectors, **variant(mode))
        run = {
            q: doc_ranking(h, q if ignore_identical_ids else None)
            for q, h in zip(ids, hits, strict=True)
        }
        report["modes"][mode] = {k: round(v, 4) for k, v in doc_metrics(run, qrels).items()}
    return report


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path, help="a BEIR dataset folder (corpus.jsonl, ...)")
    ap.add_argument("--split", default="test", help="qrels/SPLIT.tsv (default: test)")
    ap.add_argument("--queries", type=int, default=None, help="only N queries (seed 0)")
    ap.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    ap.add_argument(
        "--ignore-identical-ids",
        action="store_true",
        help="drop a query's own id from its documents (BEIR's rule for ArguAna)",
    )
    ap.add_argument("--depth", type=int, default=DEPTH, help="passages fetched per query")
    args = ap.parse_args()

    docs, queries, qrels = load_beir(args.folder, args.split)
    if args.queries and args.queries < len(queries):
        keep = random.Random(0).sample(sorted(queries), args.queries)
        queries = {q: queries[q] for q in keep}
        qrels = {q: qrels[q] for q in keep}
    report = evaluate_beir(
        docs, queries, qrels, depth=args.depth, ignore_identical_ids=args.ignore_identical_ids
    )
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(
        f"\n{args.folder.name} ({args.split}): {report['documents']} documents, "
        f"{report['passages']} passages, {report['queries']} queries; model "
        f"{report['model']}; {os.cpu_count()} CPUs; {time.strftime('%Y-%m-%d')}\n"
    )
    print("| mode | " + " | ".join(KEYS) + " |\n" + "|---" * (len(KEYS) + 1) + "|")
    for mode, m in report["modes"].items():
        print(f"| {mode} | " + " | ".join(f"{m[k]:.3f}" for k in KEYS) + " |")
    print(f"\nindexing: {report['index_passages_per_s']:.1f} passages/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
