"""Concurrent vector searches in one process: `qa.vectors` as it is (each search sets
its own thread's OpenMP count to 1) against the same searches taking turns under one
lock (how `_omp_threads` was before 51407ce), in the same run.

    python benchmarks/concurrent_search.py

50,000 clustered 384-d vectors (normalized, 200 centres), 2,000 noisy copies of them as
questions, k = 10, 4 threads each asking single questions; every row twice. Prints a
Markdown table: questions/s over the wall time, p50/p95 per question.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from qa import vectors

N, DIM, QUESTIONS, THREADS = 50_000, 384, 2_000, 4


def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((200, DIM))
    x = centres[rng.integers(0, 200, N)] + 0.8 * rng.standard_normal((N, DIM))
    q = x[rng.integers(0, N, QUESTIONS)] + 0.3 * rng.standard_normal((QUESTIONS, DIM))
    unit = [(a / np.linalg.norm(a, axis=1, keepdims=True)).astype(np.float32) for a in (x, q)]
    return unit[0], unit[1]


def main() -> None:
    x, questions = data()
    per_thread = vectors._omp_threads
    lock = threading.Lock()

    @contextlib.contextmanager
    def taking_turns(n: int) -> Iterator[None]:
        with lock, per_thread(n):
            yield

    ways: dict[str, Callable[[int], contextlib.AbstractContextManager[None]]] = {
        "one lock (before)": taking_turns,
        "per thread (now)": per_thread,
    }
    print("| index | OpenMP count set | questions/s | p50 ms | p95 ms |")
    print("|---|---|---:|---:|---:|")
    for kind in ("ivf", "hnsw"):
        index = vectors.build(x, np.arange(N, dtype=np.int64), kind)

        def one(i: int, index: vectors.VectorIndex = index) -> float:
            started = time.perf_counter()
            index.search(questions[i : i + 1], 10)
            return time.perf_counter() - started

        for _ in range(2):
            for name, way in ways.items():
                vectors._omp_threads = way  # type: ignore[assignment]
                started = time.perf_counter()
                with ThreadPoolExecutor(THREADS) as pool:
                    seconds = np.array(list(pool.map(one, range(QUESTIONS))))
                wall = time.perf_counter() - started
                print(
                    f"| {kind} | {name} | {QUESTIONS / wall:,.0f} | "
                    f"{np.median(seconds) * 1e3:.2f} | {np.percentile(seconds, 95) * 1e3:.2f} |",
                    flush=True,
                )
    vectors._omp_threads = per_thread


if __name__ == "__main__":
    main()
