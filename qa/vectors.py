"""The vector index: exact (flat) for small collections, approximate above a threshold,
and an approximate index always knows its own measured recall.

>>> vi = build(vectors, ids)                       # doctest: +SKIP
>>> scores, ids = vi.search(query_vectors, 10)     # doctest: +SKIP
>>> vi.kind, vi.recall.value, vi.search_params     # doctest: +SKIP
('ivf', 0.962, {'nprobe': 12})

Vectors are normalized float32, so inner product is cosine similarity. Ids are the
caller's int64 keys (FAISS ids), never row numbers, so they survive adds and removes.

Kinds (measured in BENCHMARKS.md, "Scale"):

- ``flat``: exact search (``IndexFlatIP``). add and remove.
- ``ivf``: inverted lists over k-means cells (``IndexIVFFlat``); searches ``nprobe``
  cells. Trains in seconds to a minute or two; add and remove.
- ``ivf-sq8``: ``ivf`` with each vector stored as 8-bit integers per dimension
  (``IndexIVFScalarQuantizer``): 4x smaller, nearly the same recall. add and remove.
- ``hnsw``: a navigable small-world graph (``IndexHNSWFlat``); searches ``efSearch``
  candidates. Slow to build on few cores; add, but no remove (rebuild instead).
- ``auto``: ``flat`` below ``Params.flat_below`` vectors, else ``Params.approximate``.

At build time an approximate index measures recall@10 against exact search on a sample
of queries (real query vectors when given; otherwise pseudo-queries, each the normalized
sum of two random stored vectors: a point between two topics, whose neighbours spread
over several regions of the index, like a real question's do; on SQuAD-dev questions
this tracks IVF's recall closely and underestimates HNSW's, BENCHMARKS.md) and raises its
search parameter (``nprobe`` / ``efSearch``) until the recall reaches
``Params.target_recall`` plus a small margin; the final value and the recall are kept in
``describe()``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from .errors import IndexCorruptError, InvalidInputError

log = logging.getLogger(__name__)

KINDS = ("flat", "ivf", "ivf-sq8", "hnsw")
APPROXIMATE = KINDS[1:]
# Below this many vectors exact search is fast enough (BENCHMARKS.md, "Scale").
FLAT_BELOW = 20_000
TARGET_RECALL = 0.95
RECALL_K = 10


@dataclass(frozen=True)
class Params:
    """How to build an index. `None` search parameters are tuned at build time."""

    flat_below: int = FLAT_BELOW
    approximate: str = "ivf"  # what "auto" picks from flat_below vectors on
    target_recall: float = TARGET_RECALL
    # tuned to target_recall + margin: 200 pseudo-queries overestimated real questions'
    # recall@10 by up to 0.008 (1M passages, IVF; BENCHMARKS.md) and 200 queries
    # measure recall give or take about 0.005
    margin: float = 0.015
    sample: int = 200  # queries for the recall measurement
    seed: int = 0
    nlist: int | None = None  # ivf cells; None: about sqrt(n)
    nprobe: int | None = None
    hnsw_m: int = 32
    ef_construction: int = 80
    ef_search: int | None = None


@dataclass(frozen=True)
class Recall:
    """recall@10 of an approximate index against exact search, measured at build time."""

    value: float
    queries: int
    sample: str  # "queries" (real query vectors) or "pseudo-queries" (see the module)
    seconds: float


@dataclass
class VectorIndex:
    """A FAISS index over int64 ids, its kind, search parameters and measured recall."""

    kind: str
    faiss_index: faiss.Index
    search_params: dict[str, int] = field(default_factory=dict)
    recall: Recall | None = None
    build_params: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.faiss_index.ntotal)

    @property
    def dimension(self) -> int:
        return int(self.faiss_index.d)

    @property
    def exact(self) -> bool:
        return self.kind == "flat"

    @property
    def removable(self) -> bool:
        """Whether `remove` works; otherwise rebuild without the removed vectors."""
        return self.kind != "hnsw"

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores float32 [q, k], ids int64 [q, k]), best first; id -1 (score the
        lowest float32) pads rows when fewer than `k` vectors are found.

        >>> scores, ids = vi.search(vectors[:2], 5)  # doctest: +SKIP
        """
        queries = _checked(queries, self.dimension, "queries")
        if k < 1:
            raise InvalidInputError(f"k must be at least 1, got {k}")
        self._apply_search_params()
        # A few queries run on one thread: OpenMP's spinning workers make a single
        # query wait on busy cores (the threads trap, BENCHMARKS.md).
        with _omp_threads(1) if len(queries) <= 4 else contextlib.nullcontext():
            scores, ids = self.faiss_index.search(queries, k)
        return scores, ids

    def add(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        """Add vectors under new int64 `ids` (an approximate index keeps its trained
        cells: rebuild after the collection has changed a lot)."""
        vectors = _checked(vectors, self.dimension, "vectors")
        ids = _ids(ids, len(vectors))
        self.faiss_index.add_with_ids(vectors, ids)

    def remove(self, ids: np.ndarray) -> int:
        """Remove the vectors of `ids`; returns how many were removed. `hnsw` cannot
        remove: `InvalidInputError` (rebuild the index without them instead)."""
        if not self.removable:
            raise InvalidInputError(
                f"a {self.kind} index cannot remove vectors: rebuild it without them"
            )
        ids = _ids(ids, None)
        return int(self.faiss_index.remove_ids(faiss.IDSelectorBatch(ids)))

    def describe(self) -> dict[str, Any]:
        """What a manifest keeps: kind, count, search parameters, measured recall."""
        return {
            "kind": self.kind,
            "count": len(self),
            "search_params": dict(self.search_params),
            "build_params": dict(self.build_params),
            "recall_at_10": None if self.recall is None else asdict(self.recall),
        }

    def to_bytes(self) -> np.ndarray:
        """The FAISS index serialized (uint8 array; FAISS's own format, no pickle)."""
        return np.asarray(faiss.serialize_index(self.faiss_index), dtype=np.uint8)

    @classmethod
    def from_bytes(
        cls, data: np.ndarray | bytes | Path, description: dict[str, Any]
    ) -> VectorIndex:
        """The index `to_bytes` wrote, with its `describe()` dict; or the file it was
        saved to (read straight from it: at 1M vectors 1.8 s instead of 4.2 s)."""
        try:
            kind = str(description["kind"])
            if kind not in KINDS:
                raise ValueError(f"unknown kind {kind!r}")
            if isinstance(data, Path):
                index = faiss.read_index(str(data))
            else:
                array = np.frombuffer(data, dtype=np.uint8) if isinstance(data, bytes) else data
                index = faiss.deserialize_index(np.ascontiguousarray(array, dtype=np.uint8))
            recall = description.get("recall_at_10")
            vi = cls(
                kind,
                index,
                {str(k): int(v) for k, v in description.get("search_params", {}).items()},
                None if recall is None else Recall(**recall),
                dict(description.get("build_params", {})),
            )
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            raise IndexCorruptError(
                f"the stored vector index does not load ({err}): rebuild the index"
            ) from err
        if "count" in description and len(vi) != description["count"]:
            raise IndexCorruptError(
                f"the stored vector index holds {len(vi)} vectors, its description says "
                f"{description['count']}: rebuild the index"
            )
        return vi

    def _apply_search_params(self) -> None:
        if "nprobe" in self.search_params:
            faiss.extract_index_ivf(self.faiss_index).nprobe = self.search_params["nprobe"]
        if "ef_search" in self.search_params:
            _hnsw(self.faiss_index).hnsw.efSearch = self.search_params["ef_search"]


def choose_kind(n: int, kind: str = "auto", params: Params | None = None) -> str:
    """The kind `build` makes for `n` vectors."""
    params = params or Params()
    if kind == "auto":
        return "flat" if n < params.flat_below else params.approximate
    if kind not in KINDS:
        raise InvalidInputError(
            f"index kind must be auto or one of {', '.join(KINDS)}, got {kind!r}"
        )
    return kind


def build(
    vectors: np.ndarray,
    ids: np.ndarray | None = None,
    kind: str = "auto",
    params: Params | None = None,
    *,
    queries: np.ndarray | None = None,
) -> VectorIndex:
    """An index of `vectors` (normalized float32 [n, d]) under int64 `ids` (default
    0..n-1). `kind`: "auto" (by size, see `Params.flat_below`) or one of `KINDS`.
    `queries`: real query vectors for the recall measurement of an approximate index
    (default: `params.sample` pseudo-queries, see the module docstring).

    >>> vi = build(vectors, np.arange(len(vectors)), kind="ivf")  # doctest: +SKIP
    """
    params = params or Params()
    vectors = _checked(vectors, None, "vectors")
    n = len(vectors)
    ids = np.arange(n, dtype=np.int64) if ids is None else _ids(ids, n)
    if len(np.unique(ids)) != n:
        raise InvalidInputError("ids must be distinct: each vector needs its own int64 id")
    kind = choose_kind(n, kind, params)
    if params.approximate not in APPROXIMATE:
        raise InvalidInputError(
            f"Params.approximate must be one of {', '.join(APPROXIMATE)}, got "
            f"{params.approximate!r}"
        )
    if kind != "flat" and n == 0:
        kind = "flat"  # nothing to train on; an empty collection is searched exactly
    started = time.perf_counter()
    index, built_with = _new(kind, vectors, params)
    index.add_with_ids(vectors, ids)
    vi = VectorIndex(kind, index, build_params=built_with)
    if kind == "ivf" or kind == "ivf-sq8":
        vi.search_params["nprobe"] = params.nprobe or 1
    elif kind == "hnsw":
        vi.search_params["ef_search"] = params.ef_search or 2 * RECALL_K
    log.info("built a %s index of %d vectors in %.1f s", kind, n, time.perf_counter() - started)
    if kind != "flat":
        tune(vi, vectors, ids, params, queries=queries, fixed=_fixed(kind, params))
    return vi


def tune(
    vi: VectorIndex,
    vectors: np.ndarray,
    ids: np.ndarray,
    params: Params,
    *,
    queries: np.ndarray | None = None,
    fixed: bool = False,
) -> Recall:
    """Measure `vi`'s recall@10 against exact search over `vectors` (with `ids`) and,
    unless `fixed`, raise its search parameter to the smallest value that reaches
    `params.target_recall + params.margin` (or as high as it goes). Stores and
    returns the final measurement."""
    started = time.perf_counter()
    sample = "queries"
    if queries is None:
        queries, sample = pseudo_queries(vectors, params.sample, params.seed), "pseudo-queries"
    queries = _checked(queries, vi.dimension, "queries")
    k = min(RECALL_K, len(vectors))
    truth = ids[exact_top(vectors, queries, k)]
    name = next(iter(vi.search_params))
    first, limit = vi.search_params[name], _search_limit(vi)
    goal = min(1.0, params.target_recall + params.margin)
    value = recall_at(vi, queries, truth)
    while not fixed and value < goal and vi.search_params[name] < limit:
        vi.search_params[name] = min(limit, vi.search_params[name] * 2)
        value = recall_at(vi, queries, truth)
    if not fixed and value >= goal:
        # the doubling overshoots: the smallest value in the last step that still meets it
        lo, hi = max(first, vi.search_params[name] // 2 + 1), vi.search_params[name]
        while lo < hi:
            mid = (lo + hi) // 2
            vi.search_params[name] = mid
            if recall_at(vi, queries, truth) >= goal:
                hi = mid
            else:
                lo = mid + 1
        vi.search_params[name] = hi
        value = recall_at(vi, queries, truth)
    if value < params.target_recall:
        log.warning(
            "%s index: recall@10 %.3f is below the target %.2f at %s=%d",
            vi.kind,
            value,
            params.target_recall,
            name,
            vi.search_params[name],
        )
    vi.recall = Recall(
        round(value, 4), len(queries), sample, round(time.perf_counter() - started, 2)
    )
    return vi.recall


def recall_at(vi: VectorIndex, queries: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of each row of `truth` (exact top-k ids) that `vi` finds in its top-k."""
    _, found = vi.search(queries, truth.shape[1])
    return float(
        np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth, strict=True)])
    )


def exact_top(vectors: np.ndarray, queries: np.ndarray, k: int, chunk: int = 65536) -> np.ndarray:
    """Rows of the `k` highest inner products with each query, best first (brute
    force in chunks, so a million vectors never make a [queries x n] matrix)."""
    top_scores = np.empty((len(queries), 0), dtype=np.float32)
    top_rows = np.empty((len(queries), 0), dtype=np.int64)
    for start in range(0, len(vectors), chunk):
        part = vectors[start : start + chunk]
        scores = np.concatenate([top_scores, queries @ part.T], axis=1)
        rows = np.concatenate(
            [top_rows, np.tile(np.arange(start, start + len(part)), (len(queries), 1))], axis=1
        )
        keep = np.argpartition(-scores, min(k, scores.shape[1]) - 1, axis=1)[:, :k]
        top_scores = np.take_along_axis(scores, keep, axis=1)
        top_rows = np.take_along_axis(rows, keep, axis=1)
    order = np.argsort(-top_scores, axis=1, kind="stable")
    return np.take_along_axis(top_rows, order, axis=1)


def pseudo_queries(vectors: np.ndarray, count: int, seed: int = 0) -> np.ndarray:
    """`count` queries made from the data: each the normalized sum of two random
    stored vectors (see the module docstring for why)."""
    rows = np.random.default_rng(seed).integers(0, len(vectors), (2, count))
    mixed = vectors[rows[0]] + vectors[rows[1]]
    return (mixed / np.maximum(np.linalg.norm(mixed, axis=1, keepdims=True), 1e-12)).astype(
        np.float32
    )


def _new(kind: str, vectors: np.ndarray, params: Params) -> tuple[faiss.Index, dict[str, Any]]:
    """An empty FAISS index of `kind` (trained on `vectors` when it needs training)."""
    n, d = vectors.shape
    ip = faiss.METRIC_INNER_PRODUCT
    if kind == "flat":
        return faiss.IndexIDMap2(faiss.IndexFlatIP(d)), {}
    if kind == "hnsw":
        hnsw = faiss.IndexHNSWFlat(d, params.hnsw_m, ip)
        hnsw.hnsw.efConstruction = params.ef_construction
        return faiss.IndexIDMap2(hnsw), {
            "m": params.hnsw_m,
            "ef_construction": params.ef_construction,
        }
    # sqrt(n) cells: building costs n x nlist (k-means, then assigning every vector),
    # searching nprobe x n / nlist; k-means wants at least ~39 training points per cell
    nlist = params.nlist or max(1, min(round(math.sqrt(n)), n // 39))
    quantizer = faiss.IndexFlatIP(d)
    if kind == "ivf":
        index: Any = faiss.IndexIVFFlat(quantizer, d, nlist, ip)
    else:
        index = faiss.IndexIVFScalarQuantizer(
            quantizer, d, nlist, faiss.ScalarQuantizer.QT_8bit, ip
        )
    index.cp.niter = 10
    # k-means on ~64 points per cell is as good as on all of them, and much faster
    sample = min(n, 64 * nlist)
    rows = np.sort(np.random.default_rng(params.seed).choice(n, size=sample, replace=False))
    index.train(vectors[rows])
    return index, {"nlist": nlist, "train": sample}


def _fixed(kind: str, params: Params) -> bool:
    """Whether the caller pinned the search parameter (then it is only measured)."""
    return (kind == "hnsw" and params.ef_search is not None) or (
        kind != "hnsw" and params.nprobe is not None
    )


def _search_limit(vi: VectorIndex) -> int:
    if vi.kind == "hnsw":
        return max(1024, len(vi))
    return int(faiss.extract_index_ivf(vi.faiss_index).nlist)


def _hnsw(index: faiss.Index) -> Any:
    """The HNSW index inside the id map."""
    idmap: Any = faiss.downcast_index(index)
    return faiss.downcast_index(idmap.index)


def _checked(vectors: Any, dimension: int | None, what: str) -> np.ndarray:
    array = np.asarray(vectors)
    if array.ndim != 2 or (dimension is not None and array.shape[1] != dimension):
        want = f"[n, {dimension}]" if dimension is not None else "[n, d]"
        raise InvalidInputError(f"{what} must be a {want} array, got shape {list(array.shape)}")
    return np.ascontiguousarray(array, dtype=np.float32)


def _ids(ids: Any, n: int | None) -> np.ndarray:
    array = np.asarray(ids)
    if array.ndim != 1 or (n is not None and len(array) != n) or array.dtype.kind not in "iu":
        raise InvalidInputError(
            f"ids must be {n if n is not None else 'some'} int64 keys in a 1-d array, got "
            f"{array.dtype}{list(array.shape)}"
        )
    return np.ascontiguousarray(array, dtype=np.int64)


@contextlib.contextmanager
def _omp_threads(n: int) -> Iterator[None]:
    # OpenMP's thread count is a per-thread setting: concurrent searches in other
    # threads keep theirs, so no lock (one serialized them: 261 vs 311 questions/s).
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(n)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)
