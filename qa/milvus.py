"""Passages and their vectors in Milvus: a Milvus server (standalone or a
distributed cluster) or milvus-lite (a local ``.db`` file), through
``pymilvus.MilvusClient``. The same small surface as `qa.vectors.VectorIndex` — add,
remove, search by int64 keys — plus the passage fields a `Hit` is rebuilt from and
exact-match metadata filters that run inside Milvus.

>>> store = MilvusStore.open("http://127.0.0.1:19530", "passages",
...                          model="all-MiniLM-L6-v2", dimension=384)  # doctest: +SKIP
>>> store.add(keys, vectors, rows)                                      # doctest: +SKIP
>>> store.search(query_vectors, 5, where={"source": "news/osce.md"})    # doctest: +SKIP
[[(1042, 0.83), (17, 0.79), ...]]

Keys are the caller's stable passage keys (`qa.Index.keys`): never reused, so a key
that was removed never comes back. Vectors are normalized float32, so the inner
product (metric ``IP``) is the cosine similarity, the same score FAISS gives.

The collection records the model name and dimension in its properties and `open`
checks them: vectors of another model are a `ModelMismatchError`, never mixed in.
Every read uses ``consistency_level="Strong"``: a search right after `add` or `remove`
sees the change (with the server's default, Bounded, deleted rows come back for a
while). Session consistency would be cheaper (Strong waits for the server's next time
tick: about 36 ms a search vs 3.7 ms, BENCHMARKS.md "Milvus") but does not see this
process's own deletes: pymilvus records the timestamp of inserts, not of deletes
(tried against the 2.3.5 server: a removed passage kept coming back).

Only the core ``MilvusClient`` calls that Milvus 2.3 (the server tested here) has are
used. Filter values are quoted by `quote`, not passed as ``filter_params``: Milvus 2.3
has no expression templates.
"""

from __future__ import annotations

import json
import logging
import math
import re
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from tqdm.auto import tqdm

from .errors import (
    IndexFormatError,
    IndexNotFoundError,
    InvalidInputError,
    ModelMismatchError,
)
from .query import check_k

log = logging.getLogger(__name__)

FORMAT = 1
PROPERTY = "semantic_qa."  # prefix of the collection properties this module writes
INDEX_TYPES = ("HNSW", "FLAT")
# Milvus limits: a VARCHAR holds at most 65,535 bytes; a search at most 16,384 results.
VARCHAR_MAX = 65_535
MAX_K = 16_384
# Rows per insert: ~1,000 passages of 384 floats and text are a few MB, well under
# the server's 64 MB message limit.
BATCH = 1000
QUERY_BATCH = 256  # query vectors per search request
KEY_BATCH = 1000  # keys per "id in [...]" expression
STRONG = {"consistency_level": "Strong"}
# The fields `where` can name directly; any other name is a metadata key.
_FIELDS = {"doc_id": "doc_id", "id": "doc_id", "title": "title", "source": "source"}
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}")
_OUTPUT = ["passage_id", "doc_id", "start", "end", "text", "title", "source", "metadata"]


@dataclass(frozen=True)
class Row:
    """What Milvus keeps of a passage besides its vector: enough to rebuild a `Hit`."""

    passage_id: str
    doc_id: str
    start: int
    end: int
    text: str
    title: str = ""
    source: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, passage: Any, document: Any) -> Row:
        """The row of a `qa.Passage` of `document` (a `qa.Document` or the index's
        `DocumentInfo`: anything with `title`, `source` and `metadata`)."""
        return cls(
            passage.id,
            passage.doc_id,
            passage.start,
            passage.end,
            passage.text,
            document.title,
            document.source,
            dict(document.metadata),
        )


