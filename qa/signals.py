"""Signals: what the ranker knows about a question and each candidate passage and sentence,
as rows of numbers. The same functions make the training rows (`benchmarks/train_ranker.py`)
and the rows scored at search time (`qa.ranking`), so the two never disagree.

A question has a kind, read off its first words ("When ..." asks for a time, "How many
..." for a number, "Who ..." for a person); a sentence has facts (a year, a number, a
month, names the question does not hold). A sentence that holds the kind of thing asked
for is likelier to hold the answer: those pairs are features of their own.

>>> question_kind("In which year did Kazakhstan chair the OSCE?")
'time'
>>> question_kind("How many member states took part?")
'number'
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .answers import Sentences
from .lexical import tokenize

KINDS = ("time", "number", "person", "place", "reason", "manner", "thing", "other")
# What a sentence holds, by regular expression over its text (see `Sentences`).
FACTS = ("year", "number", "month", "name")

_KIND_PATTERNS = [
    ("time", r"\b(when|what (year|time|date|day|month|century|decade|period)|which "
     r"(year|date|day|month|century|decade)|how (long|old)|since when)\b"),
    ("number", r"\bhow (many|much|far|large|big|tall|high|deep|wide|fast)|what (percentage"
     r"|percent|number|amount|proportion|population)\b"),
    ("person", r"\b(who|whom|whose)\b"),
    ("place", r"\b(where|what (country|city|state|region|place|area|river|continent)|which"
     r" (country|city|state|region|place|area|river|continent))\b"),
    ("reason", r"\bwhy\b"),
    ("manner", r"\bhow\b"),
    ("thing", r"\b(what|which)\b"),
]  # fmt: skip
_KINDS = [(kind, re.compile(pattern)) for kind, pattern in _KIND_PATTERNS]


def question_kind(question: str) -> str:
    """What a question asks for (one of `KINDS`), by its first matching wh-phrase."""
    text = question.lower()
    found = [(m.start(), i) for i, (_, p) in enumerate(_KINDS) if (m := p.search(text))]
    return _KINDS[min(found)[1]][0] if found else "other"


@dataclass(frozen=True)
class Question:
    """A question as the signals see it: its vector, stemmed words in order, their IDF
    in the index, its kind and its words as written (to tell a new name from its own)."""

    text: str
    vector: np.ndarray | None
    tokens: tuple[str, ...]
    idf: Mapping[str, float]
    kind: str
    words: frozenset[str]

    @classmethod
    def of(
        cls,
        text: str,
        vector: np.ndarray | None,
        idf: Callable[[Sequence[str]], Mapping[str, float]],
    ) -> Question:
        """`idf`: the index's IDF of tokens (`qa.lexical.LexicalIndex.idf`)."""
        tokens = tuple(dict.fromkeys(tokenize(text)))
        return cls(
            text,
            vector,
            tokens,
            dict(idf(tokens)),
            question_kind(text),
            frozenset(w.lower() for w in WORDS.findall(text)),
        )

    @property
    def weight(self) -> float:
        """Total IDF of the question's words: what full coverage scores."""
        return sum(self.idf.values()) or 1.0

    @property
    def bigrams(self) -> frozenset[tuple[str, str]]:
        return frozenset(zip(self.tokens, self.tokens[1:], strict=False))


WORDS = re.compile(r"\w+")  # words as counted and compared as written

SENTENCE_FEATURES = (
    "coverage",  # IDF of the question's words in the sentence / IDF of all of them
    "coverage_gap",  # the passage's best coverage minus this sentence's
    "closeness",  # cosine of question and sentence vectors (0 without them)
    "closeness_gap",
    "matched",  # share of the question's words in the sentence
    "proximity",  # matched words / the span of the sentence they lie in
    "novelty",  # share of the sentence's words the question does not hold
    "bigrams",  # share of the question's word pairs the sentence repeats
    "position",  # 0 for the first sentence of the passage, 1 for the last
    "first",
    "length",  # log of the sentence's words
    "heading",  # no final punctuation: a title or a heading
    *(f"has_{fact}" for fact in FACTS),
    *(f"{kind}_x_{fact}" for kind in KINDS for fact in FACTS),
    # the sentences around it (0 at the passage's ends): an answer often follows the
    # sentence that names what the question is about ("... the mayor. He was ...")
    "previous_coverage",
    "next_coverage",
    "previous_closeness",
    "next_closeness",
    "coverage_rank",  # log of its rank in the passage by coverage (0: the best)
    "closeness_rank",
)
_AROUND = SENTENCE_FEATURES.index("previous_coverage")


