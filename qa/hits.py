"""Hit: one retrieved passage with its score and rank; the one result shape that the
Python API, the CLI (`--json`) and the Gradio API all return."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Hit:
    """A passage that answers a question. `score` is the cosine similarity of the
    question and the passage (-1..1, higher is better); `rank` starts at 1."""

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
        }
