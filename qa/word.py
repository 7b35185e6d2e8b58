"""Word articles (`.docx`): the text of the body, its tables and its footnotes.

>>> title, text, pages = read_docx(Path("minutes.docx"), Path("minutes.docx").read_bytes())  # doctest: +SKIP

A `.docx` file is a zip archive of XML parts. Read here with the standard library
only: the archive's directory is checked first, and only the parts that hold text
are unzipped (the body, footnotes, endnotes and document properties), each within a
size limit that the archive cannot lie about (`zipfile` stops at the declared size
and checks the CRC), so a zip bomb is refused without filling memory. An XML part
with a DTD is refused (Word never writes one; entity expansion is how XML bombs
work). Nothing in the file is ever run: macros (`vbaProject.bin`), embedded objects
and pictures are never even unzipped.

Paragraphs and headings become paragraphs (a blank line between them); a table
becomes one line per row, its cells separated by " | "; footnotes and endnotes are
marked "[1]" where they are referenced and follow the body as "[1] text". Page
starts are known only where Word recorded where it broke the pages when it last
saved the file (`w:lastRenderedPageBreak`); files written by other programs have
none, and their hits carry no page numbers.
"""

from __future__ import annotations

import io
import posixpath
import re
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree

from .errors import DocumentError

# The most entries a .docx may have, and the most bytes (unzipped) of an XML part that
# is read: a 1,000-page report's body is about 10 MB of XML.
MAX_ENTRIES = 10_000
MAX_PART_MB = 64.0
_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_REL = "{http://schemas.openxmlformats.org/package/2006/relationships}"
_MC = "{http://schemas.openxmlformats.org/markup-compatibility/2006}"
_DC = "{http://purl.org/dc/elements/1.1/}"
_OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
# elements whose text is not the document's text: deleted revisions, drawings and text
# boxes (also given twice, as a choice and a fallback), properties, field codes
_SKIP = {
    f"{_W}del", f"{_W}moveFrom", f"{_W}drawing", f"{_W}pict", f"{_W}object", f"{_MC}AlternateContent",
    f"{_W}pPr", f"{_W}rPr", f"{_W}tblPr", f"{_W}trPr", f"{_W}tcPr", f"{_W}sectPr", f"{_W}instrText",
}  # fmt: skip
_SPACES = re.compile(r"[ \t\xa0]+")


