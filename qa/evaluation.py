"""Retrieval evaluation on SQuAD-style data (../shared/data/squad-dev format).

A retrieved passage is a hit for a question when it lies in the question's article
and fully contains one of its gold answer spans, so any chunking is scored the same
way. Metrics agree with the reference scorer `shared/tools/squad_bench.py score`.

>>> docs, questions = load_squad("articles.jsonl", "questions.jsonl")  # doctest: +SKIP
>>> report = evaluate(docs, questions, baselines=True)                 # doctest: +SKIP
>>> report["modes"]["hybrid"]["R@1"]                                    # doctest: +SKIP
0.81

The same from the command line: `semantic-qa eval --articles A.jsonl --questions Q.jsonl`.
"""

from __future__ import annotations

import json
import logging
import math
import resource
import statistics
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .documents import Document
from .errors import InvalidInputError
from .hits import Hit

log = logging.getLogger(__name__)

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
    run: Mapping[str, Sequence[Hit | dict[str, Any]]], questions: Sequence[dict[str, Any]]
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


def run_file_rows(run: Mapping[str, Sequence[Hit]]) -> list[dict[str, Any]]:
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


def evaluate(
    docs: Sequence[Document],
    questions: Sequence[dict[str, Any]],
    *,
    k: int = 20,
    mode: str | None = None,
    baselines: bool = False,
    model: Any = None,
    latency_questions: int = 200,
) -> dict[str, Any]:
    """Index `docs` in memory with the project's splitter and settings, search every
    question, and measure: metrics per mode (`mode`, plus the fixed fusion as
    "hybrid-fusion", "lexical" and "dense" with `baselines`), indexing passages/s,
    single-question latency (encoding included) and peak memory. The hits of the main
    mode are in `report["run"]`."""
    from embeddings import DEFAULT_ENCODER, load_encoder

    from .index import build_index, check_mode

    main = check_mode(mode)
    others = ("hybrid-fusion", "lexical", "dense") if baselines else ()
    modes = [main] + [m for m in others if m != main]
    if not questions:
        raise InvalidInputError("no questions to evaluate")
    if model is None or isinstance(model, str):  # loaded before the clock starts
        model = load_encoder(model or DEFAULT_ENCODER)
    started = time.perf_counter()
    index = build_index(list(docs), model=model)
    index_seconds = time.perf_counter() - started
    texts = [q["question"] for q in questions]
    vectors = index.encoder.encode_queries(texts)
    report: dict[str, Any] = {
        "articles": len(docs),
        "questions": len(questions),
        "passages": len(index),
        "model": index.encoder.name,
        "mode": main,
        "k": k,
        "index_passages_per_s": round(len(index) / index_seconds, 1),
        "mean_passage_chars": round(statistics.mean(len(p.text) for p in index.passages), 1),
        "modes": {},
    }
    for m in modes:
        hits = index.search_batch(texts, k, vectors=vectors, **variant(m))
        run = {q["id"]: h for q, h in zip(questions, hits, strict=True)}
        report["modes"][m] = {key: round(v, 4) for key, v in metrics(run, questions).items()}
        report["modes"][m]["answer_sentence@1"] = round(answer_sentence_rate(run, questions), 4)
        report["modes"][m]["first_glance@1"] = round(first_glance_rate(run, questions), 4)
        if m == main:
            report["run"] = run
    sample = texts[:latency_questions]
    report["latency_ms"] = {m: latency(index, sample, k, **variant(m)) for m in modes}
    report["peak_memory_mib"] = round(peak_memory_mib(), 1)
    return report


def variant(name: str) -> dict[str, Any]:
    """`Index.search` arguments of a row of the report: a mode, or "hybrid-fusion"."""
    return {"mode": "hybrid", "ranker": "fusion"} if name == "hybrid-fusion" else {"mode": name}


def first_glance_rate(
    run: Mapping[str, Sequence[Hit]], questions: Sequence[dict[str, Any]]
) -> float:
    """Share of all questions a user answers at first glance: the first hit is a hit
    and its answer sentence holds a gold answer."""
    _, found = _first_hits(run, questions)
    return found / len(questions) if questions else 0.0


def answer_sentence_rate(
    run: Mapping[str, Sequence[Hit]], questions: Sequence[dict[str, Any]]
) -> float:
    """Share of questions whose first hit is a hit and whose answer sentence holds a
    gold answer (in document offsets: `hit.start + answer_start` ...), over questions
    whose first hit is a hit."""
    total, found = _first_hits(run, questions)
    return found / total if total else 0.0


def _first_hits(
    run: Mapping[str, Sequence[Hit]], questions: Sequence[dict[str, Any]]
) -> tuple[int, int]:
    """(questions whose first hit is a hit, those of them whose answer sentence holds
    a gold answer)."""
    found = total = 0
    for q in questions:
        hits = run.get(q["id"], [])
        if not hits or not isinstance(hits[0], Hit) or not is_hit(hits[0], q):
            continue
        h = hits[0]
        start, end = h.start + h.answer_start, h.start + h.answer_end
        total += 1
        found += any(start <= a["start"] and a["end"] <= end for a in q["answers"])
    return total, found


def latency(
    index: Any, questions: Sequence[str], k: int, mode: str, ranker: str | None = None
) -> dict[str, float]:
    """p50/p95 milliseconds of `index.search` one question at a time, as a user asks."""
    times = []
    for q in questions:
        started = time.perf_counter()
        index.search(q, k, mode=mode, ranker=ranker)
        times.append((time.perf_counter() - started) * 1000)
    if not times:
        return {"p50": 0.0, "p95": 0.0, "questions": 0}
    return {
        "p50": round(float(np.percentile(times, 50)), 2),
        "p95": round(float(np.percentile(times, 95)), 2),
        "questions": len(times),
    }


def peak_memory_mib() -> float:
    """Peak resident memory of this process (MiB)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def format_report(report: dict[str, Any]) -> str:
    """The report as a Markdown table and a few lines of figures."""
    keys = [f"R@{k}" for k in RECALL_AT] + [
        "MRR@10",
        "nDCG@10",
        "answer_sentence@1",
        "first_glance@1",
    ]
    lines = [
        f"{report['articles']} articles, {report['questions']} questions, "
        f"{report['passages']} passages (mean {report['mean_passage_chars']:.0f} chars), "
        f"model {report['model']}",
        "",
        "| mode | " + " | ".join(keys) + " | p50 ms | p95 ms |",
        "|---" * (len(keys) + 3) + "|",
    ]
    for mode, m in report["modes"].items():
        lat = report["latency_ms"][mode]
        lines.append(
            f"| {mode} | "
            + " | ".join(f"{m[key]:.3f}" for key in keys)
            + f" | {lat['p50']:.1f} | {lat['p95']:.1f} |"
        )
    lines += [
        "",
        f"indexing: {report['index_passages_per_s']:.1f} passages/s; "
        f"latency over {next(iter(report['latency_ms'].values()))['questions']} questions, "
        f"k={report['k']}, encoding included; peak memory {report['peak_memory_mib']:.0f} MiB",
    ]
    return "\n".join(lines)


def _read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    try:
        with open(path, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
    except (OSError, json.JSONDecodeError) as err:
        raise InvalidInputError(f"{path}: cannot read JSON Lines ({err})") from err
