"""PDF articles: the text layer as clean text, with the offset where each page starts.

>>> title, text, page_starts = read_pdf(Path("report.pdf"))  # doctest: +SKIP
>>> title, page_starts[:3]                                    # doctest: +SKIP
('Annual report 2025', (0, 2710, 5893))

PDFium (pypdfium2) reads the text layer in a child process with limits on pages,
memory and CPU time (`qa/pdf_worker.py`): a hostile file ends that process, never
the one indexing or serving. What comes back is lines with their boxes; here they
become text: headers, footers and page numbers that repeat across pages are dropped,
lines are joined into paragraphs (a line that ends short of its column's right edge,
a gap or an indented line ends a paragraph), words hyphenated at line ends are joined
again, ligatures (ﬁ, ﬂ) become letters, and table cells are kept on their row,
separated by " | ". Text comes in the order the PDF draws it (as PDFium reads it).
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import statistics
import subprocess
import sys
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

from .errors import DocumentError

log = logging.getLogger(__name__)

WORKER = Path(__file__).with_name("pdf_worker.py")
# A PDF with more pages is refused before any page is read: a book has a few
# thousand; 100,000 empty pages are an attack (or a broken export).
MAX_PAGES = 5_000
# Address space of the process that reads one PDF (PDFium and Python together): a
# stream that inflates past it (a decompression bomb) ends that process.
MEMORY_MB = 1_024
# CPU seconds the reader may use: CPU_SECONDS, plus CPU_SECONDS_PER_PAGE a page (pages
# of text take about 0.01 s each here; a page that takes 0.25 s of CPU is hostile).
CPU_SECONDS = 20.0
CPU_SECONDS_PER_PAGE = 0.25
# Wall-clock limit for one file, whatever the CPU limit allows (a busy machine).
SECONDS = 300.0
# Junk a PDF writer puts in the Title field instead of a title.
_JUNK_TITLE = re.compile(
    r"^(untitled|microsoft (word|powerpoint) - .*|.*\.(docx?|pdf|odt|tex|dvi|indd))$", re.I
)
_LIGATURES = str.maketrans(
    {"\ufb00": "ff", "\ufb01": "fi", "\ufb02": "fl", "\ufb03": "ffi", "\ufb04": "ffl", "\ufb05": "st", "\ufb06": "st"}
)  # fmt: skip
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u00ad\u200b\ufeff]")
_SPACES = re.compile(r"[ \t\xa0\u2000-\u200a\u202f\u3000]+")
_ROMAN = re.compile(r"^[ivxlcdm]+$")
_LETTER_HYPHEN = re.compile(r"[^\W\d_]-$")
HYPHEN = "\ufffe"  # how the worker marks a hyphen PDFium recognised at a line end


@dataclass(frozen=True)
class Line:
    """One line of a page as the worker read it; y grows upwards (PDF space)."""

    page: int
    text: str
    x0: float
    bottom: float
    x1: float
    top: float
    size: float
    cells: tuple[str, ...] = ()  # the text cut at its wide gaps, when it has any

    @property
    def hyphenated(self) -> bool:
        """Ends with a hyphen PDFium recognised, or (last line of a column, which it
        does not check) a hyphen right after a letter."""
        return self.text.endswith(HYPHEN) or bool(_LETTER_HYPHEN.search(self.text))


def read_pdf(path: Path) -> tuple[str, str, tuple[int, ...]]:
    """(title, text, page starts) of the PDF at `path`; `DocumentError` when it has no
    text layer, needs a password, is damaged or breaks a limit."""
    ahead = _AHEAD.get()
    future = ahead.take(path) if ahead is not None else None
    found = future.result() if future is not None else _extract(path)
    pages = int(found["pages"])
    lines = [_line(*row) for row in found["lines"]]
    lines = [ln for ln in lines if ln.text.strip(HYPHEN + " ")]
    if not lines:
        raise DocumentError(
            f"{path}: no text layer on its {pages} page{'s' if pages != 1 else ''} (a scan, "
            "or text drawn as pictures); run OCR on it first (e.g. ocrmypdf IN.pdf OUT.pdf) "
            "and index the result"
        )
    empty = pages - len({ln.page for ln in lines})
    if empty * 2 > pages:
        log.warning(
            "%s: %d of %d pages have no text (scanned?): indexing the others", path, empty, pages
        )
    body = without_running_lines(lines, pages)
    text, starts = join_lines(body, pages)
    title = str(found.get("title") or "").strip()
    if not title or _JUNK_TITLE.match(title) or len(title) > 300:
        title = next((t for t in text.split("\n") if t.strip()), "")[:300].strip()
    return title, text, starts


class _ReadAhead:
    """PDFs being read in child processes ahead of their turn, a few at a time."""

    def __init__(self, pool: ThreadPoolExecutor, paths: list[Path], window: int):
        self.pool = pool
        self.waiting = list(reversed(paths))
        self.window = window
        self.started: dict[Path, Future[dict[str, Any]]] = {}
        self._top_up()

    def take(self, path: Path) -> Future[dict[str, Any]] | None:
        future = self.started.pop(path, None)
        self._top_up()
        return future

    def _top_up(self) -> None:
        # a window, not every file at once: what was read waits in memory for its turn
        while self.waiting and len(self.started) < self.window:
            path = self.waiting.pop()
            self.started[path] = self.pool.submit(_extract, path)

    def cancel(self) -> None:
        self.waiting.clear()
        for future in self.started.values():
            future.cancel()


_AHEAD: ContextVar[_ReadAhead | None] = ContextVar("ahead", default=None)


@contextmanager
def reading_ahead(paths: list[Path]) -> Iterator[None]:
    """Read the PDFs among `paths` in child processes, one per CPU (up to 4) at a time
    and a few files ahead, while the caller goes through `paths` in order and turns
    each into text: `read_pdf` finds its file read or being read.

    >>> with reading_ahead(files):  # doctest: +SKIP
    ...     docs = [read_pdf(f) for f in files]
    """
    pdfs = [p for p in paths if p.suffix.lower() == ".pdf"]
    if len(pdfs) < 2:
        yield
        return
    workers = max(1, min(4, os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        ahead = _ReadAhead(pool, pdfs, 2 * workers)
        token = _AHEAD.set(ahead)
        try:
            yield
        finally:
            _AHEAD.reset(token)
            ahead.cancel()  # not needed after all: an error stopped the caller


def _extract(path: Path) -> dict[str, Any]:
    _check_ends(path)
    command = [
        sys.executable, "-I", str(WORKER), str(path), str(MAX_PAGES), str(MEMORY_MB),
        str(CPU_SECONDS), str(CPU_SECONDS_PER_PAGE),
    ]  # fmt: skip
    try:
        done = subprocess.run(command, capture_output=True, timeout=SECONDS, check=False)
    except subprocess.TimeoutExpired as err:
        raise DocumentError(
            f"{path}: reading the PDF took over {SECONDS:g} s, the limit for one file "
            "(qa.pdf.SECONDS); a hostile or broken file? Re-export it as PDF"
        ) from err
    if done.returncode != 0:
        raise DocumentError(f"{path}: {_died(done)}")
    try:
        found = json.loads(done.stdout)
    except ValueError as err:
        raise DocumentError(f"{path}: the PDF reader gave no answer ({err})") from err
    error = found.get("error")
    if error is not None:
        raise DocumentError(f"{path}: {_refusal(error, found.get('detail'))}")
    return dict(found)


def _check_ends(path: Path) -> None:
    """A PDF starts with %PDF- and ends with %%EOF (within 1 KB, as viewers allow): a
    file without them is something else, or was cut short (PDFium would rebuild what
    it can of a truncated file and say nothing)."""
    try:
        with path.open("rb") as f:
            head = f.read(1024)
            f.seek(max(0, path.stat().st_size - 1024))
            tail = f.read(1024)
    except OSError as err:
        raise DocumentError(f"{path}: cannot read file ({err.strerror or err})") from err
    if b"%PDF-" not in head:
        raise DocumentError(
            f"{path}: not a PDF (it does not start with %PDF-); is it another kind of file "
            "renamed .pdf?"
        )
    if b"%%EOF" not in tail:
        raise DocumentError(
            f"{path}: the PDF is truncated (it does not end with %%EOF): copy or download it again"
        )


def _died(done: subprocess.CompletedProcess[bytes]) -> str:
    """Why the worker ended without an answer, in words."""
    stderr = done.stderr.decode("utf-8", "replace")
    if done.returncode == -signal.SIGXCPU or done.returncode == -signal.SIGKILL:
        return (
            f"reading the PDF used more CPU time than it may ({CPU_SECONDS:g} s plus "
            f"{CPU_SECONDS_PER_PAGE:g} s a page: qa.pdf.CPU_SECONDS, CPU_SECONDS_PER_PAGE); a "
            "hostile or broken file? Re-export it as PDF"
        )
    if "MemoryError" in stderr or done.returncode in (
        -signal.SIGSEGV,
        -signal.SIGABRT,
        -signal.SIGBUS,
    ):
        return (
            f"the PDF reader ran out of its {MEMORY_MB:,} MB of memory or crashed "
            "(qa.pdf.MEMORY_MB): a decompression bomb or a damaged file; re-export it as PDF"
        )
    if "ModuleNotFoundError" in stderr:
        return "cannot read PDFs: pypdfium2 is not installed (pip install pypdfium2)"
    last = stderr.strip().splitlines()[-1:] or [f"exit status {done.returncode}"]
    return f"the PDF reader failed ({last[0][:200]}); the file may be damaged: re-export it as PDF"


def _refusal(error: str, detail: Any) -> str:
    if error == "password":
        return (
            "the PDF is encrypted with a password: semantic-qa does not ask for passwords; "
            "index a copy saved without one (e.g. qpdf --decrypt --password=... IN.pdf OUT.pdf)"
        )
    if error == "security":
        return (
            "the PDF uses an encryption this reader does not support; index a copy saved without it"
        )
    if error == "pages":
        return (
            f"the PDF has {int(detail):,} pages, over the limit of {MAX_PAGES:,} "
            "(qa.pdf.MAX_PAGES); split it into smaller files"
        )
    if error == "memory":
        return (
            f"the PDF reader ran out of its {MEMORY_MB:,} MB of memory (qa.pdf.MEMORY_MB): a "
            "decompression bomb or a damaged file; re-export it as PDF"
        )
    return (
        f"not a readable PDF (PDFium: {detail}); open it in a PDF viewer and save or print it "
        "to a new PDF"
    )


def _line(
    page: int,
    text: str,
    x0: float,
    bottom: float,
    x1: float,
    top: float,
    size: float,
    gaps: list[int],
) -> Line:
    """A line as the worker sent it, cleaned; cut into cells at its wide gaps."""
    cells: tuple[str, ...] = ()
    if gaps:
        cuts = [0, *gaps, len(text)]
        cells = tuple(_clean(text[a:b]) for a, b in pairwise(cuts))
    return Line(page, _clean(text), x0, bottom, x1, top, size, tuple(c for c in cells if c))


def _clean(text: str) -> str:
    """Ligatures as letters, no control characters, one space between words; the
    worker's hyphen mark stays at the end."""
    text = _CONTROL.sub("", text.translate(_LIGATURES))
    return _SPACES.sub(" ", text).strip()


