"""Hostile input (issue 8): articles, questions and index folders that are wrong on
purpose. Each gets a clear error that says what was wrong, and leaves the index as
it was; none takes long or reads more than it must."""

from __future__ import annotations

import json
import os
import shutil
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest

import qa
from embeddings.models import REGISTRY, PackagedModel
from qa.cli import main as cli
from qa.documents import MAX_FILE_MB
from qa.passages import split_document
from qa.query import MAX_QUESTION_CHARS

from .conftest import TINY, FakeEncoder


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture
def saved(tmp_path: Path, fake: FakeEncoder) -> qa.Index:
    return qa.build_index(TINY, tmp_path / "idx", model=fake)


# -- articles ------------------------------------------------------------------------


def _big_sparse(folder: Path) -> list[Path]:
    """A 200 MB file made in no time: sparse, nothing but a hole."""
    path = folder / "huge.txt"
    with path.open("wb") as f:
        f.truncate(200 * 1024 * 1024)
    return [path]


def _files(**named: bytes) -> Callable[[Path], list[Path]]:
    def make(folder: Path) -> list[Path]:
        out = []
        for name, data in named.items():
            path = folder / name.replace("__", ".")
            path.write_bytes(data)
            out.append(path)
        return out

    return make


def _symlink_out(folder: Path) -> list[Path]:
    outside = folder.parent / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("The secret key is hunter2.")
    inside = folder / "articles"
    inside.mkdir()
    (inside / "fine.txt").write_text("A fine article about glaciers.")
    (inside / "link.txt").symlink_to(outside / "secret.txt")
    return [inside]


def _fifo(folder: Path) -> list[Path]:
    path = folder / "pipe.txt"
    os.mkfifo(path)  # reading it would block for ever
    return [path]


BAD_ARTICLES = [
    ("empty", _files(a__txt=b""), qa.DocumentError, r"a\.txt: article is empty"),
    ("whitespace", _files(a__md=b" \n\t\r\n"), qa.DocumentError, r"a\.md: article is empty"),
    (
        "binary",
        _files(a__txt=bytes(range(256)) * 4),
        qa.DocumentError,
        r"a\.txt: looks like a binary file \(contains NUL bytes\)",
    ),
    (
        "utf-16 without a byte order mark",
        _files(a__txt="Glaciers melt.".encode("utf-16-le")),
        qa.DocumentError,
        "UTF-16 or UTF-32 text needs a byte order mark",
    ),
    (
        "broken utf-16 after its byte order mark",
        _files(a__txt=b"\xff\xfeG\x00\x00\xd8"),
        qa.DocumentError,
        r"a\.txt: invalid utf-16 text",
    ),
    (
        "200 MB",
        _big_sparse,
        qa.DocumentError,
        rf"huge\.txt: file is 200\.0 MB, over the {MAX_FILE_MB:g} MB limit for one article file",
    ),
    ("a FIFO", _fifo, qa.DocumentError, r"pipe\.txt: not a regular file"),
    (
        "jsonl bad line",
        _files(a__jsonl=b'{"id": "1", "text": "ok"}\n\n{"id": "2", "text": "ok"}\n{"id": 3,\n'),
        qa.DocumentError,
        r"a\.jsonl, line 4: not valid JSON",
    ),
    (
        "jsonl text not a string",
        _files(a__jsonl=b'{"id": "1", "text": ["a"]}\n'),
        qa.DocumentError,
        r"a\.jsonl, line 1: missing or invalid 'text'",
    ),
    (
        "jsonl id not a string",
        _files(a__jsonl=b'{"id": {"x": 1}, "text": "t"}\n'),
        qa.DocumentError,
        r"a\.jsonl, line 1: missing or invalid 'id'",
    ),
    (
        "jsonl title not a string",
        _files(a__jsonl=b'{"id": "1", "text": "t", "title": 5}\n'),
        qa.DocumentError,
        r"a\.jsonl, line 1: 'title' must be a string",
    ),
    (
        "duplicate ids in one jsonl",
        _files(
            a__jsonl=b'{"id": "x", "text": "a"}\n{"id": "y", "text": "b"}\n{"id": "x", "text": "c"}\n'
        ),
        qa.DuplicateIdError,
        r"a\.jsonl, line 3: duplicate article id 'x' \(also on line 1\)",
    ),
    (
        "an id already in the index",
        _files(cats__jsonl=b'{"id": "cats", "text": "Other cats."}\n'),
        qa.DuplicateIdError,
        "article id 'cats' is already in the index",
    ),
    (
        "unknown type",
        _files(a__exe=b"MZ\x90\x00"),
        qa.DocumentError,
        r"a\.exe: unknown article type '\.exe'",
    ),
    (
        "symlink out of the folder",
        _symlink_out,
        qa.DocumentError,
        r"link\.txt: a symbolic link to a file outside .*: not followed",
    ),
]


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [case[1:] for case in BAD_ARTICLES],
    ids=[case[0] for case in BAD_ARTICLES],
)
def test_bad_articles_are_refused_and_the_index_unchanged(
    tmp_path: Path, saved: qa.Index, make, error: type[Exception], message: str
) -> None:
    (tmp_path / "in").mkdir()
    paths = make(tmp_path / "in")
    assert saved.path is not None
    before = _snapshot(saved.path)
    started = time.perf_counter()
    tracemalloc.start()
    try:
        with pytest.raises(error, match=message):
            saved.add(paths)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # refused without reading it all: the 200 MB file read would allocate 200 MB (a
    # property of the code, not of the CPU); the time bound only fails a hang (a FIFO
    # read waits forever), each case takes well under a second
    assert peak < 50 * 2**20
    assert time.perf_counter() - started < 60
    assert _snapshot(saved.path) == before
    reloaded = qa.load_index(saved.path, model=saved.encoder)
    assert reloaded.passages == saved.passages


