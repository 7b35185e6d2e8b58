"""Hit: one retrieved passage with its score and rank; the one result shape that the
Python API, the CLI (`--json`) and the Gradio API all return."""

from __future__ import annotations

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
    returned as hits of their own."""

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
        }