def sentence_features(
    passages: Sequence[Sentences],
    question: Question,
    closeness: Sequence[Sequence[float] | None],
) -> tuple[np.ndarray, np.ndarray]:
    """(rows, starts): one row of `SENTENCE_FEATURES` per sentence of each of
    `passages`, one after the other, passage i's from `starts[i]`; `closeness`: each
    passage's sentence cosines to the question (None: not known). All passages at
    once: one pass of plain Python over their sentences, then whole columns."""
    counts = np.array([len(p.bounds) for p in passages], np.int64)
    starts = np.cumsum(counts) - counts
    n = int(counts.sum())
    out = np.zeros((n, len(SENTENCE_FEATURES)), dtype=np.float32)
    if not n:
        return out, starts
    weight, idf, known = question.weight, question.idf, question.words
    qset, qbigrams = set(question.tokens), question.bigrams
    values = []  # coverage, matched, proximity, novelty, bigrams, name per sentence
    for p in passages:
        for distinct, words, names in zip(p.tokens, p.words, p.names, strict=True):
            matched = qset.intersection(distinct)
            proximity = pairs = 0.0
            if matched:
                at = [j for j, w in enumerate(words) if w in matched]
                proximity = len(matched) / (at[-1] - at[0] + 1) if len(at) > 1 else 1.0
                if len(matched) > 1 and qbigrams:
                    pairs = len(qbigrams.intersection(itertools.pairwise(words))) / len(qbigrams)
            values.append((
                sum(idf.get(t, 0.0) for t in matched) / weight,
                len(matched) / max(1, len(qset)),
                proximity,
                (len(distinct) - len(matched)) / max(1, len(distinct)),
                pairs,
                float(bool(names) and not names <= known),
            ))  # fmt: skip
    table = np.array(values, dtype=np.float32)
    out[:, 0], out[:, 4], out[:, 5], out[:, 6], out[:, 7] = table[:, :5].T
    out[:, 2] = np.concatenate(
        [np.zeros(c) if near is None else near for c, near in zip(counts, closeness, strict=True)]
    )
    for column in (0, 2):  # the gap to the passage's best sentence
        best = np.maximum.reduceat(out[:, column], starts[counts > 0])
        out[:, column + 1] = np.repeat(best, counts[counts > 0]) - out[:, column]
    within = np.arange(n) - np.repeat(starts, counts)
    out[:, 8] = within / np.maximum(np.repeat(counts, counts) - 1, 1)
    out[:, 9] = within == 0
    out[:, 10] = np.log1p(np.concatenate([p.lengths for p in passages]))
    out[:, 11] = np.concatenate([p.headings for p in passages])
    facts = np.column_stack([np.concatenate([p.marks for p in passages]), table[:, 5]])
    out[:, 12 : 12 + len(FACTS)] = facts
    first = 12 + len(FACTS) + KINDS.index(question.kind) * len(FACTS)
    out[:, first : first + len(FACTS)] = facts
    within_next = np.r_[within[1:], 0]
    for j, column in enumerate((0, 2)):
        previous = np.r_[0.0, out[:-1, column]]
        following = np.r_[out[1:, column], 0.0]
        out[:, _AROUND + 2 * j] = np.where(within > 0, previous, 0.0)
        out[:, _AROUND + 2 * j + 1] = np.where(within_next > 0, following, 0.0)
        out[:, _AROUND + 4 + j] = np.log1p(_ranks_within(out[:, column], starts, counts))
    return out, starts


