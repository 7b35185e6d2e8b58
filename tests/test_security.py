"""Security promises (SECURITY.md), each tried against the real thing: a served form
on 127.0.0.1 with and without a password, the saved index files, the CLI's output."""

from __future__ import annotations

import ast
import hashlib
import io
import json
import logging
import os
import pickle  # only to craft a hostile file: the index format never uses it
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from gradio_client import Client

import qa
import ui
from qa.cli import main as cli
from ui import LiveIndex, build_app, launch
from ui.app import is_loopback, parse_auth

from .conftest import ROOT, TINY, FakeEncoder
from .form_client import FormClient, FormError
from .test_hostile import BAD_QUESTIONS


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Served:
    def __init__(self, url: str, live: LiveIndex, data: Path):
        self.url, self.live, self.data = url, live, data


@pytest.fixture(scope="module")
def data_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The project's data folder for this module's servers; uploads go to its
    `uploads`, as `semantic-qa serve` arranges (GRADIO_TEMP_DIR, read by Gradio when
    a file arrives and when an event is given one, so it stays set while serving)."""
    data = tmp_path_factory.mktemp("data")
    (data / "uploads").mkdir()
    before = os.environ.get("GRADIO_TEMP_DIR")
    os.environ["GRADIO_TEMP_DIR"] = str(data / "uploads")
    yield data
    if before is None:
        os.environ.pop("GRADIO_TEMP_DIR", None)
    else:
        os.environ["GRADIO_TEMP_DIR"] = before


def _serve(
    data: Path, name: str, auth: tuple[str, str] | None = None, **limits: float
) -> Iterator[Served]:
    """A form over a tiny index saved in `data`/`name`."""
    index = qa.build_index(TINY, data / name, model=FakeEncoder())
    live = LiveIndex(index, threshold=0.0, **limits)  # type: ignore[arg-type]
    app = build_app(live)
    port = _free_port()
    launch(
        app,
        host="127.0.0.1",
        port=port,
        max_upload_mb=live.max_upload_mb,
        auth=auth,
        prevent_thread_lock=True,
        quiet=True,
    )
    try:
        yield Served(f"http://127.0.0.1:{port}/", live, data)
    finally:
        app.close()


@pytest.fixture(scope="module")
def open_form(data_folder: Path) -> Iterator[Served]:
    yield from _serve(data_folder, "open-index", max_upload_mb=1, max_upload_files=3)


@pytest.fixture(scope="module")
def locked_form(data_folder: Path) -> Iterator[Served]:
    yield from _serve(data_folder, "locked-index", auth=("alice", "s3cret:pass"))


# -- bad requests through the HTTP API ----------------------------------------------

# JSON has no bytes, and the client cannot encode a lone surrogate to send it
API_QUESTIONS = [(q, m) for q, m in BAD_QUESTIONS if not isinstance(q, bytes) and "D800" not in m]
# error messages come as plain text, as in Python (not HTML-escaped)
BAD_K = [
    ("abc", "k must be an integer >= 1, got str: 'abc'"),
    (None, "k must be an integer >= 1, got NoneType: None"),
    (2.5, "k must be an integer >= 1, got float: 2.5"),
    (0, "k must be at least 1, got 0"),
    (101, "k must be at most 100, got 101"),
]


@pytest.mark.parametrize(
    ("question", "k", "message"),
    [(q, 3, m) for q, m in API_QUESTIONS] + [("Where is the Danube?", k, m) for k, m in BAD_K],
    ids=[f"question{i}" for i in range(len(API_QUESTIONS))] + [f"k={k!r}" for k, _ in BAD_K],
)
def test_http_api_refuses_bad_requests_with_the_reason(
    open_form: Served, question: object, k: object, message: str
) -> None:
    client = Client(open_form.url, verbose=False)
    with pytest.raises(Exception, match=message):
        client.predict(question, k, api_name="/search")
    # and the server goes on answering
    assert client.predict("Where is the Danube?", 5.0, api_name="/search")[0]["doc_id"] == "rivers"


# -- authentication ------------------------------------------------------------------


def test_password_protects_the_page_the_api_and_uploads(locked_form: Served) -> None:
    with pytest.raises(Exception, match="(?i)login|auth|401|403"):
        Client(locked_form.url, verbose=False)
    with pytest.raises(Exception, match="(?i)login|auth|401|403|incorrect"):
        Client(locked_form.url, auth=("alice", "wrong"), verbose=False)
    with pytest.raises(Exception, match="(?i)login|auth|401|403|incorrect"):
        Client(locked_form.url, auth=("mallory", "s3cret:pass"), verbose=False)
    for path in ("/config", "/gradio_api/info"):
        assert httpx.get(locked_form.url.rstrip("/") + path).status_code == 401
    upload = httpx.post(
        locked_form.url + "gradio_api/upload", files=[("files", ("a.txt", b"Sneaky text."))]
    )
    assert upload.status_code == 401
    assert not list((locked_form.data / "uploads").rglob("a.txt"))
    with pytest.raises(httpx.HTTPStatusError):
        FormClient(locked_form.url, auth=("alice", "s3cret"))

    client = Client(locked_form.url, auth=("alice", "s3cret:pass"), verbose=False)
    assert client.predict("Apollo 11", 1, api_name="/search")[0]["doc_id"] == "space"
    form = FormClient(locked_form.url, auth=("alice", "s3cret:pass"))
    assert "Added 1 article(s)" in form.add_articles({"glacier.md": b"# Ice\n\nGlaciers melt."})


@pytest.mark.parametrize(
    ("value", "parsed"),
    [(None, None), ("", None), ("bob:pw", ("bob", "pw")), ("bob:a:b:c", ("bob", "a:b:c"))],
)
def test_auth_values(value: str | None, parsed: tuple[str, str] | None) -> None:
    assert parse_auth(value) == parsed


@pytest.mark.parametrize("value", ["nocolon", ":pw", "bob:", "  :x"])
def test_bad_auth_values_are_refused_by_the_cli(
    value: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ui.app, "launch", lambda *a, **kw: pytest.fail("served anyway"))
    assert cli(["serve", "--auth", value]) == 1
    err = capsys.readouterr().err
    assert "authentication must look like USER:PASSWORD" in err
    assert value.partition(":")[2] not in err or not value.partition(":")[2]  # no secret echoed


# -- where the server listens ---------------------------------------------------------


@pytest.fixture
def served_with(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict:
    """What `semantic-qa serve` would launch, without serving."""
    seen: dict = {}
    monkeypatch.setattr(ui.app, "launch", lambda app, **kw: seen.update(kw))
    monkeypatch.delenv(ui.app.AUTH_ENV, raising=False)
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "elsewhere"))  # serve sets its own
    qa.build_index(TINY, tmp_path / "data" / "index", model=FakeEncoder())
    monkeypatch.setattr(ui.app, "open_index", lambda path: None)
    seen["index"] = str(tmp_path / "data" / "index")
    return seen


def test_serve_binds_127_0_0_1_by_default_without_a_password(served_with: dict) -> None:
    assert cli(["serve", "--index", served_with["index"]]) == 0
    assert served_with["host"] == "127.0.0.1" and served_with["auth"] is None


def test_password_from_the_environment_or_the_command_line(
    served_with: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEMANTIC_QA_AUTH", "env:pw")
    assert cli(["serve", "--index", served_with["index"]]) == 0
    assert served_with["auth"] == ("env", "pw")
    assert cli(["serve", "--index", served_with["index"], "--auth", "cli:pw2"]) == 0
    assert served_with["auth"] == ("cli", "pw2")


def test_uploads_are_kept_in_the_data_folder(served_with: dict, tmp_path: Path) -> None:
    assert cli(["serve", "--index", served_with["index"]]) == 0
    uploads = tmp_path / "data" / "uploads"
    assert uploads.is_dir() and os.environ["GRADIO_TEMP_DIR"] == str(uploads.resolve())


def test_an_uploads_folder_that_cannot_be_made_is_a_one_line_error(
    served_with: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "file").write_text("in the way")
    argv = ["serve", "--index", served_with["index"], "--upload-dir", str(tmp_path / "file" / "x")]
    assert cli(argv) == 1
    assert "cannot make the uploads folder" in capsys.readouterr().err
    assert "host" not in served_with  # never served


class _FakeBlocks:
    def __init__(self) -> None:
        self.kwargs: dict = {}
        self.blocked = False

    def launch(self, **kwargs: object) -> None:
        self.kwargs = kwargs

    def block_thread(self) -> None:  # `ui.launch` serves until interrupted
        self.blocked = True


@pytest.mark.parametrize(
    ("host", "auth", "warned"),
    [
        ("127.0.0.1", None, False),
        ("localhost", None, False),
        ("::1", None, False),
        ("127.0.0.2", None, False),
        ("0.0.0.0", None, True),
        ("192.168.1.20", None, True),
        ("::", None, True),
        ("example.org", None, True),
        ("0.0.0.0", ("u", "p"), False),
    ],
)
def test_another_host_without_a_password_prints_a_warning(
    host: str, auth: tuple[str, str] | None, warned: bool, caplog: pytest.LogCaptureFixture
) -> None:
    app = _FakeBlocks()
    with caplog.at_level(logging.WARNING, logger="ui.app"):
        launch(app, host=host, port=7861, auth=auth)  # type: ignore[arg-type]
    assert app.kwargs["server_name"] == host and app.kwargs["auth"] == auth
    assert app.kwargs["quiet"] is True and app.blocked  # our start-up lines, not Gradio's
    assert ("without a password" in caplog.text) is warned
    assert is_loopback(host) is (host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"))


def test_the_cli_prints_the_warning(
    served_with: dict, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    app = _FakeBlocks()
    monkeypatch.setattr(ui.app, "launch", ui.launch)  # the real one, over a fake app
    monkeypatch.setattr(ui.app, "build_app", lambda *a, **kw: app)
    # the CLI's logging handler writes to stderr; give it the stderr pytest captures
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [logging.StreamHandler(sys.stderr)])
    assert cli(["serve", "--index", served_with["index"], "--host", "0.0.0.0"]) == 0
    assert "serving on 0.0.0.0 without a password" in capsys.readouterr().err
    assert app.kwargs["server_name"] == "0.0.0.0"


# -- uploads -------------------------------------------------------------------------


def test_uploaded_names_cannot_leave_the_uploads_folder(open_form: Served) -> None:
    target = open_form.data.parent / "escaped.txt"
    names = {
        "../../escaped.txt": b"Escaped glacier text one.",
        "..\\..\\escaped2.txt": b"Escaped glacier text two.",
        "/etc/escaped3.txt": b"Escaped glacier text three.",
    }
    status = FormClient(open_form.url).add_articles(names)
    assert "Added 3 article(s)" in status
    assert not target.exists() and not Path("/etc/escaped3.txt").exists()
    uploads = (open_form.data / "uploads").resolve()
    stored = [p for p in uploads.rglob("*") if p.is_file() and "scaped" in p.name]
    assert len(stored) == 3 and all(p.resolve().is_relative_to(uploads) for p in stored)
    index = open_form.live.index
    assert index is not None
    # ids are bare file names: "....escaped2.txt" is odd, but names no other folder
    assert sorted(index.documents)[:3] == ["....escaped2.txt", "cats", "escaped.txt"]
    assert all("/" not in d and "\\" not in d for d in index.documents)


def test_the_form_only_reads_files_that_were_uploaded(open_form: Served, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("The secret key is hunter2.")
    form = FormClient(open_form.url)
    for path in (str(secret), "/etc/passwd", str(open_form.data / "uploads" / ".." / "index")):
        file = {"path": path, "orig_name": "x.txt", "meta": {"_type": "gradio.FileData"}}
        with pytest.raises(FormError, match="not uploaded by a user|not allowed|Cannot move"):
            form.run("add", [[file]])
    index = open_form.live.index
    assert index is not None and not index.search("secret key hunter2", 1)[0].text.count("hunter2")


def test_upload_limits_are_enforced_by_the_server(open_form: Served) -> None:
    # size: the upload route itself refuses it (max_upload_mb=1), nothing is stored
    big = httpx.post(
        open_form.url + "gradio_api/upload",
        files=[("files", ("big.txt", b"word " * 250_000))],
        timeout=60,
    )
    assert big.status_code == 413
    assert not list((open_form.data / "uploads").rglob("big.txt"))
    form = FormClient(open_form.url)
    before = open_form.live.index
    # count: max_upload_files=3
    status = form.add_articles({f"n{i}.txt": f"Note {i}.".encode() for i in range(4)})
    assert "4 files at once, the limit is 3" in status and "The index is unchanged" in status
    # type: checked by the server, by name (Gradio, then the form) and by content
    for name in ("x.odt", "x.exe", "x"):
        with pytest.raises(FormError, match="Invalid file type"):
            form.add_articles({name: b"%PDF-1.4"})
    status = form.add_articles({"x.txt": b"\x7fELF\x02\x01\x01\x00\x00"})
    assert "Not added: x.txt: looks like a binary file" in status
    status = form.add_articles({"x.pdf": b"%PDF-1.4"})  # a PDF is checked when read too
    assert "Not added: x.pdf: the PDF is truncated" in status
    assert open_form.live.index is before


# -- the index format: no pickle, nothing executed on load ----------------------------


def test_saved_index_files_are_plain_json_and_numeric_npy(tmp_path: Path) -> None:
    path = tmp_path / "idx"
    qa.build_index(TINY, path, model=FakeEncoder())
    names = sorted(p.name for p in path.iterdir())
    assert names and all(n.endswith((".json", ".jsonl", ".npy", ".txt")) for n in names)
    for file in path.iterdir():
        data = file.read_bytes()
        assert not data.startswith(b"\x80"), file.name  # a pickle stream
        if file.suffix == ".npy":
            array = np.load(io.BytesIO(data), allow_pickle=False)
            fields = [array.dtype[f] for f in array.dtype.names or ()] or [array.dtype]
            assert all(f.kind in "fiub" for f in fields), (file.name, array.dtype)
        elif file.suffix == ".txt":  # passage texts and ids
            data.decode("utf-8")
        elif file.suffix == ".json":
            json.loads(data)
        else:
            [json.loads(line) for line in data.decode().splitlines()]


def _sources() -> list[Path]:
    return sorted(p for d in ("qa", "ui", "embeddings") for p in (ROOT / d).rglob("*.py"))


def test_no_pickle_in_the_code_and_every_npy_load_refuses_it() -> None:
    loads = 0
    for file in _sources():
        tree = ast.parse(file.read_text(), str(file))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                assert not {"pickle", "cPickle", "dill", "joblib", "cloudpickle"} & set(names), file
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("load", "loads")
                and ast.unparse(node.func.value) in ("np", "numpy", "bm25s.BM25", "torch")
            ):
                loads += 1
                flags = {k.arg: ast.unparse(k.value) for k in node.keywords}
                assert flags.get("allow_pickle") == "False", f"{file}:{node.lineno}"
    assert loads >= 3  # vectors, sentence vectors, BM25


class _Boom:
    """Unpickling this runs code: it would create `marker`."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("part", ["vectors", "bm25-data", "sentence-vectors"])
