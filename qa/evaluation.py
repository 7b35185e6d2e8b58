"""Retrieval evaluation on SQuAD-style data (../shared/data/squad-dev format).

A retrieved passage is a hit for a question when it lies in the question's article
and fully contains one of its gold answer spans, so any chunking is scored the same
way. Metrics agree with the reference scorer `shared/tools/squad_bench.py score`.

>>> docs, questions = load_squad("articles.jsonl", "questions.jsonl")  # doctest: +SKIP
>>> metrics(run_questions(index, questions, k=20), questions)          # doctest: +SKIP
{'R@1': 0.61, 'R@5': 0.87, 'R@20': 0.96, 'MRR@10': 0.72, 'nDCG@10': 0.77, ...}
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .documents import Document
from .errors import InvalidInputError
from .hits import Hit

RECALL_AT = (1, 5, 20)


def load_squad(
    articles: str | Path, questions: str | Path
) -> tuple[list[Document], list[dict[str, Any]]]:
    """Articles as `Document`s (their `paragraphs` kept in metadata) and the questions."""
    docs = [
        Document(
            str(row["id"]),
            row["text"],
            row.get("title", ""),
            str(articles),
            {"paragraphs": row.get("paragraphs", [])},
        )
        for row in _read_jsonl(articles)
    ]
    qs = _read_jsonl(questions)
    for q in qs:
        if not {"id", "question", "article_id", "answers"} <= q.keys():
            raise InvalidInputError(
                f"{questions}: question rows need id, question, article_id, answers"
            )
    return docs, qs


def is_hit(hit: Hit | dict[str, Any], question: dict[str, Any]) -> bool:
    h = hit.to_dict() if isinstance(hit, Hit) else hit
    if h["doc_id"] != question["article_id"]:
        return False
    return any(h["start"] <= a["start"] and a["end"] <= h["end"] for a in question["answers"])


def first_hit_rank(
    hits: Sequence[Hit | dict[str, Any]], question: dict[str, Any], depth: int = 20
) -> int | None:
    for rank, hit in enumerate(hits[:depth], 1):
        if is_hit(hit, question):
            return rank
    return None


def metrics(
    run: dict[str, Sequence[Hit | dict[str, Any]]], questions: Sequence[dict[str, Any]]
) -> dict[str, float]:
    """Recall@1/5/20, MRR@10, nDCG@10 (binary gain, first hit only) over all
    questions; a question missing from `run` scores 0."""
    if not questions:
        raise InvalidInputError("no questions to evaluate")
    sums = dict.fromkeys([f"R@{k}" for k in RECALL_AT] + ["MRR@10", "nDCG@10"], 0.0)
    for q in questions:
        rank = first_hit_rank(run.get(q["id"], []), q, max(max(RECALL_AT), 10))
        if rank is None:
            continue
        for k in RECALL_AT:
            sums[f"R@{k}"] += rank <= k
        if rank <= 10:
            sums["MRR@10"] += 1 / rank
            sums["nDCG@10"] += 1 / math.log2(rank + 1)
    return {key: value / len(questions) for key, value in sums.items()}


def run_file_rows(run: dict[str, Sequence[Hit]]) -> list[dict[str, Any]]:
    """The run in the reference scorer's format: {"qid", "hits": [{doc_id, start, end, score}]}."""
    return [
        {
            "qid": qid,
            "hits": [
                {"doc_id": h.doc_id, "start": h.start, "end": h.end, "score": h.score} for h in hits
            ],
        }
        for qid, hits in run.items()
    ]


def _read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    try:
        with open(path, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
    except (OSError, json.JSONDecodeError) as err:
        raise InvalidInputError(f"{path}: cannot read JSON Lines ({err})") from err