def test_symlinks_inside_the_folder_are_followed_and_outside_skipped_with_skip_bad(
    tmp_path: Path,
) -> None:
    (tmp_path / "x").mkdir()
    [folder] = _symlink_out(tmp_path / "x")
    (folder / "alias.txt").symlink_to(folder / "fine.txt")
    docs = qa.load_documents([folder], skip_bad=True)
    assert sorted(d.id for d in docs) == ["alias.txt", "fine.txt"]
    assert all("hunter2" not in d.text for d in docs)


def test_wrong_but_known_encodings_are_read_correctly(tmp_path: Path) -> None:
    text = "Café in Zürich — “quoted”"
    (tmp_path / "latin1.txt").write_bytes("Café in Zürich".encode("latin-1"))
    (tmp_path / "cp1252.txt").write_bytes(text.encode("cp1252"))
    (tmp_path / "utf16.txt").write_bytes(text.encode("utf-16"))  # with its BOM
    (tmp_path / "utf16be.md").write_bytes(b"\xfe\xff" + text.encode("utf-16-be"))
    (tmp_path / "utf8bom.html").write_bytes(b"\xef\xbb\xbf<p>" + text.encode() + b"</p>")
    docs = {d.id: d.text for d in qa.load_documents([tmp_path])}
    assert docs == {
        "cp1252.txt": text,
        "latin1.txt": "Café in Zürich",
        "utf16.txt": text,
        "utf16be.md": text,
        "utf8bom.html": text,
    }


def test_one_5_mb_line_is_split_within_the_budget(tmp_path: Path, fake: FakeEncoder) -> None:
    line = "Glaciers grow in winter and melt in summer " * 117_000  # one line, ~5 MB
    assert len(line) > 5_000_000 and "\n" not in line
    (tmp_path / "long.txt").write_text(line)
    [doc] = qa.load_documents([tmp_path / "long.txt"])
    passages = split_document(doc, fake, qa.SplitSettings())
    assert len(passages) > 1000
    assert all(doc.text[p.start : p.end] == p.text for p in passages)
    assert max(fake.count_tokens([p.text for p in passages])) <= fake.max_tokens


@pytest.mark.parametrize("depth", [200, 50_000])
def test_deeply_nested_html_is_read_in_linear_time(tmp_path: Path, depth: int) -> None:
    closed = "<div>" * depth + "<p>Deep inside.</p>" + "</div>" * depth
    unclosed = "<title>Nest</title>" + "<li><b><div>" * depth + "Bottom text."
    (tmp_path / "closed.html").write_text(closed)
    (tmp_path / "unclosed.htm").write_text(unclosed)
    started = time.perf_counter()
    a, b = qa.load_documents([tmp_path])
    # about a second on 2 idle CPUs; the tree-editing reader before it was quadratic
    # (10,000 nested divs: 17 s; 100,000: over 5 minutes), 50,000 would take minutes
    assert time.perf_counter() - started < 60
    assert (a.id, a.text, a.title) == ("closed.html", "Deep inside.", "Deep inside.")
    assert (b.id, b.text, b.title) == ("unclosed.htm", "Bottom text.", "Nest")


MALFORMED_HTML = [
    ("<p>one<p>two<div>three</span></div>four", "one\n\ntwo\n\nthree\n\nfour"),
    ("<b>bold <i>both</b> italic?</i> plain", "bold both italic? plain"),
    ("</p></div></html>text<<>>&&;&#xZZ;", "text<<>>&&;&#xZZ;"),
    ("<p>a comment <!-- <p>hidden</p> --> between</p>", "a comment between"),
    ("<p a='x>still an attribute'>shown</p>", "shown"),
    ("<table><tr><td>a<td>b<tr><td>c</table>", "a\n\nb\n\nc"),
]