def _signature(text: str) -> str:
    """What a running header or footer keeps from page to page: digits (and a page
    number in Roman numerals) become '#', case and spaces do not count."""
    squeezed = re.sub(r"\s+", "", text.lower())
    if _ROMAN.match(squeezed):
        return "#"
    return re.sub(r"\d+", "#", squeezed)


def _running_key(line: Line) -> tuple[str, float]:
    # the size too: a title on the first page is not the running header that repeats it
    return _signature(line.text), round(line.size)


def without_running_lines(lines: list[Line], pages: int, edge: int = 2) -> list[Line]:
    """`lines` without running headers, footers and page numbers: among the `edge`
    topmost and bottommost lines of each page, those whose text (digits aside) recurs
    in the same size on at least two pages and a quarter of them, those whose place
    and size recur so (off the body's size, or set apart by a gap), and any other
    line in such a place (a header that alternates between two texts)."""
    by_page: dict[int, list[Line]] = {}
    for line in lines:
        by_page.setdefault(line.page, []).append(line)
    edges: dict[int, list[Line]] = {}
    for page, found in by_page.items():
        ordered = sorted(found, key=lambda ln: -ln.top)
        edges[page] = ordered[:edge] + ordered[max(edge, len(ordered) - edge) :]
    counts = Counter(key for found in edges.values() for key in {_running_key(ln) for ln in found})
    repeated = {key for key, n in counts.items() if n >= 2 and n * 4 >= pages}
    running = [ln for found in edges.values() for ln in found if _running_key(ln) in repeated]
    # a header that changes (the title on even pages, the chapter on odd ones) keeps
    # its place and size: off the body's size, or set apart from it by a gap
    body = _body_size(lines)
    places = Counter(
        _place(ln) for found in edges.values() for ln in {_place(x): x for x in found}.values()
    )
    for found in edges.values():
        for ln in found:
            top, size = _place(ln)
            n = sum(places[top + a, size] for a in (-1, 0, 1))  # glyph boxes vary a little
            if (
                n >= 2
                and n * 4 >= pages
                and (abs(ln.size - body) > 0.5 or _apart(ln, by_page[ln.page]))
            ):
                running.append(ln)
    drop = {id(ln) for ln in running}
    taken = {_place(ln) for ln in running}  # and whatever else stands where they stand
    for found in edges.values():
        for ln in found:
            top, size = _place(ln)
            if any((top + a, size) in taken for a in (-1, 0, 1)):
                drop.add(id(ln))
    return [ln for ln in lines if id(ln) not in drop]


