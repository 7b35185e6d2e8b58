"""Render SQuAD-dev articles as the PDF and Word files people keep.

    python benchmarks/render_documents.py OUT [--articles 3] [--paragraphs 8]
    python benchmarks/render_documents.py data/documents --ids Super_Bowl_50 Warsaw --paragraphs 12

PDF: A4 pages in two justified columns, words hyphenated at line ends (pyphen) and
"fi"/"fl" set as ligatures, a running header (the title on even pages, a collection
name on odd ones), a footer with the page number ("7", or "Page 7 of 12"), and a
small table. Half the articles are set the way TeX sets text (each word placed on its
own, no space characters: an extractor must see the gaps), half the way word
processors do (spaces in the text). Header and footer are drawn before the columns,
as page templates are. Word: the title (document property and Title style), headings,
justified paragraphs, a table, footnotes, and a header and footer.

Next to each PDF, `<name>.truth.json` says where the renderer put everything: the
article (text, paragraph offsets), its character spans on each page, the words it hyphenated, the header and
footer lines and the table's rows. Benchmarks (benchmarks/formats.py) and tests
(tests/test_formats.py) check extraction against it.

The layout is done here (not by reportlab's platypus) so that every character's page
is known exactly. Needs the dev extra (reportlab, pyphen, python-docx). SQuAD text
is CC BY-SA 4.0 (Wikipedia): keep the attribution with files made from it.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "squad-dev"
PAGE_W, PAGE_H = 595.0, 842.0  # A4 in points
MARGIN, GAP = 54.0, 18.0
COLUMN_W = (PAGE_W - 2 * MARGIN - GAP) / 2
SIZE, LEADING, INDENT = 9.0, 11.5, 12.0
TOP = PAGE_H - MARGIN - 14  # below the running header
BOTTOM = MARGIN + 12  # above the footer
COLLECTION = "SQuAD articles · CC BY-SA 4.0"
ATTRIBUTION = "From Wikipedia, the free encyclopedia (CC BY-SA 4.0), via SQuAD v1.1."
LIGATURES = {"fi": "\ufb01", "fl": "\ufb02"}


@dataclass
class Line:
    """One line of a column: its words (drawn text, x offset), the article span."""

    words: list[tuple[str, float]]
    start: int
    end: int
    x: float
    y: float
    size: float = SIZE
    font: str = "Vera"


@dataclass
class Page:
    number: int
    lines: list[Line] = field(default_factory=list)
    rules: list[tuple[float, float, float, float]] = field(default_factory=list)


DEJAVU = Path("/usr/share/fonts/truetype/dejavu")


def _fonts() -> None:
    """DejaVu Serif (Debian's fonts-dejavu-core: Greek, Cyrillic, IPA, Polish letters)
    where it is installed, else Bitstream Vera, which ships inside reportlab (a few
    articles then lose the letters it lacks), under the names Vera, VeraBd, VeraIt."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    dejavu = {
        "Vera": "DejaVuSerif.ttf",
        "VeraBd": "DejaVuSerif-Bold.ttf",
        "VeraIt": "DejaVuSerif-Italic.ttf",
    }
    vera = {"Vera": "Vera.ttf", "VeraBd": "VeraBd.ttf", "VeraIt": "VeraIt.ttf"}
    use_dejavu = all((DEJAVU / f).is_file() for f in dejavu.values())
    for name, file in (dejavu if use_dejavu else vera).items():
        if name not in pdfmetrics.getRegisteredFontNames():
            pdfmetrics.registerFont(TTFont(name, str(DEJAVU / file) if use_dejavu else file))


def _width(text: str, font: str = "Vera", size: float = SIZE) -> float:
    from reportlab.pdfbase.pdfmetrics import stringWidth

    return float(stringWidth(text, font, size))


def _ligatured(word: str) -> str:
    for pair, glyph in LIGATURES.items():
        word = word.replace(pair, glyph)
    return word


