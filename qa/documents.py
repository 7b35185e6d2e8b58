"""Articles: loading `.txt`, `.md`, `.html`/`.htm`, `.jsonl`, `.pdf` and `.docx` files
into `Document`s (PDF: `qa.pdf`, Word: `qa.word`).

>>> docs = load_documents(["data/articles"])
>>> docs[0].id, docs[0].title
('000_ee18342087b7634f.txt', 'Miroslav Jenča. Summing up Kazakhstan’s Membership on the UN Security Council')
"""

from __future__ import annotations

import codecs
import hashlib
import json
import logging
import re
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from .errors import DocumentError, DuplicateIdError, InvalidInputError
from .pdf import reading_ahead

log = logging.getLogger(__name__)

TEXT_SUFFIXES = {".txt", ".md", ".markdown"}
HTML_SUFFIXES = {".html", ".htm"}
JSONL_SUFFIXES = {".jsonl"}
PDF_SUFFIXES = {".pdf"}
WORD_SUFFIXES = {".docx"}
SUPPORTED_SUFFIXES = TEXT_SUFFIXES | HTML_SUFFIXES | JSONL_SUFFIXES | PDF_SUFFIXES | WORD_SUFFIXES
# Largest article file read, in MB: a bigger one is refused before it is read (a
# 200 MB file is a mistake or an attack far more often than an article). A JSON Lines
# corpus bigger than this can be split into several files.
MAX_FILE_MB = 100.0

# Elements whose text a browser does not show.
_INVISIBLE = [
    "script", "style", "noscript", "template", "head", "title", "iframe", "object", "svg",
]  # fmt: skip
# Elements that start a new block of text: they become paragraph breaks.
_BLOCKS = [
    "p", "div", "section", "article", "main", "header", "footer", "nav", "aside",
    "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "li", "dl", "dt", "dd", "table",
    "tr", "td", "th", "blockquote", "pre", "figure", "figcaption", "hr", "form",
]  # fmt: skip
_INVISIBLE_SET = frozenset(_INVISIBLE)
_BLOCKS_SET = frozenset(_BLOCKS)
# Elements that never have content or an end tag.
_VOID = frozenset({
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param",
    "source", "track", "wbr", "basefont", "bgsound", "frame", "keygen",
})  # fmt: skip
# The first lines of a text article among which its title is looked for (see
# `_first_line`): past them, a page is not furniture any more.
TITLE_LINES = 10
# What the navigation of a web page is made of: skip links, menus, search boxes,
# sign-in, share and cookie buttons, "back to top". A line of these words alone is a
# page's furniture, kept by whatever turned the page into text; a title always holds
# a word of its own.
_FURNITURE_WORDS = frozenset({
    "skip", "jump", "go", "to", "the", "main", "content", "contents", "navigation", "nav",
    "menu", "toggle", "open", "close", "home", "homepage", "search", "this", "site",
    "sign", "log", "in", "up", "out", "register", "subscribe", "share", "print", "email",
    "back", "top", "accessibility", "links", "cookie", "cookies", "settings", "accept",
    "language", "select", "breadcrumb", "you", "are", "here", "next", "previous", "more",
})  # fmt: skip
_LETTERS = re.compile(r"[^\W\d_]+")
# Separators of a breadcrumb trail ("Home > News", spaced: "a/b" and "<b>" are not)
# or a language switch ("EN | RU").
_TRAIL = re.compile(r"\s+[>›»/]\s+|\s*[|·]\s*")
_MD_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_BLANK_LINES = re.compile(r"\n\s*\n\s*")
_SPACES = re.compile(r"[ \t\r\f\v\xa0]+")


@dataclass(frozen=True)
class Document:
    """One article. `id` is stable: the file's path relative to the folder it was found
    in (or its name), or the JSON Lines `id`. `page_starts`: for a paged document (PDF),
    the offset in `text` where each page starts, page 1 first; empty otherwise."""

    id: str
    text: str
    title: str = ""
    source: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    page_starts: tuple[int, ...] = ()

    @property
    def sha256(self) -> str:
        """Content fingerprint: changes when the text, title, metadata or pages change."""
        content: list[Any] = [self.text, self.title, self.metadata]
        if self.page_starts:  # only then: the fingerprints of other articles stay as they were
            content.append(list(self.page_starts))
        payload = json.dumps(content, ensure_ascii=False, sort_keys=True)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def pages_between(page_starts: tuple[int, ...], start: int, end: int) -> tuple[int, ...]:
    """The pages (from 1) that the text `[start, end)` lies on, given where each page
    starts; () for a document without pages.

    >>> pages_between((0, 100, 250), 90, 120)
    (1, 2)
    """
    if not page_starts:
        return ()
    first = max(1, bisect_right(page_starts, start))
    last = max(first, bisect_right(page_starts, max(start, end - 1)))
    return tuple(range(first, last + 1))


