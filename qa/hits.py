"""Hit: one retrieved passage with its score and rank; the one result shape that the
Python API, the CLI (`--json`) and the Gradio API all return."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Hit:
    """A passage that answers a question; `rank` starts at 1. `score` is higher for
    better hits: in mode "dense" the cosine similarity of question and passage
    (-1..1), in "lexical" the BM25 score, in "hybrid" the fused score.

    `answer_start`/`answer_end`: the sentence most likely to hold the answer, as
    character offsets in `text` (`text[answer_start:answer_end]`). `also_in`: ids of
    other documents holding the same (or nearly the same) passage, which are not
    returned as hits of their own. `pages`: the pages (from 1) the passage lies on, for
    articles that have pages (PDF); () for the others."""

    id: str
    doc_id: str
    title: str
    source: str
    start: int
    end: int
    text: str
    score: float
    rank: int
    metadata: dict[str, Any] = field(default_factory=dict)
    answer_start: int = 0
    answer_end: int = 0
    also_in: tuple[str, ...] = ()
    pages: tuple[int, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """One flat JSON-ready object. Later features only add keys."""
        return {
            "id": self.id,
            "doc_id": self.doc_id,
            "title": self.title,
            "source": self.source,
            "start": self.start,
            "end": self.end,
            "text": self.text,
            "score": round(float(self.score), 6),
            "rank": self.rank,
            "metadata": dict(self.metadata),
            "answer_start": self.answer_start,
            "answer_end": self.answer_end,
            "also_in": list(self.also_in),
            "pages": list(self.pages),
        }


def page_label(pages: Sequence[int]) -> str:
    """How a hit's pages read: "p. 3", "p. 3–4", or "" when it has none.

    >>> page_label([3, 4, 5])
    'p. 3–5'
    """
    if not pages:
        return ""
    first, last = pages[0], pages[-1]
    return f"p. {first}" if first == last else f"p. {first}–{last}"
