"""PDF and Word articles (issue 15): clean text with exact offsets, page numbers in
every hit, the same ids, limits and updates as other articles.

The documents are SQuAD-dev articles as people keep them (data/documents, made by
benchmarks/render_documents.py): two-column PDF pages with running headers, footers
and page numbers, justified text hyphenated at line ends, ligatures and a table; the
same articles as Word files with headings, a table and footnotes. Each PDF's
`.truth.json` says on which page the renderer put every line."""

from __future__ import annotations

import io
import json
import re
import shutil
import zipfile
from pathlib import Path

import pytest

import qa
from qa.cli import main as cli
from qa.documents import pages_between
from qa.hits import page_label
from qa.store import DocumentInfo
from ui import render
from ui.handlers import LiveIndex

from .conftest import ROOT, TINY, FakeEncoder

SAMPLES = ROOT / "data" / "documents"
PDFS = sorted(SAMPLES.glob("*.pdf"))


def truth(pdf: Path) -> dict:
    return json.loads(pdf.with_suffix(".truth.json").read_text(encoding="utf-8"))


def paragraphs(found: dict) -> list[str]:
    return [found["text"][s:e] for s, e in found["paragraphs"]]


def squeezed(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def test_samples_are_real_documents() -> None:
    # what the tests below rely on: several pages, both kinds of PDF text, a table
    assert len(PDFS) == 2
    kinds = {truth(p)["tex_like"] for p in PDFS}
    assert kinds == {True, False}  # words placed one by one, and runs with spaces
    for pdf in PDFS:
        t = truth(pdf)
        assert len(t["pages"]) >= 3 and len(t["table"]) == 6
        assert sum(not h["explicit"] for h in t["hyphenated"]) > 20
        assert 30_000 < pdf.stat().st_size < 150_000


@pytest.mark.parametrize("pdf", PDFS, ids=[p.stem for p in PDFS])
def test_pdf_text_is_the_article_without_the_page_furniture(pdf: Path) -> None:
    t = truth(pdf)
    [doc] = qa.load_documents([pdf])
    assert (doc.id, doc.title, doc.source) == (pdf.name, t["title"], str(pdf))
    text = squeezed(doc.text)
    # every paragraph, whole: columns in order, hyphenated words joined, ligatures as
    # letters; a compound broken at its own hyphen may come out joined (at most 2)
    missing = [p for p in paragraphs(t) if squeezed(p) not in text]
    assert len(missing) <= 2, missing
    unhyphenated = re.sub(r"[\s-]", "", doc.text)
    assert all(re.sub(r"[\s-]", "", p) in unhyphenated for p in paragraphs(t))
    for page in t["pages"]:  # running headers, footers and page numbers: gone
        assert page["footer"] not in doc.text.split("\n")
        assert "Page " not in page["footer"] or page["footer"] not in doc.text
    assert "SQuAD articles · CC BY-SA 4.0" not in doc.text
    title_lines = 1 + sum(t["title"] in c for r in t["table"] for c in r)  # page 1, the table
    assert doc.text.count(t["title"]) == t["text"].count(t["title"]) + title_lines
    assert not re.search("[\ufb00-\ufb06\ufffe\x00-\x08]", doc.text)
    for row in t["table"]:  # a table row stays a row, its cells in order
        assert " | ".join(row) in doc.text.split("\n")
    assert "\n\n" in doc.text and "  " not in doc.text


@pytest.mark.parametrize("pdf", PDFS, ids=[p.stem for p in PDFS])
def test_pdf_pages_are_where_the_renderer_put_every_line(pdf: Path) -> None:
    t = truth(pdf)
    [doc] = qa.load_documents([pdf])
    assert len(doc.page_starts) == len(t["pages"]) and doc.page_starts[0] == 0
    checked = 0
    for page in t["pages"]:
        for start, end in page["spans"]:
            words = t["text"][start:end].split(" ")[1:-1]  # its ends may be half a word
            line = " ".join(words)
            if len(line) < 15 or doc.text.count(line) != 1:
                continue
            at = doc.text.index(line)
            assert pages_between(doc.page_starts, at, at + len(line)) == (page["number"],), line
            checked += 1
    assert checked > 150


def test_hits_carry_their_pages_and_offsets_stay_exact(fake: FakeEncoder) -> None:
    docs = qa.load_documents([SAMPLES, *TINY])
    index = qa.build_index(docs, model=fake)
    by_id = {d.id: d for d in docs}
    hits = index.search("Which stadium hosted Super Bowl 50 in Santa Clara?", k=20)
    assert any(h.doc_id == "Super_Bowl_50.pdf" for h in hits)
    for hit in hits:
        doc = by_id[hit.doc_id]
        assert doc.text[hit.start : hit.end] == hit.text
        assert hit.pages == pages_between(doc.page_starts, hit.start, hit.end)
        assert hit.to_dict()["pages"] == list(hit.pages)
        assert bool(hit.pages) == hit.doc_id.endswith(".pdf")
    # every passage of a PDF lies on one page, or runs on to the next ones
    for doc_id in ("Super_Bowl_50.pdf", "Warsaw.pdf"):
        passages = index.passages_of(doc_id)
        pages = [pages_between(by_id[doc_id].page_starts, p.start, p.end) for p in passages]
        assert pages[0][0] == 1 and pages[-1][-1] == len(by_id[doc_id].page_starts)
        assert any(len(p) == 2 for p in pages)


def test_pages_are_saved_and_an_index_saved_before_still_loads(
    tmp_path: Path, fake: FakeEncoder
) -> None:
    index = qa.build_index([SAMPLES, *TINY], tmp_path / "idx", model=fake)
    rows = {}
    for line in next((tmp_path / "idx").glob("documents-*.jsonl")).read_text().splitlines():
        row = json.loads(line)
        rows[row["id"]] = row
    assert rows["Warsaw.pdf"]["page_starts"] == list(index.documents["Warsaw.pdf"].page_starts)
    assert "page_starts" not in rows["cats"]  # saved as before for articles without pages
    assert "page_starts" not in rows["Warsaw.docx"]  # Word files made by python-docx
    loaded = qa.load_index(tmp_path / "idx", model=fake)
    assert loaded.documents == index.documents
    hit = loaded.search("Maria Skłodowska-Curie Nobel Prize", k=1, where={"doc_id": "Warsaw.pdf"})[
        0
    ]
    assert (
        hit.pages
        and hit.pages == index.search(hit.text, k=1, where={"doc_id": "Warsaw.pdf"})[0].pages
    )
    # a row written before pages were kept (no page_starts) is an article without pages
    old = {k: v for k, v in rows["Warsaw.pdf"].items() if k != "page_starts"}
    assert DocumentInfo(**old).page_starts == ()


def test_the_cli_indexes_a_folder_of_pdf_and_word_files_and_prints_pages(
    tmp_path: Path, fake: FakeEncoder, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    folder = tmp_path / "papers"
    folder.mkdir()
    for name in ("Super_Bowl_50.pdf", "Super_Bowl_50.docx", "Warsaw.pdf", "Warsaw.docx"):
        shutil.copy(SAMPLES / name, folder / name)
    monkeypatch.setattr("qa.index._encoder", lambda model: fake)  # the model "fake-bow"
    out = tmp_path / "idx"
    assert cli(["index", str(folder), "--out", str(out), "--model", fake.name]) == 0
    assert "indexed 4 documents" in capsys.readouterr().out
    assert cli(["index", str(folder), "--out", str(out), "--model", fake.name]) == 0
    assert "up to date (4 documents)" in capsys.readouterr().out
    ask = ["ask", "Warsaw Nobel Prize radioactivity", "--index", str(out), "--k", "3"]
    assert cli([*ask, "--where", "doc_id=Warsaw.pdf"]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"\(.*Warsaw\.pdf, p\. \d(–\d)?, \d+-\d+\)", printed), printed
    # the same passage in the PDF and the Word file comes back once: ask each on its own
    for doc_id, paged in (("Warsaw.pdf", True), ("Warsaw.docx", False)):
        ask = [
            "ask",
            "Warsaw Nobel Prize",
            "--index",
            str(out),
            "--json",
            "--where",
            f"doc_id={doc_id}",
        ]
        assert cli(ask) == 0
        hits = json.loads(capsys.readouterr().out)
        assert hits and all(bool(h["pages"]) == paged for h in hits)
    # a PDF replaced by another version is indexed again; the others stay
    (folder / "Warsaw.pdf").write_bytes((SAMPLES / "Super_Bowl_50.pdf").read_bytes())
    assert cli(["index", str(folder), "--out", str(out), "--model", fake.name]) == 0
    assert "0 added, 1 updated, 0 removed, 3 unchanged" in capsys.readouterr().out


def test_page_labels() -> None:
    assert [page_label(p) for p in ([], [3], [3, 4], (2, 3, 4))] == ["", "p. 3", "p. 3–4", "p. 2–4"]
    assert pages_between((), 0, 10) == ()
    assert pages_between((0, 100, 100, 250), 0, 100) == (1,)
    assert pages_between((0, 100, 100, 250), 99, 101) == (1, 2, 3)  # page 2 is empty
    assert pages_between((0, 100, 250), 250, 260) == (3,)


def test_the_form_shows_pages_beside_the_title_and_the_passage_in_its_article(
    tmp_path: Path, fake: FakeEncoder
) -> None:
    index = qa.build_index(TINY, tmp_path / "idx", model=fake)
    live = LiveIndex(index)
    status = live.upload([str(SAMPLES / "Warsaw.pdf")])
    assert "Added 1 article(s)" in status and "“Warsaw”" in status
    page, hits = live.ask("Warsaw Chopin Skłodowska-Curie", 3)
    top = hits[0]
    assert top["doc_id"] == "Warsaw.pdf" and top["pages"]
    assert f'<span class="pages">{page_label(top["pages"])}</span></h4>' in page
    before, after = live.context(live.index, top)  # "Show in the article"
    assert before or after
    assert "<h4>1. Cats</h4>" in render.render_hit(
        {**top, "title": "Cats", "pages": [], "rank": 1}
    ).replace('<span class="pages">', "")  # no pages, no label


# -- Word ------------------------------------------------------------------------------


def test_word_text_has_headings_paragraphs_the_table_and_footnotes() -> None:
    t = truth(SAMPLES / "Super_Bowl_50.pdf")
    [doc] = qa.load_documents([SAMPLES / "Super_Bowl_50.docx"])
    assert (doc.id, doc.title, doc.page_starts) == ("Super_Bowl_50.docx", "Super Bowl 50", ())
    blocks = doc.text.split("\n\n")
    assert blocks[0] == "Super Bowl 50"  # the Title paragraph
    assert "Part 2" in blocks and "Part 4" in blocks  # headings, a paragraph each
    body = [re.sub(r"\[\d+\]$", "", b) for b in blocks]
    assert all(p in body for p in paragraphs(t))  # word for word
    assert "No. | Opens with | Words\n1 | Super Bowl 50 | 124" in doc.text
    notes = re.findall(r"(?m)^\[(\d+)\] Paragraph (\d+) of the article", doc.text)
    assert [n for n, _ in notes] == ["1", "2", "3", "4"]
    assert doc.text.count("[1]") == 2  # the mark, then the note
    assert "Page" not in doc.text  # the footer's page field is not the text


W = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
RELS = (
    '<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/'
    'relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/'
    'officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/>'
    "</Relationships>"
)


def docx(body: str, rels: str = RELS, **parts: bytes) -> bytes:
    """A minimal Word file: `body` inside <w:body>, plus any other parts."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("_rels/.rels", rels)
        z.writestr(
            "word/document.xml",
            f'<?xml version="1.0"?><w:document {W}><w:body>{body}</w:body></w:document>',
        )
        for name, data in parts.items():
            z.writestr(name, data)
    return out.getvalue()


def para(text: str, style: str = "", before: str = "") -> str:
    pstyle = f'<w:pPr><w:pStyle w:val="{style}"/></w:pPr>' if style else ""
    return f'<w:p>{pstyle}<w:r>{before}<w:t xml:space="preserve">{text}</w:t></w:r></w:p>'


def test_word_pages_come_from_where_word_last_broke_them(tmp_path: Path) -> None:
    page_break = "<w:lastRenderedPageBreak/>"
    body = (
        para("Minutes", "Heading1")
        + para("First page text.")
        + para("Second page text.", before=page_break)
        + "<w:p><w:r><w:t>Third </w:t></w:r><w:r><w:lastRenderedPageBreak/><w:t>page.</w:t></w:r></w:p>"
        + "<w:p><w:r><w:t>Deleted</w:t></w:r><w:del><w:r><w:delText>gone</w:delText></w:r></w:del></w:p>"
    )
    (tmp_path / "m.docx").write_bytes(docx(body))
    [doc] = qa.load_documents([tmp_path / "m.docx"])
    assert doc.title == "Minutes"
    assert doc.text == "Minutes\n\nFirst page text.\n\nSecond page text.\n\nThird page.\n\nDeleted"
    assert doc.page_starts == (0, doc.text.index("Second"), doc.text.index("page."))
    assert pages_between(doc.page_starts, doc.text.index("Third"), len(doc.text)) == (2, 3)


def test_titles_come_from_the_properties_else_the_first_heading_or_line(tmp_path: Path) -> None:
    core = (
        '<?xml version="1.0"?><cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/'
        'package/2006/metadata/core-properties" xmlns:dc="http://purl.org/dc/elements/1.1/">'
        "<dc:title>From the properties</dc:title></cp:coreProperties>"
    )
    rels = RELS.replace(
        "</Relationships>",
        '<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/package/2006/'
        'relationships/metadata/core-properties" Target="docProps/core.xml"/></Relationships>',
    )
    body = para("Body first.") + para("A heading", "Heading2")
    (tmp_path / "a.docx").write_bytes(docx(body, rels, **{"docProps/core.xml": core.encode()}))
    (tmp_path / "b.docx").write_bytes(docx(body))
    (tmp_path / "c.docx").write_bytes(docx(para("") + para("Just a line.")))
    titles = {d.id: d.title for d in qa.load_documents([tmp_path])}
    assert titles == {
        "a.docx": "From the properties",
        "b.docx": "A heading",
        "c.docx": "Just a line.",
    }


def test_a_pdf_without_a_title_is_named_by_its_first_line(tmp_path: Path) -> None:
    from reportlab.pdfgen import canvas

    for name, title in (("none.pdf", None), ("junk.pdf", "Microsoft Word - draft7.docx")):
        c = canvas.Canvas(str(tmp_path / name))
        if title:
            c.setTitle(title)
        c.drawString(72, 720, "Quarterly report on rivers")
        c.drawString(72, 700, "The Danube flows through Vienna.")
        c.save()
    docs = qa.load_documents([tmp_path])
    assert [d.title for d in docs] == ["Quarterly report on rivers"] * 2
    assert docs[0].text == "Quarterly report on rivers\nThe Danube flows through Vienna."
    assert docs[0].page_starts == (0,)


def test_word_tables_are_rows_of_cells_a_table_in_a_cell_is_its_text(tmp_path: Path) -> None:
    def cell(*paragraphs: str) -> str:
        return "<w:tc>" + "".join(paragraphs) + "</w:tc>"

    inner = f"<w:tbl><w:tr>{cell(para('inner a'))}{cell(para('inner b'))}</w:tr></w:tbl>"
    table = (
        f"<w:tbl><w:tr>{cell(para('Name'))}{cell(para('Role'))}</w:tr>"
        f"<w:tr>{cell(para('Ada', before='<w:lastRenderedPageBreak/>'))}{cell(para('Chair'), inner)}</w:tr>"
        "</w:tbl>"
    )
    (tmp_path / "t.docx").write_bytes(docx(para("Members") + table + para("After.")))
    [doc] = qa.load_documents([tmp_path / "t.docx"])
    assert doc.text == "Members\n\nName | Role\nAda | Chair inner a inner b\n\nAfter."
    assert doc.page_starts == (0, doc.text.index("Ada"))  # the row that broke the page