class Layout:
    """Fills two columns per page, line by line, keeping each line's article span."""

    def __init__(self, title: str, tex_like: bool):
        import pyphen

        self.title = title
        self.tex_like = tex_like
        self.hyphen = pyphen.Pyphen(lang="en_US", left=2, right=3)
        self.pages: list[Page] = []
        self.hyphenated: list[dict[str, Any]] = []
        self.table: list[list[str]] = []
        self.column = 0
        self.y = 0.0
        self._new_page()

    def _new_page(self) -> None:
        self.pages.append(Page(len(self.pages) + 1))
        self.column = 0
        self.y = TOP
        if len(self.pages) == 1:  # the title and attribution span both columns
            self.pages[0].lines.append(
                Line([(self.title, 0.0)], -1, -1, MARGIN, TOP - 6, 16.0, "VeraBd")
            )
            self.pages[0].lines.append(
                Line([(ATTRIBUTION, 0.0)], -1, -1, MARGIN, TOP - 26, 8.0, "VeraIt")
            )
            self.y = TOP - 50

    def _next_line(self, needed: float = LEADING) -> float:
        if self.y - needed < BOTTOM:
            if self.column == 0:
                self.column = 1
                self.y = TOP - 50 if len(self.pages) == 1 else TOP
            else:
                self._new_page()
        y = self.y
        self.y -= needed
        return y

    @property
    def x(self) -> float:
        return MARGIN + self.column * (COLUMN_W + GAP)

    def paragraph(self, text: str, offset: int, indent: bool) -> None:
        """Set `text` (at `offset` in the article) justified, hyphenating as needed."""
        words = [(m.start() + offset, m.group()) for m in re.finditer(r"\S+", text)]
        i, first, carry = 0, True, None  # carry: the rest of a hyphenated word
        while i < len(words) or carry:
            width = COLUMN_W - (INDENT if first and indent else 0.0)
            line: list[tuple[int, str, str]] = []  # (article offset, article text, drawn)
            used = 0.0
            if carry:
                line.append(carry)
                used = _width(carry[2])
                carry = None
            space = _width(" ")
            while i < len(words):
                start, word = words[i]
                drawn = _ligatured(word)
                w = _width(drawn)
                if used + (space if line else 0) + w <= width:
                    line.append((start, word, drawn))
                    used += (space if len(line) > 1 else 0) + w
                    i += 1
                    continue
                split = self._hyphenate(word, width - used - (space if line else 0))
                if split is not None:
                    head, tail, mark = split
                    line.append((start, head, _ligatured(head) + mark))
                    carry = (start + len(head), tail, _ligatured(tail))
                    self.hyphenated.append(
                        {"word": word, "head": head, "tail": tail, "page": 0, "explicit": not mark}
                    )
                    i += 1
                break
            if not line:  # one word wider than the column: let it overflow
                start, word = words[i]
                line.append((start, word, _ligatured(word)))
                i += 1
            last = i >= len(words) and not carry
            self._emit(line, width, first and indent, justify=not last)
            first = False

    def _hyphenate(self, word: str, room: float) -> tuple[str, str, str] | None:
        """Where to break `word` so its head (plus a hyphen) fits in `room`."""
        core = re.match(r"^([A-Za-z]+)-([A-Za-z].*)$", word)
        if core and _width(_ligatured(core.group(1)) + "-") <= room:
            return core.group(1) + "-", core.group(2), ""  # after its own hyphen
        letters = re.match(r"^[A-Za-z]{5,}", word)
        if not letters:
            return None
        for head, _tail in self.hyphen.iterate(letters.group()):
            if _width(_ligatured(head) + "-") <= room:
                return head, word[len(head) :], "-"
        return None

    def _emit(
        self, line: list[tuple[int, str, str]], width: float, indented: bool, justify: bool
    ) -> None:
        y = self._next_line()
        widths = [_width(d) for _, _, d in line]
        gaps = len(line) - 1
        space = _width(" ")
        if justify and gaps:
            space = (width - sum(widths)) / gaps
        x0 = self.x + (INDENT if indented else 0.0)
        words, x = [], 0.0
        for (_, _, drawn), w in zip(line, widths, strict=True):
            words.append((drawn, x))
            x += w + space
        start, end = line[0][0], line[-1][0] + len(line[-1][1])
        page = self.pages[-1]
        page.lines.append(Line(words, start, end, x0, y))
        for h in self.hyphenated:
            if h["page"] == 0:
                h["page"] = page.number

    def table_of(self, rows: list[list[str]]) -> None:
        """A three-column table with rules, kept whole in one column."""
        self.table = rows
        height = (len(rows) + 2) * (LEADING + 2)
        if self.y - height < BOTTOM:
            self._next_line(self.y - BOTTOM + 1)  # to the next column
        self._next_line(LEADING)  # space above
        cells = (0.0, 28.0, COLUMN_W - 40.0)
        for r, row in enumerate(rows):
            y = self._next_line(LEADING + 2)
            words = [(cell, dx) for cell, dx in zip(row, cells, strict=True)]
            font = "VeraBd" if r == 0 else "Vera"
            self.pages[-1].lines.append(Line(words, -1, -1, self.x, y, 8.0, font))
            self.pages[-1].rules.append((self.x, y - 3.5, self.x + COLUMN_W, y - 3.5))
        self._next_line(LEADING)