def _ranks_within(values: np.ndarray, starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Each value's rank among its passage's (0: the highest; ties share the best)."""
    passage = np.repeat(np.arange(len(counts)), counts)
    order = np.lexsort((-values, passage))
    ranks = np.empty(len(values), dtype=np.float32)
    ranks[order] = np.arange(len(values)) - np.repeat(starts, counts)
    # ties share the best rank: the rank of the first equal value before it
    ordered = values[order]
    same = np.r_[False, (ordered[1:] == ordered[:-1]) & (passage[order][1:] == passage[order][:-1])]
    best = ranks[order].copy()
    for i in np.flatnonzero(same):
        best[i] = best[i - 1]
    ranks[order] = best
    return ranks


PASSAGE_FEATURES = (
    "dense",  # cosine of question and passage vectors
    "lexical",  # BM25 / the best candidate's BM25
    "sentence",  # cosine of the question and the passage's closest sentence
    "fused",  # the fixed fusion's score (qa.fusion)
    "dense_gap",  # the best candidate's value minus this one's
    "lexical_gap",
    "sentence_gap",
    "fused_gap",
    "fused_rank",  # log of the rank by fused score among the candidates
    "coverage",  # IDF of the question's words in the passage / IDF of all of them
    "answer",  # the answer sentence's score (the sentence scorer's probability)
    "answer_gap",  # the best candidate's answer score minus this one's
    "answer_coverage",  # coverage of the answer sentence
    "answer_closeness",  # closeness of the answer sentence
    "title",  # coverage of the article's title
    "neighbour",  # best fused score of the passages just before and after it
    "article",  # best fused score of the article's other candidates
    "article_candidates",  # log of how many candidates its article has
    "length",  # log of the passage's words
)


def passage_features(
    question: Question,
    signals: Mapping[str, np.ndarray],
    answers: np.ndarray,
    sentence_rows: np.ndarray,
    coverage: np.ndarray,
    titles: np.ndarray,
    neighbours: np.ndarray,
    articles: np.ndarray,
    lengths: np.ndarray,
) -> np.ndarray:
    """One row of `PASSAGE_FEATURES` per candidate. `signals`: "dense", "lexical",
    "sentence" and "fused" per candidate; `answers`: each candidate's answer-sentence
    score and `sentence_rows` that sentence's `SENTENCE_FEATURES` (one row each); `coverage` and
    `titles`: coverage of the passage and of its article's title; `neighbours`: the
    best fused score beside it; `articles`: each candidate's article number;
    `lengths`: its words."""
    n = len(answers)
    out = np.zeros((n, len(PASSAGE_FEATURES)), dtype=np.float32)
    if n == 0:
        return out
    lexical = signals["lexical"] / max(float(signals["lexical"].max()), 1e-9)
    fused = signals["fused"]
    for column, values in enumerate((signals["dense"], lexical, signals["sentence"], fused)):
        out[:, column] = values
        out[:, column + 4] = values.max() - values
    order = np.argsort(-fused, kind="stable")
    ranks = np.empty(n)
    ranks[order] = np.arange(1, n + 1)
    out[:, 8] = np.log(ranks)
    out[:, 9] = coverage
    out[:, 10] = answers
    out[:, 11] = answers.max() - answers
    rows = sentence_rows.reshape(n, len(SENTENCE_FEATURES))
    out[:, 12] = rows[:, SENTENCE_FEATURES.index("coverage")]
    out[:, 13] = rows[:, SENTENCE_FEATURES.index("closeness")]
    out[:, 14] = titles
    out[:, 15] = neighbours
    # the best fused score among the other candidates of the same article
    _, article, counts = np.unique(articles, return_inverse=True, return_counts=True)
    best = np.full(len(counts), -np.inf)
    np.maximum.at(best, article, fused)
    second = np.full(len(counts), -np.inf)
    mine = fused >= best[article]
    np.maximum.at(second, article[~mine], fused[~mine])
    others = np.where(mine, second[article], best[article])
    out[:, 16] = np.where(np.isfinite(others), others, 0.0)
    out[:, 17] = np.log(counts[article])
    out[:, 18] = np.log1p(lengths)
    return out


def coverage(tokens: frozenset[str], question: Question) -> float:
    """IDF of the question's words among `tokens`, over the IDF of all of them."""
    return sum(w for t, w in question.idf.items() if t in tokens) / question.weight
