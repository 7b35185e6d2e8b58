"""Index: passages, their vectors and a FAISS index over them; build, save, load, search.

>>> index = build_index(["data/articles"], "data/index")       # doctest: +SKIP
>>> index.search("Who chairs the OSCE in 2010?", k=1)[0].title  # doctest: +SKIP
'Kazakhstan and OSCE: joint efforts to ensure global security'
"""

from __future__ import annotations

import functools
import logging
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from embeddings import DEFAULT_MODEL, Encoder, load_encoder

from . import store
from .answers import Sentences, sentence_bounds
from .documents import Sources, load_documents
from .errors import (
    DocumentError,
    DuplicateIdError,
    IndexCorruptError,
    InvalidInputError,
    ModelMismatchError,
)
from .fusion import DEFAULT_FUSION, DEFAULT_WEIGHT, fuse
from .hits import Hit
from .lexical import LexicalIndex, tokenize
from .passages import Passage, SplitSettings, split_document
from .query import check_k, check_question
from .store import DocumentInfo

log = logging.getLogger(__name__)

MODES = ("dense", "lexical", "hybrid")
DEFAULT_MODE = "hybrid"
# Word 3-gram Jaccard similarity from which two passages count as one.
NEAR_DUPLICATE = 0.8


class Index:
    """Passages of a set of articles, searchable by meaning (dense: cosine similarity
    of normalized vectors, FAISS), by words (lexical: BM25) or both (hybrid, the
    default: see `qa.fusion`)."""

    def __init__(
        self,
        encoder: Encoder,
        passages: list[Passage],
        vectors: np.ndarray,
        documents: dict[str, DocumentInfo],
        settings: SplitSettings,
        path: Path | None = None,
        lexical: LexicalIndex | None = None,
        sentence_vectors: np.ndarray | None = None,
    ):
        if vectors.shape != (len(passages), encoder.dimension):
            raise ValueError(f"vectors {vectors.shape} do not match {len(passages)} passages")
        self.encoder = encoder
        self.passages = passages
        self.vectors = vectors
        self.documents = documents
        self.settings = settings
        self.path = path
        self.sentence_vectors = sentence_vectors
        # How hybrid search fuses (see qa.fusion); benchmarks/retrieval.py varies them.
        self.fusion = DEFAULT_FUSION
        self.weight = DEFAULT_WEIGHT
        self._derive(lexical)

    def _derive(self, lexical: LexicalIndex | None = None) -> None:
        """Every structure computed from the passages and vectors: FAISS, BM25 (unless
        a loaded one is given), rows by document, groups of identical texts, where
        each passage's sentence vectors start. The one place to call after the
        passages change."""
        self._faiss = faiss.IndexFlatIP(self.encoder.dimension)
        self._faiss.add(self.vectors)
        if lexical is None or lexical.count != len(self.passages):
            lexical = LexicalIndex.build([p.text for p in self.passages])
        self.lexical = lexical
        self._rows_of_doc: dict[str, list[int]] = {}
        same_text: dict[str, list[int]] = {}
        for row, p in enumerate(self.passages):
            self._rows_of_doc.setdefault(p.doc_id, []).append(row)
            same_text.setdefault(_normalized(p.text), []).append(row)
        self._copies = {row: rows for rows in same_text.values() if len(rows) > 1 for row in rows}
        self._sentences: dict[int, Sentences] = {}  # filled as passages are returned
        counts = [len(sentence_bounds(p.text)) for p in self.passages]
        self._sentence_starts = np.cumsum([0, *counts[:-1]]).astype(np.int64)
        if self.sentence_vectors is not None and self.sentence_vectors.shape != (
            sum(counts),
            self.encoder.dimension,
        ):
            raise ValueError(
                f"sentence vectors {self.sentence_vectors.shape} do not match the "
                f"{sum(counts)} sentences of the passages"
            )

    def __len__(self) -> int:
        return len(self.passages)

    def __repr__(self) -> str:
        where = f" at {self.path}" if self.path else ""
        return (
            f"<Index{where}: {len(self.documents)} documents, {len(self)} passages, "
            f"model {self.encoder.name}>"
        )

    def search(
        self,
        question: str,
        k: int = 5,
        *,
        mode: str | None = None,
        where: Mapping[str, Any] | None = None,
    ) -> list[Hit]:
        """The `k` passages that best answer `question`, best first. `mode`: "hybrid"
        (default), "dense" or "lexical". `where`: exact match on document fields
        (`doc_id`, `title`, `source`) or metadata keys; a list value matches any of it.

        >>> [h.rank for h in index.search("What is the OSCE?", k=3)]  # doctest: +SKIP
        [1, 2, 3]
        >>> index.search("OSCE chair", where={"source": "news.md"}, mode="lexical")  # doctest: +SKIP
        """
        return self.search_batch([question], k, mode=mode, where=where)[0]

    def search_batch(
        self,
        questions: list[str],
        k: int = 5,
        *,
        mode: str | None = None,
        where: Mapping[str, Any] | None = None,
        vectors: np.ndarray | None = None,
    ) -> list[list[Hit]]:
        """`search` for many questions at once (encoded in batches: faster).
        `vectors`: the questions' vectors when already encoded (evaluation reuses them
        across modes)."""
        questions, k = [check_question(q) for q in questions], check_k(k)
        mode = check_mode(mode)
        rows = self._where_rows(where)
        if not questions:
            return []
        if mode == "lexical":
            return [self._search(q, None, k, mode, rows) for q in questions]
        if vectors is None:
            vectors = self.encoder.encode_queries(questions)
        return [self._search(q, v, k, mode, rows) for q, v in zip(questions, vectors, strict=True)]

    def search_vectors(self, queries: np.ndarray, k: int) -> list[list[Hit]]:
        """Dense hits for ready query vectors, one list per row of `queries` (no
        question text: no lexical part, no de-duplication)."""
        k = min(k, len(self))
        if k == 0:
            return [[] for _ in range(len(queries))]
        scores, rows = self._faiss.search(np.ascontiguousarray(queries, dtype=np.float32), k)
        return [
            [
                self._hit(int(r), float(s), rank)
                for rank, (r, s) in enumerate(zip(rr, ss, strict=True), 1)
                if r >= 0
            ]
            for rr, ss in zip(rows, scores, strict=True)
        ]

    def _search(
        self, question: str, vector: np.ndarray | None, k: int, mode: str, rows: np.ndarray | None
    ) -> list[Hit]:
        scores = self._scores(question, vector, mode, rows)
        candidates = np.arange(len(self)) if rows is None else rows
        kept: list[tuple[int, float]] = []
        also: dict[int, list[str]] = {}
        for i in _best_first(scores):
            row = int(candidates[i])
            twin = next((r for r, _ in kept if self._near_duplicate(row, r)), None)
            if twin is not None:
                also[twin].append(self.passages[row].doc_id)
                continue
            kept.append((row, float(scores[i])))
            also[row] = [self.passages[r].doc_id for r in self._copies.get(row, []) if r != row]
            if len(kept) == k:
                break
        weights = self.lexical.idf(tokenize(question))
        hits = []
        for rank, (row, score) in enumerate(kept, 1):
            start, end, _ = self._sentences_of(row).best(weights, self._closeness(row, vector))
            doc_id = self.passages[row].doc_id
            others = tuple(dict.fromkeys(d for d in also[row] if d != doc_id))
            hits.append(self._hit(row, score, rank, (start, end), others))
        return hits

    def _scores(
        self, question: str, vector: np.ndarray | None, mode: str, rows: np.ndarray | None
    ) -> np.ndarray:
        """One score per passage for `mode` (per row of `rows` when given)."""
        lexical = dense = None
        if mode != "dense":
            lexical = self.lexical.scores(question)
            lexical = lexical if rows is None else lexical[rows]
        if vector is not None:
            dense = (self.vectors if rows is None else self.vectors[rows]) @ vector
        if dense is None or lexical is None:
            result = dense if lexical is None else lexical
            assert result is not None
            return result
        sentences = None
        if self.sentence_vectors is not None and len(self):
            # each passage's best-matching sentence: finds the one relevant sentence
            # that a long passage's single vector dilutes
            best = np.maximum.reduceat(self.sentence_vectors @ vector, self._sentence_starts)
            sentences = best if rows is None else best[rows]
        return fuse(dense, lexical, sentences, method=self.fusion, weight=self.weight)

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
        rows = sorted(r for d in docs for r in self._rows_of_doc.get(d.id, []))
        return np.asarray(rows, dtype=np.int64)

    def _near_duplicate(self, a: int, b: int) -> bool:
        """Same text up to case and spacing, or (overlapping windows, lightly edited
        copies) word 3-gram Jaccard similarity of at least `NEAR_DUPLICATE`."""
        if b in self._copies.get(a, ()):
            return True
        x, y = _shingles(self.passages[a].text), _shingles(self.passages[b].text)
        return bool(x and y) and len(x & y) >= NEAR_DUPLICATE * len(x | y)

    def _closeness(self, row: int, vector: np.ndarray | None) -> list[float] | None:
        """Cosine of the question and each sentence of passage `row`, when known."""
        if vector is None or self.sentence_vectors is None:
            return None
        first = int(self._sentence_starts[row])
        count = len(self._sentences_of(row).bounds)
        return (self.sentence_vectors[first : first + count] @ vector).tolist()

    def _sentences_of(self, row: int) -> Sentences:
        sentences = self._sentences.get(row)
        if sentences is None:
            sentences = self._sentences[row] = Sentences.of(self.passages[row].text)
        return sentences

    def _hit(
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
        )

    def add(self, documents: Sources, *, progress: bool | None = None) -> Index:
        """A new index: this one plus `documents` (files, folders or `Document`s), split
        and embedded with this index's model and settings; saved over this index's
        folder when it has one. This index is left as it was, so a caller can swap
        the new one in at once, and a bad article (or an id already indexed) raises
        before anything changes.

        >>> bigger = index.add(["new-article.md"])  # doctest: +SKIP
        """
        docs = load_documents(documents)
        if not docs:
            raise DocumentError(f"no articles found in {documents!r}: nothing to add")
        taken = sorted(d.id for d in docs if d.id in self.documents)
        if taken:
            raise DuplicateIdError(
                f"article id {taken[0]!r} is already in the index: rename the file or give "
                "the article another id (JSON Lines 'id')"
            )
        passages = [p for d in docs for p in split_document(d, self.encoder, self.settings)]
        vectors = self.encoder.encode_documents([p.text for p in passages], progress=progress)
        sentence_vectors = None
        if self.sentence_vectors is not None:
            added = encode_sentences(self.encoder, passages, progress=progress)
            sentence_vectors = np.concatenate([self.sentence_vectors, added])
        infos = {d.id: DocumentInfo(d.id, d.title, d.source, d.sha256, d.metadata) for d in docs}
        grown = Index(
            self.encoder,
            self.passages + passages,
            np.concatenate([self.vectors, vectors]),
            {**self.documents, **infos},
            self.settings,
            sentence_vectors=sentence_vectors,
        )
        if self.path is not None:
            grown.save(self.path)
        log.info("added %d documents, %d passages", len(docs), len(passages))
        return grown

    def save(self, path: str | Path) -> Path:
        """Write the index directory (atomically; see `qa.store`)."""
        path = Path(path)
        store.save(
            path,
            self.vectors,
            self.passages,
            self.documents.values(),
            self.info(),
            self.lexical.to_files(),
            self.sentence_vectors,
        )
        self.path = path
        return path

    def info(self) -> dict[str, Any]:
        return {
            "model": self.encoder.name,
            "dimension": self.encoder.dimension,
            "max_tokens": self.encoder.max_tokens,
            "split": asdict(self.settings),
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
) -> Index:
    """Load articles, split them into passages, embed them and index them; save the
    index to `path` when given. `sources`: files, folders or `Document`s.
    `sentences`: also embed every sentence, for hybrid search's sentence-level score
    (better first results, about 2x the indexing time; BENCHMARKS.md)."""
    encoder = _encoder(model)
    settings = settings or SplitSettings()
    docs = load_documents(sources, skip_bad=skip_bad)
    if not docs:
        raise DocumentError(
            f"no articles found in {sources!r}: give .txt, .md, .html or .jsonl files"
        )
    started = time.perf_counter()
    passages = [p for doc in docs for p in split_document(doc, encoder, settings)]
    vectors = encoder.encode_documents([p.text for p in passages], progress=progress)
    sentence_vectors = encode_sentences(encoder, passages, progress=progress) if sentences else None
    documents = {d.id: DocumentInfo(d.id, d.title, d.source, d.sha256, d.metadata) for d in docs}
    index = Index(
        encoder, passages, vectors, documents, settings, sentence_vectors=sentence_vectors
    )
    log.info(
        "indexed %d documents, %d passages in %.1f s",
        len(docs),
        len(passages),
        time.perf_counter() - started,
    )
    if path is not None:
        index.save(path)
    return index