def render_pdf(article: dict[str, Any], path: Path, *, tex_like: bool, page_of: str) -> dict:
    """Write `article` as a two-column PDF at `path`; return where everything went."""
    from reportlab.pdfgen import canvas

    _fonts()
    layout = Layout(article["title"], tex_like)
    text = article["text"]
    for n, (start, end) in enumerate(article["paragraphs"]):
        layout.paragraph(text[start:end], start, indent=n > 0)
        if n == 1:
            layout.table_of(_table_rows(article))
    pages = layout.pages
    c = canvas.Canvas(str(path), pagesize=(PAGE_W, PAGE_H), invariant=True, pageCompression=1)
    c.setTitle(article["title"])
    c.setAuthor("Wikipedia contributors")
    truth_pages = []
    for page in pages:
        header = "" if page.number == 1 else (COLLECTION if page.number % 2 else article["title"])
        footer = f"Page {page.number} of {len(pages)}" if page_of == "of" else f"{page.number}"
        c.setFont("VeraIt", 7.5)  # the page template first, as word processors draw it
        if header:
            c.drawString(MARGIN, PAGE_H - MARGIN, header)
            c.line(MARGIN, PAGE_H - MARGIN - 4, PAGE_W - MARGIN, PAGE_H - MARGIN - 4)
        c.setFont("Vera", 8)
        c.drawCentredString(PAGE_W / 2, MARGIN - 6, footer)
        for x0, y0, x1, y1 in page.rules:
            c.setLineWidth(0.4)
            c.line(x0, y0, x1, y1)
        for line in page.lines:
            _draw_line(c, line, tex_like)
        c.showPage()
        spans = [(ln.start, ln.end) for ln in page.lines if ln.start >= 0]
        truth_pages.append(
            {"number": page.number, "header": header, "footer": footer, "spans": spans}
        )
    c.save()
    return {
        "id": article["id"],
        "title": article["title"],
        "text": article["text"],
        "paragraphs": article["paragraphs"],
        "pages": truth_pages,
        "hyphenated": layout.hyphenated,
        "table": layout.table,
        "tex_like": tex_like,
    }


def _draw_line(c: Any, line: Line, tex_like: bool) -> None:
    t = c.beginText()
    t.setFont(line.font, line.size)
    if tex_like or len(line.words) == 1 or line.start < 0:
        for drawn, dx in line.words:  # each word (or cell) placed on its own
            t.setTextOrigin(line.x + dx, line.y)
            t.textOut(drawn)
    else:  # a word processor: one run, spaces in it, the stretch as position moves
        t.setTextOrigin(line.x, line.y)
        x = 0.0
        for n, (drawn, dx) in enumerate(line.words):
            if n:
                t.moveCursor(dx - x, 0)
                x = dx
            t.textOut(drawn + (" " if n + 1 < len(line.words) else ""))
    c.drawText(t)


def _table_rows(article: dict[str, Any]) -> list[list[str]]:
    rows = [["No.", "Opens with", "Words"]]
    text = article["text"]
    for n, (start, end) in enumerate(article["paragraphs"][:5], 1):
        words = text[start:end].split()
        rows.append([str(n), " ".join(words[:3]), str(len(words))])
    return rows


def render_docx(article: dict[str, Any], path: Path) -> dict:
    """Write `article` as a Word file: title, headings, justified paragraphs, a table,
    footnotes, header and footer. Returns the texts it put in beside the article."""
    from docx import Document as Docx
    from docx.enum.text import WD_ALIGN_PARAGRAPH

    doc = Docx()
    doc.core_properties.title = article["title"]
    doc.core_properties.author = "Wikipedia contributors"
    section = doc.sections[0]
    section.header.paragraphs[0].text = article["title"]
    _page_field(section.footer.paragraphs[0])
    doc.add_paragraph(article["title"], style="Title")
    text = article["text"]
    notes: list[str] = []
    headings: list[str] = []
    for n, (start, end) in enumerate(article["paragraphs"]):
        if n and n % 6 == 0:
            headings.append(f"Part {n // 6 + 1}")
            doc.add_heading(headings[-1], level=2)
        p = doc.add_paragraph(text[start:end])
        p.alignment = WD_ALIGN_PARAGRAPH.JUSTIFY
        if n % 5 == 2:
            notes.append(f"Paragraph {n + 1} of the article “{article['title']}” on Wikipedia.")
            _footnote_ref(p, len(notes))
        if n == 1:
            rows = _table_rows(article)
            table = doc.add_table(rows=len(rows), cols=3)
            table.style = "Table Grid"
            for r, row in enumerate(rows):
                for col, cell in enumerate(row):
                    table.cell(r, col).text = cell
    _footnotes_part(doc, notes)
    doc.save(str(path))
    return {"id": article["id"], "title": article["title"], "notes": notes, "headings": headings}