Sources = Iterable[str | Path | Document] | str | Path | Document


def load_documents(
    sources: Sources, *, skip_bad: bool = False, max_file_mb: float = MAX_FILE_MB
) -> list[Document]:
    """Load articles from files, folders (recursively) and ready `Document`s.

    A bad file raises `DocumentError` naming it; with `skip_bad=True` it is logged
    as a warning and skipped instead. Duplicate ids always raise `DuplicateIdError`.
    Files over `max_file_mb` are bad files, refused unread; in a folder, a symbolic
    link to something outside that folder is a bad file too (never followed).
    """
    if isinstance(sources, str | Path | Document):
        sources = [sources]
    docs: list[Document] = []
    seen: dict[str, str] = {}
    for doc in _iter_documents(sources, skip_bad, max_file_mb):
        if doc.id in seen:
            raise DuplicateIdError(
                f"duplicate article id {doc.id!r} in {seen[doc.id]} and {doc.source}: "
                "give each article a unique id (file path or JSON Lines 'id')"
            )
        seen[doc.id] = doc.source or doc.id
        docs.append(doc)
    return docs


def _iter_documents(
    sources: Iterable[str | Path | Document], skip_bad: bool, max_file_mb: float
) -> Iterator[Document]:
    for source in sources:
        if isinstance(source, Document):
            yield _checked(source)
            continue
        if not isinstance(source, str | Path):
            raise InvalidInputError(
                f"cannot load articles from {source!r} ({type(source).__name__}): "
                "pass file or folder paths, or qa.Document objects"
            )
        path = Path(source)
        if path.is_dir():
            root = path.resolve()
            files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
            # PDFs are read in child processes, a few at once, ahead of their turn:
            # only those that would be read anyway (inside the folder, not too big)
            pdfs = [
                f for f in files if f.suffix.lower() in PDF_SUFFIXES and _fits(f, root, max_file_mb)
            ]
            with reading_ahead(pdfs):
                for file in files:
                    if file.suffix.lower() not in SUPPORTED_SUFFIXES:
                        log.info("skipping %s: not an article type", file)
                        continue
                    doc_id = file.relative_to(path).as_posix()
                    yield from _load_or_skip(file, doc_id, skip_bad, max_file_mb, root)
        elif path.exists():
            yield from _load_or_skip(path, path.name, skip_bad, max_file_mb)
        else:
            raise DocumentError(f"{path}: no such file or folder")


def _fits(path: Path, inside: Path, max_file_mb: float) -> bool:
    try:
        return path.resolve().is_relative_to(inside) and path.stat().st_size <= max_file_mb * 2**20
    except OSError:
        return False


def _load_or_skip(
    path: Path, doc_id: str, skip_bad: bool, max_file_mb: float, inside: Path | None = None
) -> Iterator[Document]:
    try:
        if inside is not None and not path.resolve().is_relative_to(inside):
            # a link out of the folder would index (and show) files its owner never
            # put there: ~/.ssh, /etc
            raise DocumentError(
                f"{path}: a symbolic link to a file outside {inside}: not followed; "
                "copy the file into the folder instead"
            )
        yield from load_file(path, doc_id, max_file_mb=max_file_mb)
    except DocumentError as err:
        if not skip_bad:
            raise
        log.warning("skipped: %s", err)