def _place(line: Line) -> tuple[int, int]:
    # the top of a line's glyphs (capitals, ascenders) varies less than its bottom
    return round(line.top), round(2 * line.size)


def _body_size(lines: list[Line]) -> float:
    """The font size most of the text is set in."""
    sizes: Counter[float] = Counter()
    for line in lines:
        sizes[round(line.size, 1)] += len(line.text)
    return sizes.most_common(1)[0][0]


def _apart(line: Line, page: list[Line]) -> bool:
    """No other line of the page within two line heights above or below `line`."""
    near = 2 * line.size + (line.top - line.bottom)
    return all(o is line or o.bottom - line.top > near or line.bottom - o.top > near for o in page)


def join_lines(lines: list[Line], pages: int) -> tuple[str, tuple[int, ...]]:
    """The text of `lines` (body lines in reading order) and where each of the
    `pages` starts in it: lines run on into paragraphs, a line-end hyphen joins its
    word again unless the word is written with a hyphen elsewhere in the document."""
    columns = _columns(lines)
    words = _vocabulary(lines)
    pieces: list[str] = []
    length = 0
    starts: list[int | None] = [None] * pages
    for i, line in enumerate(lines):
        text = line.text
        if i + 1 < len(lines):
            after = lines[i + 1]
            if line.hyphenated and re.match(r"[^\W\d_]", after.text):
                text = text[:-1] + _hyphen(text[:-1], after.text, words)
                sep = ""
            elif line.hyphenated and line.text.endswith(HYPHEN):
                text, sep = text[:-1] + "-", _separator(line, after, columns)
            else:
                sep = _separator(line, after, columns)
        else:
            text, sep = (text[:-1] + "-" if text.endswith(HYPHEN) else text), ""
        if len(line.cells) > 1 and sep not in ("", " "):
            # wide gaps in a line that does not run on: a table row, not justified text
            text = " | ".join(line.cells)
        if starts[line.page] is None:
            starts[line.page] = length
        pieces.append(text + sep)
        length += len(text) + len(sep)
    # a page without text starts where the next text does
    out: list[int] = []
    for page in range(pages - 1, -1, -1):
        start = starts[page]
        out.append(start if start is not None else (out[-1] if out else length))
    out.reverse()
    for page in range(1, pages):  # never before the page above it
        out[page] = max(out[page], out[page - 1])
    text = "".join(pieces).rstrip()
    return text, tuple(min(start, len(text)) for start in out)