@dataclass(frozen=True)
class Params:
    """How the collection's vectors are indexed and searched. ``HNSW`` is approximate
    (`ef` candidates per search, raised to `k` when `k` is larger); ``FLAT`` is exact."""

    index_type: str = "HNSW"
    m: int = 16
    ef_construction: int = 200
    ef: int = 128

    def __post_init__(self) -> None:
        if self.index_type not in INDEX_TYPES:
            raise InvalidInputError(
                f"index_type must be one of {', '.join(INDEX_TYPES)}, got {self.index_type!r}"
            )

    def search_params(self, k: int) -> dict[str, Any]:
        if self.index_type == "HNSW":
            return {"metric_type": "IP", "params": {"ef": max(self.ef, k)}}
        return {"metric_type": "IP", "params": {}}


class MilvusStore:
    """One Milvus collection of passages: int64 key, vector, passage fields."""

    def __init__(
        self,
        client: Any,
        uri: str,
        collection: str,
        model: str,
        dimension: int,
        params: Params,
    ):
        self.client = client
        self.uri = uri
        self.collection = collection
        self.model = model
        self.dimension = dimension
        self.params = params

    def __repr__(self) -> str:
        return f"<MilvusStore {self.uri} {self.collection}: model {self.model}>"

    @classmethod
    def open(
        cls,
        uri: str,
        collection: str = "passages",
        *,
        model: str,
        dimension: int,
        params: Params | None = None,
        create: bool = True,
        token: str = "",
    ) -> MilvusStore:
        """The collection `collection` at `uri` (``http://host:19530``,
        ``milvus://host:19530`` or a milvus-lite file ``path/to/file.db``), created
        for `model` and `dimension` when missing (unless `create` is false). An
        existing collection keeps its own index `params`; one made for another model
        or dimension raises `ModelMismatchError`.

        >>> MilvusStore.open("data/passages.db", model="all-MiniLM-L6-v2", dimension=384)  # doctest: +SKIP
        """
        from pymilvus import MilvusClient, MilvusException

        if not _NAME.fullmatch(collection):
            raise InvalidInputError(
                f"a Milvus collection name is letters, digits and underscores, starting "
                f"with a letter or underscore (at most 255), got {collection!r}"
            )
        if isinstance(dimension, bool) or not isinstance(dimension, int) or dimension < 1:
            raise InvalidInputError(f"dimension must be a positive integer, got {dimension!r}")
        target, shown = client_uri(uri)
        if "://" not in target:
            # milvus-lite serves gRPC in this process and logs, as an error, the
            # AllocTimestamp call pymilvus 3 makes on connecting, which it lacks (harmless)
            logging.getLogger("grpc._server").setLevel(logging.CRITICAL)
        try:
            client = MilvusClient(uri=target, token=token)
        except MilvusException as err:
            raise IndexNotFoundError(
                f"cannot reach Milvus at {shown} ({err.message}): start the server "
                f"(docs/milvus.md, 'Running Milvus') or fix the address"
            ) from err
        if client.has_collection(collection):
            store = cls._existing(client, shown, collection, model, dimension)
            if params is not None and params != store.params:
                log.warning(
                    "%s: the collection keeps its index %s, not the %s asked for",
                    collection,
                    store.params,
                    params,
                )
        elif not create:
            raise IndexNotFoundError(
                f"no collection {collection!r} at {shown}: create it (create=True) or "
                f"check the name (there: {', '.join(client.list_collections()) or 'none'})"
            )
        else:
            store = cls(client, shown, collection, model, dimension, params or Params())
            store._create()
        return store

    @classmethod
    def _existing(
        cls, client: Any, uri: str, collection: str, model: str, dimension: int
    ) -> MilvusStore:
        described = client.describe_collection(collection)
        props = {str(k): str(v) for k, v in (described.get("properties") or {}).items()}
        if PROPERTY + "format" not in props:
            raise IndexFormatError(
                f"collection {collection!r} at {uri} was not made by semantic-qa (no "
                f"{PROPERTY}format property): use another collection name"
            )
        if props[PROPERTY + "format"] != str(FORMAT):
            raise IndexFormatError(
                f"collection {collection!r} at {uri} has semantic-qa format "
                f"{props[PROPERTY + 'format']}, this version reads {FORMAT}: migrate it "
                f"with the semantic-qa version that wrote it, or rebuild it"
            )
        vector_dim = next(
            (
                int(f["params"]["dim"])
                for f in described["fields"]
                if f["name"] == "vector" and "dim" in f.get("params", {})
            ),
            None,
        )
        made_model, made_dim = props[PROPERTY + "model"], int(props[PROPERTY + "dimension"])
        if vector_dim != made_dim:
            raise IndexFormatError(
                f"collection {collection!r} at {uri}: its vectors have {vector_dim} "
                f"dimensions, its properties say {made_dim}: rebuild it"
            )
        if (made_model, made_dim) != (model, dimension):
            raise ModelMismatchError(
                f"collection {collection!r} at {uri} holds vectors of model "
                f"{made_model!r} ({made_dim} dimensions), not {model!r} ({dimension}): "
                f"search it with {made_model!r}, or use another collection for {model!r}"
            )
        params = Params(**json.loads(props[PROPERTY + "params"]))
        store = cls(client, uri, collection, made_model, made_dim, params)
        state = client.get_load_state(collection).get("state")
        if str(state) != "Loaded":  # pymilvus LoadState: NotExist, NotLoad, Loading, Loaded
            # a server restart leaves collections released; searching needs them loaded
            client.load_collection(collection)
        return store

    def _create(self) -> None:
        from pymilvus import DataType

        schema = self.client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self.dimension)
        schema.add_field("passage_id", DataType.VARCHAR, max_length=VARCHAR_MAX)
        schema.add_field("doc_id", DataType.VARCHAR, max_length=VARCHAR_MAX)
        schema.add_field("start", DataType.INT64)
        schema.add_field("end", DataType.INT64)
        schema.add_field("text", DataType.VARCHAR, max_length=VARCHAR_MAX)
        schema.add_field("title", DataType.VARCHAR, max_length=VARCHAR_MAX)
        schema.add_field("source", DataType.VARCHAR, max_length=VARCHAR_MAX)
        schema.add_field("metadata", DataType.JSON)
        index = self.client.prepare_index_params()
        if self.params.index_type == "HNSW":
            build = {"M": self.params.m, "efConstruction": self.params.ef_construction}
            index.add_index("vector", index_type="HNSW", metric_type="IP", params=build)
        else:
            index.add_index("vector", index_type="FLAT", metric_type="IP")
        self.client.create_collection(
            self.collection,
            schema=schema,
            index_params=index,
            consistency_level="Strong",
            properties={
                PROPERTY + "format": str(FORMAT),
                PROPERTY + "model": self.model,
                PROPERTY + "dimension": str(self.dimension),
                PROPERTY + "params": json.dumps(asdict(self.params), sort_keys=True),
            },
        )
        log.info(
            "created Milvus collection %s at %s (%s, %d dimensions, %s)",
            self.collection,
            self.uri,
            self.model,
            self.dimension,
            self.params.index_type,
        )

    def add(
        self,
        keys: Sequence[int] | np.ndarray,
        vectors: np.ndarray,
        rows: Sequence[Row],
        *,
        batch_size: int = BATCH,
        skip_existing: bool = False,
        progress: bool | None = None,
    ) -> int:
        """Insert passages under new int64 `keys`, in batches of `batch_size` with a
        progress bar. A key already in the collection is an `InvalidInputError`
        (remove it first), or with `skip_existing=True` left as it is — so an
        interrupted ingestion resumes by running it again. Returns how many were added.

        >>> store.add([7, 8], vectors, [Row.of(p, doc) for p in passages])  # doctest: +SKIP
        2
        """
        keys_array = _keys(keys)
        vectors = self._vectors(vectors, "vectors")
        if not len(keys_array) == len(vectors) == len(rows):
            raise InvalidInputError(
                f"add takes one key, vector and row per passage, got {len(keys_array)} keys, "
                f"{len(vectors)} vectors and {len(rows)} rows"
            )
        if len(np.unique(keys_array)) != len(keys_array):
            raise InvalidInputError("keys must be distinct: each passage needs its own key")
        # Every row is checked before the first insert; the vectors become the lists
        # pymilvus sends one batch at a time (all at once: ~2.5 GB of floats at 200k).
        entities = [_entity(int(k), r) for k, r in zip(keys_array, rows, strict=True)]
        if batch_size < 1:
            raise InvalidInputError(f"batch_size must be at least 1, got {batch_size}")
        if progress is None:
            progress = sys.stderr.isatty() and len(entities) > batch_size
        added, started = 0, time.perf_counter()
        with tqdm(total=len(entities), unit="passage", disable=not progress) as bar:
            for start in range(0, len(entities), batch_size):
                batch = entities[start : start + batch_size]
                present = self._present([e["id"] for e in batch])
                if present and not skip_existing:
                    raise InvalidInputError(
                        f"{len(present)} keys are already in collection {self.collection!r} "
                        f"(e.g. {min(present)}): keys are never reused; remove them first "
                        f"to replace their passages, or pass skip_existing=True to resume "
                        f"an interrupted ingestion ({added} passages were added before this)"
                    )
                new = [
                    {**e, "vector": vectors[start + i].tolist()}
                    for i, e in enumerate(batch)
                    if e["id"] not in present
                ]
                if new:
                    self.client.insert(self.collection, new)
                added += len(new)
                bar.update(len(batch))
        log.info(
            "added %d passages to %s in %.1f s",
            added,
            self.collection,
            time.perf_counter() - started,
        )
        return added

    def remove(self, keys: Sequence[int] | np.ndarray) -> int:
        """Delete the passages of `keys` (absent keys are ignored); returns how many
        were removed. A search right after no longer finds them."""
        keys_array = _keys(keys)
        removed = 0
        for batch in _chunks([int(k) for k in keys_array], KEY_BATCH):
            present = sorted(self._present(batch))
            if present:
                self.client.delete(self.collection, ids=present)
            removed += len(present)
        return removed

    def search(
        self,
        queries: np.ndarray,
        k: int,
        where: Mapping[str, Any] | None = None,
    ) -> list[list[tuple[int, float]]]:
        """For each query vector, up to `k` (key, inner product) pairs, best first;
        `where`: exact match on ``doc_id``, ``title``, ``source`` or a metadata key
        (a list value matches any of its items; several fields must all match), run
        inside Milvus, so min(k, matching passages) come back.

        >>> store.search(encoder.encode_queries(["Who chairs the OSCE?"]), 3)  # doctest: +SKIP
        [[(12, 0.71), (40, 0.66), (3, 0.52)]]
        """
        k = check_k(k)
        if k > MAX_K:
            raise InvalidInputError(f"k must be at most {MAX_K} (Milvus's limit), got {k}")
        queries = self._vectors(queries, "queries")
        expression = filter_expression(where)
        if expression is None or len(queries) == 0:
            return [[] for _ in range(len(queries))]
        results: list[list[tuple[int, float]]] = []
        for start in range(0, len(queries), QUERY_BATCH):
            chunk = queries[start : start + QUERY_BATCH]
            found = self.client.search(
                self.collection,
                data=[q.tolist() for q in chunk],
                filter=expression,
                limit=k,
                output_fields=["id"],
                search_params=self.params.search_params(k),
                anns_field="vector",
                **STRONG,
            )
            results.extend([(int(h["id"]), float(h["distance"])) for h in hits] for hits in found)
        return results

    def rows(self, keys: Iterable[int]) -> dict[int, Row]:
        """The stored rows of `keys` that are in the collection, by key."""
        out: dict[int, Row] = {}
        for batch in _chunks([int(k) for k in keys], KEY_BATCH):
            found = self.client.query(
                self.collection,
                filter=_in_keys(batch),
                output_fields=["id", *_OUTPUT],
                **STRONG,
            )
            for entity in found:
                out[int(entity["id"])] = Row(**{name: entity[name] for name in _OUTPUT})
        return out

    def count(self) -> int:
        """How many passages the collection holds now."""
        found = self.client.query(self.collection, filter="", output_fields=["count(*)"], **STRONG)
        return int(found[0]["count(*)"])

    def info(self) -> dict[str, Any]:
        """Where the collection is, its model, dimension, index and count."""
        return {
            "backend": "milvus",
            "uri": self.uri,
            "server": self.client.get_server_version(),
            "collection": self.collection,
            "model": self.model,
            "dimension": self.dimension,
            "metric": "IP",
            "index": asdict(self.params),
            "count": self.count(),
            "format": FORMAT,
        }

    def present(self, keys: Iterable[int]) -> set[int]:
        """Which of `keys` the collection holds now."""
        out: set[int] = set()
        for batch in _chunks([int(k) for k in keys], KEY_BATCH):
            out |= self._present(batch)
        return out

    def keys(self, below: int, *, step: int = 10_000) -> Iterator[int]:
        """Every key in the collection, ranges of `step` keys at a time up to `below`
        (an index's `next_key`), then any at or above it. A query returns at most
        16,384 rows, and keys are distinct, so a range of `step` keys fits in one."""
        for start in range(0, max(0, below), step):
            found = self.client.query(
                self.collection,
                filter=f"id >= {start} and id < {min(start + step, below)}",
                output_fields=["id"],
                **STRONG,
            )
            yield from sorted(int(e["id"]) for e in found)
        found = self.client.query(
            self.collection, filter=f"id >= {max(0, below)}", output_fields=["id"],
            limit=MAX_K, **STRONG,
        )  # fmt: skip
        yield from sorted(int(e["id"]) for e in found)

    def synced(self) -> str:
        """The saved index state (`qa.Index.saved_as`) the collection was last brought
        in line with by `set_synced`; "" when never."""
        props = self.client.describe_collection(self.collection).get("properties") or {}
        return str(props.get(PROPERTY + "synced", ""))

    def set_synced(self, identity: str) -> None:
        """Record that the collection now holds exactly the passages of the saved
        index state `identity`."""
        self.client.alter_collection_properties(
            self.collection, properties={PROPERTY + "synced": identity}
        )

    def drop(self) -> None:
        """Delete the whole collection."""
        self.client.drop_collection(self.collection)

    def close(self) -> None:
        self.client.close()

    def _present(self, keys: list[int]) -> set[int]:
        if not keys:
            return set()
        found = self.client.query(
            self.collection, filter=_in_keys(keys), output_fields=["id"], **STRONG
        )
        return {int(e["id"]) for e in found}

    def _vectors(self, vectors: Any, what: str) -> np.ndarray:
        array = np.asarray(vectors, dtype=np.float32)
        if array.ndim != 2 or array.shape[1] != self.dimension:
            raise InvalidInputError(
                f"{what} must be a [n, {self.dimension}] array, got shape {list(array.shape)}"
            )
        if not np.isfinite(array).all():
            raise InvalidInputError(f"{what} hold NaN or infinite values")
        return array


