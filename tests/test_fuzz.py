"""Fuzzing the article loaders and the splitter (hypothesis), bounded for CI: a few
thousand generated inputs, ~10-20 s in all. Whatever the bytes, a loader returns
articles or raises `DocumentError` naming the file, never anything else, and the
splitter's passages always reproduce the article."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import qa
from qa.documents import html_to_text
from qa.passages import split_document

from .conftest import FakeEncoder

FUZZ = settings(
    max_examples=600,
    deadline=None,  # a busy CI machine must not turn slowness into failures
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    derandomize=True,  # the same inputs on every run: a failure is reproducible
)
SUFFIXES = [".txt", ".md", ".html", ".htm", ".jsonl"]

# Bytes that look like what the loaders parse: tags, JSON, BOMs, NULs, odd encodings.
PIECES = [
    b"<p>", b"</p>", b"<div>", b"</div>", b"<script>", b"</script>", b"<title>", b"<!--",
    b"-->", b"<br/>", b"&amp;", b"&#", b"<", b">", b"{", b"}", b'"id": "a", ', b'"text": "',
    b'"', b"\n", b"\r\n", b"\n\n", b"\x00", b"\xff\xfe", b"\xfe\xff", b"\xef\xbb\xbf",
    b"\x80", b"\xe9", b"\xc3\xa9", b"\xf0\x9f\x8c\x8a", b"word ", b"Sentence. ", b"# ",
]  # fmt: skip
markupish = st.lists(st.one_of(st.sampled_from(PIECES), st.binary(max_size=8)), max_size=40).map(
    b"".join
)


def _load(data: bytes, suffix: str) -> list[qa.Document] | qa.DocumentError:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"fuzz{suffix}"
        path.write_bytes(data)
        try:
            return qa.load_documents([path])
        except qa.DocumentError as err:
            assert "fuzz" in str(err)  # names the file
            return err


@FUZZ
@given(data=markupish, suffix=st.sampled_from(SUFFIXES))
def test_loaders_return_articles_or_a_document_error(data: bytes, suffix: str) -> None:
    result = _load(data, suffix)
    if isinstance(result, list):
        assert all(d.text.strip() and d.id for d in result)


@FUZZ
@given(
    rows=st.lists(
        st.one_of(
            st.dictionaries(
                st.sampled_from(["id", "text", "title", "lang"]),
                st.one_of(st.text(max_size=12), st.integers(), st.none(), st.booleans()),
            ),
            st.text(max_size=20),
        ),
        max_size=6,
    )
)
def test_json_lines_rows_of_any_shape(rows: list) -> None:
    import json

    result = _load("\n".join(json.dumps(r) for r in rows).encode(), ".jsonl")
    if isinstance(result, list):
        assert len(result) == len(rows) and len({d.id for d in result}) == len(result)
    else:
        assert re.search(r"line \d+: ", str(result)) or "empty" in str(result)


@FUZZ
@given(markup=st.text(alphabet=st.sampled_from(list("<>/=\"' &;#!-pdivscrtlbh1x\n")), max_size=200))
def test_html_text_is_clean_whatever_the_markup(markup: str) -> None:
    title, text = html_to_text(markup)
    assert text == text.strip() and "\n\n\n" not in text
    assert "\n" not in title and title == title.strip()
    assert all(line == line.strip() for line in text.split("\n"))


@FUZZ
@given(
    text=st.text(
        alphabet=st.one_of(
            st.sampled_from(list(" \n\n\t.!?\"'”)( ")),
            st.characters(codec="utf-8", exclude_categories=["Cs"]),
        ),
        min_size=1,
        max_size=600,
    ).filter(str.strip),
    target=st.integers(8, 40),
)
def test_splitter_reproduces_any_article(text: str, target: int) -> None:
    fake = FakeEncoder()
    doc = qa.Document("d", text)
    passages = split_document(doc, fake, qa.SplitSettings(target_tokens=target))
    assert passages and all(text[p.start : p.end] == p.text for p in passages)
    assert all(p.text.strip() for p in passages)
    assert max(fake.count_tokens([p.text for p in passages])) <= fake.max_tokens
    covered = set()
    for p in passages:
        covered.update(range(p.start, p.end))
    assert all(i in covered for i, c in enumerate(text) if not c.isspace())  # nothing lost


# Damaged PDF and Word files: real ones (data/documents) with bytes changed and cut.
DOCUMENTS = Path(__file__).resolve().parent.parent / "data" / "documents"
WORD = (DOCUMENTS / "Warsaw.docx").read_bytes()
PDF = (DOCUMENTS / "Warsaw.pdf").read_bytes()


def _damaged(data: bytes) -> st.SearchStrategy[bytes]:
    flips = st.lists(st.tuples(st.integers(0, len(data) - 1), st.integers(0, 255)), max_size=20)

    def damage(changes: list[tuple[int, int]], cut: int) -> bytes:
        out = bytearray(data)
        for at, value in changes:
            out[at] = value
        return bytes(out[: max(1, cut)])

    return st.builds(damage, flips, st.integers(len(data) // 2, len(data)))


@settings(FUZZ, max_examples=300)
@given(_damaged(WORD))
def test_damaged_word_files_give_text_or_a_document_error(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "damaged.docx"
        path.write_bytes(data)
        try:
            [doc] = qa.load_documents([path])
        except qa.DocumentError as err:
            assert "damaged.docx" in str(err) and "\n" not in str(err)
        else:
            assert doc.text.strip()


@settings(FUZZ, max_examples=20)  # a child process each: about 0.3 s an example
@given(_damaged(PDF))
def test_damaged_pdf_files_give_text_or_a_document_error(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "damaged.pdf"
        path.write_bytes(data)
        try:
            [doc] = qa.load_documents([path])
        except qa.DocumentError as err:
            assert "damaged.pdf" in str(err) and "\n" not in str(err)
        else:
            assert doc.text.strip() and len(doc.page_starts) >= 1