@pytest.mark.parametrize(("markup", "text"), MALFORMED_HTML)
def test_malformed_html_gives_its_visible_text(tmp_path: Path, markup: str, text: str) -> None:
    (tmp_path / "bad.html").write_text(markup)
    [doc] = qa.load_documents([tmp_path / "bad.html"])
    assert doc.text == text


def test_html_scripts_iframes_and_event_handlers_never_become_text(tmp_path: Path) -> None:
    page = """<html><head><title>Volcanoes</title><script>steal(document.cookie)</script>
    <meta http-equiv="refresh" content="0;url=http://evil.example"></head>
    <body onload="steal()"><h1 onclick="steal()">Etna</h1>
    <p>Etna <img src=x onerror="steal()"> erupts.<script src="//evil.example/x.js"></script></p>
    <iframe src="//evil.example">fallback steal()</iframe><object data="x.swf">steal()</object>
    <svg onload="steal()"><text>steal()</text></svg><template><p>steal()</p></template>
    <noscript>steal()</noscript><style>body{background:url(javascript:steal())}</style>
    <a href="javascript:steal()">a link</a></body></html>"""
    (tmp_path / "v.html").write_text(page)
    [doc] = qa.load_documents([tmp_path / "v.html"])
    assert doc.title == "Volcanoes"
    assert doc.text == "Etna\n\nEtna erupts.\n\na link"
    for word in ("steal", "evil", "onerror", "javascript", "cookie"):
        assert word not in doc.text


# -- questions -----------------------------------------------------------------------

BAD_QUESTIONS = [
    ("", "question is empty: type a question"),
    ("   \n\t ", "question is empty: type a question"),
    ("x" * 100_000, f"question is 100,000 characters long, the limit is {MAX_QUESTION_CHARS:,}"),
    ("Who\x00 chairs the OSCE?", r"U\+0000 \(control character\) at position 3"),
    ("\x1b[2J\x1b[31mWho chairs?", r"U\+001B \(control character\) at position 0"),
    ("Who\x7f chairs?", r"U\+007F \(control character\) at position 3"),
    ("Who chairs\ud800?", r"U\+D800 \(surrogate\) at position 10"),
    (None, "question must be a string, got NoneType"),
    (42, "question must be a string, got int"),
    (4.5, "question must be a string, got float"),
    (b"bytes?", "question must be a string, got bytes"),
    (["a", "list"], "question must be a string, got list"),
    ({"q": "dict"}, "question must be a string, got dict"),
]


@pytest.mark.parametrize(("question", "message"), BAD_QUESTIONS, ids=range(len(BAD_QUESTIONS)))
def test_bad_questions_through_the_python_api(
    tiny_index: qa.Index, question: object, message: str
) -> None:
    for ask in (tiny_index.search, lambda q, k: qa.search(q, k, index=tiny_index)):
        with pytest.raises(qa.InvalidInputError, match=message) as err:
            ask(question, 3)
        assert isinstance(err.value, ValueError)


def test_questions_at_the_limits_are_answered(tiny_index: qa.Index) -> None:
    longest = ("Where does the Danube flow? " * 200)[:MAX_QUESTION_CHARS]
    assert tiny_index.search(f"  {longest}  \n", 1)[0].doc_id == "rivers"
    assert tiny_index.search("Where\tdoes the\nDanube flow?\r\n", 1)[0].doc_id == "rivers"
    assert tiny_index.search("Wo fließt die Donau? 多瑙河 🌊 Danube", 1)[0].doc_id == "rivers"


# -- index folders -------------------------------------------------------------------


def _unlink(pattern: str) -> Callable[[Path], None]:
    return lambda path: next(path.glob(pattern)).unlink()


def _truncate(pattern: str) -> Callable[[Path], None]:
    def cut(path: Path) -> None:
        f = next(path.glob(pattern))
        f.write_bytes(f.read_bytes()[:-10])

    return cut


def _manifest(edit: Callable[[dict], object]) -> Callable[[Path], None]:
    def change(path: Path) -> None:
        m = json.loads((path / "manifest.json").read_text())
        edit(m)
        (path / "manifest.json").write_text(json.dumps(m))

    return change