def read_docx(path: Path, data: bytes) -> tuple[str, str, tuple[int, ...]]:
    """(title, text, page starts) of the Word file `data` (read from `path`)."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, EOFError, NotImplementedError) as err:
        if data.startswith(_OLE):
            raise DocumentError(
                f"{path}: not a .docx but an older Word file (.doc) or a password-protected "
                "one; open it in Word or LibreOffice and save it as .docx without a password"
            ) from err
        raise DocumentError(
            f"{path}: not a Word file (a .docx is a zip archive, and this is not one, or it is "
            "truncated); save it again as .docx"
        ) from err
    with archive:
        if len(archive.infolist()) > MAX_ENTRIES:
            raise DocumentError(
                f"{path}: the .docx holds {len(archive.infolist()):,} files, over the limit of "
                f"{MAX_ENTRIES:,} (qa.word.MAX_ENTRIES); a zip bomb? Save it again as .docx"
            )
        parts = _Parts(path, archive)
        main = parts.target("_rels/.rels", "officeDocument") or "word/document.xml"
        body = parts.xml(main, required=True)
        assert body is not None  # required: raised otherwise
        rels = posixpath.join(posixpath.dirname(main), "_rels", posixpath.basename(main) + ".rels")
        notes: dict[tuple[str, str], str] = {}
        for kind in ("footnote", "endnote"):
            target = parts.target(rels, f"{kind}s", relative_to=main)
            tree = parts.xml(target) if target else None
            if tree is not None:
                notes.update(((kind, k), v) for k, v in _notes(tree, kind))
        core = parts.target("_rels/.rels", "core-properties")
        properties = parts.xml(core) if core else None
    text = _Text(notes)
    found = body.find(f"{_W}body")
    if found is None:
        raise DocumentError(f"{path}: {main} has no body; save it again as .docx")
    text.blocks(found)
    for number, note in enumerate(text.note_order, 1):
        text.add(f"[{number}] {note}", [])
    title = ""
    if properties is not None:
        title = _SPACES.sub(" ", properties.findtext(f"{_DC}title") or "").strip()
    body_text = text.value()
    if not title:
        title = text.heading or next((ln.strip() for ln in body_text.split("\n") if ln.strip()), "")
    starts = text.page_starts() if text.rendered else ()
    return title[:300], body_text, starts


class _Parts:
    """The XML parts of one archive, each read within `MAX_PART_MB`."""

    def __init__(self, path: Path, archive: zipfile.ZipFile):
        self.path = path
        self.archive = archive

    def target(self, rels: str, kind: str, relative_to: str = "") -> str | None:
        """The part a relationship of type `.../kind` in `rels` points to."""
        tree = self.xml(rels)
        if tree is None:
            return None
        for rel in tree.iter(f"{_REL}Relationship"):
            if (
                rel.get("Type", "").rsplit("/", 1)[-1] == kind
                and rel.get("TargetMode") != "External"
            ):
                target = rel.get("Target", "")
                base = posixpath.dirname(relative_to)
                joined = (
                    target.lstrip("/") if target.startswith("/") else posixpath.join(base, target)
                )
                return posixpath.normpath(joined)
        return None

    def xml(self, name: str, required: bool = False) -> ElementTree.Element | None:
        """Part `name` parsed; None when missing (unless `required`)."""
        try:
            info = self.archive.getinfo(name)
        except KeyError:
            if required:
                raise DocumentError(
                    f"{self.path}: not a Word document (no {name} inside); save it again as .docx"
                ) from None
            return None
        limit = int(MAX_PART_MB * 2**20)
        if info.file_size > limit:
            raise DocumentError(
                f"{self.path}: {name} unzips to {info.file_size / 2**20:,.0f} MB, over the limit of "
                f"{MAX_PART_MB:g} MB (qa.word.MAX_PART_MB): a zip bomb? Split the document"
            )
        try:
            with self.archive.open(info) as f:
                data = f.read(info.file_size + 1)  # read(n) allocates n up front
        except (
            zipfile.BadZipFile,
            zlib.error,
            OSError,
            EOFError,
            NotImplementedError,
            RuntimeError,
        ) as err:
            raise DocumentError(
                f"{self.path}: {name} cannot be unzipped ({err}); save it again as .docx"
            ) from err
        if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
            raise DocumentError(
                f"{self.path}: {name} declares a DTD or entities, which Word never writes (an "
                "XML bomb?); refused"
            )
        try:
            return ElementTree.fromstring(data)
        except ElementTree.ParseError as err:
            raise DocumentError(
                f"{self.path}: {name} is not well-formed XML ({err}); save it again as .docx"
            ) from err


def _notes(tree: ElementTree.Element, kind: str) -> Iterator[tuple[str, str]]:
    for note in tree.iter(f"{_W}{kind}"):
        if note.get(f"{_W}type") in ("separator", "continuationSeparator", "continuationNotice"):
            continue
        paragraphs = (_Text({}).paragraph(p)[0] for p in note.iter(f"{_W}p"))
        yield note.get(f"{_W}id", ""), " ".join(p for p in paragraphs if p)


@dataclass
class _Text:
    """The document's text as it is built, block by block, with page breaks."""

    notes: dict[tuple[str, str], str]
    pieces: list[str] = field(default_factory=list)
    length: int = 0
    breaks: list[int] = field(default_factory=list)
    rendered: bool = False
    heading: str = ""
    note_order: list[str] = field(default_factory=list)

    def add(self, block: str, breaks: list[int]) -> None:
        if not block:
            return
        if self.pieces:
            self.pieces.append("\n\n")
            self.length += 2
        self.breaks.extend(self.length + b for b in breaks)
        self.pieces.append(block)
        self.length += len(block)

    def value(self) -> str:
        return "".join(self.pieces)

    def page_starts(self) -> tuple[int, ...]:
        starts = [0]
        for at in sorted(self.breaks):
            if starts[-1] < at < self.length:
                starts.append(at)
        return tuple(starts)

    def blocks(self, parent: ElementTree.Element) -> None:
        for child in parent:
            if child.tag == f"{_W}p":
                text, breaks = self.paragraph(child)
                self.add(text, breaks)
                style = child.find(f"{_W}pPr/{_W}pStyle")
                name = (style.get(f"{_W}val", "") if style is not None else "").lower()
                if text and not self.heading and name.startswith(("title", "heading")):
                    self.heading = text.split("\n")[0][:300]
            elif child.tag == f"{_W}tbl":
                self.table(child)
            elif child.tag not in _SKIP:  # content controls, custom XML: what they hold
                inner = child.find(f"{_W}sdtContent") if child.tag == f"{_W}sdt" else child
                if inner is not None:
                    self.blocks(inner)

    def table(self, tbl: ElementTree.Element) -> None:
        """A line per row (its own rows: a table in a cell is that cell's text), a page
        that breaks inside a row starting with the row."""
        lines: list[str] = []
        breaks: list[int] = []
        at = 0
        for tr in tbl.findall(f"{_W}tr"):
            cells, broken = [], False
            for tc in tr.findall(f"{_W}tc"):
                found = [self.paragraph(p) for p in tc.iter(f"{_W}p")]
                broken = broken or any(b for _, b in found)
                cells.append(" ".join(t for t, _ in found if t))
            line = " | ".join(c for c in cells if c)
            if line:
                if broken:
                    breaks.append(at)
                lines.append(line)
                at += len(line) + 1
        self.add("\n".join(lines), breaks)

    def paragraph(self, p: ElementTree.Element) -> tuple[str, list[int]]:
        """A paragraph's text (spaces squeezed) and where pages break in it."""
        pieces: list[str] = []
        breaks: list[int] = []
        self._runs(p, pieces, breaks)
        raw = "".join(pieces)
        text = _SPACES.sub(" ", raw)
        lead = len(text) - len(text.lstrip())
        text = text.strip()
        if len(text) != len(raw):  # map break offsets through the squeezing
            breaks = [max(0, min(len(text), len(_SPACES.sub(" ", raw[:b])) - lead)) for b in breaks]
        return text, breaks

    def _runs(self, node: ElementTree.Element, pieces: list[str], breaks: list[int]) -> None:
        for child in node:
            tag = child.tag
            if tag in _SKIP:
                continue
            if tag == f"{_W}t":
                pieces.append(child.text or "")
            elif tag in (f"{_W}tab", f"{_W}ptab"):
                pieces.append(" ")
            elif tag == f"{_W}br":
                # a page break typed in: where the page starts is recorded by the
                # lastRenderedPageBreak after it, when Word laid the document out
                if child.get(f"{_W}type") != "page":
                    pieces.append("\n")
            elif tag == f"{_W}cr":
                pieces.append("\n")
            elif tag == f"{_W}noBreakHyphen":
                pieces.append("-")
            elif tag == f"{_W}lastRenderedPageBreak":
                self.rendered = True
                breaks.append(sum(map(len, pieces)))
            elif tag in (f"{_W}footnoteReference", f"{_W}endnoteReference"):
                kind = "footnote" if tag == f"{_W}footnoteReference" else "endnote"
                note = self.notes.get((kind, child.get(f"{_W}id", "")))
                if note is not None:
                    self.note_order.append(note)
                    pieces.append(f"[{len(self.note_order)}]")
            else:
                self._runs(child, pieces, breaks)
