"""Train the learned ranker's two scorers (qa/rankers/*.json) on SQuAD-train and measure
them on SQuAD-dev, fixed fusion beside learned, in one run.

    python benchmarks/train_ranker.py                 # the shipped scorers (~30 min, 2 CPUs)
    python benchmarks/train_ranker.py --questions 500 --out /tmp/rankers   # a quick look

1. SQuAD-train's 442 articles are indexed in groups of 48 (as many as SQuAD-dev's 24
   articles' passages, roughly: a question competes with as many passages as at
   evaluation), with the project's own splitter, encoder and sentence vectors
   (`qa.build_index`, default settings); indexes and question vectors are kept in
   --work and reused while the encoder and the articles are the same.
2. Each article gets its title as its first line, as documents have (`--bare`: not).
3. For `--questions` questions a group (a fixed sample, seed 0), the candidates the
   learned ranker would rank (`qa.ranking`, the best `RERANKED` by fused score) and
   what it reads of them (`qa.ranking.head_of`); a passage is positive when it holds a
   gold answer span, a sentence when it holds one.
4. The sentence scorer: every candidate's sentences, positive or not (its score is
   also a passage signal, so it must compare sentences across passages).
5. The passage scorer: the candidates, with the sentence scorer's choices.
6. Both written as JSON (`qa.scorers`) with what they were trained on, then measured
   on SQuAD-dev beside the fixed fusion (the table of BENCHMARKS.md "Learned
   ranking"; SQuAD-dev chose between variants, nothing is fitted on it).

Learners: "linear" (logistic regression, scikit-learn) or "trees" (LightGBM, binary
log loss; its trees kept as arrays and evaluated by `qa.scorers.Forest` without LightGBM).
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import qa
from embeddings import load_encoder
from qa import ranking
from qa import signals as sig
from qa.evaluation import (
    answer_sentence_rate,
    first_glance_rate,
    latency,
    load_squad,
    metrics,
)
from qa.scorers import FILES, Forest, Scorer

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
GROUP = 48
# boosting rounds of the tree scorers (learning rate 0.05)
ROUNDS = 200


@dataclass
class Examples:
    """Training rows of many questions: sentence features and labels, passage inputs
    (`qa.ranking.Head`s, one per question) and labels."""

    heads: list[ranking.Head]
    questions: list[sig.Question]
    passage_labels: list[np.ndarray]
    sentence_labels: list[np.ndarray]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def holds(doc_id: str, start: int, end: int, question: dict) -> bool:
    return doc_id == question["article_id"] and any(
        start <= a["start"] and a["end"] <= end for a in question["answers"]
    )


def group_index(name: str, docs: list[qa.Document], questions: list[dict], work: Path, encoder):
    """The group's index and question vectors, from --work when the encoder matches."""
    folder = work / name
    vectors_file = folder / "questions.npy"
    articles = hashlib.sha256("".join(d.sha256 for d in docs).encode()).hexdigest()[:16]
    stamp = f"{encoder.name} {getattr(encoder, 'export_id', '')} {articles}"
    try:
        if (folder / "encoder.txt").read_text() == stamp:
            return qa.load_index(folder, model=encoder, cache=False), np.load(vectors_file)
    except (OSError, qa.QAError):
        pass
    started = time.perf_counter()
    index = qa.build_index(docs, folder, model=encoder, cache=False)
    vectors = encoder.encode_queries([q["question"] for q in questions])
    np.save(vectors_file, vectors)
    (folder / "encoder.txt").write_text(stamp)
    log(
        f"{name}: {len(docs)} articles, {len(index)} passages in {time.perf_counter() - started:.0f} s"
    )
    return index, vectors


