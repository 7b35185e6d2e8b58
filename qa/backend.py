"""Where an index's passage vectors are searched: the storage backend.

Two implementations of one small interface (`Backend`: add, remove, search with an
optional metadata filter, count, info):

- `FaissBackend` (the default): the FAISS index of `qa.vectors`, saved in the index
  folder; a filter is applied by exact search over the matching passages.
- `MilvusBackend`: a Milvus collection (`qa.milvus.MilvusStore`: a server, standalone
  or distributed, or a milvus-lite file) holding each passage's vector and the fields
  a filter names, so filters run inside Milvus.

>>> backend = open_backend("milvus://127.0.0.1:19530", "qa_index", model, 384)  # doctest: +SKIP
>>> scores, keys = backend.search(query_vectors, 10, where={"source": "news.md"})  # doctest: +SKIP

Everything else — BM25, hybrid fusion, sentence scores, answer sentences, duplicate
folding — stays in `qa.index`, the same whatever the backend: an index folder keeps its
manifest, passages, BM25 and sentence vectors (and a copy of the passage vectors, which
fusion re-scores candidates with) and records which backend holds its vectors, so
`qa.load_index(folder)` reopens it. Keys are the index's stable passage keys.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from tqdm.auto import tqdm

from .errors import InvalidInputError
from .milvus import MAX_K, MilvusStore, Row, client_uri
from .vectors import VectorIndex

log = logging.getLogger(__name__)

# Passages per step of a migration or a full re-sync: one progress-bar tick, one
# round of "which of these are there already" (resumable), inserts of `BATCH` rows.
STEP = 10_000
# Credentials for a Milvus server never go into the manifest: they come from here.
TOKEN_ENV = "SEMANTIC_QA_MILVUS_TOKEN"
_LOWEST = np.finfo(np.float32).min


class Backend(Protocol):
    """What `qa.Index` needs from the place its passage vectors are searched."""

    kind: str

    def add(self, keys: np.ndarray, vectors: np.ndarray, rows: Sequence[Row]) -> int: ...

    def remove(self, keys: np.ndarray) -> int: ...

    def search(
        self, queries: np.ndarray, k: int, where: Mapping[str, Any] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(scores float32 [q, k], keys int64 [q, k]) best first, key -1 padding."""
        ...

    def count(self) -> int: ...

    def info(self) -> dict[str, Any]: ...