BROKEN_INDEXES = [
    ("vectors missing", _unlink("vectors-*.npy"), qa.IndexCorruptError, r"vectors file .* is missing"),
    ("manifest missing", _unlink("manifest.json"), qa.IndexNotFoundError, r"not a semantic-qa index \(no manifest.json\)"),
    ("sentence vectors truncated", _truncate("sentence-vectors-*.npy"), qa.IndexCorruptError, r"truncated or edited"),
    ("bm25 truncated", _truncate("bm25-data-*.npy"), qa.IndexCorruptError, r"truncated or edited"),
    ("documents edited", lambda p: (lambda f: f.write_text(f.read_text().replace("Rivers", "Ponds!")))(next(p.glob("documents-*.jsonl"))), qa.IndexCorruptError, "does not match its checksum"),
    ("manifest is a list", lambda p: (p / "manifest.json").write_text("[1, 2]"), qa.IndexFormatError, "is not a semantic-qa manifest"),
    ("manifest lacks files", _manifest(lambda m: m.pop("files")), qa.IndexCorruptError, "lacks 'files'"),
    ("file name escapes the folder", _manifest(lambda m: m["files"]["vectors"].update(name="../../../etc/passwd")), qa.IndexCorruptError, r"vectors file passwd is missing"),
    ("format version from the future", _manifest(lambda m: m.update(format_version=99)), qa.IndexFormatError, "format version 99"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("tamper", "error", "message"),
    [case[1:] for case in BROKEN_INDEXES],
    ids=[case[0] for case in BROKEN_INDEXES],
)
def test_broken_index_folders_raise_a_specific_error_saying_how_to_fix_it(
    saved: qa.Index, fake: FakeEncoder, tamper, error: type[Exception], message: str
) -> None:
    assert saved.path is not None
    tamper(saved.path)
    with pytest.raises(error, match=message) as err:
        qa.load_index(saved.path, model=fake)
    assert "semantic-qa index ARTICLES... --out" in str(err.value)


def test_an_index_of_another_model_names_the_model(saved: qa.Index, fake: FakeEncoder) -> None:
    assert saved.path is not None
    with pytest.raises(qa.ModelMismatchError, match="built with model 'fake-bow', not 'other'"):
        qa.load_index(saved.path, model=FakeEncoder(name="other"))
    _manifest(lambda m: m.update(model="no-such-model-v9"))(saved.path)
    with pytest.raises(qa.ModelNotFoundError, match="unknown model 'no-such-model-v9'"):
        qa.load_index(saved.path)


NOT_HERE = [
    ("no-such-model-v9", "unknown model 'no-such-model-v9'"),
    ("all-MiniLM-L6-v2@onnx-int4", "unknown model 'all-MiniLM-L6-v2@onnx-int4'"),
    ("gone-model", "model 'gone-model' is not installed: pip install gt-gone-model"),
    ("gone-model@onnx-int8", "model 'gone-model' is not installed: pip install gt-gone-model"),
]


@pytest.mark.parametrize(("model", "why"), NOT_HERE, ids=[m for m, _ in NOT_HERE])
def test_an_index_whose_model_is_not_here_names_the_folder_the_model_and_the_fix(
    saved: qa.Index, monkeypatch, capsys, model: str, why: str
) -> None:
    # a packaged model whose package is not installed: importing it fails for real
    gone = PackagedModel("gone-model", "gt-gone-model", "gt_gone_model_not_installed")
    monkeypatch.setitem(REGISTRY, "gone-model", gone)
    assert saved.path is not None
    _manifest(lambda m: m.update(model=model))(saved.path)
    with pytest.raises(qa.ModelNotFoundError) as err:
        qa.load_index(saved.path)
    message = str(err.value)
    assert message.startswith(
        f"{saved.path} was built with model {model!r}, which cannot be loaded here ({why}"
    )
    assert message.endswith(
        "install the package that provides it, or rebuild the index with the default "
        f"model: semantic-qa index ARTICLES... --out {saved.path}"
    )
    # the command line says the same, in one line
    assert cli(["ask", "Where does the Danube flow?", "--index", str(saved.path)]) == 1
    assert capsys.readouterr().err == f"semantic-qa: error: {message}\n"


@pytest.mark.parametrize("kind", ["a file", "an empty folder", "a folder of other files"])
def test_something_that_is_not_an_index(tmp_path: Path, fake: FakeEncoder, kind: str) -> None:
    path = tmp_path / "target"
    if kind == "a file":
        path.write_text("not an index")
    else:
        path.mkdir()
        if kind == "a folder of other files":
            shutil.copy(Path(__file__), path / "notes.py")
    with pytest.raises(qa.IndexNotFoundError, match="is not a semantic-qa index") as err:
        qa.load_index(path, model=fake)
    assert "build it with: semantic-qa index ARTICLES... --out" in str(err.value)
