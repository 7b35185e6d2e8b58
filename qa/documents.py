"""Articles: loading `.txt`, `.md`, `.html`/`.htm` and `.jsonl` files into `Document`s.

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
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bs4 import BeautifulSoup

from .errors import DocumentError, DuplicateIdError, InvalidInputError

log = logging.getLogger(__name__)

TEXT_SUFFIXES = {".txt", ".md", ".markdown"}
HTML_SUFFIXES = {".html", ".htm"}
JSONL_SUFFIXES = {".jsonl"}
SUPPORTED_SUFFIXES = TEXT_SUFFIXES | HTML_SUFFIXES | JSONL_SUFFIXES

# Elements whose text a browser does not show.
_INVISIBLE = ["script", "style", "noscript", "template", "head", "iframe", "object", "svg"]
# Elements that start a new block of text: they become paragraph breaks.
_BLOCKS = [
    "p", "div", "section", "article", "main", "header", "footer", "nav", "aside",
    "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "li", "dl", "dt", "dd", "table",
    "tr", "td", "th", "blockquote", "pre", "figure", "figcaption", "hr", "form",
]  # fmt: skip
_BLANK_LINES = re.compile(r"\n\s*\n\s*")
_SPACES = re.compile(r"[ \t\r\f\v\xa0]+")


@dataclass(frozen=True)
class Document:
    """One article. `id` is stable: the file's path relative to the folder it was found
    in (or its name), or the JSON Lines `id`."""

    id: str
    text: str
    title: str = ""
    source: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def sha256(self) -> str:
        """Content fingerprint: changes when the text, title or metadata change."""
        payload = json.dumps(
            [self.text, self.title, self.metadata], ensure_ascii=False, sort_keys=True
        )
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()


Sources = Iterable[str | Path | Document] | str | Path | Document


def load_documents(sources: Sources, *, skip_bad: bool = False) -> list[Document]:
    """Load articles from files, folders (recursively) and ready `Document`s.

    A bad file raises `DocumentError` naming it; with `skip_bad=True` it is logged
    as a warning and skipped instead. Duplicate ids always raise `DuplicateIdError`.
    """
    if isinstance(sources, str | Path | Document):
        sources = [sources]
    docs: list[Document] = []
    seen: dict[str, str] = {}
    for doc in _iter_documents(sources, skip_bad):
        if doc.id in seen:
            raise DuplicateIdError(
                f"duplicate article id {doc.id!r} in {seen[doc.id]} and {doc.source}: "
                "give each article a unique id (file path or JSON Lines 'id')"
            )
        seen[doc.id] = doc.source or doc.id
        docs.append(doc)
    return docs


def _iter_documents(sources: Iterable[str | Path | Document], skip_bad: bool) -> Iterator[Document]:
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
            files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
            for file in files:
                if file.suffix.lower() not in SUPPORTED_SUFFIXES:
                    log.info("skipping %s: not an article type", file)
                    continue
                yield from _load_or_skip(file, file.relative_to(path).as_posix(), skip_bad)
        elif path.exists():
            yield from _load_or_skip(path, path.name, skip_bad)
        else:
            raise DocumentError(f"{path}: no such file or folder")


def _load_or_skip(path: Path, doc_id: str, skip_bad: bool) -> Iterator[Document]:
    try:
        yield from load_file(path, doc_id)
    except DocumentError as err:
        if not skip_bad:
            raise
        log.warning("skipped: %s", err)


def load_file(path: str | Path, doc_id: str | None = None) -> list[Document]:
    """Load the article(s) of one file; `doc_id` defaults to the file name."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise DocumentError(
            f"{path}: unknown article type {suffix or '(no extension)'!r}; "
            f"supported: {', '.join(sorted(SUPPORTED_SUFFIXES))}"
        )
    text = read_text(path)
    if suffix in JSONL_SUFFIXES:
        return list(_parse_jsonl(text, path))
    if suffix in HTML_SUFFIXES:
        title, text = html_to_text(text)
    else:
        title = _first_line(text, markdown=suffix != ".txt")
    return [_checked(Document(doc_id or path.name, text, title, str(path)))]


def read_text(path: Path) -> str:
    """Read a file as text: UTF-8 (with or without BOM), UTF-16/32 with a BOM, else
    Windows-1252 as a fallback (logged). Binary files are refused."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DocumentError(f"{path}: cannot read file ({err.strerror or err})") from err
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
        raise DocumentError(f"{path}: looks like a binary file (contains NUL bytes), not text")
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
    """(title, visible text) of an HTML page; one line per block, blank lines between."""
    soup = BeautifulSoup(markup, "html.parser")
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    for tag in soup(_INVISIBLE):
        tag.decompose()
    for tag in soup(_BLOCKS):
        tag.insert_before("\n\n")
        tag.insert_after("\n\n")
    for tag in soup("br"):
        tag.replace_with("\n")
    raw = soup.get_text()
    lines = [_SPACES.sub(" ", line).strip() for line in raw.split("\n")]
    text = _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()
    if not title:
        heading = soup.find(["h1", "h2"])
        title = heading.get_text(" ", strip=True) if heading else _first_line(text)
    return title, text


def _first_line(text: str, markdown: bool = False) -> str:
    for line in text.splitlines():
        if line.strip():
            line = line.strip()
            return line.lstrip("#").strip() if markdown else line
    return ""


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
