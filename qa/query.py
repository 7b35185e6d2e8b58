"""Checks on what a caller asks: the question and the number of passages.

>>> check_question("  Who chairs the OSCE?\n")
'Who chairs the OSCE?'
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from .errors import InvalidInputError

# Longest question accepted, in characters. The model reads about the first 250
# tokens of a question (roughly 1,000 characters of English) and ignores the rest;
# a longer question is a pasted article or an attack, and is refused rather than
# cut silently. Whitespace at the ends does not count.
MAX_QUESTION_CHARS = 2000
# Control characters other than tab, newline and carriage return (C0, DEL, C1), and
# lone surrogates, which are not text (they cannot even be encoded as UTF-8).
_NOT_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def check_question(question: Any) -> str:
    """The question, stripped; a clear `InvalidInputError` (a `ValueError`) otherwise:
    not a string, empty, longer than `MAX_QUESTION_CHARS`, or holding control
    characters."""
    if not isinstance(question, str):
        raise InvalidInputError(
            f"question must be a string, got {type(question).__name__}: {question!r:.60}"
        )
    question = question.strip()
    if not question:
        raise InvalidInputError("question is empty: type a question, e.g. 'Who chairs the OSCE?'")
    if len(question) > MAX_QUESTION_CHARS:
        raise InvalidInputError(
            f"question is {len(question):,} characters long, the limit is "
            f"{MAX_QUESTION_CHARS:,}: ask a shorter question (the model reads only about "
            "its first 250 words)"
        )
    bad = _NOT_TEXT.search(question)
    if bad:
        char = bad.group()
        name = unicodedata.name(char, "control character" if ord(char) < 0xD800 else "surrogate")
        raise InvalidInputError(
            f"question holds a character that is not text, U+{ord(char):04X} ({name.lower()}) "
            f"at position {bad.start()}: remove it and ask again"
        )
    return question


def check_k(k: Any) -> int:
    """`k` as an int >= 1."""
    if isinstance(k, bool) or not isinstance(k, int):
        raise InvalidInputError(f"k must be an integer >= 1, got {type(k).__name__}: {k!r}")
    if k < 1:
        raise InvalidInputError(f"k must be at least 1, got {k}")
    return k