def load_index(path: str | Path, *, model: str | Encoder | None = None) -> Index:
    """Open a saved index, verified against its manifest. With `model`, also check
    that the index was built with it (`ModelMismatchError` otherwise)."""
    stored = store.load(path)
    manifest = stored.manifest
    if model is not None:
        asked = model if isinstance(model, str) else model.name
        if asked != manifest["model"]:
            raise ModelMismatchError(
                f"{path} was built with model {manifest['model']!r}, not {asked!r}: "
                f"search it with {manifest['model']!r} or rebuild it with {asked!r}"
            )
    encoder = _encoder(model if model is not None else manifest["model"])
    if encoder.dimension != manifest["dimension"]:
        raise ModelMismatchError(
            f"{path} holds {manifest['dimension']}-d vectors, model {encoder.name!r} makes "
            f"{encoder.dimension}-d ones: rebuild the index with this model"
        )
    try:
        settings = SplitSettings(**manifest.get("split", {}))
    except (TypeError, InvalidInputError) as err:
        raise IndexCorruptError(f"{path}: unusable split settings in manifest ({err})") from err
    lexical = LexicalIndex.from_files(stored.lexical, len(stored.passages))
    try:
        return Index(
            encoder,
            stored.passages,
            stored.vectors,
            stored.documents,
            settings,
            Path(path),
            lexical,
            stored.sentence_vectors,
        )
    except ValueError as err:
        raise IndexCorruptError(
            f"{path}: {err}: rebuild it with: semantic-qa index ARTICLES... --out {path}"
        ) from err


