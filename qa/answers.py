"""Answer sentences: the sentence of a passage most likely to hold the answer.

A sentence scores the inverse document frequency of the question's words it holds
(each word once), so rare words such as names, numbers and terms weigh most. The
sentence with the highest score wins; ties go to the sentence whose vector is closest
to the question's (when the index has sentence vectors), then to the earlier one.
Sentences are the splitter's own (`qa.passages.sentence_spans`), so a highlighted
answer and a passage boundary never disagree.

>>> text = "Cats purr. The Danube reaches the Black Sea in Romania."
>>> best_sentence(text, {"danub": 2.0, "sea": 1.0})
(11, 55, 3.0)
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from .lexical import tokenize
from .passages import sentence_spans


def sentence_bounds(text: str) -> list[tuple[int, int]]:
    """(start, end) of every sentence of `text`; the whole text when it has none."""
    spans = [(s, e) for s, e, _ in sentence_spans(text)]
    return spans or [(0, len(text))]


_YEAR = re.compile(r"\b(1[0-9]{3}|20[0-9]{2})s?\b")
_NUMBER = re.compile(
    r"\d|\b(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|"
    r"forty|fifty|hundred|thousand|million|billion|dozen)\b",
    re.IGNORECASE,
)
_MONTH = re.compile(
    r"\b(January|February|March|April|May|June|July|August|September|October|November|"
    r"December|spring|summer|autumn|winter|century)\b"
)
# A capitalized word after the first of its sentence: a name, most of the time.
_NAME = re.compile(r"(?<=\s)[A-ZÀ-Þ][\w'’-]+")
_FINAL = re.compile(r"""[.!?:;]["'”’)\]]*$""")


@dataclass(frozen=True)
class Sentences:
    """The sentences of one passage: their spans, their distinct tokens, their tokens in
    order, and what they hold (see `facts`)."""

    bounds: tuple[tuple[int, int], ...]
    tokens: tuple[frozenset[str], ...]
    words: tuple[tuple[str, ...], ...] = ()
    # per sentence: holds a year, a number, a month; no final punctuation (a heading)
    marks: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), np.float32))
    headings: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    names: tuple[frozenset[str], ...] = ()

    @classmethod
    def of(cls, text: str) -> Sentences:
        bounds = sentence_bounds(text)
        pieces = [text[s:e] for s, e in bounds]
        words = tuple(tuple(tokenize(p)) for p in pieces)
        marks = np.array(
            [[bool(r.search(p)) for r in (_YEAR, _NUMBER, _MONTH)] for p in pieces], np.float32
        ).reshape(len(pieces), 3)
        return cls(
            tuple(bounds),
            tuple(frozenset(w) for w in words),
            words,
            marks,
            np.array([not _FINAL.search(p) for p in pieces], np.float32),
            tuple(frozenset(m.lower() for m in _NAME.findall(p)) for p in pieces),
        )

    def facts(self, known: frozenset[str]) -> np.ndarray:
        """[sentences x 4]: holds a year, a number, a month, and a name not among
        `known` (the question's own words, lower-cased): the kinds of answer questions
        ask for (`qa.signals.FACTS`)."""
        new = [float(bool(names - known)) for names in self.names]
        return np.column_stack([self.marks, np.array(new, np.float32)]).astype(np.float32)

    def scores(self, weights: Mapping[str, float]) -> list[float]:
        """Sum of `weights` (token -> weight, e.g. the question's IDFs) over the
        distinct tokens of each sentence."""
        return [sum(weights.get(t, 0.0) for t in tokens) for tokens in self.tokens]

    def best(
        self, weights: Mapping[str, float], closeness: Sequence[float] | None = None
    ) -> tuple[int, int, float]:
        """(start, end, score) of the best-scoring sentence. `closeness` (one value per
        sentence, e.g. the cosine of question and sentence vectors) breaks ties, such
        as sentences that share no word with the question; then the earlier wins."""
        scores = self.scores(weights)
        near = closeness if closeness is not None else [0.0] * len(scores)
        i = max(range(len(scores)), key=lambda i: (scores[i], near[i], -i))
        return self.bounds[i][0], self.bounds[i][1], scores[i]


def best_sentence(text: str, weights: Mapping[str, float]) -> tuple[int, int, float]:
    """(start, end, score) of the sentence of `text` that scores best."""
    return Sentences.of(text).best(weights)