def client_uri(uri: str) -> tuple[str, str]:
    """(what `MilvusClient` takes, what messages show: no credentials) for a store
    URI: ``milvus://host:port`` -> ``http://host:port``; ``http(s)://`` as it is; a
    path ending in ``.db`` is a milvus-lite file."""
    if not isinstance(uri, str) or not uri.strip():
        raise InvalidInputError(f"a Milvus URI is needed, e.g. http://127.0.0.1:19530; got {uri!r}")
    parts = urlsplit(uri)
    if parts.scheme in ("milvus", "http", "https"):
        if not parts.hostname:
            raise InvalidInputError(f"no host in Milvus URI {uri!r}: e.g. milvus://127.0.0.1:19530")
        scheme = "http" if parts.scheme == "milvus" else parts.scheme
        port = f":{parts.port}" if parts.port else ""
        target = f"{scheme}://{parts.netloc}{parts.path}"
        return target, f"{scheme}://{parts.hostname}{port}{parts.path}"
    if "://" in uri:
        raise InvalidInputError(
            f"unknown Milvus URI scheme in {uri!r}: use milvus://, http://, https:// or a "
            f"milvus-lite file path ending in .db"
        )
    if not uri.endswith(".db"):
        raise InvalidInputError(f"a milvus-lite file name ends in .db, got {uri!r}")
    return uri, uri


