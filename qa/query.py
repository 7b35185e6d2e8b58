"""Checks on what a caller asks: the question and the number of passages."""

from __future__ import annotations

from typing import Any

from .errors import InvalidInputError


def check_question(question: Any) -> str:
    """The question, stripped; a clear `InvalidInputError` (a `ValueError`) otherwise."""
    if not isinstance(question, str):
        raise InvalidInputError(
            f"question must be a string, got {type(question).__name__}: {question!r:.60}"
        )
    question = question.strip()
    if not question:
        raise InvalidInputError("question is empty: type a question, e.g. 'Who chairs the OSCE?'")
    return question


def check_k(k: Any) -> int:
    """`k` as an int >= 1."""
    if isinstance(k, bool) or not isinstance(k, int):
        raise InvalidInputError(f"k must be an integer >= 1, got {type(k).__name__}: {k!r}")
    if k < 1:
        raise InvalidInputError(f"k must be at least 1, got {k}")
    return k