def test_a_pickle_planted_in_the_index_is_never_run(tmp_path: Path, part: str) -> None:
    path, marker = tmp_path / "idx", tmp_path / "pwned"
    qa.build_index(TINY, path, model=FakeEncoder())
    evil = io.BytesIO()
    np.save(evil, np.array([_Boom(marker)], dtype=object), allow_pickle=True)
    data = evil.getvalue()
    with pytest.raises(Exception):  # noqa: B017 - check the crafted file really is hostile
        np.load(io.BytesIO(data), allow_pickle=False)
    # plant it with a manifest that vouches for it (checksum and size match)
    manifest = json.loads((path / "manifest.json").read_text())
    entry = manifest["files"][part]
    (path / entry["name"]).write_bytes(data)
    entry.update(sha256=hashlib.sha256(data).hexdigest(), bytes=len(data))
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(qa.IndexCorruptError, match="pickle"):
        qa.load_index(path, model=FakeEncoder())
    assert not marker.exists()
    pickle.loads(pickle.dumps(_Boom(marker)))  # the same payload does run when unpickled
    assert marker.exists()


# -- article text in a terminal ------------------------------------------------------

ESCAPES = {
    "\x1b[2J\x1b[H": "clears the screen",
    "\x1b]0;pwned\x07": "sets the window title",
    "\x1b]8;;http://evil.example\x1b\\link\x1b]8;;\x1b\\": "a hidden hyperlink",
    "\x1b[1A\x1b[2K": "rewrites the line above",
    "\x1bP+q\x1b\\": "a device control string",
    "\x9b31m": "an 8-bit CSI",
    "\r": "a carriage return",
    "\x08\x08\x08": "backspaces",
    "\u202e": "a right-to-left override",
    "\x07": "a bell",
}


def test_ask_strips_terminal_escapes_but_json_keeps_the_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    nasty = "".join(ESCAPES)
    doc = qa.Document(
        "evil", f"Volcano{nasty} Etna erupts in Sicily.{nasty}", f"Title{nasty}", f"src{nasty}"
    )
    fake = FakeEncoder(max_tokens=1000)  # the article is one passage
    qa.build_index([doc, *TINY], tmp_path / "idx", model=fake)
    monkeypatch.setattr("qa.index.load_encoder", lambda *a, **kw: fake)
    assert cli(["ask", "Volcano Etna erupts", "--index", str(tmp_path / "idx"), "--k", "1"]) == 0
    out = capsys.readouterr().out
    for char in "\x1b\x9b\r\x08\u202e\x07":
        assert char not in out, repr(char)
    assert "] Titlelink  (srclink 0-" in out
    assert "Volcanolink Etna erupts in Sicily.link" in out
    assert cli(["ask", "Volcano Etna", "--index", str(tmp_path / "idx"), "--k", "1", "--json"]) == 0
    [hit] = json.loads(capsys.readouterr().out)
    assert hit["title"] == doc.title and nasty in hit["text"]  # exact, for programs
