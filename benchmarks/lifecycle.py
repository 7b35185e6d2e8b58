"""Keeping an index up to date: a full build against incremental syncs and the
embedding cache, on SQuAD-dev articles, with the default model.

    python benchmarks/lifecycle.py                 # 6 articles (a few minutes on 2 busy CPUs)
    python benchmarks/lifecycle.py --articles 24   # all of squad-dev

Rows, all in one run with one loaded model (its loading is not timed):

- build, no cache: the baseline, every passage and sentence encoded;
- build, empty cache: the same, filling the cache;
- sync, nothing changed: load the saved index and sync it with the same articles;
- sync, 1 edited + 1 added + 1 removed: one article gets a sentence more, one new
  article, one deleted (what `semantic-qa index` does after such edits);
- rebuild, warm cache: the edited articles built from scratch into a new folder;
- verify: `semantic-qa verify` of the synced index (32 passages re-encoded).

Prints a Markdown table for BENCHMARKS.md: seconds, texts the model encoded, texts
the cache gave, passages in the index.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from embeddings import EmbeddingCache, load_encoder
from qa import Index, build_index, load_documents, load_index
from qa.verify import verify

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "squad-dev"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--articles", type=int, default=6, help="articles of squad-dev to use")
    args = parser.parse_args()
    everything = load_documents([DATA / "articles.jsonl"])
    docs, spare = everything[: args.articles], everything[args.articles]
    edited = [
        dataclasses.replace(docs[0], text=docs[0].text + "\n\nOne more sentence, added later."),
        *docs[1:-1],
        spare,
    ]
    encoder = load_encoder()
    rows = []
    with tempfile.TemporaryDirectory(prefix="semantic-qa-lifecycle-") as tmp:
        folder = Path(tmp)
        cache = EmbeddingCache(folder / "cache")

        def timed(name: str, make) -> Index:
            started = time.perf_counter()
            index = make()
            seconds = time.perf_counter() - started
            c = index.changes
            rows.append((name, seconds, c.encoded if c else 0, c.cached if c else 0, len(index)))
            print(f"{name}: {seconds:.1f} s", file=sys.stderr)
            return index

        timed(
            "build, no cache", lambda: build_index(docs, folder / "a", model=encoder, cache=False)
        )
        timed(
            "build, empty cache",
            lambda: build_index(docs, folder / "b", model=encoder, cache=cache),
        )
        timed(
            "sync, nothing changed",
            lambda: load_index(folder / "b", model=encoder, cache=cache).sync(docs),
        )
        timed(
            "sync, 1 edited + 1 added + 1 removed",
            lambda: load_index(folder / "b", model=encoder, cache=cache).sync(edited),
        )
        timed(
            "rebuild, warm cache",
            lambda: build_index(edited, folder / "c", model=encoder, cache=cache),
        )
        started = time.perf_counter()
        report = verify(folder / "b", model=encoder)
        assert report.ok, report.problems
        verify_seconds = time.perf_counter() - started
    base = rows[0][1]
    print(f"\n{len(docs)} squad-dev articles, model {encoder.name}\n")
    print("| step | seconds | speed-up | texts encoded | from the cache | passages |")
    print("|---|---|---|---|---|---|")
    for name, seconds, encoded, cached, passages in rows:
        print(
            f"| {name} | {seconds:.1f} | {base / seconds:.1f}x | {encoded} | {cached} | {passages} |"
        )
    print(
        f"| verify, 32 passages and their sentences re-encoded | {verify_seconds:.1f} | | | | {rows[3][4]} |"
    )


if __name__ == "__main__":
    main()