_W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"


def _page_field(paragraph: Any) -> None:
    from docx.oxml import parse_xml

    paragraph.text = "Page "
    paragraph._p.append(
        parse_xml(
            f'<w:fldSimple xmlns:w="{_W}" w:instr="PAGE"><w:r><w:t>1</w:t></w:r></w:fldSimple>'
        )
    )


def _footnote_ref(paragraph: Any, number: int) -> None:
    from docx.oxml import parse_xml

    paragraph._p.append(
        parse_xml(
            f'<w:r xmlns:w="{_W}"><w:rPr><w:vertAlign w:val="superscript"/></w:rPr>'
            f'<w:footnoteReference w:id="{number}"/></w:r>'
        )
    )


def _footnotes_part(doc: Any, notes: list[str]) -> None:
    from xml.sax.saxutils import escape

    from docx.opc.constants import CONTENT_TYPE as CT
    from docx.opc.constants import RELATIONSHIP_TYPE as RT
    from docx.opc.packuri import PackURI
    from docx.opc.part import Part

    body = "".join(
        f'<w:footnote w:id="{n}"><w:p><w:r><w:footnoteRef/></w:r>'
        f'<w:r><w:t xml:space="preserve"> {escape(note)}</w:t></w:r></w:p></w:footnote>'
        for n, note in enumerate(notes, 1)
    )
    xml = (
        f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<w:footnotes xmlns:w="{_W}">'
        '<w:footnote w:type="separator" w:id="-1"><w:p><w:r><w:separator/></w:r></w:p></w:footnote>'
        '<w:footnote w:type="continuationSeparator" w:id="0"><w:p><w:r><w:continuationSeparator/>'
        f"</w:r></w:p></w:footnote>{body}</w:footnotes>"
    )
    part = Part(PackURI("/word/footnotes.xml"), CT.WML_FOOTNOTES, xml.encode(), doc.part.package)
    doc.part.relate_to(part, RT.FOOTNOTES)


def load_articles(data: Path = DATA) -> list[dict[str, Any]]:
    with open(data / "articles.jsonl", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def render(
    articles: list[dict[str, Any]], out: Path, *, formats: tuple[str, ...] = ("pdf", "docx")
) -> list[dict[str, Any]]:
    """Render each article into `out` as `<id>.pdf` (+ `.truth.json`) and `<id>.docx`."""
    out.mkdir(parents=True, exist_ok=True)
    truths = []
    for n, article in enumerate(articles):
        if "pdf" in formats:
            truth = render_pdf(
                article,
                out / f"{article['id']}.pdf",
                tex_like=n % 2 == 0,
                page_of="of" if n % 3 else "n",
            )
            (out / f"{article['id']}.truth.json").write_text(json.dumps(truth, ensure_ascii=False))
            truths.append(truth)
        if "docx" in formats:
            render_docx(article, out / f"{article['id']}.docx")
    return truths


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--articles", type=int, default=0, help="the first N articles (0: all)")
    ap.add_argument("--ids", nargs="*", default=[], help="these articles (by id), in this order")
    ap.add_argument("--paragraphs", type=int, default=0, help="the first N paragraphs of each")
    args = ap.parse_args()
    articles = load_articles(args.data)
    if args.ids:
        by_id = {a["id"]: a for a in articles}
        articles = [by_id[i] for i in args.ids]
    if args.articles:
        articles = articles[: args.articles]
    if args.paragraphs:
        articles = [shortened(a, args.paragraphs) for a in articles]
    truths = render(articles, args.out)
    pages = sum(len(t["pages"]) for t in truths)
    print(f"{len(articles)} articles, {pages} PDF pages -> {args.out}")
    return 0


def shortened(article: dict[str, Any], paragraphs: int) -> dict[str, Any]:
    """The article's first `paragraphs` paragraphs (offsets unchanged)."""
    kept = article["paragraphs"][:paragraphs]
    return {**article, "text": article["text"][: kept[-1][1]], "paragraphs": kept}


if __name__ == "__main__":
    sys.exit(main())
