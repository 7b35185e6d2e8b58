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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .lexical import tokenize
from .passages import sentence_spans


def sentence_bounds(text: str) -> list[tuple[int, int]]:
    """(start, end) of every sentence of `text`; the whole text when it has none."""
    spans = [(s, e) for s, e, _ in sentence_spans(text)]
    return spans or [(0, len(text))]


@dataclass(frozen=True)
class Sentences:
    """The sentences of one passage: their spans and their distinct tokens."""

    bounds: tuple[tuple[int, int], ...]
    tokens: tuple[frozenset[str], ...]

    @classmethod
    def of(cls, text: str) -> Sentences:
        bounds = sentence_bounds(text)
        return cls(tuple(bounds), tuple(frozenset(tokenize(text[s:e])) for s, e in bounds))

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