def quote(value: str) -> str:
    """`value` as a Milvus string literal: whatever it holds (quotes, backslashes,
    operators, newlines), it stays one literal and cannot change the expression.
    Milvus 2.3 and milvus-lite both read these escapes."""
    return '"' + "".join(_ESCAPES.get(c, c) for c in value) + '"'


_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def filter_expression(where: Mapping[str, Any] | None) -> str | None:
    """The Milvus filter for a `where` dict: "" for none, None when nothing can match
    (an empty list of values, a non-text value for a text field).

    >>> filter_expression({"source": 'a"b', "year": [2010, 2011]})
    '(source == "a\\\\"b") and (metadata["year"] == 2010 or metadata["year"] == 2011)'
    """
    if where is None:
        return ""
    if not isinstance(where, Mapping) or not all(isinstance(key, str) for key in where):
        raise InvalidInputError(
            f"where must be a dict of field -> value, got {type(where).__name__}: {where!r:.60}"
        )
    clauses = []
    for name, wanted in where.items():
        values = list(wanted) if isinstance(wanted, list | tuple | set | frozenset) else [wanted]
        if name in _FIELDS:
            # text fields: any other type matches nothing, as in qa.Index
            values = [v for v in values if isinstance(v, str)]
            left = _FIELDS[name]
        elif not name or "\x00" in name:
            # Milvus refuses an empty JSON key and reads keys as C strings: one with a
            # NUL would silently match nothing
            raise InvalidInputError(
                f"Milvus cannot filter on an empty metadata key or one with a NUL "
                f"character, got {name!r:.60}"
            )
        else:
            left = f"metadata[{quote(_text(name, 'metadata key'))}]"
        if not values:
            return None
        # "==" joined by "or", not "in": milvus-lite has no "in" on JSON keys
        clauses.append(" or ".join(f"{left} == {_literal(v, name)}" for v in values))
    return " and ".join(f"({c})" for c in clauses)


