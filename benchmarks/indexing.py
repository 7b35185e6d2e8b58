"""Indexing speed end to end: `semantic-qa index` against plain sentence-transformers
encoding the same passages, in the same run.

    python benchmarks/indexing.py                        # 6 squad-dev articles, 3 rounds
    python benchmarks/indexing.py --baseline 26e1e30     # + that commit's index, same run
    python benchmarks/indexing.py --articles 24 --rounds 1

Rows, each timed in a fresh process (imports and model loading excluded: each child
loads first, then times) with the embedding cache off, rounds taken in turns so all
rows see the same machine load; the table gives each row's median:

- plain sentence-transformers: torch, batch 64, `model.encode` of the passages the
  project's splitter makes (the baseline, "x plain ST" = 1.0);
- the int8 encoder alone: `qa.index.embed_passages` of the same passages (split
  outside the clock), their vectors and their sentences' pooled from the same runs;
  the ceiling of the rows below, which add splitting, BM25 and saving;
- `build_index(..., path)`: split, encode passages and sentences, BM25, save; the
  work of `semantic-qa index` on a new folder (whose wall clock, process start and
  model loading included, is the last row);
- `build_index(..., sentences=False)`: without sentence vectors;
- with --baseline REV: `build_index(..., path)` of that commit (a git worktree of it,
  same virtualenv).

Peak memory: the child's peak resident set (ru_maxrss), per passage.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "squad-dev"

CHILD = r"""
import json, os, resource, sys, time
sys.path.insert(0, sys.argv[1])
os.environ["SEMANTIC_QA_CACHE"] = "off"
what, articles, out = sys.argv[2], sys.argv[3], sys.argv[4]
import qa
from qa.evaluation import load_squad
docs, _ = load_squad(articles, articles.replace("articles", "questions"))
docs = docs[: int(sys.argv[5])]
if what == "plain":
    from sentence_transformers import SentenceTransformer
    from embeddings import model_path, load_encoder
    splitter = load_encoder(backend="torch")
    texts = [p.text for d in docs for p in qa.split_document(d, splitter)]
    model = SentenceTransformer(str(model_path("all-MiniLM-L6-v2")), device="cpu")
    model.encode(texts[:8], batch_size=64)
    started = time.perf_counter()
    model.encode(texts, batch_size=64, normalize_embeddings=True)
    passages = len(texts)
elif what == "encoder":
    from embeddings import load_encoder
    from qa.index import embed_passages
    encoder = load_encoder()
    split = [p for d in docs for p in qa.split_document(d, encoder)]
    embed_passages(encoder, split[:8])
    started = time.perf_counter()
    embed_passages(encoder, split)
    passages = len(split)
else:
    from embeddings import load_encoder
    encoder = load_encoder()
    started = time.perf_counter()
    index = qa.build_index(docs, out, model=encoder, sentences=what != "no-sentences")
    passages = len(index)
seconds = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"seconds": seconds, "passages": passages, "peak": peak}))
"""


# `semantic-qa ARGS`, then this process's peak resident set in bytes
CLI = r"""
import json, resource, sys
from qa.cli import main
code = main(json.loads(sys.argv[1]))
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
sys.exit(code)
"""


def child(code_root: Path, what: str, articles: Path, n: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="semantic-qa-bench-") as tmp:
        env = {**os.environ, "PYTHONPATH": str(code_root), "SEMANTIC_QA_CACHE": "off"}
        done = subprocess.run(
            [sys.executable, "-c", CHILD, str(code_root), what, str(articles), tmp, str(n)],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
    return json.loads(done.stdout.strip().splitlines()[-1])


def cli(articles: Path, n: int) -> dict[str, float]:
    """`semantic-qa index` as a user runs it, wall clock of the whole process."""
    with tempfile.TemporaryDirectory(prefix="semantic-qa-bench-") as tmp:
        source = Path(tmp) / "articles.jsonl"
        lines = articles.read_text(encoding="utf-8").splitlines()[:n]
        source.write_text("\n".join(lines) + "\n", encoding="utf-8")
        env = {**os.environ, "PYTHONPATH": str(ROOT), "SEMANTIC_QA_CACHE": "off"}
        command = ["index", str(source), "--out", f"{tmp}/index"]
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", CLI, json.dumps(command)],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        seconds = time.perf_counter() - started
        peak = float(done.stdout.strip().splitlines()[-1])
        manifest = json.loads((Path(tmp) / "index" / "manifest.json").read_text())
    return {"seconds": seconds, "passages": manifest["passages"], "peak": peak}


def worktree(rev: str) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="semantic-qa-baseline-")) / "repo"
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(folder), rev],
        check=True,
        capture_output=True,
    )
    return folder


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--articles", type=int, default=6, help="first N squad-dev articles")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--baseline", help="a commit to measure in the same run")
    args = ap.parse_args()
    articles = DATA / "articles.jsonl"
    rows = {
        "plain sentence-transformers, torch, batch 64": lambda: child(
            ROOT, "plain", articles, args.articles
        ),
        "the int8 encoder alone (`embed_passages`: passage and sentence vectors)": lambda: child(
            ROOT, "encoder", articles, args.articles
        ),
        "`build_index(..., path)` (passages + sentence vectors, BM25, save)": lambda: child(
            ROOT, "default", articles, args.articles
        ),
        "`build_index(..., sentences=False)`": lambda: child(
            ROOT, "no-sentences", articles, args.articles
        ),
    }
    base = None
    if args.baseline:
        base = worktree(args.baseline)
        rows[f"`build_index(..., path)` at {args.baseline}"] = lambda: child(
            base, "default", articles, args.articles
        )
    rows["`semantic-qa index` (whole process: start, model load, index, save)"] = lambda: cli(
        articles, args.articles
    )
    names = list(rows)
    got: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    try:
        if base is not None:  # once untimed: an older export recipe exports its model
            child(base, "default", articles, 1)
        for r in range(args.rounds):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                got[name].append(rows[name]())
                last = got[name][-1]
                print(
                    f"round {r + 1} {name}: {last['passages'] / last['seconds']:.1f} passages/s "
                    f"(load {os.getloadavg()[0]:.1f})",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        if base is not None:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)])
    plain = statistics.median(g["passages"] / g["seconds"] for g in got[names[0]])
    passages = int(got[names[0]][0]["passages"])
    print(
        f"\n{args.articles} squad-dev articles, {passages} passages, {os.cpu_count()} CPUs, "
        f"{time.strftime('%Y-%m-%d')}, {args.rounds} rounds in turns"
    )
    print("\n| what | seconds | passages/s | x plain ST | peak memory per passage |")
    print("|---|---:|---:|---:|---:|")
    for name in names:
        seconds = statistics.median(g["seconds"] for g in got[name])
        speed = statistics.median(g["passages"] / g["seconds"] for g in got[name])
        peak = max(g["peak"] for g in got[name]) / got[name][0]["passages"]
        print(
            f"| {name} | {seconds:.1f} | {speed:.1f} | {speed / plain:.2f} | "
            f"{peak / 1024:.0f} KiB |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
