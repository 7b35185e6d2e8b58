"""A small cross-encoder trained here on SQuAD-train, as a re-scorer of the learned
ranker's first hits on SQuAD-dev (issue 14's optional neural re-scorer), and what it
would cost per question.

    python benchmarks/cross_encoder.py          # ~55 min on 2 CPUs (40 of them training)
    python benchmarks/cross_encoder.py --per-group 50 --minutes 1 --dev 300   # a quick look

1. Pairs: for `--per-group` questions of each SQuAD-train group (the indexes and question
   vectors that `benchmarks/train_ranker.py` caches in --work; run it first), the
   learned ranker's 3 first hits; each hit's text is its answer sentence with the
   sentence before it (when under 200 characters) and the one after it; a hit is
   positive when its passage holds a gold answer. The same for SQuAD-dev's questions.
2. Training (torch, both CPUs, seed 0): the packaged all-MiniLM-L6-v2's first
   `--layers` layers and a new scoring head, question and text as one input of at most
   `--max-tokens` tokens, softmax over each question's 3 hits against its positives,
   AdamW 5e-5, 16 questions a step, one pass or `--minutes`, whichever ends first.
3. SQuAD-dev: R@1 of the learned ranker, of the cross-encoder alone over the 3 hits,
   and of `logit(learned score) + w * cross-encoder score` re-ordering the first 2 or 3
   (w chosen on SQuAD-dev: an upper bound of what it would give).
4. Cost: the cross-encoder exported as the project exports its encoder (ONNX Runtime
   BERT fusions, dynamic int8, `embeddings.onnx`), one pair at a time on one thread,
   beside the 6-layer model.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_ranker import GROUP, SHARED, log, with_titles

import qa
from embeddings import load_encoder
from embeddings.models import model_path
from embeddings.onnx import _export_fp32, _quantize
from qa.evaluation import is_hit, load_squad

HITS = 3


def window(hit: qa.Hit) -> str:
    """The hit's answer sentence, the sentence before it (when short) and the one after."""
    text, start, end = hit.text, hit.answer_start, hit.answer_end
    before = text[:start].rstrip()
    cut = max(before.rfind(". "), before.rfind("\n"))
    previous = before[cut + 1 :].strip() if cut >= 0 else before.strip()
    after = text[end:].lstrip()
    stop = after.find(". ")
    following = after[: stop + 1] if stop >= 0 else after
    head = previous + " " if len(previous) < 200 else ""
    return (head + text[start:end] + " " + following[:300]).strip()


def pairs(index: qa.Index, questions: list[dict], vectors: np.ndarray) -> list[dict]:
    found = index.search_batch([q["question"] for q in questions], HITS, vectors=vectors)
    return [
        {
            "question": q["question"],
            "texts": [window(h) for h in hits],
            "scores": [h.score for h in hits],
            "labels": [int(is_hit(h, q)) for h in hits],
        }
        for q, hits in zip(questions, found, strict=True)
        if len(hits) == HITS
    ]


def gather(work: Path, per_group: int, dev: int) -> tuple[list[dict], list[dict]]:
    encoder = load_encoder()
    docs, questions = load_squad(
        SHARED / "squad-train" / "articles.jsonl", SHARED / "squad-train" / "questions.jsonl"
    )
    docs, questions = with_titles(docs, questions)
    rng = np.random.default_rng(1)
    train = []
    for g in range(0, len(docs), GROUP):
        ids = {d.id for d in docs[g : g + GROUP]}
        asked = [q for q in questions if q["article_id"] in ids]
        folder = work / f"train-{g // GROUP:02d}"
        index = qa.load_index(folder, model=encoder, cache=False)
        vectors = np.load(folder / "questions.npy")
        pick = np.sort(rng.choice(len(asked), min(per_group, len(asked)), replace=False))
        train += pairs(index, [asked[i] for i in pick], vectors[pick])
        log(f"{folder.name}: {len(train)} questions")
    _, dev_questions = load_squad(
        SHARED / "squad-dev" / "articles.jsonl", SHARED / "squad-dev" / "questions.jsonl"
    )
    index = qa.load_index(work / "dev", model=encoder, cache=False)
    vectors = np.load(work / "dev" / "questions.npy")
    return train, pairs(index, dev_questions[:dev], vectors[:dev])


def encode(tokenizer, batch: list[dict], max_tokens: int):
    """Each question of `batch` with each of its hits' texts, as the model reads them."""
    return tokenizer(
        [r["question"] for r in batch for _ in r["texts"]],
        [t for r in batch for t in r["texts"]],
        truncation="only_second",
        max_length=max_tokens,
        padding=True,
        return_tensors="pt",
    )


