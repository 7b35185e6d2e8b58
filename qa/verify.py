"""`semantic-qa verify`: an index checked end to end, every problem listed.

Beyond what loading checks (manifest, sizes, counts, shapes): the checksum of every
file (loading checks only files up to `store.CHECKSUM_ON_LOAD`), passage keys, each
passage's offsets and, where the article file is still there, its text against the
article; vectors finite and of unit length; BM25 against the passages it should
index; and a sample of passages (and sentences) re-encoded with the model, which
must give back the stored vectors (cosine above `MIN_COSINE`); for an index whose
vectors live in Milvus, that its collection holds exactly the index's passage keys.

>>> report = verify("data/index")          # doctest: +SKIP
>>> report.ok, report.problems
(True, ())
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from embeddings import Encoder

from . import store
from .answers import sentence_bounds
from .documents import JSONL_SUFFIXES, Document, load_documents, load_file
from .errors import QAError
from .lexical import LexicalIndex
from .passages import Passage
from .store import DocumentInfo

if TYPE_CHECKING:
    from .index import Index

log = logging.getLogger(__name__)

# Re-encoding gives back a stored vector up to this cosine: the same CPU gives it back
# exactly, another CPU's kernels move int8 vectors by up to 0.004 (>= 0.996 measured
# between AVX2 and SSE4.1 paths, embeddings.onnx); a vector of another text or model is
# far below.
MIN_COSINE = 0.99
# Deviation of a vector's length from 1 that counts as not normalized.
NORM_TOLERANCE = 1e-3


@dataclass(frozen=True)
class Report:
    """`problems`: what is wrong (the index should be rebuilt); `notes`: what is
    worth knowing but harmless (articles edited since, leftovers of an interrupted
    save); `facts`: what was checked, for the summary."""

    path: str
    problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "ok": self.ok, "problems": list(self.problems),
                "notes": list(self.notes), **self.facts}  # fmt: skip


def verify(
    path: str | Path,
    *,
    model: str | Encoder | None = None,
    articles: Sequence[str | Path] | None = None,
    sample: int = 32,
) -> Report:
    """Check the index at `path`. `model`: the encoder to re-encode the sample with
    (default: the index's model); `articles`: where the articles are now (default:
    each article's recorded source file, when it still exists); `sample`: passages
    re-encoded (0: none)."""
    from .index import _encoder, load_index

    problems: list[str] = []
    notes: list[str] = []
    facts: dict[str, Any] = {}

    def report() -> Report:
        return Report(str(path), tuple(problems), tuple(notes), facts)

    try:
        problems += store.check_files(path)
        if problems:
            return report()
        stored = store.load(path)
    except QAError as err:
        problems.append(str(err))
        return report()
    manifest, n = stored.manifest, len(stored.passages)
    facts.update(
        model=manifest["model"],
        documents=len(stored.documents),
        passages=n,
        sentences=manifest.get("sentences"),
        files=len(manifest["files"]),
        next_key=stored.next_key,
        keys=[int(stored.keys.min()), int(stored.keys.max())] if n else [],
    )
    try:
        problems += _check_passages(stored.passages, stored.documents)
        texts = list(stored.passages.texts())
    except QAError as err:  # a text that is not UTF-8
        problems.append(str(err))
        return report()
    problems += _check_vectors("passage", stored.vectors)
    if stored.sentence_vectors is not None:
        problems += _check_vectors("sentence", stored.sentence_vectors)
    try:
        lexical = LexicalIndex.load(stored.lexical, n)
    except Exception as err:  # bm25s raises whatever its loader meets
        problems.append(f"the BM25 index does not load ({type(err).__name__}: {err})")
    else:
        if not _same_bm25(lexical, LexicalIndex.build(texts)):
            problems.append("the BM25 index does not match the passages' words")
    checked, stale, missing = _check_articles(stored, articles, problems)
    facts.update(articles_checked=checked, articles_changed=len(stale), articles_not_found=missing)
    if stale:
        notes.append(
            f"{len(stale)} article(s) changed since indexing (e.g. {stale[0]!r}): update "
            f"the index with: semantic-qa index ARTICLES... --out {path}"
        )
    encoder = None
    if sample > 0 and n:
        try:
            encoder = _encoder(model if model is not None else manifest["model"])
        except QAError as err:
            problems.append(f"cannot re-encode a sample: {err}")
    if encoder is not None:
        facts.update(_check_sample(encoder, stored, sample, problems))
        try:  # everything else opening it builds or checks (vector index, sentences)
            loaded = load_index(path, model=encoder, cache=False)
        except QAError as err:
            problems.append(f"the index does not open: {err}")
        else:
            if loaded.store is not None:
                facts.update(_check_collection(loaded, path, problems))
    left = store.leftovers(path)
    if left:
        notes.append(
            f"{len(left)} file(s) left by an interrupted save (the next save removes them): "
            + ", ".join(left[:3])
        )
    return report()


def _check_collection(index: Index, path: str | Path, problems: list[str]) -> dict[str, Any]:
    """The Milvus collection of a Milvus-backed index holds exactly its passage keys."""
    backend = index.store
    assert backend is not None
    held = set(backend.store.keys(index.next_key))
    wanted = set(index.keys.tolist())
    missing, extra = sorted(wanted - held), sorted(held - wanted)
    if missing or extra:
        problems.append(
            f"Milvus collection {backend.collection} at {backend.uri} lacks {len(missing)} of "
            f"the index's passages{f' (e.g. key {missing[0]})' if missing else ''} and holds "
            f"{len(extra)} it does not{f' (e.g. key {extra[0]})' if extra else ''}: bring it "
            f"in line with: semantic-qa migrate --from {path} --to {backend.uri} "
            f"--collection {backend.collection}"
        )
    return {"milvus": {"uri": backend.uri, "collection": backend.collection, "count": len(held)}}


def _check_passages(passages: Sequence[Passage], documents: dict[str, DocumentInfo]) -> list[str]:
    problems = []
    bad = [p for p in passages if not 0 <= p.start < p.end or p.end - p.start != len(p.text)]
    if bad:
        p = bad[0]
        problems.append(
            f"{len(bad)} passage(s) whose offsets do not fit their text, e.g. {p.id} of "
            f"{p.doc_id!r}: {p.start}..{p.end} for {len(p.text)} characters"
        )
    ids = [p.id for p in passages]
    if len(set(ids)) != len(ids):
        problems.append(f"{len(ids) - len(set(ids))} passage id(s) used twice")
    empty = documents.keys() - {p.doc_id for p in passages}
    if empty:
        problems.append(f"{len(empty)} article(s) without passages, e.g. {sorted(empty)[0]!r}")
    return problems


def _check_vectors(kind: str, vectors: np.ndarray) -> list[str]:
    if not len(vectors):
        return []
    finite = np.isfinite(vectors).all(axis=1)
    if not finite.all():
        row = int(np.flatnonzero(~finite)[0])
        return [f"{int((~finite).sum())} {kind} vector(s) hold NaN or infinity, e.g. row {row}"]
    norms = np.linalg.norm(vectors, axis=1)
    off = np.abs(norms - 1) > NORM_TOLERANCE
    if off.any():
        row = int(np.flatnonzero(off)[0])
        return [
            f"{int(off.sum())} {kind} vector(s) are not unit length, e.g. row {row}: "
            f"{norms[row]:.4f}"
        ]
    return []


def _same_bm25(stored: LexicalIndex, rebuilt: LexicalIndex) -> bool:
    if stored.count != rebuilt.count:
        return False
    if not stored.count:
        return True
    # bm25s numbers the words in no fixed order (a set): compare word by word
    a, b = stored.bm25, rebuilt.bm25
    if a.vocab_dict.keys() != b.vocab_dict.keys():
        return False
    words = list(a.vocab_dict)
    doc_a, score_a = _columns(a, [a.vocab_dict[w] for w in words])
    doc_b, score_b = _columns(b, [b.vocab_dict[w] for w in words])
    return np.array_equal(doc_a, doc_b) and np.allclose(score_a, score_b, rtol=1e-5)


def _columns(bm25: Any, columns: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """The (passage, score) entries of BM25's word columns, in the order given (a
    word without a column, bm25s's padding token, has none)."""
    indptr = bm25.scores["indptr"]
    cols = np.asarray(columns, dtype=np.int64)
    has = cols + 1 < len(indptr)
    starts = np.where(has, indptr[np.minimum(cols, len(indptr) - 1)], 0)
    ends = np.where(has, indptr[np.minimum(cols + 1, len(indptr) - 1)], 0)
    at = np.repeat(starts - (np.cumsum(ends - starts) - (ends - starts)), ends - starts)
    at = at + np.arange(int((ends - starts).sum()))
    return bm25.scores["indices"][at], bm25.scores["data"][at]


def _articles(
    stored: store.StoredIndex, articles: Sequence[str | Path] | None
) -> dict[str, Document]:
    """The articles as they are now, by id: from `articles`, or from the recorded
    source files that still exist."""
    if articles is not None:
        return {d.id: d for d in load_documents(articles, skip_bad=True)}
    found: dict[str, Document] = {}
    for info in stored.documents.values():
        source = Path(info.source)
        if info.id in found or not info.source or not source.is_file():
            continue
        try:
            jsonl = source.suffix.lower() in JSONL_SUFFIXES
            docs = load_file(source, None if jsonl else info.id)
        except QAError as err:
            log.info("cannot read %s: %s", source, err)
            continue
        found.update((d.id, d) for d in docs if d.id in stored.documents)
    return found


def _check_articles(
    stored: store.StoredIndex, articles: Sequence[str | Path] | None, problems: list[str]
) -> tuple[int, list[str], int]:
    """Each passage's text against its article's text, for the articles at hand
    and unchanged since indexing: how many were checked, the ids of those changed
    since, how many were not found."""
    now = _articles(stored, articles)
    checked = 0
    stale: list[str] = []
    wrong: list[Passage] = []
    by_doc: dict[str, list[Passage]] = {}
    for p in stored.passages:
        by_doc.setdefault(p.doc_id, []).append(p)
    for doc_id, info in stored.documents.items():
        doc = now.get(doc_id)
        if doc is None:
            continue
        if doc.sha256 != info.sha256:
            stale.append(doc_id)
            continue
        checked += 1
        wrong += [p for p in by_doc.get(doc_id, []) if doc.text[p.start : p.end] != p.text]
    if wrong:
        p = wrong[0]
        problems.append(
            f"{len(wrong)} passage(s) differ from their article's text at their offsets, e.g. "
            f"{p.id} of {p.doc_id!r} at {p.start}..{p.end}"
        )
    return checked, stale, len(stored.documents) - checked - len(stale)


def _check_sample(
    encoder: Encoder, stored: store.StoredIndex, sample: int, problems: list[str]
) -> dict[str, Any]:
    """Re-encode a fixed random sample of passages and of their sentences."""
    from .index import embed_passages

    n = len(stored.passages)
    rows = np.sort(np.random.default_rng(0).choice(n, min(sample, n), replace=False))
    passages = [stored.passages[r] for r in rows]
    with_sentences = stored.sentence_vectors is not None
    fresh, sentences = embed_passages(encoder, passages, sentences=with_sentences)
    cosines = np.sum(fresh * stored.vectors[rows], axis=1)
    facts: dict[str, Any] = {"sample": len(rows), "min_cosine": round(float(cosines.min()), 5)}
    if cosines.min() < MIN_COSINE:
        row = int(rows[int(np.argmin(cosines))])
        problems.append(
            f"{int((cosines < MIN_COSINE).sum())} of {len(rows)} sampled passage vectors differ "
            f"from their text re-encoded with {encoder.name!r} (e.g. row {row}: cosine "
            f"{cosines.min():.3f}): another model, or vectors out of step with passages"
        )
    if stored.sentence_vectors is not None and sentences is not None:
        counts = np.asarray([len(sentence_bounds(p.text)) for p in stored.passages])
        starts = np.cumsum(counts) - counts
        at = np.concatenate([starts[r] + np.arange(counts[r]) for r in rows])
        if len(at) and at.max() < len(stored.sentence_vectors):
            got = np.sum(sentences * stored.sentence_vectors[at], axis=1)
            facts["min_sentence_cosine"] = round(float(got.min()), 5)
            if got.min() < MIN_COSINE:
                problems.append(
                    f"{int((got < MIN_COSINE).sum())} of {len(at)} sampled sentence vectors "
                    f"differ from their sentence re-encoded (cosine {got.min():.3f})"
                )
    return facts
