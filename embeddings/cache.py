"""Embedding cache: vectors by (model, sha256 of the text), so text that was embedded
once is never run through the model again (re-indexing, updates, a changed setting
that leaves most passages as they were).

One SQLite file, `embeddings.sqlite3`, in ~/.cache/semantic-qa/embeddings or in
$SEMANTIC_QA_CACHE (`SEMANTIC_QA_CACHE=off` turns caching off). Vectors are stored as
raw float32 bytes: nothing is unpickled, a damaged row is only a cache miss. The cache
never breaks indexing: when it cannot be read or written it logs a warning and the
model encodes as if it were empty. Delete the folder to clear it.

>>> cached = CachedEncoder(load_encoder(), EmbeddingCache.default())  # doctest: +SKIP
>>> cached.encode_documents(["Cats purr."])  # the model runs once for this text, ever
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from .encoder import Encoder, Spans

log = logging.getLogger(__name__)

ENV = "SEMANTIC_QA_CACHE"
DEFAULT_FOLDER = Path("~/.cache/semantic-qa/embeddings")
OFF = frozenset({"off", "0", "no", "false", "none"})
FILE = "embeddings.sqlite3"
# Rows looked up per SQL statement (SQLite allows a few hundred parameters at least).
_CHUNK = 500


def model_key(encoder: Encoder) -> str:
    """What a cached vector is filed under: the model's name and dimension. An encoder
    whose vectors differ from another's of the same name (a quantized export, say)
    gives itself a distinct `cache_key` attribute."""
    name = getattr(encoder, "cache_key", None) or encoder.name
    return f"{name}/{encoder.dimension}"


class EmbeddingCache:
    """Vectors by (model key, sha256 of the text) in one SQLite file in `folder`."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder).expanduser()
        self.file = self.folder / FILE
        self._broken = False

    def __repr__(self) -> str:
        return f"<EmbeddingCache {self.file}>"

    @classmethod
    def default(cls) -> EmbeddingCache | None:
        """The cache in $SEMANTIC_QA_CACHE (or ~/.cache/semantic-qa/embeddings); None
        when that variable says off."""
        where = os.environ.get(ENV, "").strip()
        if where.lower() in OFF:
            return None
        return cls(where or DEFAULT_FOLDER)

    def get(self, model: str, digests: Sequence[bytes], dimension: int) -> dict[bytes, np.ndarray]:
        """The cached vectors among `digests` (sha256 of texts), by digest."""
        return {
            d: rows[0]
            for d, rows in self.get_rows(model, digests, dimension).items()
            if len(rows) == 1
        }

    def get_rows(
        self, model: str, digests: Sequence[bytes], dimension: int
    ) -> dict[bytes, np.ndarray]:
        """The cached [rows x dimension] arrays among `digests`, by digest (a passage
        and its sentences are one entry; see `CachedEncoder.encode_passages`)."""
        found: dict[bytes, np.ndarray] = {}
        if not digests or not self.file.exists():
            return found
        with self._connection() as db:
            if db is None:
                return found
            unique = list(dict.fromkeys(digests))
            for at in range(0, len(unique), _CHUNK):
                chunk = unique[at : at + _CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = db.execute(
                    f"SELECT sha256, vector FROM vectors WHERE model = ? AND sha256 IN ({marks})",
                    [model, *chunk],
                )
                for digest, blob in rows:
                    if blob and len(blob) % (4 * dimension) == 0:  # else damage: a miss
                        vectors = np.frombuffer(blob, dtype=np.float32)
                        found[bytes(digest)] = vectors.reshape(-1, dimension)
        return found

    def put(
        self, model: str, digests: Sequence[bytes], vectors: np.ndarray | Sequence[np.ndarray]
    ) -> None:
        """Remember `vectors` (one row, or one array of rows, per digest)."""
        if not len(digests):
            return
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            self._give_up(err)
            return
        rows = [np.ascontiguousarray(v, dtype=np.float32) for v in vectors]
        with self._connection() as db:
            if db is not None:
                with db:  # one transaction
                    db.executemany(
                        "INSERT OR IGNORE INTO vectors (model, sha256, vector) VALUES (?, ?, ?)",
                        ((model, d, row.tobytes()) for d, row in zip(digests, rows, strict=True)),
                    )

    def count(self) -> int:
        """Vectors held, all models together."""
        if not self.file.exists():
            return 0
        with self._connection() as db:
            if db is not None:
                return int(db.execute("SELECT count(*) FROM vectors").fetchone()[0])
        return 0

    @contextlib.contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection | None]:
        """A connection per call: callers come from any thread (the web form's
        uploads); None once the cache has failed (it is then left alone)."""
        db = None
        try:
            if not self._broken:
                db = sqlite3.connect(self.file, timeout=30)
                db.execute(
                    "CREATE TABLE IF NOT EXISTS vectors (model TEXT NOT NULL, "
                    "sha256 BLOB NOT NULL, vector BLOB NOT NULL, PRIMARY KEY (model, sha256)) "
                    "WITHOUT ROWID"
                )
        except (sqlite3.Error, OSError) as err:
            self._give_up(err)
        try:
            yield None if self._broken else db
        except (sqlite3.Error, OSError) as err:  # a failed read is a miss, a failed write a no-op
            self._give_up(err)
        finally:
            if db is not None:
                db.close()

    def _give_up(self, err: Exception) -> None:
        if not self._broken:
            log.warning(
                "embedding cache %s is unusable (%s): encoding without it; delete the folder "
                "or set %s=off",
                self.file,
                err,
                ENV,
            )
        self._broken = True