def train(rows: list[dict], layers: int, max_tokens: int, minutes: float, out: Path):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(0)
    base = str(model_path("all-MiniLM-L6-v2"))
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForSequenceClassification.from_pretrained(
        base, num_labels=1, num_hidden_layers=layers
    )
    rows = [r for r in rows if any(r["labels"])]
    np.random.default_rng(0).shuffle(rows)
    per_step = 16
    steps = max(len(rows) // per_step, 1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1, (s + 1) / 100) * max(0.05, 1 - s / steps)
    )
    model.train()
    started, step = time.perf_counter(), 0
    for step in range(steps):
        batch = rows[step * per_step : (step + 1) * per_step]
        inputs = encode(tokenizer, batch, max_tokens)
        logp = torch.log_softmax(model(**inputs).logits.view(len(batch), HITS), 1)
        positive = torch.tensor([r["labels"] for r in batch], dtype=torch.bool)
        loss = -torch.logsumexp(logp.masked_fill(~positive, -1e9), 1).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % 100 == 0:
            log(f"step {step}/{steps}: loss {loss.item():.3f}")
        if time.perf_counter() - started > minutes * 60:
            break
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return (step + 1) * per_step, time.perf_counter() - started


def scores(folder: Path, rows: list[dict], max_tokens: int) -> np.ndarray:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(rows), 64):
            batch = rows[i : i + 64]
            inputs = encode(tokenizer, batch, max_tokens)
            out.append(model(**inputs).logits.view(len(batch), HITS).numpy())
    return np.concatenate(out)


def latency(folder: Path, rows: list[dict], max_tokens: int) -> tuple[float, float]:
    """p50 and p95 ms of one (question, first hit) pair, int8 ONNX, one thread."""
    import onnxruntime as ort
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    with tempfile.TemporaryDirectory() as tmp:
        fp32, int8 = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        _export_fp32(folder, fp32)
        _quantize(fp32, int8)
        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(int8), options, providers=["CPUExecutionProvider"])
    feeds = []
    for r in rows[:200]:
        x = tokenizer(r["question"], r["texts"][0], truncation="only_second",
                      max_length=max_tokens, return_tensors="np")  # fmt: skip
        feeds.append({"input_ids": x["input_ids"], "attention_mask": x["attention_mask"]})
    for feed in feeds[:10]:
        session.run(None, feed)
    times = []
    for feed in feeds:
        t = time.perf_counter()
        session.run(None, feed)
        times.append((time.perf_counter() - t) * 1000)
    return float(np.median(times)), float(np.percentile(times, 95))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-group", type=int, default=3000, help="training questions a group")
    ap.add_argument("--dev", type=int, default=100_000, help="SQuAD-dev questions, at most")
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=80)
    ap.add_argument("--minutes", type=float, default=40.0, help="training time, at most")
    ap.add_argument("--work", type=Path, default=Path(__file__).parent / "results" / "ranker")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "cross-encoder")
    args = ap.parse_args()
    train_rows, dev_rows = gather(args.work, args.per_group, args.dev)
    seen, seconds = train(train_rows, args.layers, args.max_tokens, args.minutes, args.out)
    ce = scores(args.out, dev_rows, args.max_tokens)
    p = np.clip([r["scores"] for r in dev_rows], 1e-6, 1 - 1e-6)
    labels = np.array([r["labels"] for r in dev_rows])
    learned = np.log(p / (1 - p))
    at = np.arange(len(dev_rows))
    print(
        f"\n{len(train_rows):,} SQuAD-train questions, {seen:,} trained on in {seconds / 60:.0f} min "
        f"({args.layers} layers, {args.max_tokens} tokens); SQuAD-dev: {len(dev_rows):,} questions\n"
    )
    print("| re-scoring | R@1 |\n|---|---:|")
    print(f"| learned ranker (as shipped) | {labels[:, 0].mean():.4f} |")
    print(f"| cross-encoder alone, over the 3 first hits | {labels[at, ce.argmax(1)].mean():.4f} |")
    for first in (2, 3):
        for w in (0.25, 0.5, 1.0, 2.0):
            pick = (learned[:, :first] + w * ce[:, :first]).argmax(1)
            print(
                f"| learned + {w} x cross-encoder, first {first} | {labels[at, pick].mean():.4f} |"
            )
    print("\n| model | p50 ms a pair | p95 ms |\n|---|---:|---:|")
    for name, folder in (
        (f"cross-encoder, {args.layers} layers", args.out),
        ("all-MiniLM-L6-v2, 6 layers", model_path("all-MiniLM-L6-v2")),
    ):
        p50, p95 = latency(Path(folder), dev_rows, args.max_tokens)
        print(f"| {name} | {p50:.1f} | {p95:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