@dataclass(frozen=True)
class _Column:
    left: float
    right: float
    step: float  # usual distance between baselines


def _columns(lines: list[Line]) -> dict[int, _Column]:
    """Each line's column (by `id`): its left edge (the leftmost start of the lines
    it overlaps and starts at most three characters right of), right edge (what most
    lines there reach) and line spacing."""
    found: dict[int, tuple[int, float]] = {}
    groups: dict[tuple[int, int], list[Line]] = {}
    by_page: dict[int, list[Line]] = {}
    for line in lines:
        by_page.setdefault(line.page, []).append(line)
    for page, page_lines in by_page.items():
        starts = sorted(page_lines, key=lambda ln: ln.x0)
        xs = [ln.x0 for ln in starts]
        lefts = {}
        for line in page_lines:
            left = line.x0
            for other in starts[bisect_left(xs, line.x0 - 3 * line.size) :]:
                if other.x0 > line.x0 + 1:
                    break
                if other.x1 > line.x0:  # the leftmost line it overlaps
                    left = min(left, other.x0)
                    break
            lefts[id(line)] = left
        cluster, previous = -1, float("-inf")
        for left, line_id in sorted((v, k) for k, v in lefts.items()):
            if left - previous > 2.0:  # glyph boxes of one column's lines start within 2 pt
                cluster += 1
            previous = left
            found[line_id] = (cluster, left)
        for line in page_lines:
            groups.setdefault((page, found[id(line)][0]), []).append(line)
    columns: dict[int, _Column] = {}
    for group in groups.values():
        rights = sorted(ln.x1 for ln in group)
        # what most lines reach (a line may overflow); the longest of a few lines
        right = rights[int(0.9 * (len(rights) - 1))] if len(rights) >= 5 else rights[-1]
        steps = [
            a.bottom - b.bottom for a, b in pairwise(group) if 0 < a.bottom - b.bottom < 4 * a.size
        ]
        step = statistics.median(steps) if steps else 1.2 * group[0].size
        for line in group:
            columns[id(line)] = _Column(found[id(line)][1], right, step)
    return columns


