"""Ranking: from a question to hits, the one path every search takes.

    candidates -> signals -> scorer -> de-duplication -> hits with answer sentences

- **Candidates**: every passage (or every passage `where=` selects) when the index
  scores all of them (an exact vector index); over an approximate one (or Milvus), the
  nearest passages by the vector index and the best by BM25 (`Settings.candidates`
  each).
- **Signals**: the passage's cosine to the question (dense), its BM25 (lexical), its
  closest sentence's cosine, fused by `qa.fusion` (the fixed fusion, the hybrid score).
- **Scorer**: with `ranker="learned"` (the default for indexes with sentence vectors)
  the best `Settings.reranked` passages by fused score are scored again by the scorers
  trained on SQuAD-train (`qa.scorers`): one picks each passage's answer sentence, the
  other orders the passages on what it and the signals say (`qa.signals`). Their
  score is a probability that the passage holds the answer. `ranker="fusion"` keeps
  the fused score.
- **De-duplication**: a passage whose text repeats a better one (up to case and
  spacing, or nearly: word 3-gram Jaccard >= `NEAR_DUPLICATE`) is not a hit of its own;
  its article is listed in the better one's `also_in`.
- **Answer sentences**: the learned sentence scorer's choice, or (fusion, lexical
  mode, no sentence vectors) the sentence holding the most of the question's rare words
  (`qa.answers`).

>>> rank(index, "Who chaired the OSCE?", vector, 5)  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import itertools
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import scorers
from . import signals as sig
from .errors import InvalidInputError
from .fusion import DEFAULT_FUSION, DEFAULT_WEIGHT, fuse
from .hits import Hit
from .scorers import Scorer, default_scorers

if TYPE_CHECKING:
    from .index import Index

RANKERS = ("learned", "fusion")
DEFAULT_RANKER = "learned"
# Word 3-gram Jaccard similarity from which two passages count as one.
NEAR_DUPLICATE = 0.8
# Candidates from each side for hybrid search over an approximate vector index:
# on SQuAD-dev re-ranking 50 or more of them ranks as scoring all (BENCHMARKS.md).
CANDIDATES = 100
# Passages the learned scorer ranks again: the best by fused score (BENCHMARKS.md).
RERANKED = 30
# The longest question the learned scorers saw (SQuAD-train's: 40 words; 99.9% have
# at most 27). A longer query, such as a paragraph pasted to find its like, is ranked by
# the fixed fusion: on ArguAna (whole arguments as queries, 45-400 words) the learned
# ranker lost 5.7 points nDCG@10 to it (BENCHMARKS.md "Learned ranking").
LEARNED_MAX_WORDS = 40


@dataclass(frozen=True)
class Settings:
    """How an index ranks: `ranker` ("learned" or "fusion"), the fusion (`qa.fusion`:
    "score" or "rrf", and the dense `weight`), the `candidates` taken from each side over
    an approximate index, and how many passages the learned scorer ranks again."""

    ranker: str = DEFAULT_RANKER
    fusion: str = DEFAULT_FUSION
    weight: float = DEFAULT_WEIGHT
    candidates: int = CANDIDATES
    reranked: int = RERANKED


@dataclass(frozen=True)
class Candidates:
    """Rows to rank (ascending) with one score each (the mode's: cosine, BM25 or fused)
    and, for hybrid search, the signals that were fused."""

    rows: np.ndarray
    scores: np.ndarray
    signals: Mapping[str, np.ndarray] | None = None


def describe(index: Index) -> dict[str, Any]:
    """How `index` ranks, for its manifest and `semantic-qa info`: the ranker its
    hybrid searches use, and the scorers' files and checksums when learned."""
    s = index.ranking
    ranker = s.ranker if index.sentence_vectors is not None else "fusion"
    out: dict[str, Any] = {"ranker": ranker, "fusion": s.fusion, "weight": s.weight}
    if ranker == "learned":
        out["scorers"] = scorers.versions()
        out["reranked"] = s.reranked
    return out


def check_ranker(ranker: Any) -> str:
    """`ranker` as given; `InvalidInputError` for anything but one of `RANKERS`."""
    if ranker not in RANKERS:
        raise InvalidInputError(f"ranker must be one of {', '.join(RANKERS)}, got {ranker!r}")
    return str(ranker)


def rank(
    index: Index,
    question: str,
    vector: np.ndarray | None,
    k: int,
    mode: str = "hybrid",
    rows: np.ndarray | None = None,
    where: Mapping[str, Any] | None = None,
    ranker: str | None = None,
) -> list[Hit]:
    """The `k` best hits for `question` (its `vector` unless lexical), among `rows` when
    given (the passages `where` selects; Milvus applies `where` itself)."""
    settings = index.ranking
    learned = _learned(index, question, ranker or settings.ranker, vector)
    with _ONE_BLAS_THREAD:
        found = candidates(index, question, vector, k, mode, rows, where)
    query = sig.Question.of(question, vector, index.lexical.idf)
    order, scores = _best_first(found.scores), found.scores
    answers: dict[int, tuple[int, int]] = {}
    if learned is not None and mode == "hybrid" and found.signals is not None:
        head = max(settings.reranked, k + 10)
        order, scores, answers = _rerank(index, query, found, learned, head)
    kept: list[tuple[int, float]] = []
    also: dict[int, list[str]] = {}
    copies = _Copies(index)
    for i in order:
        row = int(found.rows[i])
        twin = copies.first_of(row)
        if twin is not None:
            also[twin].append(index.passages.doc_id(row))
            continue
        copies.keep(row)
        kept.append((row, float(scores[i])))
        also[row] = [index.passages.doc_id(r) for r in index.copies(row) if r != row]
        if len(kept) == k:
            break
    hits = []
    for place, (row, score) in enumerate(kept, 1):
        answer = answers.get(row) or _answer(index, query, row, learned)
        doc_id = index.passages.doc_id(row)
        others = tuple(dict.fromkeys(d for d in also[row] if d != doc_id))
        hits.append(index.hit(row, score, place, answer, others))
    return hits


def candidates(
    index: Index,
    question: str,
    vector: np.ndarray | None,
    k: int,
    mode: str,
    rows: np.ndarray | None,
    where: Mapping[str, Any] | None = None,
) -> Candidates:
    """The passages worth ranking and their scores for `mode` (see the module's doc)."""
    everything = np.arange(len(index)) if rows is None else rows
    if vector is None or mode == "lexical":
        lexical = index.lexical.scores(question)
        return Candidates(everything, lexical if rows is None else lexical[rows])
    if mode == "hybrid" and rows is None and not index.exact:
        return _hybrid_candidates(index, question, vector, k)
    if mode == "dense" and (rows is None or index.store is not None) and not index.exact:
        # An approximate index spares scoring every passage: its nearest ones (room
        # for folding duplicates) are scored exactly, the rest not at all. Milvus
        # applies `where` itself, so it returns min(k, matches) of those.
        c = min(len(everything), 10 * k + 10)
        _, nearest = index.nearest(vector[None, :], max(c, 1), where)
        found = np.sort(nearest[0][nearest[0] >= 0])
        return Candidates(found, index.vectors[found] @ vector)
    dense = (index.vectors if rows is None else index.vectors[rows]) @ vector
    if mode == "dense":
        return Candidates(everything, dense)
    lexical = index.lexical.scores(question)
    lexical = lexical if rows is None else lexical[rows]
    return _fused(index, everything, dense, lexical, index.best_sentences(rows, vector))


def _hybrid_candidates(index: Index, question: str, vector: np.ndarray, k: int) -> Candidates:
    """Hybrid search over an approximate vector index: the union of the `candidates`
    nearest by the vector index and the `candidates` best by BM25, fused as all
    passages are (min-max over these candidates; sentence vectors of these passages
    only). At 1M passages this is what keeps hybrid search within milliseconds; on
    SQuAD-dev it ranks as scoring every passage does (BENCHMARKS.md, "Scale")."""
    c = min(len(index), max(index.ranking.candidates, 10 * k + 10))
    lexical = index.lexical.scores(question)
    _, nearest = index.nearest(vector[None, :], c)
    # rows without a single question word are no lexical candidates, just noise;
    # every row tied with the c-th best is in: no arbitrary cut
    scored = np.flatnonzero(lexical > 0)
    best = scored[top(lexical[scored], min(c, len(scored)))] if len(scored) else scored
    rows = np.union1d(nearest[0][nearest[0] >= 0], best)
    dense = index.vectors[rows] @ vector
    return _fused(index, rows, dense, lexical[rows], index.best_sentences(rows, vector))


def _fused(
    index: Index,
    rows: np.ndarray,
    dense: np.ndarray,
    lexical: np.ndarray,
    sentences: np.ndarray | None,
) -> Candidates:
    s = index.ranking
    fused = fuse(dense, lexical, sentences, method=s.fusion, weight=s.weight)
    signals = {"dense": dense, "lexical": lexical, "fused": fused}
    if sentences is not None:
        signals["sentence"] = sentences
    return Candidates(rows, fused, signals)


def _learned(index: Index, question: str, ranker: str, vector: np.ndarray | None) -> Scorer | None:
    """The passage scorer when the learned ranker applies: asked for, a question
    vector, sentence vectors in the index (what its signals need), and a question of
    the length it learned from (at most `LEARNED_MAX_WORDS`)."""
    if check_ranker(ranker) != "learned" or vector is None or index.sentence_vectors is None:
        return None
    if len(sig.WORDS.findall(question)) > LEARNED_MAX_WORDS:
        return None
    return default_scorers()[0]


def _rerank(
    index: Index, query: sig.Question, found: Candidates, scorer: Scorer, reranked: int
) -> tuple[Iterator[int], np.ndarray, dict[int, tuple[int, int]]]:
    """(positions best first, scores, answer spans by row): the best `reranked`
    candidates by fused score in the passage scorer's order, scored by it; the others
    (only reached when duplicates fold many away) after them, in fused order, at 0."""
    fused = found.scores
    positions = top(fused, min(reranked, len(fused)))[:reranked]
    features, answers = passage_rows(head_of(index, query, found, positions), query)
    probability = scorer.score(features)
    scores = np.zeros(len(fused), dtype=np.float32)
    scores[positions] = probability
    seen = set(positions.tolist())
    order = positions[np.lexsort((np.arange(len(positions)), -probability))]
    rest = (i for i in _best_first(fused) if i not in seen)
    spans = {int(found.rows[h]): answers[j] for j, h in enumerate(positions)}
    return itertools.chain(order.tolist(), rest), scores, spans


def sentence_rows(
    index: Index, query: sig.Question, rows: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """(features, starts): the `qa.signals.SENTENCE_FEATURES` of every sentence of the
    passages `rows`, passage i's from `starts[i]`."""
    return sig.sentence_features(
        [index.sentences_of(r) for r in rows],
        query,
        [index.closeness(r, query.vector) for r in rows],
    )


@dataclass(frozen=True)
class Head:
    """The candidates the learned scorer ranks and all it reads of them but what the
    sentence scorer says: their rows, fused signals, every sentence's features
    (passage i's from `starts[i]`) and span, and each passage's coverage of the
    question, its title's, its neighbours' fused score, its article and its words."""

    rows: np.ndarray
    signals: dict[str, np.ndarray]
    sentences: np.ndarray
    starts: np.ndarray
    bounds: tuple[tuple[tuple[int, int], ...], ...]
    coverage: np.ndarray
    titles: np.ndarray
    neighbours: np.ndarray
    articles: np.ndarray
    lengths: np.ndarray


def head_of(index: Index, query: sig.Question, found: Candidates, positions: np.ndarray) -> Head:
    """The `Head` of the candidates at `positions`."""
    assert found.signals is not None
    rows = found.rows[positions]
    features, starts = sentence_rows(index, query, rows.tolist())
    passages = [index.sentences_of(r) for r in rows.tolist()]
    values = {name: np.asarray(v)[positions] for name, v in found.signals.items()}
    values.setdefault("sentence", values["dense"])
    return Head(
        rows,
        values,
        features,
        starts,
        tuple(p.bounds for p in passages),
        np.array([sig.coverage(p.vocabulary, query) for p in passages], np.float32),
        index.title_coverage(rows, query),
        _neighbours(index, found, rows),
        index.passages.docs[rows],
        np.array([p.lengths.sum() for p in passages], np.float32),
    )


def passage_rows(
    head: Head, query: sig.Question, sentence_scorer: Scorer | None = None
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """The `qa.signals.PASSAGE_FEATURES` of the `head` and the span of each passage's
    answer sentence, by `sentence_scorer` (default: the shipped one)."""
    sentence_scorer = sentence_scorer or default_scorers()[1]
    probability = sentence_scorer.score(head.sentences)
    ends = [*head.starts[1:], len(head.sentences)][: len(head.starts)]
    best = [a + int(np.argmax(probability[a:b])) for a, b in zip(head.starts, ends, strict=True)]
    spans = [bounds[i - a] for bounds, i, a in zip(head.bounds, best, head.starts, strict=True)]
    features = sig.passage_features(
        query,
        head.signals,
        probability[best].astype(np.float32),
        head.sentences[best],
        head.coverage,
        head.titles,
        head.neighbours,
        head.articles,
        head.lengths,
    )
    return features, spans


def _neighbours(index: Index, found: Candidates, rows: np.ndarray) -> np.ndarray:
    """The best fused score of the passages just before and after each of `rows` in
    its article, among the candidates (the lowest candidate score when neither is)."""
    fused, all_rows = found.scores, found.rows
    low = float(fused.min(initial=0.0))
    docs = index.passages.docs
    out = np.full(len(rows), low, dtype=np.float32)
    for step in (-1, 1):
        near = rows + step
        inside = (near >= 0) & (near < len(index))
        near = np.where(inside, near, rows)
        same = inside & (docs[near] == docs[rows])
        at = np.searchsorted(all_rows, near).clip(0, max(len(all_rows) - 1, 0))
        known = same & (all_rows[at] == near) if len(all_rows) else same & False
        out = np.where(known, np.maximum(out, fused[at]), out)
    return out


def _answer(index: Index, query: sig.Question, row: int, learned: Scorer | None) -> tuple[int, int]:
    """The answer sentence of passage `row`: the sentence scorer's choice when the
    learned ranker applies, else the most of the question's rare words (ties: the
    sentence closest to the question, then the earlier)."""
    sentences = index.sentences_of(row)
    if learned is not None:
        features, _ = sentence_rows(index, query, [row])
        return sentences.bounds[int(np.argmax(default_scorers()[1].score(features)))]
    start, end, _ = sentences.best(query.idf, index.closeness(row, query.vector))
    return start, end


class _Copies:
    """The passages kept so far, to tell whether another is a copy of one of them: the
    same text up to case and spacing, or (overlapping windows, lightly edited copies)
    word 3-gram Jaccard similarity of at least `NEAR_DUPLICATE`. Shingles are looked up
    in the kept passages' postings, so a passage costs its own shingles, not a
    comparison with every kept one (which made most of a k=200 search's time)."""

    def __init__(self, index: Index) -> None:
        self._index = index
        self._place: dict[int, int] = {}  # kept row -> its place
        self._by_hash: dict[Any, int] = {}
        self._postings: dict[Any, list[int]] = {}
        self._sizes: dict[int, int] = {}

    def first_of(self, row: int) -> int | None:
        """The first kept passage that `row` is a copy of, if any."""
        found = []
        same = self._by_hash.get(self._index.passages.hashes[row])
        if same is not None:
            found.append(same)
        x = self._index.sentences_of(row).shingles
        common: dict[int, int] = {}
        for shingle in x:
            for r in self._postings.get(shingle, ()):
                common[r] = common.get(r, 0) + 1
        for r, c in common.items():  # Jaccard: c / |x u y|
            if c >= NEAR_DUPLICATE * (len(x) + self._sizes[r] - c):
                found.append(r)
        return min(found, key=self._place.__getitem__) if found else None

    def keep(self, row: int) -> None:
        self._place[row] = len(self._place)
        self._by_hash.setdefault(self._index.passages.hashes[row], row)
        shingles = self._index.sentences_of(row).shingles
        self._sizes[row] = len(shingles)
        for shingle in shingles:
            self._postings.setdefault(shingle, []).append(row)


class _OneBlasThread:
    """numpy's BLAS on one thread while a question is scored. Its default pool of one
    thread per CPU makes a question's product with every sentence vector wait for a
    thread a busy machine has descheduled: 14.6 ms instead of 1.7 ms for 5,122
    sentence vectors at load 5.6 (the threads trap, BENCHMARKS.md). The count is the
    library's, shared by all threads: the first question in sets it, the last out
    restores it. FAISS's own BLAS (index training) is left alone."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._before: list[tuple[Any, int]] = []

    @functools.cached_property
    def _numpy_blas(self) -> list[Any]:
        from threadpoolctl import ThreadpoolController

        return [
            lib
            for lib in ThreadpoolController().lib_controllers
            if lib.user_api == "blas" and "numpy" in Path(lib.filepath).parent.name
        ]

    def __enter__(self) -> None:
        with self._lock:
            if self._users == 0:
                self._before = [(lib, lib.num_threads) for lib in self._numpy_blas]
                for lib, _ in self._before:
                    lib.set_num_threads(1)
            self._users += 1

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._users -= 1
            if self._users == 0:
                for lib, threads in self._before:
                    lib.set_num_threads(threads)


_ONE_BLAS_THREAD = _OneBlasThread()


def _best_first(scores: np.ndarray) -> Iterator[int]:
    """Positions of `scores`, best first, ties in position order (a stable sort),
    sorting only as much as the caller consumes."""
    n, shown, want = len(scores), 0, 64
    while shown < n:
        order = top(scores, min(n, want))
        yield from (int(i) for i in order[shown:])
        shown, want = len(order), want * 4


def top(scores: np.ndarray, m: int) -> np.ndarray:
    """The best `m` positions and every position tied with the m-th, in stable order:
    always a prefix of the full stable order, so successive calls never disagree."""
    # Selection only among scores above the lowest: np.partition crawls over many
    # equal values, and most passages of a large index score BM25's 0 (32 ms -> 5 ms
    # at 1M passages). The same positions either way.
    if m <= 0:
        return np.zeros(0, np.int64)
    low = scores.min(initial=np.inf)
    rest = np.flatnonzero(scores > low)
    if len(rest) < m:  # the m-th best is the lowest score: every position, lowest last
        return np.concatenate(
            [rest[np.lexsort((rest, -scores[rest]))], np.flatnonzero(scores <= low)]
        )
    part = scores[rest]
    kth = np.partition(part, len(part) - m)[len(part) - m]
    best = rest[part >= kth]
    return best[np.lexsort((best, -scores[best]))]
