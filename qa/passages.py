"""Passages: articles split on sentence and paragraph boundaries, sized in the
model's own tokens, each keeping its exact character span in the article.

>>> passages = split_document(doc, encoder)            # doctest: +SKIP
>>> all(doc.text[p.start:p.end] == p.text for p in passages)
True
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from .documents import Document
from .errors import InvalidInputError

# Defaults chosen on ../shared/data/squad-dev (BENCHMARKS.md, "passage size").
DEFAULT_TARGET_TOKENS = 192
DEFAULT_OVERLAP_TOKENS = 0
DEFAULT_MAX_CHARS = 1200

_PARAGRAPH_BREAK = re.compile(r"\n[ \t\r\f\v]*\n\s*")
_LINE_BREAK = re.compile(r"\n\s*")
# A sentence ends at . ! ? (plus closing quotes/brackets) followed by space and a
# capital, digit or opening quote/bracket. Abbreviations and initials are excluded.
_SENTENCE_END = re.compile(r"""[.!?]+["'”’)\]]*\s+(?=["'“‘(\[]?[A-Z0-9À-Þ])""")
_ABBREVIATIONS = {
    "mr", "mrs", "ms", "dr", "prof", "st", "jr", "sr", "vs", "etc", "e.g", "i.e",
    "no", "gen", "col", "lt", "sgt", "capt", "inc", "ltd", "co", "corp", "u.s", "u.n",
    "u.k", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct",
    "nov", "dec", "fig", "approx", "est", "rev", "hon", "gov", "sen", "rep", "ave",
}  # fmt: skip
_LAST_WORD = re.compile(r"([\w.]+)$")


class TokenCounter(Protocol):
    """What the splitter needs from an encoder: its tokenizer and its budget."""

    @property
    def max_tokens(self) -> int: ...

    def token_spans(self, text: str) -> list[tuple[int, int]]: ...

    def count_tokens(self, texts: Sequence[str]) -> list[int]: ...


@dataclass(frozen=True)
class Passage:
    """A span of one article: `document.text[start:end] == text`."""

    id: str
    doc_id: str
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class SplitSettings:
    """Passage sizing. A paragraph that fits the model stays one passage; longer ones
    are cut into even runs of whole sentences of about `target_tokens` (never above
    the model's limit), each starting with up to `overlap_tokens` tokens of whole
    sentences from the end of the previous run; `max_chars` is a hard limit on a
    passage's length."""

    target_tokens: int = DEFAULT_TARGET_TOKENS
    overlap_tokens: int = DEFAULT_OVERLAP_TOKENS
    max_chars: int = DEFAULT_MAX_CHARS

    def __post_init__(self) -> None:
        if self.target_tokens < 8:
            raise InvalidInputError(f"target_tokens must be at least 8, got {self.target_tokens}")
        if not 0 <= self.overlap_tokens < self.target_tokens:
            raise InvalidInputError(
                f"overlap_tokens must be in [0, target_tokens), got {self.overlap_tokens}"
            )
        if self.max_chars < 64:
            raise InvalidInputError(f"max_chars must be at least 64, got {self.max_chars}")


@dataclass(frozen=True)
class _Unit:
    """A sentence (or a piece of an over-long one) with its token count."""

    start: int
    end: int
    tokens: int
    paragraph: int


def passage_id(doc_id: str, text: str, occurrence: int = 0) -> str:
    """Content-derived id: the same document and text always give the same id."""
    digest = hashlib.blake2b(f"{doc_id}\x00{text}".encode(), digest_size=8).hexdigest()
    return digest if occurrence == 0 else f"{digest}-{occurrence}"


def sentence_spans(text: str) -> Iterator[tuple[int, int, int]]:
    """(start, end, paragraph number) of every sentence, whitespace trimmed."""
    para_start = 0
    breaks = [m.span() for m in _PARAGRAPH_BREAK.finditer(text)] + [(len(text), len(text))]
    for number, (br_start, br_end) in enumerate(breaks):
        for line_start, line_end in _split(text, para_start, br_start, _LINE_BREAK):
            for start, end in _split_sentences(text, line_start, line_end):
                yield start, end, number
        para_start = br_end


def _split(text: str, start: int, end: int, pattern: re.Pattern[str]) -> Iterator[tuple[int, int]]:
    pos = start
    for m in pattern.finditer(text, start, end):
        yield from _trimmed(text, pos, m.start())
        pos = m.end()
    yield from _trimmed(text, pos, end)


def _split_sentences(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    pos = start
    for m in _SENTENCE_END.finditer(text, start, end):
        word = _LAST_WORD.search(text, pos, m.start())
        if word:
            w = word.group(1).lower()
            if w in _ABBREVIATIONS or (len(w) == 1 and w.isalpha()):
                continue
        yield from _trimmed(text, pos, m.end())
        pos = m.end()
    yield from _trimmed(text, pos, end)


def _trimmed(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if start < end:
        yield start, end


def split_document(
    doc: Document, counter: TokenCounter, settings: SplitSettings | None = None
) -> list[Passage]:
    """Split one article into passages of at most `counter.max_tokens` tokens."""
    settings = settings or SplitSettings()
    budget = min(settings.target_tokens, counter.max_tokens)
    text = doc.text
    token_starts = [s for s, _ in counter.token_spans(text)]
    units = list(_units(text, token_starts, budget, settings.max_chars))
    spans = _pack(units, counter.max_tokens, settings)
    spans = _enforce_budget(text, spans, counter, settings)
    passages: list[Passage] = []
    occurrences: dict[str, int] = {}
    for start, end in spans:
        body = text[start:end]
        n = occurrences.get(body, 0)
        occurrences[body] = n + 1
        passages.append(Passage(passage_id(doc.id, body, n), doc.id, start, end, body))
    return passages


def _units(text: str, token_starts: list[int], budget: int, max_chars: int) -> Iterator[_Unit]:
    for start, end, paragraph in sentence_spans(text):
        first = bisect.bisect_left(token_starts, start)
        last = bisect.bisect_left(token_starts, end)
        if last - first <= budget and end - start <= max_chars:
            yield _Unit(start, end, last - first, paragraph)
            continue

        # An over-long sentence: cut it at word starts into pieces within both limits.
        def pos(
            t: int, start: int = start, first: int = first, end: int = end, last: int = last
        ) -> int:
            return start if t == first else end if t >= last else token_starts[t]

        lo = first
        while lo < last:
            hi = min(last, lo + budget)
            while hi > lo + 1 and pos(hi) - pos(lo) > max_chars:
                hi -= 1
            if pos(hi) - pos(lo) > max_chars:
                # One token longer than max_chars (WordPiece reads a word of over 100
                # characters, e.g. a base64 blob, as a single [UNK]): cut by characters.
                for cut in range(pos(lo), pos(hi), max_chars):
                    for s, e in _trimmed(text, cut, min(cut + max_chars, pos(hi))):
                        yield _Unit(s, e, 1, paragraph)
                lo = hi
                continue
            if hi < last:
                hi = _word_start(text, token_starts, lo, hi)
            for s, e in _trimmed(text, pos(lo), pos(hi)):
                yield _Unit(s, e, hi - lo, paragraph)
            lo = hi


def _word_start(text: str, token_starts: list[int], lo: int, hi: int) -> int:
    """The last token index in (lo, hi] that starts a word, else hi (a forced cut)."""
    for t in range(hi, lo, -1):
        if text[token_starts[t] - 1].isspace():
            return t
    return hi


def _pack(units: list[_Unit], limit: int, settings: SplitSettings) -> list[tuple[int, int]]:
    """Paragraph-first packing, so passages follow the article's own structure. A
    paragraph within the model's limit stays whole; a longer one is cut into the
    fewest even runs of whole sentences of about `target_tokens`; then neighbouring
    short pieces (headings, one-line paragraphs) are merged while together they stay
    under half the target."""
    target = min(settings.target_tokens, limit)
    blocks: list[list[_Unit]] = []
    for _, group in itertools.groupby(units, key=lambda u: u.paragraph):
        para = list(group)
        tokens = sum(u.tokens for u in para)
        chars = para[-1].end - para[0].start
        if tokens <= limit and chars <= settings.max_chars:
            blocks.append(para)
            continue
        parts = max(math.ceil(tokens / target), math.ceil(chars / settings.max_chars))
        blocks.extend(_even_runs(para, parts, limit, settings))
    merged: list[list[_Unit]] = []
    for block in blocks:
        if merged and _fits(merged[-1] + block, target // 2, settings.max_chars):
            merged[-1] = merged[-1] + block
        else:
            merged.append(block)
    return [(b[0].start, b[-1].end) for b in merged]


def _fits(units: list[_Unit], tokens: float, max_chars: int) -> bool:
    return sum(u.tokens for u in units) <= tokens and units[-1].end - units[0].start <= max_chars


def _even_runs(
    para: list[_Unit], parts: int, limit: int, settings: SplitSettings
) -> Iterator[list[_Unit]]:
    """`parts` runs of whole sentences of about equal tokens: a sentence goes to the
    run its middle token falls in. The hard limits can force an extra cut."""
    share = max(sum(u.tokens for u in para), 1) / parts
    current: list[_Unit] = []
    tokens = done = run = 0
    for unit in para:
        wanted = min(int((done + unit.tokens / 2) // share), parts - 1)
        if current and (
            wanted > run
            or tokens + unit.tokens > limit
            or unit.end - current[0].start > settings.max_chars
        ):
            yield current
            current = _overlap(current, unit, limit, settings)
            tokens = sum(u.tokens for u in current)
            run = max(wanted, run + 1)
        current.append(unit)
        tokens += unit.tokens
        done += unit.tokens
    if current:
        yield current


def _overlap(
    previous: list[_Unit], nxt: _Unit, budget: int, settings: SplitSettings
) -> list[_Unit]:
    """The trailing sentences of `previous` to repeat before `nxt`."""
    kept: list[_Unit] = []
    tokens = nxt.tokens
    for unit in reversed(previous[1:]):
        tokens += unit.tokens
        if (
            tokens - nxt.tokens > settings.overlap_tokens
            or tokens > budget
            or nxt.end - unit.start > settings.max_chars
        ):
            break
        kept.insert(0, unit)
    return kept


def _enforce_budget(
    text: str, spans: list[tuple[int, int]], counter: TokenCounter, settings: SplitSettings
) -> list[tuple[int, int]]:
    """Re-tokenize every passage on its own; halve any that the model would truncate.
    Counting a substring can differ from counting it inside the article (a cut inside
    a word), so this check is what guarantees the limit."""
    limit = counter.max_tokens
    counts = counter.count_tokens([text[s:e] for s, e in spans])
    result: list[tuple[int, int]] = []
    for (start, end), count in zip(spans, counts, strict=True):
        if count <= limit:
            result.append((start, end))
            continue
        middle = _middle_cut(text, start, end)
        halves = [
            (s, e) for a, b in ((start, middle), (middle, end)) for s, e in _trimmed(text, a, b)
        ]
        result.extend(_enforce_budget(text, halves, counter, settings))
    return result


def _middle_cut(text: str, start: int, end: int) -> int:
    middle = (start + end) // 2
    space = text.rfind(" ", start + 1, middle + 1)
    return space if space > start else max(middle, start + 1)