def load_file(
    path: str | Path, doc_id: str | None = None, *, max_file_mb: float = MAX_FILE_MB
) -> list[Document]:
    """Load the article(s) of one file; `doc_id` defaults to the file name."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise DocumentError(
            f"{path}: unknown article type {suffix or '(no extension)'!r}; "
            f"supported: {', '.join(sorted(SUPPORTED_SUFFIXES))}"
        )
    if suffix in PDF_SUFFIXES | WORD_SUFFIXES:
        return [_paged(path, suffix, doc_id or path.name, max_file_mb)]
    text = read_text(path, max_file_mb=max_file_mb)
    if suffix in JSONL_SUFFIXES:
        return list(_parse_jsonl(text, path))
    if suffix in HTML_SUFFIXES:
        title, text = html_to_text(text)
    else:
        title = _first_line(text, markdown=suffix != ".txt")
    return [_checked(Document(doc_id or path.name, text, title, str(path)))]


def _paged(path: Path, suffix: str, doc_id: str, max_file_mb: float) -> Document:
    """A PDF or Word file as one article (the readers say why one cannot be read)."""
    from .pdf import read_pdf
    from .word import read_docx  # imported when needed: most folders hold no Word files

    if suffix in PDF_SUFFIXES:
        check_size(path, max_file_mb)
        title, text, starts = read_pdf(path)
    else:
        title, text, starts = read_docx(path, read_bytes(path, max_file_mb=max_file_mb))
    return _checked(Document(doc_id, text, title, str(path), page_starts=starts))


def check_size(path: Path, max_file_mb: float = MAX_FILE_MB) -> None:
    """Refuse what is not a regular file, or is over `max_file_mb`, before reading it."""
    try:
        if not path.is_file():  # a FIFO or a device would block or never end
            raise DocumentError(f"{path}: not a regular file")
        size = path.stat().st_size
    except OSError as err:
        raise DocumentError(f"{path}: cannot read file ({err.strerror or err})") from err
    if size > max_file_mb * 1024 * 1024:
        raise _too_big(path, size, max_file_mb)


def read_bytes(path: Path, *, max_file_mb: float = MAX_FILE_MB) -> bytes:
    """The bytes of a regular file of at most `max_file_mb` (checked before reading)."""
    limit = int(max_file_mb * 1024 * 1024)
    try:
        if not path.is_file():  # a FIFO or a device would block or never end
            raise DocumentError(f"{path}: not a regular file")
        size = path.stat().st_size
        if size > limit:
            raise _too_big(path, size, max_file_mb)
        with path.open("rb") as f:
            # read(n) allocates n bytes up front: ask for what stat() said, then (the
            # file may have grown since) for the rest up to the limit
            data = f.read(size + 1)
            if len(data) > size:
                data += f.read(limit + 1 - len(data))
    except OSError as err:
        raise DocumentError(f"{path}: cannot read file ({err.strerror or err})") from err
    if len(data) > limit:
        raise _too_big(path, len(data), max_file_mb)
    return data


def read_text(path: Path, *, max_file_mb: float = MAX_FILE_MB) -> str:
    """Read a file as text: UTF-8 (with or without BOM), UTF-16/32 with a BOM, else
    Windows-1252 as a fallback (logged). Binary files, and files over `max_file_mb`
    (checked before reading), are refused."""
    data = read_bytes(path, max_file_mb=max_file_mb)
    for bom, encoding in (
        (codecs.BOM_UTF32_LE, "utf-32"),
        (codecs.BOM_UTF32_BE, "utf-32"),
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if data.startswith(bom):
            try:
                return data.decode(encoding)
            except UnicodeDecodeError as err:
                raise DocumentError(f"{path}: invalid {encoding} text ({err.reason})") from err
    if b"\x00" in data:
        raise DocumentError(
            f"{path}: looks like a binary file (contains NUL bytes), not text; "
            "UTF-16 or UTF-32 text needs a byte order mark (or save it as UTF-8)"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as utf8_err:
        try:
            text = data.decode("cp1252")
        except UnicodeDecodeError:
            raise DocumentError(
                f"{path}: not UTF-8 text (byte {data[utf8_err.start]:#04x} at offset "
                f"{utf8_err.start}) and not Windows-1252 either; convert it to UTF-8"
            ) from utf8_err
        log.warning("%s: not UTF-8, read as Windows-1252", path)
        return text


def html_to_text(markup: str) -> tuple[str, str]:
    """(title, visible text) of an HTML page; one line per block, blank lines between.

    One pass over the tags, never a tree: time and memory grow linearly with the
    page, however deeply its tags nest or however many are left unclosed (building
    and editing a tree is quadratic on such pages; issue 8). Unclosed tags end
    where their parent ends, as browsers do."""
    parser = _VisibleText()
    parser.feed(markup)
    parser.close()
    raw = "".join(parser.pieces)
    lines = [_SPACES.sub(" ", line).strip() for line in raw.split("\n")]
    text = _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()
    title = _joined(parser.title) or _joined(parser.heading) or _first_line(text)
    return title, text


def _too_big(path: Path, size: int, max_file_mb: float) -> DocumentError:
    return DocumentError(
        f"{path}: file is {size / 1024 / 1024:.1f} MB, over the {max_file_mb:g} MB limit for "
        "one article file; split it into smaller files (the limit: "
        "qa.documents.MAX_FILE_MB, or load_documents(max_file_mb=...))"
    )


def _joined(strings: list[str]) -> str:
    return " ".join(s.strip() for s in strings if s.strip())


class _VisibleText(HTMLParser):
    """Collects the visible text of a page, the <title> and the first visible <h1>/<h2>.

    Keeps the stack of open elements and how many of each name are open, so an end
    tag with no open element is ignored and one that is open closes everything above
    it, in O(1) amortized per tag."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.pieces: list[str] = []
        self.title: list[str] = []
        self.heading: list[str] = []
        self._stack: list[str] = []
        self._open: dict[str, int] = {}
        self._hidden = 0  # open invisible elements
        self._in_title = 0
        self._title_closed = False
        self._in_heading = 0
        self._heading_done = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            if not self._hidden:
                self.pieces.append("\n")
            return
        if tag in _BLOCKS_SET and not self._hidden:
            self.pieces.append("\n\n")
        if tag in _VOID:
            return
        self._stack.append(tag)
        self._open[tag] = self._open.get(tag, 0) + 1
        self._hidden += tag in _INVISIBLE_SET
        self._in_title += tag == "title"
        if tag in ("h1", "h2") and not self._hidden and not self._heading_done:
            self._in_heading += 1

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        # <br/>, <hr/>, <div/>: nothing inside them; a block still breaks the line
        if (tag == "br" or tag in _BLOCKS_SET) and not self._hidden:
            self.pieces.append("\n" if tag == "br" else "\n\n")

    def handle_endtag(self, tag: str) -> None:
        if not self._open.get(tag):
            return
        while self._stack:
            top = self._stack.pop()
            self._open[top] -= 1
            self._hidden -= top in _INVISIBLE_SET
            if top == "title":
                self._in_title -= 1
                self._title_closed = True
            if top in ("h1", "h2") and self._in_heading:
                self._in_heading -= 1
                self._heading_done = self._heading_done or not self._in_heading
            if top in _BLOCKS_SET and not self._hidden:
                self.pieces.append("\n\n")
            if top == tag:
                return

    def handle_data(self, data: str) -> None:
        if self._in_title and not self._title_closed:  # the first <title> only
            self.title.append(data)
        if self._hidden:
            return
        self.pieces.append(data)
        if self._in_heading:
            self.heading.append(data)


