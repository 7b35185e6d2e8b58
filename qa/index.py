"""Index: passages, their vectors and a FAISS index over them; build, save, load,
search, and keep up to date (add, update, remove, sync).

>>> index = build_index(["data/articles"], "data/index")       # doctest: +SKIP
>>> index.search("Who chairs the OSCE in 2010?", k=1)[0].title  # doctest: +SKIP
'Kazakhstan and OSCE: joint efforts to ensure global security'
>>> index = index.update(["data/articles/edited.md"])           # doctest: +SKIP

Rows (passages, vectors, FAISS positions) follow the articles' order in
`Index.documents`, each article's passages in article order: `add` appends, `update`
replaces an article where it stands, `sync` takes the order it is given, as
`build_index` does. So an updated index and one built from scratch on the same
articles in the same order are the same index, down to how ties are ordered. Each
passage also has a stable int64 key (`Index.keys`, row by row) that is never reused
once its passage is gone.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from embeddings import DEFAULT_ENCODER, CachedEncoder, EmbeddingCache, Encoder, load_encoder

from . import ranking, store
from .answers import Sentences, sentence_bounds
from .backend import Backend, FaissBackend, MilvusBackend, open_backend, reconcile
from .documents import Document, Sources, load_documents, pages_between
from .errors import (
    DocumentError,
    DuplicateIdError,
    IndexCorruptError,
    IndexNotFoundError,
    InvalidInputError,
    ModelMismatchError,
    ModelNotFoundError,
)
from .hits import Hit
from .lexical import LexicalIndex, tokenize
from .passages import Passage, SplitSettings, split_document
from .query import check_k, check_question
from .signals import Question, coverage
from .store import DocumentInfo, next_key_of
from .table import Passages
from .vectors import Params as VectorParams
from .vectors import VectorIndex, choose_kind
from .vectors import build as build_vectors
from .vectors import tune as tune_vectors

log = logging.getLogger(__name__)

MODES = ("dense", "lexical", "hybrid")
DEFAULT_MODE = "hybrid"
# Passages whose sentences an index keeps split (for answer sentences) at most.
SENTENCES_KEPT = 10_000


@dataclass(frozen=True)
class Changes:
    """What `build_index` or `Index.add` / `update` / `remove` / `sync` did: article ids by outcome,
    how many passages were split and embedded, how many texts (passages and
    sentences) the model encoded and how many came from the embedding cache."""

    added: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    unchanged: int = 0
    passages: int = 0
    encoded: int = 0
    cached: int = 0
    seconds: float = 0.0

    def __bool__(self) -> bool:
        return bool(self.added or self.updated or self.removed)


class Index:
    """Passages of a set of articles, searchable by meaning (dense: cosine similarity
    of normalized vectors, FAISS), by words (lexical: BM25) or both (hybrid, the
    default), ranked by `qa.ranking`. This class holds the data and its lifecycle
    (build, change, save); how a question is answered from it is `qa.ranking`'s."""

    def __init__(
        self,
        encoder: Encoder,
        passages: Sequence[Passage] | Passages,
        vectors: np.ndarray,
        documents: dict[str, DocumentInfo],
        settings: SplitSettings,
        path: Path | None = None,
        lexical: LexicalIndex | None = None,
        sentence_vectors: np.ndarray | None = None,
        *,
        keys: np.ndarray | None = None,
        next_key: int | None = None,
        cache: EmbeddingCache | None = None,
        index_kind: str = "auto",
        vector_params: VectorParams | None = None,
        vector_index: VectorIndex | None = None,
        sentence_counts: np.ndarray | None = None,
        milvus: MilvusBackend | None = None,
    ):
        if vectors.shape != (len(passages), encoder.dimension):
            raise ValueError(f"vectors {vectors.shape} do not match {len(passages)} passages")
        self.encoder = encoder
        # a table, built into Passage objects only row by row (qa.table)
        self.passages = Passages.of(passages)
        self.vectors = vectors
        self.documents = documents
        self.settings = settings
        self.path = path
        self.sentence_vectors = sentence_vectors
        # keys[row]: the passage's stable key; next_key: the next one to hand out
        self.keys = np.arange(len(passages), dtype=np.int64) if keys is None else keys
        self.next_key = int(self.keys.max(initial=-1)) + 1 if next_key is None else next_key
        problem = store.check_keys(self.keys, self.next_key)
        if problem or len(self.keys) != len(passages):
            raise ValueError(problem or f"{len(self.keys)} keys for {len(passages)} passages")
        # where texts to embed go first (None: straight to the model)
        self.cache = cache
        # what the build or change that made this index did (None: loaded)
        self.changes: Changes | None = None
        # which saved state of its folder this index is (see `save`'s `expect`)
        self.saved_as: str | None = None
        # How questions are ranked (qa.ranking.Settings); benchmarks vary it.
        self.ranking = ranking.Settings()
        # the FAISS index asked for ("auto": by size, see qa.vectors) and how to build it
        choose_kind(0, index_kind)  # InvalidInputError for an unknown kind
        self.index_kind = index_kind
        self.vector_params = vector_params or VectorParams()
        # the Milvus collection that holds the passage vectors (None: FAISS, here)
        self.store = milvus
        self._derive(lexical, vector_index, sentence_counts)

    def _derive(
        self,
        lexical: LexicalIndex | None = None,
        vector_index: VectorIndex | None = None,
        sentence_counts: np.ndarray | None = None,
    ) -> None:
        """Every structure computed from the passages and vectors: FAISS, BM25 (unless
        a loaded one is given), rows by document, groups of identical texts, where
        each passage's sentence vectors start. The one place to call after the
        passages change. `vector_index`: a loaded or updated one over these vectors;
        `sentence_counts`: sentences per passage when known (saved, or carried over)."""
        if self.store is not None:  # searched in Milvus: no FAISS index to build
            vector_index = build_vectors(
                np.zeros((0, self.encoder.dimension), np.float32), np.zeros(0, np.int64), "flat"
            )
        elif vector_index is None or len(vector_index) != len(self):
            vector_index = build_vectors(
                self.vectors, self.keys, self.index_kind, self.vector_params
            )
        self.vector_index = vector_index
        # FAISS returns keys: their rows through the keys in sorted order
        self._key_order = np.argsort(self.keys, kind="stable")
        self._sorted_keys = self.keys[self._key_order]
        if lexical is None or lexical.count != len(self.passages):
            lexical = LexicalIndex.build(list(self.passages.texts()))
        self.lexical = lexical
        # Rows by article and groups of identical texts from the table's columns, in
        # numpy: a loop over a million passages took most of a large index's load.
        docs = self.passages.docs
        self._doc_number = {name: i for i, name in enumerate(self.passages.doc_names)}
        self._by_doc = np.argsort(docs, kind="stable")
        self._doc_bounds = np.searchsorted(
            docs[self._by_doc], np.arange(len(self.passages.doc_names) + 1)
        )
        hashes = self.passages.hashes
        self._by_hash = np.argsort(hashes, kind="stable")
        ordered = hashes[self._by_hash]
        firsts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]]) if len(self) else _NO_ROWS
        sizes = np.diff(np.r_[firsts, len(self)]).astype(np.int64)
        # each row's group of identical texts: self._by_hash[first : first + size]
        self._copy_first = np.empty(len(self), np.int64)
        self._copy_size = np.empty(len(self), np.int64)
        self._copy_first[self._by_hash] = np.repeat(firsts, sizes)
        self._copy_size[self._by_hash] = np.repeat(sizes, sizes)
        self._sentences: dict[int, Sentences] = {}  # filled as passages are returned
        self._titles: dict[str, frozenset[str]] = {}  # words of article titles, as asked
        # Splitting every passage into sentences is slow at scale (half a millisecond
        # each) and only sentence vectors need it.
        if self.sentence_vectors is None:
            counts = np.zeros(len(self.passages), dtype=np.int64)
        elif sentence_counts is not None and len(sentence_counts) == len(self.passages):
            counts = np.asarray(sentence_counts, dtype=np.int64)
        else:
            counts = _sentence_counts(self.passages)
        self._sentence_counts = counts
        self.sentence_starts = np.cumsum(counts) - counts
        if self.sentence_vectors is not None and self.sentence_vectors.shape != (
            int(counts.sum()),
            self.encoder.dimension,
        ):
            raise ValueError(
                f"sentence vectors {self.sentence_vectors.shape} do not match the "
                f"{int(counts.sum())} sentences of the passages"
            )

    def __len__(self) -> int:
        return len(self.passages)

    def __repr__(self) -> str:
        where = f" at {self.path}" if self.path else ""
        return (
            f"<Index{where}: {len(self.documents)} documents, {len(self)} passages, "
            f"model {self.encoder.name}>"
        )

    @property
    def backend(self) -> Backend:
        """Where dense search finds nearest passages: the Milvus collection, or the
        FAISS index (see `qa.backend`)."""
        if self.store is not None:
            return self.store
        return FaissBackend(self.vector_index, self.vectors, self.keys, self._where_rows_of)

    @property
    def exact(self) -> bool:
        """Whether dense and hybrid search score every passage here (a flat FAISS
        index; with Milvus, an index below `flat_below` passages, as FAISS would be)
        rather than only the candidates the backend finds."""
        if self.store is None:
            return self.vector_index.exact
        return choose_kind(len(self), self.index_kind, self.vector_params) == "flat"

    def search(
        self,
        question: str,
        k: int = 5,
        *,
        mode: str | None = None,
        where: Mapping[str, Any] | None = None,
        ranker: str | None = None,
    ) -> list[Hit]:
        """The `k` passages that best answer `question`, best first. `mode`: "hybrid"
        (default), "dense" or "lexical". `where`: exact match on document fields
        (`doc_id`, `title`, `source`) or metadata keys; a list value matches any of it.
        `ranker`: "learned" (the default with sentence vectors) or "fusion" (see
        `qa.ranking`).

        >>> [h.rank for h in index.search("What is the OSCE?", k=3)]  # doctest: +SKIP
        [1, 2, 3]
        >>> index.search("OSCE chair", where={"source": "news.md"}, mode="lexical")  # doctest: +SKIP
        """
        return self.search_batch([question], k, mode=mode, where=where, ranker=ranker)[0]

    def search_batch(
        self,
        questions: list[str],
        k: int = 5,
        *,
        mode: str | None = None,
        where: Mapping[str, Any] | None = None,
        vectors: np.ndarray | None = None,
        ranker: str | None = None,
    ) -> list[list[Hit]]:
        """`search` for many questions at once (encoded in batches: faster).
        `vectors`: the questions' vectors when already encoded (evaluation reuses them
        across modes)."""
        questions, k = [check_question(q) for q in questions], check_k(k)
        mode = check_mode(mode)
        if ranker is not None:
            ranking.check_ranker(ranker)
        rows = self._where_rows(where)
        if not questions:
            return []
        if mode == "lexical":
            vectors = np.full((len(questions), 0), np.nan, np.float32)
        elif vectors is None:
            vectors = self.encoder.encode_queries(questions)
        return [
            ranking.rank(self, q, v if v.size else None, k, mode, rows, where, ranker)
            for q, v in zip(questions, vectors, strict=True)
        ]

    def search_vectors(self, queries: np.ndarray, k: int) -> list[list[Hit]]:
        """Dense hits for ready query vectors, one list per row of `queries` (no
        question text: no lexical part, no de-duplication)."""
        k = min(k, len(self))
        if k == 0:
            return [[] for _ in range(len(queries))]
        scores, rows = self.nearest(queries, k)
        return [
            [
                self.hit(int(r), float(s), rank)
                for rank, (r, s) in enumerate(zip(rr, ss, strict=True), 1)
                if r >= 0
            ]
            for rr, ss in zip(rows, scores, strict=True)
        ]

    def nearest(
        self, queries: np.ndarray, k: int, where: Mapping[str, Any] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(scores, rows) of each query's `k` nearest passages by the backend (FAISS,
        exact or approximate, see `index_kind`; or Milvus), best first; row -1 pads,
        and stands for a key this index does not hold (a Milvus collection another
        process has changed since this index was loaded)."""
        scores, keys = self.backend.search(queries, k, where)
        at = np.searchsorted(self._sorted_keys, keys).clip(0, len(self) - 1)
        known = (keys >= 0) & (self._sorted_keys[at] == keys)
        return scores, np.where(known, self._key_order[at], -1)

    def _where_rows_of(self, where: Mapping[str, Any]) -> np.ndarray:
        rows = self._where_rows(where)
        return np.arange(len(self)) if rows is None else rows

    def _where_rows(self, where: Mapping[str, Any] | None) -> np.ndarray | None:
        """Rows of the passages of the documents that `where` selects (None: all)."""
        if where is None:
            return None
        if not isinstance(where, Mapping) or not all(isinstance(key, str) for key in where):
            raise InvalidInputError(
                f"where must be a dict of field -> value, got {type(where).__name__}: {where!r:.60}"
            )
        docs = [
            d for d in self.documents.values() if all(_matches(d, f, v) for f, v in where.items())
        ]
        return np.sort(np.concatenate([self._rows_of(d.id) for d in docs] or [_NO_ROWS]))

    def _rows_of(self, doc_id: str) -> np.ndarray:
        """Rows of the passages of article `doc_id`, in order (none for an unknown id)."""
        number = self._doc_number.get(doc_id)
        if number is None:
            return _NO_ROWS
        return self._by_doc[self._doc_bounds[number] : self._doc_bounds[number + 1]]

    def copies(self, row: int) -> np.ndarray:
        """Rows whose text is the text of `row` up to case and spacing (`row` too)."""
        first = int(self._copy_first[row])
        return self._by_hash[first : first + int(self._copy_size[row])]

    def closeness(self, row: int, vector: np.ndarray | None) -> list[float] | None:
        """Cosine of the question and each sentence of passage `row`, when known."""
        if vector is None or self.sentence_vectors is None:
            return None
        first = int(self.sentence_starts[row])
        count = int(self._sentence_counts[row])
        return (self.sentence_vectors[first : first + count] @ vector).tolist()

    def best_sentences(self, rows: np.ndarray | None, vector: np.ndarray) -> np.ndarray | None:
        """Each passage's (of `rows`, or all) highest sentence cosine to the question:
        finds the one relevant sentence that a long passage's single vector dilutes.
        None without sentence vectors."""
        if self.sentence_vectors is None:
            return None
        if rows is None:
            if not len(self):
                return np.zeros(0, np.float32)
            sims = self.sentence_vectors @ vector
            return np.maximum.reduceat(sims, self.sentence_starts).astype(np.float32)
        counts = self._sentence_counts[rows]
        sims = self.sentence_vectors[_expand(self.sentence_starts[rows], counts)] @ vector
        best = self.vectors[rows] @ vector  # a passage without sentences: its own vector
        has = counts > 0
        if has.any():
            best[has] = np.maximum.reduceat(sims, (np.cumsum(counts) - counts)[has])
        return best.astype(np.float32)

    def title_coverage(self, rows: np.ndarray, question: Question) -> np.ndarray:
        """How much of the question the title of each passage's article holds
        (`qa.signals.coverage`)."""
        out = np.zeros(len(rows), np.float32)
        for i, row in enumerate(rows.tolist()):
            doc_id = self.passages.doc_id(row)
            words = self._titles.get(doc_id)
            if words is None:
                if len(self._titles) >= SENTENCES_KEPT:
                    self._titles.clear()
                words = self._titles[doc_id] = frozenset(tokenize(self.documents[doc_id].title))
            out[i] = coverage(words, question)
        return out

    def sentences_of(self, row: int) -> Sentences:
        sentences = self._sentences.get(row)
        if sentences is None:
            if len(self._sentences) >= SENTENCES_KEPT:  # a server runs for months
                self._sentences.clear()
            sentences = self._sentences[row] = Sentences.of(self.passages.text(row))
        return sentences

    def passages_of(self, doc_id: str) -> list[Passage]:
        """The passages of article `doc_id`, in article order (none for an unknown id):
        its neighbours for a hit, without building every passage of a large index.

        >>> [p.start for p in index.passages_of("cats.md")]  # doctest: +SKIP
        [0, 412, 830]
        """
        rows = self._rows_of(doc_id)
        return sorted((self.passages[int(r)] for r in rows), key=lambda p: p.start)

    def hit(
        self,
        row: int,
        score: float,
        rank: int,
        answer: tuple[int, int] | None = None,
        also_in: tuple[str, ...] = (),
    ) -> Hit:
        p = self.passages[row]
        doc = self.documents[p.doc_id]
        start, end = answer if answer is not None else (0, len(p.text))
        return Hit(
            p.id,
            p.doc_id,
            doc.title,
            doc.source,
            p.start,
            p.end,
            p.text,
            score,
            rank,
            doc.metadata,
            start,
            end,
            also_in,
            pages_between(doc.page_starts, p.start, p.end),
        )

    def add(self, documents: Sources, *, progress: bool | None = None) -> Index:
        """A new index: this one plus `documents` (files, folders or `Document`s), split
        and embedded with this index's model and settings; saved over this index's
        folder when it has one. This index is left as it was, so a caller can swap
        the new one in at once, and a bad article (or an id already indexed) raises
        before anything changes.

        >>> bigger = index.add(["new-article.md"])  # doctest: +SKIP
        """
        docs = _load(documents, "add")
        taken = sorted(d.id for d in docs if d.id in self.documents)
        if taken:
            raise DuplicateIdError(
                f"article id {taken[0]!r} is already in the index: rename the file or give "
                "the article another id (JSON Lines 'id'), or use Index.update to replace it"
            )
        return self._change(docs, (), progress)

    def update(self, documents: Sources, *, progress: bool | None = None) -> Index:
        """A new index where each of `documents` replaces the article of the same id
        (its old passages go, with their keys; it is split and embedded anew), is
        added when new, and is left as it was when unchanged (same text, title and
        metadata). Saved and swappable like `add`.

        >>> index = index.update(["data/articles/000_ee18342087b7634f.txt"])  # doctest: +SKIP
        """
        return self._change(_load(documents, "update"), (), progress)

    def remove(self, doc_ids: str | Iterable[str]) -> Index:
        """A new index without the articles `doc_ids` (their passages and keys are
        gone for good). An id that is not in the index raises `InvalidInputError`
        and nothing changes. Saved and swappable like `add`.

        >>> smaller = index.remove(["news/old.md"])  # doctest: +SKIP
        """
        ids = [doc_ids] if isinstance(doc_ids, str) else list(doc_ids)
        unknown = [i for i in ids if not isinstance(i, str) or i not in self.documents]
        if unknown:
            some = ", ".join(repr(i) for i in list(self.documents)[:3])
            raise InvalidInputError(
                f"article id {unknown[0]!r} is not in the index, nothing was removed: give "
                f"ids as Index.documents lists them (e.g. {some})"
            )
        return self._change([], set(ids), None)

    def sync(self, documents: Sources, *, progress: bool | None = None) -> Index:
        """A new index of exactly `documents`: new articles added, changed ones
        re-embedded, articles not among them removed, unchanged ones untouched
        (what `semantic-qa index` does to an existing index). `changes` on the result
        says what happened.

        >>> index = index.sync(["data/articles"]); index.changes  # doctest: +SKIP
        """
        docs = _load(documents, "sync")
        given = {d.id for d in docs}
        removals = [i for i in self.documents if i not in given]
        return self._change(docs, removals, progress, order=[d.id for d in docs])

    def _change(
        self,
        docs: list[Document],
        removals: Collection[str],
        progress: bool | None,
        *,
        order: list[str] | None = None,
    ) -> Index:
        """The index with `docs` put in (added, or replacing the article of the same id
        unless that is unchanged) and the articles `removals` taken out; articles in
        `order` (default: where they were, new ones last). Saved when it has a path."""
        started = time.perf_counter()
        infos = {d.id: DocumentInfo.of(d) for d in docs}
        same = {i for i in infos if i in self.documents and _same(self.documents[i], infos[i])}
        changed = [d for d in docs if d.id not in same]
        documents = {i: d for i, d in self.documents.items() if i not in removals}
        documents.update(infos)  # an article already there keeps its place
        if order is not None:
            documents = {i: documents[i] for i in order}
        if not documents:
            raise InvalidInputError(
                "that would leave the index without articles: keep at least one, or delete "
                f"the index folder{f' {self.path}' if self.path else ''} instead"
            )
        if not changed and list(documents.items()) == list(self.documents.items()):
            unchanged = copy.copy(self)
            unchanged.changes = Changes(unchanged=len(same), seconds=time.perf_counter() - started)
            return unchanged
        embedder = self._embedder()
        new = [p for d in changed for p in split_document(d, self.encoder, self.settings)]
        vectors, sentences = embed_passages(
            embedder, new, sentences=self.sentence_vectors is not None, progress=progress
        )
        result = self._assemble(documents, {d.id for d in changed}, new, vectors, sentences)
        if self.path is not None:
            result.save(self.path, expect=self.saved_as)
        if result.store is not None:
            # after the save: only the process whose save won writes to Milvus
            result._sync_store(self, progress)
        encoded = _runs(self.encoder, vectors, sentences)
        result.changes = Changes(
            added=tuple(d.id for d in changed if d.id not in self.documents),
            updated=tuple(d.id for d in changed if d.id in self.documents),
            removed=tuple(i for i in self.documents if i in removals),
            unchanged=len(same),
            passages=len(new),
            encoded=embedder.encoded if isinstance(embedder, CachedEncoder) else encoded,
            cached=embedder.reused if isinstance(embedder, CachedEncoder) else 0,
            seconds=time.perf_counter() - started,
        )
        log.info("%s", result.changes)
        return result

    def _assemble(
        self,
        documents: dict[str, DocumentInfo],
        fresh: set[str],
        new: list[Passage],
        vectors: np.ndarray,
        sentences: np.ndarray | None,
    ) -> Index:
        """The index of `documents`, in that order: the articles in `fresh` from the
        `new` passages (keys handed out from `next_key`) and their vectors, the others
        from this index."""
        # Rows are numbered through this index's rows, then the new ones; each
        # article's rows come from one side or the other.
        old = len(self)
        new_rows: dict[str, list[int]] = {}
        for row, p in enumerate(new, old):
            new_rows.setdefault(p.doc_id, []).append(row)
        rows = np.concatenate(
            [
                np.asarray(new_rows[i], np.int64) if i in fresh else self._rows_of(i)
                for i in documents
            ]
            or [_NO_ROWS]
        )
        keys = np.arange(self.next_key, self.next_key + len(new), dtype=np.int64)
        sentence_vectors = sentence_counts = None
        if sentences is not None and self.sentence_vectors is not None:
            counts = np.concatenate([self._sentence_counts, _sentence_counts(new)])
            starts = np.cumsum(counts) - counts
            at = _expand(starts[rows], counts[rows])
            sentence_vectors = _take(self.sentence_vectors, sentences, at)
            sentence_counts = counts[rows]
        all_vectors, all_keys = _take(self.vectors, vectors, rows), _take(self.keys, keys, rows)
        return Index(
            self.encoder,
            Passages.gather([self.passages, Passages.of(new)], rows),
            all_vectors,
            documents,
            self.settings,
            sentence_vectors=sentence_vectors,
            keys=all_keys,
            next_key=self.next_key + len(new),
            cache=self.cache,
            index_kind=self.index_kind,
            vector_params=self.vector_params,
            vector_index=self._changed_vector_index(all_vectors, all_keys, vectors, keys),
            sentence_counts=sentence_counts,
            milvus=self.store,
        )

    def _changed_vector_index(
        self, vectors: np.ndarray, keys: np.ndarray, new_vectors: np.ndarray, new_keys: np.ndarray
    ) -> VectorIndex | None:
        """This index's approximate vector index, copied, without the passages whose keys
        are not in `keys` and with the new ones, its recall measured again over all
        `vectors` (and its search parameter raised if need be): no retraining on every
        change. None (build afresh) when exact, when it cannot remove (hnsw), or when
        the size now calls for another kind. Retrain with `semantic-qa index --force`."""
        vi = self.vector_index
        kind = choose_kind(len(keys), self.index_kind, self.vector_params)
        if self.store is not None or vi.exact or not vi.removable or kind != vi.kind:
            return None
        changed = VectorIndex(
            vi.kind, faiss.clone_index(vi.faiss_index), dict(vi.search_params), None,
            dict(vi.build_params),
        )  # fmt: skip
        gone = np.setdiff1d(self.keys, keys)
        if len(gone):
            changed.remove(gone)
        if len(new_keys):
            changed.add(new_vectors, new_keys)
        tune_vectors(changed, vectors, keys, self.vector_params)
        return changed

    def _sync_store(self, previous: Index | None, progress: bool | None = None) -> None:
        """Bring the Milvus collection in line with this index: from `previous` (the
        index it was made from) add the new passages and remove the gone ones; when
        the collection did not hold `previous` exactly (an interrupted write), or
        there is no `previous`, compare every key (`qa.backend.reconcile`)."""
        assert self.store is not None
        milvus = self.store.store
        if previous is not None and milvus.synced() == (previous.saved_as or ""):
            new = np.flatnonzero(~np.isin(self.keys, previous.keys))
            if len(new):
                self.store.add(self.keys[new], self.vectors[new], self._rows(new.tolist()))
            self.store.remove(np.setdiff1d(previous.keys, self.keys))
        else:
            reconcile(
                self.store, self.keys, self.vectors, self._rows, self.next_key, progress=progress
            )
        milvus.set_synced(self.saved_as or "")

    def _rows(self, positions: Iterable[int]) -> list[Any]:
        """What Milvus keeps of the passages at `positions` (`qa.milvus.Row`)."""
        from .milvus import Row

        return [
            Row.of(self.passages[i], self.documents[self.passages[i].doc_id]) for i in positions
        ]

    def _embedder(self) -> Encoder:
        """The encoder for passage and sentence texts: through the cache when there is one."""
        return self.encoder if self.cache is None else CachedEncoder(self.encoder, self.cache)

    def save(self, path: str | Path, *, expect: str | None = None) -> Path:
        """Write the index directory (atomically; see `qa.store`). `expect`: the saved
        state (`saved_as`) the folder must still hold, else `IndexWriteError` and
        nothing is written: changes save with their index's, so that a change never
        silently undoes what another process (the CLI, a server) saved meanwhile."""
        path = Path(path)
        manifest = store.save(
            path,
            self.vectors,
            self.passages,
            self.documents.values(),
            self.info(),
            self.lexical.to_files(),
            self.sentence_vectors,
            keys=self.keys,
            next_key=self.next_key,
            # an exact (flat) index is rebuilt from the vectors on load in no time
            vector_index=None if self.vector_index.exact else self.vector_index.to_bytes(),
            sentence_counts=self._sentence_counts,
            expect=expect,
        )
        self.path = path
        self.saved_as = store.files_identity(manifest)
        return path

    def info(self) -> dict[str, Any]:
        export = getattr(self.encoder, "export_id", None)
        return {
            "ranking": ranking.describe(self),
            "model": self.encoder.name,
            # which export of the model made the vectors (ONNX: its checksum)
            **({} if export is None else {"export": export}),
            **(
                {}
                if self.sentence_vectors is None
                else {"sentence_vectors": sentence_method(self.encoder)}
            ),
            "dimension": self.encoder.dimension,
            "max_tokens": self.encoder.max_tokens,
            "split": asdict(self.settings),
            "index_kind": self.index_kind,
            "vector_params": asdict(self.vector_params),
            "vector_index": self.vector_index.describe()
            if self.store is None
            else self.store.describe(),
            **({} if self.store is None else {"store": self.store.location()}),
        }


def build_index(
    sources: Sources,
    path: str | Path | None = None,
    *,
    model: str | Encoder | None = None,
    settings: SplitSettings | None = None,
    skip_bad: bool = False,
    progress: bool | None = None,
    sentences: bool = True,
    cache: EmbeddingCache | bool | None = None,
    index_kind: str = "auto",
    vector_params: VectorParams | None = None,
    store: str | None = None,
    collection: str | None = None,
) -> Index:
    """Load articles, split them into passages, embed them and index them; save the
    index to `path` when given. `sources`: files, folders or `Document`s.
    `sentences`: also embed every sentence, for hybrid search's sentence-level score
    (better first results, about 2x the indexing time; BENCHMARKS.md).
    `cache`: the embedding cache (`embeddings.EmbeddingCache`), True for the default
    one, False for none; by default saved indexes use the default cache
    ($SEMANTIC_QA_CACHE) and in-memory ones (evaluation, benchmarks) none.
    `index_kind`: the FAISS index, "auto" (exact below `qa.vectors.FLAT_BELOW`
    passages, approximate above) or one of `qa.vectors.KINDS`; `vector_params` tunes it.
    `store`: keep the passage vectors in Milvus instead (``milvus://host:19530`` or a
    milvus-lite ``.db`` file; see `qa.backend`), in `collection` (default: named
    after `path`)."""
    encoder = _encoder(model)
    backend = None
    if store is not None:
        backend = open_backend(store, collection, encoder.name, encoder.dimension, index_path=path)
    settings = settings or SplitSettings()
    docs = load_documents(sources, skip_bad=skip_bad)
    if not docs:
        raise DocumentError(
            f"no articles found in {sources!r}: give .txt, .md, .html, .jsonl, .pdf or .docx files"
        )
    started = time.perf_counter()
    cached = resolve_cache(cache, default=path is not None)
    embedder = encoder if cached is None else CachedEncoder(encoder, cached)
    passages = [p for doc in docs for p in split_document(doc, encoder, settings)]
    vectors, sentence_vectors = embed_passages(
        embedder, passages, sentences=sentences, progress=progress
    )
    documents = {d.id: DocumentInfo.of(d) for d in docs}
    # Rebuilt over an existing index, keys go on from its next_key: a key is never
    # reused, even by a rebuild (an external store may still hold the old ones).
    first = 0 if path is None else next_key_of(path)
    index = Index(
        encoder,
        passages,
        vectors,
        documents,
        settings,
        sentence_vectors=sentence_vectors,
        keys=np.arange(first, first + len(passages), dtype=np.int64),
        next_key=first + len(passages),
        cache=cached,
        index_kind=index_kind,
        vector_params=vector_params,
        milvus=backend,
    )
    if path is not None:
        index.save(path)
    if backend is not None:
        index._sync_store(None, progress)
    fresh = _runs(encoder, vectors, sentence_vectors)
    index.changes = Changes(
        added=tuple(documents),
        passages=len(passages),
        encoded=embedder.encoded if isinstance(embedder, CachedEncoder) else fresh,
        cached=embedder.reused if isinstance(embedder, CachedEncoder) else 0,
        seconds=time.perf_counter() - started,
    )
    log.info("indexed: %s", index.changes)
    return index


def load_index(
    path: str | Path,
    *,
    model: str | Encoder | None = None,
    cache: EmbeddingCache | bool | None = None,
) -> Index:
    """Open a saved index, verified against its manifest. With `model`, also check
    that the index was built with it (`ModelMismatchError` otherwise). `cache`: the
    embedding cache its updates use (default: the default one, see `build_index`)."""
    stored = store.load(path)
    manifest = stored.manifest
    if model is not None:
        asked = model if isinstance(model, str) else model.name
        if asked != manifest["model"]:
            raise ModelMismatchError(
                f"{path} was built with model {manifest['model']!r}, not {asked!r}: "
                f"search it with {manifest['model']!r} or rebuild it with {asked!r}"
            )
    try:
        encoder = _encoder(model if model is not None else manifest["model"])
    except (ModelNotFoundError, ImportError) as err:  # ImportError: a missing runtime
        raise ModelNotFoundError(
            f"{path} was built with model {manifest['model']!r}, which cannot be loaded here "
            f"({err}): install the package that provides it, or rebuild the index with the "
            f"default model: semantic-qa index ARTICLES... --out {path}"
        ) from err
    if encoder.dimension != manifest["dimension"]:
        raise ModelMismatchError(
            f"{path} holds {manifest['dimension']}-d vectors, model {encoder.name!r} makes "
            f"{encoder.dimension}-d ones: rebuild the index with this model"
        )
    try:
        settings = SplitSettings(**manifest.get("split", {}))
    except (TypeError, InvalidInputError) as err:
        raise IndexCorruptError(f"{path}: unusable split settings in manifest ({err})") from err
    lexical = LexicalIndex.load(stored.lexical, len(stored.passages))
    try:
        vector_params = VectorParams(**manifest.get("vector_params", {}))
        vector_index = None
        if stored.vector_index is not None:
            vector_index = VectorIndex.from_bytes(stored.vector_index, manifest["vector_index"])
    except (TypeError, KeyError, InvalidInputError) as err:
        raise IndexCorruptError(f"{path}: unusable vector index settings ({err})") from err
    backend = _stored_backend(path, manifest, encoder)
    try:
        index = Index(
            encoder,
            stored.passages,
            stored.vectors,
            stored.documents,
            settings,
            Path(path),
            lexical,
            stored.sentence_vectors,
            keys=stored.keys,
            next_key=stored.next_key,
            cache=resolve_cache(cache, default=True),
            index_kind=str(manifest.get("index_kind", "auto")),
            vector_params=vector_params,
            vector_index=vector_index,
            sentence_counts=stored.sentence_counts,
            milvus=backend,
        )
    except ValueError as err:
        raise IndexCorruptError(
            f"{path}: {err}: rebuild it with: semantic-qa index ARTICLES... --out {path}"
        ) from err
    index.saved_as = store.files_identity(manifest)
    if backend is not None and (
        backend.store.synced() != index.saved_as or backend.count() != len(index)
    ):
        log.warning(
            "%s: Milvus collection %s at %s does not hold exactly this index's passages (a "
            "write to it was interrupted, or another index wrote there): run `semantic-qa "
            "migrate --from %s --to %s` to bring it in line",
            path,
            backend.collection,
            backend.uri,
            path,
            backend.uri,
        )
    return index


def migrate(
    source: str | Path,
    to: str,
    *,
    collection: str | None = None,
    model: str | Encoder | None = None,
    progress: bool | None = None,
) -> Index:
    """Move the passage vectors of the saved index `source` into Milvus (`to`:
    ``milvus://host:19530`` or a milvus-lite ``.db`` file), in `collection` (default:
    named after the folder), and record that in its manifest: the stored vectors go
    as they are, nothing is encoded. Batched, with a progress bar, and resumable: a
    rerun after an interruption skips what the collection holds already. Also brings
    a Milvus index's collection back in line after an interrupted write.

    >>> qa.migrate("data/index", "milvus://127.0.0.1:19530")  # doctest: +SKIP
    """
    index = load_index(source, model=model)
    backend = open_backend(
        to, collection, index.encoder.name, index.encoder.dimension, index_path=source
    )
    moved = copy.copy(index)
    moved.store = backend
    moved.vector_index = build_vectors(
        np.zeros((0, index.encoder.dimension), np.float32), np.zeros(0, np.int64), "flat"
    )
    if index.store is None or index.store.location() != backend.location():
        moved.save(source, expect=index.saved_as)
    moved._sync_store(None, progress)
    return moved


def _stored_backend(path: str | Path, manifest: dict[str, Any], encoder: Encoder) -> Any:
    """The backend the manifest's ``store`` names (None: FAISS, in the folder)."""
    where = manifest.get("store")
    if where is None:
        return None
    if not isinstance(where, dict) or where.get("backend") != "milvus":
        raise IndexCorruptError(f"{path}: unknown vector store in manifest: {where!r:.100}")
    try:
        return open_backend(
            str(where["uri"]),
            str(where["collection"]),
            encoder.name,
            encoder.dimension,
            create=False,
        )
    except IndexNotFoundError as err:
        raise IndexNotFoundError(
            f"{path} keeps its vectors in Milvus, which answered: {err}; if the collection "
            f"is gone, put them back with: semantic-qa migrate --from {path} --to "
            f"{where['uri']} --collection {where['collection']}"
        ) from err