class FaissBackend:
    """The FAISS vector index in the index folder (`qa.vectors.VectorIndex`). `where`
    is answered by exact search over the vectors of the passages `select(where)` names
    (rows of `vectors`, whose keys are `keys`)."""

    kind = "faiss"

    def __init__(
        self,
        vector_index: VectorIndex,
        vectors: np.ndarray,
        keys: np.ndarray,
        select: Callable[[Mapping[str, Any]], np.ndarray],
    ):
        self.vector_index = vector_index
        self.vectors = vectors
        self.keys = keys
        self.select = select

    def add(self, keys: np.ndarray, vectors: np.ndarray, rows: Sequence[Row] = ()) -> int:
        self.vector_index.add(vectors, np.asarray(keys, dtype=np.int64))
        return len(keys)

    def remove(self, keys: np.ndarray) -> int:
        return self.vector_index.remove(np.asarray(keys, dtype=np.int64))

    def search(
        self, queries: np.ndarray, k: int, where: Mapping[str, Any] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        if where is None:
            return self.vector_index.search(queries, k)
        rows = self.select(where)
        scores = np.asarray(queries, dtype=np.float32) @ self.vectors[rows].T
        out_scores = np.full((len(queries), k), _LOWEST, dtype=np.float32)
        out_keys = np.full((len(queries), k), -1, dtype=np.int64)
        m = min(k, len(rows))
        for q, row in enumerate(scores):
            best = np.lexsort((np.arange(len(row)), -row))[:m]  # ties in row order
            out_scores[q, :m], out_keys[q, :m] = row[best], self.keys[rows[best]]
        return out_scores, out_keys

    def count(self) -> int:
        return len(self.vector_index)

    def info(self) -> dict[str, Any]:
        return {"backend": "faiss", **self.vector_index.describe()}


class MilvusBackend:
    """A Milvus collection (`qa.milvus.MilvusStore`) as an index's backend."""

    kind = "milvus"

    def __init__(self, store: MilvusStore):
        self.store = store

    def __repr__(self) -> str:
        return f"<MilvusBackend {self.store.uri} {self.store.collection}>"

    @property
    def uri(self) -> str:
        return self.store.uri

    @property
    def collection(self) -> str:
        return self.store.collection

    def add(self, keys: np.ndarray, vectors: np.ndarray, rows: Sequence[Row]) -> int:
        # a key already there can only hold this passage: keys are never reused, and
        # an index writes here only after its own save has won (see `qa.Index._change`)
        return self.store.add(keys, vectors, rows, skip_existing=True, progress=False)

    def remove(self, keys: np.ndarray) -> int:
        return self.store.remove(keys)

    def search(
        self, queries: np.ndarray, k: int, where: Mapping[str, Any] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        k = min(k, MAX_K)
        found = self.store.search(queries, k, where=where)
        scores = np.full((len(found), k), _LOWEST, dtype=np.float32)
        keys = np.full((len(found), k), -1, dtype=np.int64)
        for q, hits in enumerate(found):
            if hits:
                keys[q, : len(hits)] = [key for key, _ in hits]
                scores[q, : len(hits)] = [score for _, score in hits]
        return scores, keys

    def count(self) -> int:
        return self.store.count()

    def info(self) -> dict[str, Any]:
        return self.store.info()

    def describe(self) -> dict[str, Any]:
        """What the manifest records (`vector_index`): no count or server version,
        which change without the index changing; no credentials."""
        return {
            "kind": "milvus",
            "count": None,
            "search_params": {},
            "build_params": {
                "uri": self.store.uri,
                "collection": self.store.collection,
                **vars(self.store.params),
            },
            "recall_at_10": None,
        }

    def location(self) -> dict[str, str]:
        """The manifest's `store`: enough for `load_index` to reopen the collection."""
        return {"backend": "milvus", "uri": self.store.uri, "collection": self.store.collection}


def open_backend(
    uri: str,
    collection: str | None,
    model: str,
    dimension: int,
    *,
    index_path: str | Path | None = None,
    create: bool = True,
) -> MilvusBackend:
    """The Milvus backend at `uri` (``milvus://host:19530``, ``http(s)://...`` or a
    milvus-lite ``.db`` file; a relative file is taken from the current folder), in
    `collection` (default: named after `index_path`, see `collection_name`). The
    server's token, if it needs one, comes from ``$SEMANTIC_QA_MILVUS_TOKEN``."""
    where = location(uri, collection, index_path)
    store = MilvusStore.open(
        uri if "://" in uri else where["uri"],  # the store shows it without credentials
        where["collection"],
        model=model,
        dimension=dimension,
        create=create,
        token=os.environ.get(TOKEN_ENV, ""),
    )
    return MilvusBackend(store)


def location(
    uri: str, collection: str | None = None, index_path: str | Path | None = None
) -> dict[str, str]:
    """Where `open_backend` would open, as the manifest records it (no credentials;
    a milvus-lite file by its absolute path), without connecting."""
    target, shown = client_uri(uri)
    if "://" not in target:  # milvus-lite: the manifest must name it wherever it is read
        shown = str(Path(uri).resolve())
    if collection is None:
        if index_path is None:
            raise InvalidInputError("a Milvus collection name is needed (--collection NAME)")
        collection = collection_name(index_path)
    return {"backend": "milvus", "uri": shown, "collection": collection}


def collection_name(index_path: str | Path) -> str:
    """The default collection of the index folder `index_path`: its name (letters,
    digits and underscores) and a hash of its absolute path, so two folders called
    ``index`` on one server get two collections."""
    path = Path(index_path).resolve()
    stem = re.sub(r"[^A-Za-z0-9_]", "_", path.name)[:40] or "index"
    return f"qa_{stem}_{hashlib.sha256(str(path).encode()).hexdigest()[:8]}"


def reconcile(
    backend: MilvusBackend,
    keys: np.ndarray,
    vectors: np.ndarray,
    rows: Callable[[Iterable[int]], list[Row]],
    next_key: int,
    *,
    progress: bool | None = None,
) -> tuple[int, int]:
    """Make the collection hold exactly the passages `keys` (vectors row by row;
    `rows(positions)` gives their `Row`s): add those missing, in steps of `STEP` with
    a progress bar, then remove any other key. Resumable: what is there already is
    skipped, so a rerun after an interruption goes on where it stopped, and nothing
    is encoded. Returns (added, removed)."""
    store = backend.store
    if progress is None:
        progress = len(keys) > STEP and _on_terminal()
    added = 0
    with tqdm(total=len(keys), unit="passage", disable=not progress, desc="to Milvus") as bar:
        for start in range(0, len(keys), STEP):
            chunk = keys[start : start + STEP]
            have = store.present(chunk.tolist())
            missing = np.asarray(
                [i for i, key in enumerate(chunk.tolist(), start) if key not in have],
                dtype=np.int64,
            )
            if len(missing):
                added += store.add(
                    keys[missing], vectors[missing], rows(missing.tolist()), progress=False
                )
            bar.update(len(chunk))
    removed = 0
    if store.count() != len(keys):
        wanted = set(keys.tolist())
        extra = [key for key in store.keys(next_key) if key not in wanted]
        removed = store.remove(extra)
    log.info("Milvus %s: %d passages added, %d removed", store.collection, added, removed)
    return added, removed


def _on_terminal() -> bool:
    import sys

    return sys.stderr.isatty()