def _literal(value: Any, name: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return repr(value)
    if isinstance(value, str):
        return quote(_text(value, f"where value for {name!r}"))
    raise InvalidInputError(
        f"where values are text, numbers or true/false (or a list of them); "
        f"{name!r} has {type(value).__name__}: {value!r:.60}"
    )


def _text(value: str, what: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        raise InvalidInputError(f"{what} {value!r:.60} is not valid Unicode text") from err
    return value


def _entity(key: int, row: Row) -> dict[str, Any]:
    if not isinstance(row, Row):
        raise InvalidInputError(f"rows must be qa.milvus.Row values, got {type(row).__name__}")
    if not isinstance(row.metadata, dict):
        raise InvalidInputError(f"key {key}: metadata must be a dict, got {row.metadata!r:.60}")
    entity: dict[str, Any] = {"id": key}
    for name in _OUTPUT:
        value = getattr(row, name)
        if (
            isinstance(value, str)
            and len(_text(value, f"key {key}: {name}").encode()) > VARCHAR_MAX
        ):
            raise InvalidInputError(
                f"key {key}: {name} is {len(value.encode())} bytes, more than Milvus's "
                f"{VARCHAR_MAX}: shorten it (passages are split well below this)"
            )
        entity[name] = value
    return entity


def _keys(keys: Any) -> np.ndarray:
    array = np.asarray(keys)
    if array.ndim != 1 or (len(array) and array.dtype.kind not in "iu"):
        raise InvalidInputError(
            f"keys must be int64 passage keys in a 1-d array, got {array.dtype}{list(array.shape)}"
        )
    if len(array) and array.dtype.kind == "u" and int(array.max()) > np.iinfo(np.int64).max:
        raise InvalidInputError(f"keys must fit in int64, got {int(array.max())}")
    return array.astype(np.int64)


def _in_keys(keys: list[int]) -> str:
    return f"id in [{', '.join(str(int(k)) for k in keys)}]"


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