def with_titles(
    docs: list[qa.Document], questions: list[dict]
) -> tuple[list[qa.Document], list[dict]]:
    """The articles as documents usually are, their title on a line of its own first
    (SQuAD's texts are bare paragraphs: a scorer that never saw a heading would take
    one that repeats the question's words for its answer), answers moved with them."""
    shift = {d.id: len(d.title) + 2 for d in docs}
    titled = [replace(d, text=f"{d.title}\n\n{d.text}") for d in docs]
    moved = [
        q | {"answers": [a | {"start": a["start"] + shift[q["article_id"]],
                              "end": a["end"] + shift[q["article_id"]]} for a in q["answers"]]}
        for q in questions
    ]  # fmt: skip
    return titled, moved


def examples(index: qa.Index, questions: list[dict], vectors: np.ndarray, head: int) -> Examples:
    out = Examples([], [], [], [])
    for q, v in zip(questions, vectors, strict=True):
        query = sig.Question.of(q["question"], v, index.lexical.idf)
        found = ranking.candidates(index, q["question"], v, 10, "hybrid", None)
        positions = ranking.top(found.scores, min(head, len(found.scores)))[:head]
        h = ranking.head_of(index, query, found, positions)
        passages = [index.passages[int(r)] for r in h.rows]
        out.heads.append(h)
        out.questions.append(query)
        out.passage_labels.append(np.array([holds(p.doc_id, p.start, p.end, q) for p in passages]))
        out.sentence_labels.append(
            np.array(
                [
                    holds(p.doc_id, p.start + s, p.start + e, q)
                    for p, bounds in zip(passages, h.bounds, strict=True)
                    for s, e in bounds
                ]
            )
        )
    return out


def fit(name: str, features: tuple[str, ...], x: np.ndarray, y: np.ndarray, learner: str) -> Scorer:
    if learner == "linear":
        from sklearn.linear_model import LogisticRegression

        mean, scale = x.mean(axis=0), x.std(axis=0)
        scale[scale < 1e-9] = 1.0
        model = LogisticRegression(C=1.0, max_iter=3000).fit((x - mean) / scale, y)
        return Scorer(
            name, "linear", features, mean, scale, model.coef_[0], float(model.intercept_[0])
        )
    import lightgbm

    params = {
        "objective": "binary",
        "learning_rate": 0.05,
        "num_leaves": 31,
        # shallow trees: a question's ~150 sentences go through every tree level by
        # level at search time (qa.scorers.Forest), so depth is latency
        "max_depth": 7,
        "min_data_in_leaf": 100,
        "feature_fraction": 0.8,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "lambda_l2": 1.0,
        "seed": 0,
        "deterministic": True,
        "num_threads": os.cpu_count() or 1,
        "verbose": -1,
    }
    booster = lightgbm.train(params, lightgbm.Dataset(x, y), num_boost_round=ROUNDS)
    forest = Forest.of([t["tree_structure"] for t in booster.dump_model()["tree_info"]])
    zeros = np.zeros(len(features))
    return Scorer(name, "trees", features, zeros, zeros + 1, zeros, 0.0, forest)


