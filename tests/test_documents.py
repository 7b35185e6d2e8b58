from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

import qa
from qa.documents import load_file

from .conftest import ARTICLES


def write(path: Path, data: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8")
    else:
        path.write_bytes(data)
    return path


def test_txt_title_is_first_non_empty_line(tmp_path: Path) -> None:
    f = write(tmp_path / "a.txt", "\n\n  My Title  \nBody text here.")
    [doc] = qa.load_documents([f])
    assert doc.id == "a.txt"
    assert doc.title == "My Title"
    assert doc.text == "\n\n  My Title  \nBody text here."
    assert doc.source == str(f)


# The openings of pages saved or scraped to text: navigation comes first, the title after.
SCRAPED = [
    ("Skip to Content\n\nPeacekeeping role of Kazakh President\n\nby September 12, 2018",
     "Peacekeeping role of Kazakh President"),
    ("Skip to main content\nToggle navigation\nMain menu\nSearch this site\n"
     "Home > News > Europe\nEN | RU | KZ\nRivers of Europe\nThe Danube flows east.",
     "Rivers of Europe"),
    ("Sign in\nSubscribe\nYou are here: Home / Blog\n***\nQ&A with the forum's founder\n",
     "Q&A with the forum's founder"),
    ("Menu\n\nThe Home Office and the menu of reforms\n", "The Home Office and the menu of reforms"),
    ("2019\nAnnual report\n", "2019"),  # a year is a title, not furniture
    ("Home\nSearch\n", "Home"),  # nothing but furniture: the first line, as before
]  # fmt: skip


@pytest.mark.parametrize(("text", "title"), SCRAPED, ids=[t for _, t in SCRAPED])
def test_txt_title_skips_page_navigation(tmp_path: Path, text: str, title: str) -> None:
    [doc] = qa.load_documents([write(tmp_path / "page.txt", text)])
    assert doc.title == title
    assert doc.text == text  # the text keeps every line: offsets index it as it is


def test_bundled_articles_have_real_titles() -> None:
    titles = {d.id: d.title for d in qa.load_documents([ARTICLES])}
    assert titles["004_1935e6c797c1ede0.txt"] == (
        "Peacekeeping role of Kazakh President distinguished in Slovenia"
    )
    assert all(len(t.split()) >= 4 for t in titles.values()), titles


def test_markdown_title_skips_link_furniture(tmp_path: Path) -> None:
    page = "[Skip to content](#main)\n\n# Notes on rivers\n\nThe Danube."
    [doc] = qa.load_documents([write(tmp_path / "n.md", page)])
    assert doc.title == "Notes on rivers"


def test_markdown_title_drops_heading_marks(tmp_path: Path) -> None:
    [doc] = qa.load_documents([write(tmp_path / "n.md", "# Notes on rivers\n\nThe Danube.")])
    assert doc.title == "Notes on rivers"
    assert doc.text.startswith("# Notes on rivers")


def test_html_keeps_visible_text_only(tmp_path: Path) -> None:
    page = """<html><head><title>Page title</title><style>p {color: red}</style>
    <script>alert("x")</script></head><body><h1>Heading</h1><p>First <b>bold</b> para.</p>
    <noscript>enable js</noscript><p>Second para.</p><script>var secret = 1;</script></body></html>"""
    [doc] = qa.load_documents([write(tmp_path / "p.html", page)])
    assert doc.title == "Page title"
    assert doc.text == "Heading\n\nFirst bold para.\n\nSecond para."
    for hidden in ("alert", "secret", "color: red", "enable js"):
        assert hidden not in doc.text


def test_html_without_title_uses_first_heading(tmp_path: Path) -> None:
    [doc] = qa.load_documents([write(tmp_path / "p.htm", "<h1>The Head</h1><p>text</p>")])
    assert doc.title == "The Head"


def test_jsonl_ids_titles_and_metadata(tmp_path: Path) -> None:
    rows = [
        {"id": "a1", "title": "Alpha", "text": "Alpha text.", "lang": "en", "year": 2010},
        {"id": 7, "text": "Seven."},
    ]
    f = write(tmp_path / "arts.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n\n")
    a, b = qa.load_documents([f])
    assert (a.id, a.title, a.text, a.metadata) == (
        "a1",
        "Alpha",
        "Alpha text.",
        {"lang": "en", "year": 2010},
    )
    assert (b.id, b.title, b.metadata) == ("7", "", {})


def test_folders_are_recursive_and_ids_stable(tmp_path: Path) -> None:
    write(tmp_path / "top.txt", "Top.")
    write(tmp_path / "sub" / "deep.md", "Deep.")
    write(tmp_path / "sub" / "ignored.png", b"\x89PNG")
    ids = [d.id for d in qa.load_documents([tmp_path])]
    assert ids == ["sub/deep.md", "top.txt"]
    assert [d.id for d in qa.load_documents([tmp_path])] == ids


def test_bundled_articles_load() -> None:
    docs = qa.load_documents([ARTICLES])
    assert len(docs) == 5
    assert all(d.title and len(d.text) > 1000 for d in docs)


def test_duplicate_ids_name_both_sources(tmp_path: Path) -> None:
    a = write(tmp_path / "x" / "same.txt", "One.")
    b = write(tmp_path / "y" / "same.txt", "Two.")
    with pytest.raises(qa.DuplicateIdError) as err:
        qa.load_documents([a, b])
    assert str(a) in str(err.value) and str(b) in str(err.value)


def test_duplicate_ids_inside_jsonl_name_lines(tmp_path: Path) -> None:
    f = write(tmp_path / "d.jsonl", '{"id": "x", "text": "a"}\n{"id": "x", "text": "b"}\n')
    with pytest.raises(qa.DuplicateIdError, match=r"line 2.*also on line 1"):
        qa.load_documents([f])


def test_fallback_encodings(tmp_path: Path) -> None:
    latin = write(tmp_path / "latin.txt", "Café Zürich".encode("latin-1"))
    utf16 = write(tmp_path / "u16.txt", "Привет мир".encode("utf-16"))
    bom8 = write(tmp_path / "bom.txt", b"\xef\xbb\xbfHello")
    assert [d.text for d in qa.load_documents([latin, utf16, bom8])] == [
        "Café Zürich",
        "Привет мир",
        "Hello",
    ]


BAD_FILES = [
    ("empty.txt", b"", "empty"),
    ("blank.md", b"  \n\t\n", "empty"),
    ("bin.txt", b"\x00\x01\x02binary\x00", "binary"),
    ("bad.txt", b"ok \x81\x8d\x8f\x90\x9d", "not UTF-8"),
    ("img.png", b"\x89PNG", "unknown article type"),
    ("bad.jsonl", b'{"id": "a", "text": "fine"}\nnot json\n', "line 2: not valid JSON"),
    ("notext.jsonl", b'{"id": "a"}\n', "line 1: missing or invalid 'text'"),
    ("noid.jsonl", b'{"text": "x"}\n', "line 1: missing or invalid 'id'"),
    ("list.jsonl", b"[1, 2]\n", "line 1: expected a JSON object"),
    ("emptytext.jsonl", b'{"id": "a", "text": " "}\n', "empty"),
]


@pytest.mark.parametrize(("name", "data", "message"), BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_bad_files_raise_naming_the_file(
    tmp_path: Path, name: str, data: bytes, message: str
) -> None:
    f = write(tmp_path / name, data)
    with pytest.raises(qa.DocumentError, match=message) as err:
        qa.load_documents([f])
    assert name in str(err.value)


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(qa.DocumentError, match="no such file or folder"):
        qa.load_documents([tmp_path / "nope.txt"])


def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = write(tmp_path / "locked.txt", "text")

    def deny(self: Path, *args: object, **kwargs: object) -> bytes:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "open", deny)  # root reads any file: a chmod would not do
    with pytest.raises(qa.DocumentError, match="locked.txt: cannot read file"):
        load_file(f)


def test_wrong_source_type() -> None:
    with pytest.raises(qa.InvalidInputError, match="cannot load articles from 42"):
        qa.load_documents([42])  # type: ignore[list-item]


def test_skip_bad_is_opt_in_and_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write(tmp_path / "good.txt", "Good text.")
    write(tmp_path / "empty.txt", "")
    with pytest.raises(qa.DocumentError):
        qa.load_documents([tmp_path])
    with caplog.at_level(logging.WARNING):
        docs = qa.load_documents([tmp_path], skip_bad=True)
    assert [d.id for d in docs] == ["good.txt"]
    assert "empty.txt" in caplog.text