def digest(text: str) -> bytes:
    """The cache key of a text: sha256 of its UTF-8 bytes."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


class CachedEncoder:
    """An encoder whose `encode_documents` runs the model only on texts the cache has
    not seen (each distinct text once); queries are never cached. For reports:
    `encoded` counts the texts the model ran on, `reused` those the cache gave.

    >>> enc = CachedEncoder(encoder, EmbeddingCache("/tmp/cache"))  # doctest: +SKIP
    """

    def __init__(self, encoder: Encoder, cache: EmbeddingCache):
        self.encoder = encoder
        self.cache = cache
        self.key = model_key(encoder)
        self.encoded = 0
        self.reused = 0
        if hasattr(encoder, "encode_passages"):  # only what the encoder can do
            self.encode_passages = self._encode_passages

    @property
    def name(self) -> str:
        return self.encoder.name

    @property
    def dimension(self) -> int:
        return self.encoder.dimension

    @property
    def max_tokens(self) -> int:
        return self.encoder.max_tokens

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        return self.encoder.token_spans(text)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self.encoder.count_tokens(texts)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self.encoder.encode_queries(texts)

    def encode_documents(self, texts: Sequence[str], *, progress: bool | None = None) -> np.ndarray:
        dim = self.encoder.dimension
        keys = [digest(t) for t in texts]
        found = self.cache.get(self.key, keys, dim)
        self.reused += sum(k in found for k in keys)
        todo = {k: t for k, t in zip(keys, texts, strict=True) if k not in found}
        if todo:
            fresh = self.encoder.encode_documents(list(todo.values()), progress=progress)
            fresh = np.asarray(fresh, dtype=np.float32).reshape(len(todo), dim)
            self.cache.put(self.key, list(todo), fresh)
            found.update(zip(todo, fresh, strict=True))
        self.encoded += len(todo)
        out = np.empty((len(texts), dim), dtype=np.float32)
        for row, key in enumerate(keys):
            out[row] = found[key]
        return out

    def _encode_passages(
        self, texts: Sequence[str], spans: Sequence[Spans], *, progress: bool | None = None
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """`encode_passages` through the cache: a passage's vector and its spans'
        vectors are one entry (its spans' vectors depend on the whole passage), filed
        under the text and its spans."""
        dim = self.encoder.dimension
        keys = [digest(f"{t}\0{list(s)}") for t, s in zip(texts, spans, strict=True)]
        rows_of = {k: 1 + len(s) for k, s in zip(keys, spans, strict=True)}
        found = {
            k: v
            for k, v in self.cache.get_rows(f"{self.key}/passages", keys, dim).items()
            if len(v) == rows_of[k]  # anything else is damage: a miss
        }
        todo = [i for i, k in enumerate(keys) if k not in found]
        self.reused += len(texts) - len(todo)
        if todo:
            vectors, pooled = self.encoder.encode_passages(  # type: ignore[attr-defined]
                [texts[i] for i in todo], [spans[i] for i in todo], progress=progress
            )
            fresh = {
                keys[i]: np.vstack([v[None, :], p])
                for i, v, p in zip(todo, vectors, pooled, strict=True)
            }
            self.cache.put(f"{self.key}/passages", list(fresh), list(fresh.values()))
            found.update(fresh)
            self.encoded += len(todo)
        rows = [found[k] for k in keys]
        return (
            np.array([r[0] for r in rows], np.float32).reshape(len(texts), dim),
            [np.asarray(r[1:], np.float32) for r in rows],
        )