def _first_line(text: str, markdown: bool = False) -> str:
    """The title of a text or Markdown article: its first non-empty line that is not
    page furniture (see `is_furniture`) among the first `TITLE_LINES`, Markdown
    heading marks and link syntax dropped; the first line when all of them are."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if markdown:
        lines = [_MD_LINK.sub(r"\1", line).lstrip("#").strip() for line in lines]
    return next((line for line in lines[:TITLE_LINES] if not is_furniture(line)), "") or (
        lines[0] if lines else ""
    )


def is_furniture(line: str) -> bool:
    """True for a line that a page scraped to text starts with but that is no title:
    navigation made only of its own words ("Skip to Content", "Toggle navigation",
    "Main menu", "Sign in", "Search this site"), a breadcrumb trail ("Home > News")
    or a language switch ("EN | RU | KZ"), or a line without a letter or digit.

    >>> [is_furniture(s) for s in ("Skip to Content", "Home / News", "Q&A with Jenča")]
    [True, True, False]
    """
    words = _LETTERS.findall(line.lower())
    if not words:
        return not any(c.isdigit() for c in line)
    if all(w in _FURNITURE_WORDS for w in words):
        return True
    parts = [p for p in _TRAIL.split(line) if p]
    return len(parts) > 1 and (
        all(w in _FURNITURE_WORDS for w in _LETTERS.findall(parts[0].lower()))
        or all(len(p) <= 3 for p in parts)
    )


def _parse_jsonl(text: str, path: Path) -> Iterator[Document]:
    first_line: dict[str, int] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}, line {lineno}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise DocumentError(f"{where}: not valid JSON ({err.msg})") from err
        if not isinstance(row, dict):
            raise DocumentError(f"{where}: expected a JSON object with 'id' and 'text'")
        doc_id, body = row.pop("id", None), row.pop("text", None)
        if not isinstance(doc_id, str | int) or isinstance(doc_id, bool) or doc_id == "":
            raise DocumentError(f"{where}: missing or invalid 'id' (a string or integer)")
        if not isinstance(body, str):
            raise DocumentError(f"{where}: missing or invalid 'text' (a string)")
        title = row.pop("title", "")
        if not isinstance(title, str):
            raise DocumentError(f"{where}: 'title' must be a string")
        doc_id = str(doc_id)
        if doc_id in first_line:
            raise DuplicateIdError(
                f"{where}: duplicate article id {doc_id!r} (also on line {first_line[doc_id]}); "
                "give each article a unique 'id'"
            )
        first_line[doc_id] = lineno
        yield _checked(Document(doc_id, body, title, str(path), row))


def _checked(doc: Document) -> Document:
    if not isinstance(doc.text, str) or not doc.text.strip():
        raise DocumentError(f"{doc.source or doc.id}: article is empty (no text to index)")
    if not doc.id or not isinstance(doc.id, str):
        raise DocumentError(f"{doc.source}: article id must be a non-empty string")
    return doc