def embed_passages(
    encoder: Encoder,
    passages: Sequence[Passage],
    *,
    sentences: bool = True,
    progress: bool | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """(passage vectors, vectors of every sentence of every passage in order, or None
    without `sentences`). An encoder that pools spans (`encode_passages`, both packaged
    encoders) makes a passage's sentence vectors in the passage's own run, each
    sentence read in its context: one run per passage instead of one more per
    sentence, and the learned ranker, trained on such vectors, ranks at least as well
    (BENCHMARKS.md "Indexing"). Other encoders embed each sentence on its own."""
    texts = [p.text for p in passages]
    empty = np.zeros((0, encoder.dimension), dtype=np.float32)
    if not texts:
        return empty, empty if sentences else None
    if not sentences:
        return encoder.encode_documents(texts, progress=progress), None
    bounds = [sentence_bounds(t) for t in texts]
    pool = getattr(encoder, "encode_passages", None)
    if pool is not None:
        vectors, pooled = pool(texts, bounds, progress=progress)
        return vectors, np.concatenate(pooled).reshape(-1, encoder.dimension)
    pieces = [t[s:e] for t, spans in zip(texts, bounds, strict=True) for s, e in spans]
    return (
        encoder.encode_documents(texts, progress=progress),
        encoder.encode_documents(pieces, progress=progress).reshape(-1, encoder.dimension),
    )


def _runs(encoder: Encoder, vectors: np.ndarray, sentences: np.ndarray | None) -> int:
    """Texts the model ran on to make `vectors` and `sentences` (see `embed_passages`)."""
    separate = sentences is not None and sentence_method(encoder) == "separate"
    return len(vectors) + (len(sentences) if separate and sentences is not None else 0)


def sentence_method(encoder: Encoder) -> str:
    """How `embed_passages` makes sentence vectors with `encoder`: "pooled" from the
    passage's run, or "separate" runs (what an index's manifest records)."""
    return "pooled" if hasattr(encoder, "encode_passages") else "separate"


def resolve_cache(cache: EmbeddingCache | bool | None, *, default: bool) -> EmbeddingCache | None:
    """The embedding cache meant by a `cache=` argument (None: `default` says)."""
    if isinstance(cache, EmbeddingCache):
        return cache
    if cache is None:
        cache = default
    return EmbeddingCache.default() if cache else None


def _load(documents: Sources, action: str) -> list[Document]:
    docs = load_documents(documents)
    if not docs:
        raise DocumentError(f"no articles found in {documents!r}: nothing to {action}")
    return docs


def _same(old: DocumentInfo, new: DocumentInfo) -> bool:
    """The same article content (text, title, metadata): its passages can stay."""
    return old.sha256 == new.sha256


def _sentence_counts(passages: Sequence[Passage] | Passages) -> np.ndarray:
    texts = passages.texts() if isinstance(passages, Passages) else (p.text for p in passages)
    return np.fromiter((len(sentence_bounds(t)) for t in texts), np.int64, len(passages))


def _take(old: np.ndarray, new: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Rows `order` of `old` followed by `new` (numbered on from len(old)), without
    stacking the two first."""
    out = np.empty((len(order), *old.shape[1:]), dtype=old.dtype)
    from_old = order < len(old)
    out[from_old] = old[order[from_old]]
    out[~from_old] = new[order[~from_old] - len(old)]
    return out


def _expand(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The runs starts[i] .. starts[i] + counts[i] - 1, one after the other."""
    before = np.cumsum(counts) - counts
    return np.repeat(starts - before, counts) + np.arange(int(counts.sum()), dtype=np.int64)


def check_mode(mode: Any) -> str:
    """`mode` or the default one; `InvalidInputError` for anything else."""
    if mode is None:
        return DEFAULT_MODE
    if mode not in MODES:
        raise InvalidInputError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    return str(mode)


def _matches(doc: DocumentInfo, field: str, value: Any) -> bool:
    actual = {"doc_id": doc.id, "id": doc.id, "title": doc.title, "source": doc.source}.get(
        field, doc.metadata.get(field, _MISSING)
    )
    if isinstance(value, list | tuple | set | frozenset):
        return actual in value
    return bool(actual == value)


_MISSING = object()


_NO_ROWS = np.zeros(0, dtype=np.int64)


def _encoder(model: str | Encoder | None) -> Encoder:
    if model is None:
        return load_encoder(DEFAULT_ENCODER)
    if isinstance(model, str):
        return load_encoder(model)
    return model