def encode_sentences(
    encoder: Encoder, passages: list[Passage], *, progress: bool | None = None
) -> np.ndarray:
    """Vectors of every sentence of every passage, passage by passage, in order."""
    texts = [p.text[s:e] for p in passages for s, e in sentence_bounds(p.text)]
    return encoder.encode_documents(texts, progress=progress).reshape(-1, encoder.dimension)


def check_mode(mode: Any) -> str:
    """`mode` or the default one; `InvalidInputError` for anything else."""
    if mode is None:
        return DEFAULT_MODE
    if mode not in MODES:
        raise InvalidInputError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    return str(mode)


def _best_first(scores: np.ndarray) -> Iterator[int]:
    """Positions of `scores`, best first, ties in position order (a stable sort),
    sorting only as much as the caller consumes."""
    n, shown, want = len(scores), 0, 64
    while shown < n:
        order = _top(scores, min(n, want))
        yield from (int(i) for i in order[shown:])
        shown, want = len(order), want * 4


def _top(scores: np.ndarray, m: int) -> np.ndarray:
    """The best `m` positions and every position tied with the m-th, in stable order:
    always a prefix of the full stable order, so successive calls never disagree."""
    kth = np.partition(scores, len(scores) - m)[len(scores) - m]
    top = np.flatnonzero(scores >= kth)
    return top[np.lexsort((top, -scores[top]))]


def _matches(doc: DocumentInfo, field: str, value: Any) -> bool:
    actual = {"doc_id": doc.id, "id": doc.id, "title": doc.title, "source": doc.source}.get(
        field, doc.metadata.get(field, _MISSING)
    )
    if isinstance(value, list | tuple | set | frozenset):
        return actual in value
    return bool(actual == value)


_MISSING = object()


def _normalized(text: str) -> str:
    return " ".join(text.lower().split())


@functools.lru_cache(maxsize=4096)
def _shingles(text: str) -> frozenset[tuple[str, ...]]:
    words = re.findall(r"\w+", text.lower())
    return frozenset(zip(words, words[1:], words[2:], strict=False))


def _encoder(model: str | Encoder | None) -> Encoder:
    if model is None:
        return load_encoder(DEFAULT_MODEL)
    if isinstance(model, str):
        return load_encoder(model)
    return model
