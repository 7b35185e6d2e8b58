"""Index: passages, their vectors and a FAISS index over them; build, save, load, search.

>>> index = build_index(["data/articles"], "data/index")       # doctest: +SKIP
>>> index.search("Who chairs the OSCE in 2010?", k=1)[0].title  # doctest: +SKIP
'Kazakhstan and OSCE: joint efforts to ensure global security'
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from embeddings import DEFAULT_MODEL, Encoder, load_encoder

from . import store
from .documents import Sources, load_documents
from .errors import (
    DocumentError,
    DuplicateIdError,
    IndexCorruptError,
    InvalidInputError,
    ModelMismatchError,
)
from .hits import Hit
from .passages import Passage, SplitSettings, split_document
from .query import check_k, check_question
from .store import DocumentInfo

log = logging.getLogger(__name__)


class Index:
    """Passages of a set of articles, searchable by meaning. Exact inner-product
    search over normalized vectors, i.e. cosine similarity."""

    def __init__(
        self,
        encoder: Encoder,
        passages: list[Passage],
        vectors: np.ndarray,
        documents: dict[str, DocumentInfo],
        settings: SplitSettings,
        path: Path | None = None,
    ):
        if vectors.shape != (len(passages), encoder.dimension):
            raise ValueError(f"vectors {vectors.shape} do not match {len(passages)} passages")
        self.encoder = encoder
        self.passages = passages
        self.vectors = vectors
        self.documents = documents
        self.settings = settings
        self.path = path
        self._faiss = faiss.IndexFlatIP(encoder.dimension)
        self._faiss.add(vectors)

    def __len__(self) -> int:
        return len(self.passages)

    def __repr__(self) -> str:
        where = f" at {self.path}" if self.path else ""
        return (
            f"<Index{where}: {len(self.documents)} documents, {len(self)} passages, "
            f"model {self.encoder.name}>"
        )

    def search(self, question: str, k: int = 5) -> list[Hit]:
        """The `k` passages that best answer `question`, best first.

        >>> [h.rank for h in index.search("What is the OSCE?", k=3)]  # doctest: +SKIP
        [1, 2, 3]
        """
        question, k = check_question(question), check_k(k)
        return self.search_vectors(self.encoder.encode_queries([question]), k)[0]

    def search_batch(self, questions: list[str], k: int = 5) -> list[list[Hit]]:
        """`search` for many questions at once (encoded in batches: faster)."""
        questions, k = [check_question(q) for q in questions], check_k(k)
        if not questions:
            return []
        return self.search_vectors(self.encoder.encode_queries(questions), k)

    def search_vectors(self, queries: np.ndarray, k: int) -> list[list[Hit]]:
        """Hits for ready query vectors, one list per row of `queries`."""
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

    def _hit(self, row: int, score: float, rank: int) -> Hit:
        p = self.passages[row]
        doc = self.documents[p.doc_id]
        return Hit(
            p.id, p.doc_id, doc.title, doc.source, p.start, p.end, p.text, score, rank, doc.metadata
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
        infos = {d.id: DocumentInfo(d.id, d.title, d.source, d.sha256, d.metadata) for d in docs}
        grown = Index(
            self.encoder,
            self.passages + passages,
            np.concatenate([self.vectors, vectors]),
            {**self.documents, **infos},
            self.settings,
        )
        if self.path is not None:
            grown.save(self.path)
        log.info("added %d documents, %d passages", len(docs), len(passages))
        return grown

    def save(self, path: str | Path) -> Path:
        """Write the index directory (atomically; see `qa.store`)."""
        path = Path(path)
        store.save(path, self.vectors, self.passages, self.documents.values(), self.info())
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
) -> Index:
    """Load articles, split them into passages, embed them and index them; save the
    index to `path` when given. `sources`: files, folders or `Document`s."""
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
    documents = {d.id: DocumentInfo(d.id, d.title, d.source, d.sha256, d.metadata) for d in docs}
    index = Index(encoder, passages, vectors, documents, settings)
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
    return Index(encoder, stored.passages, stored.vectors, stored.documents, settings, Path(path))


def _encoder(model: str | Encoder | None) -> Encoder:
    if model is None:
        return load_encoder(DEFAULT_MODEL)
    if isinstance(model, str):
        return load_encoder(model)
    return model