def evaluate(index: qa.Index, questions: list[dict], vectors: np.ndarray) -> list[str]:
    texts = [q["question"] for q in questions]
    rows = []
    for ranker in ("fusion", "learned"):
        hits = index.search_batch(texts, 10, vectors=vectors, ranker=ranker)
        run = {q["id"]: h for q, h in zip(questions, hits, strict=True)}
        m = metrics(run, questions)
        lat = latency(index, texts[:300], 10, "hybrid", ranker)
        rows.append(
            f"| {ranker} | {m['R@1']:.4f} | {m['R@5']:.4f} | {m['MRR@10']:.4f} "
            f"| {answer_sentence_rate(run, questions):.4f} | {first_glance_rate(run, questions):.4f} "
            f"| {lat['p50']:.1f} | {lat['p95']:.1f} |"
        )
        log(rows[-1])
    return rows


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", type=int, default=100_000, help="questions per group, at most")
    ap.add_argument("--sentence", choices=["linear", "trees"], default="trees")
    ap.add_argument("--passage", choices=["linear", "trees"], default="trees")
    ap.add_argument("--head", type=int, default=ranking.RERANKED, help="candidates ranked")
    ap.add_argument("--work", type=Path, default=Path(__file__).parent / "results" / "ranker")
    ap.add_argument("--out", type=Path, default=qa.scorers.FOLDER, help="where the scorers go")
    ap.add_argument("--data", type=Path, default=SHARED)
    ap.add_argument("--bare", action="store_true", help="train on SQuAD's texts without titles")
    args = ap.parse_args()
    encoder = load_encoder()
    train_articles = args.data / "squad-train" / "articles.jsonl"
    train_questions = args.data / "squad-train" / "questions.jsonl"
    docs, questions = load_squad(train_articles, train_questions)
    if not args.bare:
        docs, questions = with_titles(docs, questions)
    rng = np.random.default_rng(0)
    data = Examples([], [], [], [])
    for g in range(0, len(docs), GROUP):
        group = docs[g : g + GROUP]
        ids = {d.id for d in group}
        asked = [q for q in questions if q["article_id"] in ids]
        index, vectors = group_index(f"train-{g // GROUP:02d}", group, asked, args.work, encoder)
        pick = np.sort(rng.choice(len(asked), min(args.questions, len(asked)), replace=False))
        part = examples(index, [asked[i] for i in pick], vectors[pick], args.head)
        for field in ("heads", "questions", "passage_labels", "sentence_labels"):
            getattr(data, field).extend(getattr(part, field))
        log(f"group {g // GROUP}: {len(pick)} questions, {len(data.heads)} in all")
    x = np.concatenate([h.sentences for h in data.heads])
    y = np.concatenate(data.sentence_labels).astype(np.int32)
    log(f"sentence scorer: {len(x):,} sentences, {y.sum():,} positive, {args.sentence}")
    sentence = fit("sentence", sig.SENTENCE_FEATURES, x, y, args.sentence)
    del x, y
    px = np.concatenate(
        [
            ranking.passage_rows(h, q, sentence)[0]
            for h, q in zip(data.heads, data.questions, strict=True)
        ]
    )
    py = np.concatenate(data.passage_labels).astype(np.int32)
    log(f"passage scorer: {len(px):,} passages, {py.sum():,} positive, {args.passage}")
    passage = fit("passage", sig.PASSAGE_FEATURES, px, py, args.passage)

    args.out.mkdir(parents=True, exist_ok=True)
    training = {
        "command": " ".join(["python benchmarks/train_ranker.py", *sys.argv[1:]]),
        "date": datetime.date.today().isoformat(),
        "data": {
            "articles": f"squad-train/articles.jsonl sha256 {sha256(train_articles)[:16]}",
            "questions": f"squad-train/questions.jsonl sha256 {sha256(train_questions)[:16]}",
            "questions_used": len(data.heads),
            "passages": len(px),
            "licence": "SQuAD v1.1 (CC BY-SA 4.0)",
        },
        "encoder": f"{encoder.name} export {getattr(encoder, 'export_id', '-')}",
        "candidates": args.head,
        "articles": "bare SQuAD texts" if args.bare else "each article's title on its first line",
    }
    for scorer in (sentence, passage):
        trained = replace(scorer, training=training | {"learner": scorer.kind})
        (args.out / FILES[scorer.name]).write_text(trained.dumps())
    log(f"wrote {args.out}")

    qa.scorers.FOLDER = args.out
    dev, dev_questions = load_squad(
        args.data / "squad-dev" / "articles.jsonl", args.data / "squad-dev" / "questions.jsonl"
    )
    index, vectors = group_index("dev", dev, dev_questions, args.work, encoder)
    index.ranking = ranking.Settings(reranked=args.head)
    print(
        f"\nSQuAD-dev: {len(dev)} articles, {len(dev_questions)} questions, {len(index)} "
        f"passages; scorers trained on {len(data.heads):,} SQuAD-train questions "
        f"(sentence: {args.sentence}, passage: {args.passage}), {args.head} candidates\n"
    )
    print("| ranker | R@1 | R@5 | MRR@10 | answer sentence | first glance | p50 ms | p95 ms |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for row in evaluate(index, dev_questions, vectors):
        print(row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