def _full(line: Line, after: Line | None, columns: dict[int, _Column]) -> bool:
    """Whether `line` was broken only because the next word did not fit: the first
    word of `after` would not fit in the room left before the column's right edge."""
    column = columns[id(line)]
    room = column.right - line.x1
    if after is None:
        return room < 2 * line.size
    char = 0.5 * line.size  # an average letter; a justified line's gaps would inflate it
    first = after.text.split(" ", 1)[0].rstrip(HYPHEN)
    return room < char * (len(first) + 1.5)


def _separator(line: Line, after: Line, columns: dict[int, _Column]) -> str:
    """What goes between two lines: a space inside a paragraph, a blank line between
    paragraphs, a line break after a short line (a table row, a heading)."""
    col, nxt = columns[id(line)], columns[id(after)]
    same_column = after.page == line.page and abs(col.left - nxt.left) < 1 and after.top < line.top
    indented = after.x0 - nxt.left > 0.4 * after.size
    if same_column and line.bottom - after.bottom > 1.45 * max(col.step, 1.0 * line.size):
        return "\n\n"  # a gap
    if abs(after.size - line.size) > 1.0:
        return "\n\n"  # a heading, a caption
    if indented:
        return "\n\n"
    return " " if _full(line, after, columns) else "\n"


def _vocabulary(lines: list[Line]) -> Counter[str]:
    """Words of the document (lowercase): hyphenated compounds, their parts, and the
    words on their own; not the halves of words broken at line ends."""
    words: Counter[str] = Counter()
    for i, line in enumerate(lines):
        found = re.findall(r"[^\W\d_]+(?:-[^\W\d_]+)*", line.text)
        if line.hyphenated and found:
            found.pop()
        if i and lines[i - 1].hyphenated and found and line.text[:1].isalpha():
            found.pop(0)
        for word in found:
            words[word.lower()] += 1
            if "-" in word:
                words.update(part.lower() for part in word.split("-"))
    return words


def _hyphen(head: str, tail: str, words: Counter[str]) -> str:
    """'' to join a word hyphenated at a line end, '-' to keep its hyphen. The
    document decides: joined when it has the word whole, kept when it writes it with
    a hyphen, or when both halves are words of three letters or more of their own in
    it (a compound broken at its hyphen: "gold-" / "plated") or the second starts with a capital (Mercedes-Benz);
    otherwise joined (a word broken between syllables: "regu-" / "lar")."""
    left = re.search(r"[^\W\d_]+$", head)
    right = re.match(r"[^\W\d_]+", tail)
    if not left or not right:
        return "-"  # 1990-1995, a dash: not a word broken in two
    first, second = left.group(), right.group()
    joined = (first + second).lower()
    if words[joined]:
        return ""
    if words[f"{first}-{second}".lower()] or second[0].isupper():
        return "-"
    halves = len(first) >= 3 and len(second) >= 3  # "an-" / "them" is a syllable break
    return "-" if halves and words[first.lower()] and words[second.lower()] else ""
