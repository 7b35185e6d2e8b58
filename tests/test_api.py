"""The JSON HTTP API (`ui.api`): every route, every status code, the password, the
OpenAPI schema and its docs page; in process (Starlette's test client, the API mounted
at /api as `ui.launch` mounts it), then on a real server beside the form."""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from gradio_client import Client
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

import qa
from qa.cli import main as cli
from qa.store import summary
from ui import LiveIndex, build_app, launch
from ui.api import MAX_BODY_BYTES, build_api
from ui.app import start_message
from ui.handlers import api_hits

from .conftest import ROOT, TINY, FakeEncoder
from .test_hostile import BAD_QUESTIONS

QUESTION = "Where does the Danube flow?"


def _client(live: LiveIndex, auth: tuple[str, str] | None = None) -> TestClient:
    app = Starlette(routes=[Mount("/api", build_api(live, auth=auth))])
    return TestClient(app, raise_server_exceptions=False)


@pytest.fixture
def saved(tmp_path: Path, fake: FakeEncoder) -> qa.Index:
    return qa.build_index(TINY, tmp_path / "index", model=fake)


@pytest.fixture
def api(saved: qa.Index) -> TestClient:
    return _client(LiveIndex(saved))


def _python_hits(index: qa.Index, question: str, k: int = 5, **options: object) -> list:
    return [h.to_dict() for h in index.search(question, k, **options)]  # type: ignore[arg-type]


# -- search ----------------------------------------------------------------------------


def test_get_and_post_return_the_hits_python_returns(api: TestClient, saved: qa.Index) -> None:
    reply = api.get("/api/search", params={"q": QUESTION, "k": 2})
    assert reply.status_code == 200 and reply.headers["content-type"] == "application/json"
    assert reply.json() == {"hits": _python_hits(saved, QUESTION, 2)}
    assert reply.json()["hits"][0]["doc_id"] == "rivers"
    assert api.get("/api/search", params={"q": QUESTION}).json()["hits"] == _python_hits(
        saved, QUESTION
    )  # k=5 by default (the index has 3 passages)
    for mode in qa.MODES:
        got = api.get("/api/search", params={"q": QUESTION, "k": 3, "mode": mode}).json()
        assert got["hits"] == _python_hits(saved, QUESTION, 3, mode=mode)
    for ranker in qa.RANKERS:
        got = api.get("/api/search", params={"q": QUESTION, "k": 3, "ranker": ranker}).json()
        assert got["hits"] == _python_hits(saved, QUESTION, 3, ranker=ranker)
        body = {"q": QUESTION, "k": 3, "ranker": ranker}
        assert api.post("/api/search", json=body).json() == got
    body = {"q": "Moon", "k": 2, "mode": "lexical", "where": {"doc_id": ["space", "cats"]}}
    got = api.post("/api/search", json=body).json()["hits"]
    assert got == _python_hits(saved, "Moon", 2, mode="lexical", where=body["where"])
    assert {h["doc_id"] for h in got} <= {"space", "cats"} and got[0]["doc_id"] == "space"
    assert api.post("/api/search", json={"q": QUESTION, "k": 2.0}).json()["hits"] == (
        _python_hits(saved, QUESTION, 2)
    )


def _python_error(
    index: qa.Index, question: object, k: object, mode=None, where=None, ranker=None
) -> str:
    with pytest.raises(qa.InvalidInputError) as err:
        api_hits(index, question, k, mode=mode, where=where, ranker=ranker)
    return str(err.value)


# JSON has no bytes and no lone surrogates (the JSON escape of one is tested below); a
# question of 100,000 characters is over the body limit (413, tested below)
JSON_QUESTIONS = [
    q
    for q, _ in BAD_QUESTIONS
    if not isinstance(q, bytes) and q != "Who chairs\ud800?" and len(str(q)) < MAX_BODY_BYTES
]
BAD_BODIES = [
    *({"q": q, "k": 3} for q in JSON_QUESTIONS),
    *({"q": QUESTION, "k": k} for k in ("abc", None, 2.5, 0, -1, 101, True, [3], float("inf"))),
    {"q": QUESTION, "mode": "fast"},
    {"q": QUESTION, "mode": ["dense"]},
    {"q": QUESTION, "ranker": "bm25"},
    {"q": QUESTION, "ranker": 1},
    {"q": QUESTION, "where": ["source", "x"]},
    {"q": QUESTION, "where": "source=x"},
]


@pytest.mark.parametrize("body", BAD_BODIES, ids=range(len(BAD_BODIES)))
def test_a_bad_post_is_400_with_the_message_python_gives(
    api: TestClient, saved: qa.Index, body: dict, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="ui.api")
    expected = _python_error(
        saved, body["q"], body.get("k", 5), body.get("mode"), body.get("where"), body.get("ranker")
    )
    content = json.dumps(body, allow_nan=True)  # inf is not JSON, Python's json reads it
    reply = api.post("/api/search", content=content)
    assert reply.status_code == 400 and reply.json() == {"error": expected}
    refused = [r for r in caplog.records if r.name == "ui.api"]
    assert [(r.getMessage(), r.exc_info) for r in refused] == [
        (f"refused an API request: {expected[:300]}", None)
    ]


@pytest.mark.parametrize(
    ("params", "k"),
    [
        ({"q": ""}, 5),
        ({"q": "x" * 3000}, 5),
        ({"q": "Who\x00 chairs?"}, 5),
        ({"q": QUESTION, "k": "abc"}, "abc"),
        ({"q": QUESTION, "k": "2.5"}, "2.5"),
        ({"q": QUESTION, "k": ""}, ""),
        ({"q": QUESTION, "k": "0"}, 0),
        ({"q": QUESTION, "k": "101"}, 101),
        ({"q": QUESTION, "k": "99999999999999999999"}, "99999999999999999999"),
        ({"q": QUESTION, "mode": "fast"}, 5),
        ({"q": QUESTION, "ranker": "best"}, 5),
    ],
)
def test_a_bad_get_is_400_with_the_message_python_gives(
    api: TestClient, saved: qa.Index, params: dict, k: object
) -> None:
    reply = api.get("/api/search", params=params)
    expected = _python_error(saved, params["q"], k, params.get("mode"), None, params.get("ranker"))
    assert reply.status_code == 400 and reply.json() == {"error": expected}


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (("GET", "/api/search", {}), "the question is missing: GET /api/search?q=your+question"),
        (("GET", "/api/search?query=x", {}), "unknown parameter 'query': /api/search takes q, k"),
        (("GET", "/api/search?q=x&where=a", {}), "unknown parameter 'where': /api/search takes"),
        (("POST", "/api/search", {"json": {"k": 3}}), "the question is missing"),
        (("POST", "/api/search", {"json": {"question": "x"}}), "unknown field 'question'"),
        (("POST", "/api/search", {"content": b"{nope"}), "the body is not JSON (Expecting"),
        (("POST", "/api/search", {"content": b""}), "the body is not JSON"),
        (("POST", "/api/search", {"content": b"\xff\xfe\x00"}), "the body is not JSON"),
        (("POST", "/api/search", {"content": b"[" * 50_000}), "the body is not JSON"),
        (("POST", "/api/search", {"json": ["q", "x"]}), "must be a JSON object such as"),
        (("POST", "/api/search", {"json": "x"}), "must be a JSON object such as"),
        (
            ("POST", "/api/search", {"content": b'{"q": "Who chairs\\ud800?"}'}),
            "U+D800 (surrogate) at position 10",
        ),
    ],
)
def test_malformed_requests_are_400_saying_what_to_send(
    api: TestClient, request_: tuple, message: str
) -> None:
    method, path, extra = request_
    reply = api.request(method, path, **extra)
    assert reply.status_code == 400, reply.text
    assert message in reply.json()["error"]


def test_an_oversized_body_is_413_before_it_is_read(api: TestClient) -> None:
    big = json.dumps({"q": QUESTION, "where": {"x": "y" * MAX_BODY_BYTES}}).encode()
    reply = api.post("/api/search", content=big)
    assert reply.status_code == 413
    assert reply.json() == {
        "error": "the request body is over 65,536 bytes: send a question, not a file"
    }

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        yield b'{"q": "x", "where": {"x": "'
        for _ in range(100):
            yield b"y" * 1024

    assert api.post("/api/search", content=chunks()).status_code == 413
    assert api.post("/api/search", json={"q": "x" * 100_000}).status_code == 413
    fits = {"q": QUESTION, "where": {"x": "y" * (MAX_BODY_BYTES - 100)}}
    assert api.post("/api/search", json=fits).json() == {"hits": []}  # no such field: no hits


def test_a_bug_is_500_and_logs_its_traceback(
    saved: qa.Index, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("a bug, not the user's mistake")

    monkeypatch.setattr(saved.encoder, "encode_queries", broken)
    reply = _client(LiveIndex(saved)).get("/api/search", params={"q": QUESTION})
    assert reply.status_code == 500
    assert reply.json() == {"error": "internal error: a bug, not the user's mistake"}
    assert any(r.exc_info and "a bug" in str(r.exc_info[1]) for r in caplog.records)


# -- health, info, no index ------------------------------------------------------------


def test_health_and_info(api: TestClient, saved: qa.Index, capsys: pytest.CaptureFixture) -> None:
    assert api.get("/api/health").json() == {
        "status": "ok",
        "documents": 3,
        "passages": 3,
        "model": "fake-bow",
    }
    info = api.get("/api/info").json()
    assert info == summary(saved.path)  # what `semantic-qa info` shows
    assert cli(["info", str(saved.path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == info
    in_memory = _client(LiveIndex(qa.build_index(TINY, model=FakeEncoder())))
    reply = in_memory.get("/api/info")
    assert reply.status_code == 404 and "not saved in a folder" in reply.json()["error"]


def test_no_index_is_503_saying_how_to_build_one() -> None:
    live = LiveIndex(None, error="no index at /srv/idx: build it with: semantic-qa index ...")
    api = _client(live)
    for reply in (
        api.get("/api/search", params={"q": QUESTION}),
        api.post("/api/search", json={"q": QUESTION}),
        api.get("/api/health"),
        api.get("/api/info"),
    ):
        assert reply.status_code == 503
        assert reply.json() == {"error": live.missing_message()}
        assert reply.json()["error"].startswith("The index cannot be opened: no index at")


def test_unknown_routes_and_methods_answer_in_json(api: TestClient) -> None:
    assert api.get("/api/nothing").status_code == 404
    assert api.get("/api/nothing").json() == {"error": "Not Found"}
    assert api.delete("/api/search").status_code == 405
    assert api.delete("/api/search").json() == {"error": "Method Not Allowed"}


# -- the password ----------------------------------------------------------------------

AUTH = ("alice", "s3cret:pässwörd")  # a colon and non-ASCII letters, as the form allows


def _basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@pytest.mark.parametrize(
    "path", ["/api/search?q=Moon", "/api/health", "/api/info", "/api/openapi.json", "/api/docs"]
)
@pytest.mark.parametrize(
    "headers",
    [
        {},
        _basic("alice", "wrong"),
        _basic("mallory", AUTH[1]),
        _basic("alice", AUTH[1][:-1]),
        _basic("", ""),
        {"Authorization": "Basic not-base64!"},
        {"Authorization": "Bearer " + base64.b64encode(b"alice:x").decode()},
        {"Authorization": "Basic " + base64.b64encode(b"no colon").decode()},
    ],
    ids=["none", "wrong", "user", "short", "empty", "garbage", "bearer", "nocolon"],
)
def test_with_a_password_every_route_asks_for_it(saved: qa.Index, path: str, headers: dict) -> None:
    reply = _client(LiveIndex(saved), auth=AUTH).get(path, headers=headers)
    assert reply.status_code == 401
    assert reply.headers["www-authenticate"] == 'Basic realm="semantic-qa", charset="UTF-8"'
    assert "asks for a user name and password" in reply.json()["error"]
    assert AUTH[1] not in reply.text


def test_with_the_password_every_route_answers(saved: qa.Index) -> None:
    api = _client(LiveIndex(saved), auth=AUTH)
    for path in ("/api/search?q=Moon", "/api/health", "/api/info", "/api/openapi.json"):
        assert api.get(path, headers=_basic(*AUTH)).status_code == 200, path
    assert api.get("/api/search?q=Moon", headers=_basic(" alice ", AUTH[1])).status_code == 200
    assert api.get("/api/search?q=Moon", auth=AUTH).json()["hits"][0]["doc_id"] == "space"


# -- the schema and the docs page -------------------------------------------------------


def test_openapi_lists_exactly_the_routes(api: TestClient, saved: qa.Index) -> None:
    schema = api.get("/api/openapi.json").json()
    assert schema["servers"] == [{"url": "/api"}]
    assert {path: sorted(ops) for path, ops in schema["paths"].items()} == {
        "/search": ["get", "post"],
        "/health": ["get"],
        "/info": ["get"],
    }
    search = schema["paths"]["/search"]
    assert [p["name"] for p in search["get"]["parameters"]] == ["q", "k", "mode", "ranker"]
    assert set(search["get"]["responses"]) == {"200", "400", "401", "413", "503"}
    hit = search["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    properties = hit["properties"]["hits"]["items"]["properties"]
    assert list(properties) == list(_python_hits(saved, QUESTION, 1)[0])
    assert "securitySchemes" not in schema.get("components", {})
    locked = _client(LiveIndex(saved), auth=AUTH).get("/api/openapi.json", auth=AUTH).json()
    assert locked["security"] == [{"basic": []}]


def test_the_docs_page_loads_nothing_from_elsewhere(api: TestClient) -> None:
    page = api.get("/api/docs")
    assert page.status_code == 200 and "SwaggerUIBundle" in page.text
    urls = re.findall(r"""(?:src|href)=["']([^"']+)|url: '([^']+)'""", page.text)
    urls = [a or b for a, b in urls]
    assert sorted(urls) == [
        "/api/docs/favicon-32x32.png",
        "/api/docs/swagger-ui-bundle.js",
        "/api/docs/swagger-ui.css",
        "/api/openapi.json",
    ]
    assert '"validatorUrl": null' in page.text  # no badge from the online validator
    assert not re.search(r"https?:|//", page.text)  # no other host, not even a link
    for url in urls[:3]:
        reply = api.get(url)
        assert reply.status_code == 200 and len(reply.content) > 100, url
    assert api.get("/api/docs/index.html").status_code == 404  # its demo loads the internet


# -- on a real server, beside the form -------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def locked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, qa.Index]]:
    """The form and the API over one index, with a password, on 127.0.0.1."""
    index = qa.build_index(TINY, tmp_path_factory.mktemp("api") / "index", model=FakeEncoder())
    app = build_app(index)
    port = _free_port()
    launch(app, port=port, auth=AUTH, prevent_thread_lock=True, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}", index
    finally:
        app.close()


def test_the_api_is_served_beside_the_form_with_its_password(
    locked: tuple[str, qa.Index],
) -> None:
    url, index = locked
    for path in ("/api/search?q=Moon", "/api/health", "/api/docs", "/config"):
        assert httpx.get(url + path).status_code == 401, path  # the API as the form
    assert httpx.get(url + "/api/search?q=Moon", auth=("alice", "wrong")).status_code == 401
    got = httpx.get(url + "/api/search", params={"q": "Apollo 11 landing", "k": 2}, auth=AUTH)
    gradio = Client(url + "/", auth=AUTH, verbose=False)
    form = gradio.predict("Apollo 11 landing", 2, api_name="/search")
    assert got.json()["hits"] == form == _python_hits(index, "Apollo 11 landing", 2)
    # the form's login cookie is the form's; the API asks for the same user and password
    session = httpx.Client(base_url=url)
    assert session.post("/login", data={"username": AUTH[0], "password": AUTH[1]}).is_success
    assert session.get("/config").status_code == 200
    assert session.get("/api/health").status_code == 401  # HTTP Basic, not the cookie
    assert session.get("/api/health", auth=AUTH).json()["passages"] == 3


def test_the_api_searches_what_the_form_uploads(tmp_path: Path) -> None:
    live = LiveIndex(qa.build_index(TINY, tmp_path / "index", model=FakeEncoder()))
    app = build_app(live)
    port = _free_port()
    launch(app, port=port, prevent_thread_lock=True, quiet=True)
    url = f"http://127.0.0.1:{port}"
    try:
        from .form_client import FormClient

        status = FormClient(url).add_articles({"ice.md": b"# Ice\n\nGlaciers melt slowly."})
        assert "Added 1 article(s)" in status
        hits = httpx.get(url + "/api/search", params={"q": "glaciers melt", "k": 1}).json()
        assert hits["hits"][0]["doc_id"] == "ice.md"
        assert httpx.get(url + "/api/health").json()["documents"] == 4
        assert httpx.get(url + "/api/info").json()["documents"] == 4
    finally:
        app.close()


# -- what `semantic-qa serve` says when it starts ---------------------------------------


def test_start_message_says_where_and_how_to_change_it() -> None:
    text = start_message("127.0.0.1", 7860, None)
    question = urllib.parse.quote_plus("When was the Bled Strategic Forum established?")
    assert text.splitlines()[:4] == [
        "semantic-qa is serving on http://127.0.0.1:7860/",
        "  the form:     http://127.0.0.1:7860/",
        f"  the JSON API: http://127.0.0.1:7860/api/search?q={question}&k=3",
        "  API docs:     http://127.0.0.1:7860/api/docs",
    ]
    assert "--host 0.0.0.0" in text and "--port PORT" in text
    assert "--auth USER:PASSWORD (or SEMANTIC_QA_AUTH=USER:PASSWORD)" in text
    assert "share" not in text
    wide = start_message("0.0.0.0", 8080, ("bob", "hunter2"))
    assert "http://127.0.0.1:8080/" in wide and "Listening on 0.0.0.0" in wide
    assert "log in on the form as bob" in wide and "curl -u bob:PASSWORD" in wide
    assert "hunter2" not in wide
    assert "http://[::1]:7860/api/docs" in start_message("::1", 7860, None)


def test_semantic_qa_serve_prints_its_own_start_up_lines(tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SEMANTIC_QA_AUTH": ""}
    command = [sys.executable, "-m", "qa.cli", "serve", "--index", str(tmp_path / "none")]
    command += ["--port", str(port), "--upload-dir", str(tmp_path / "uploads")]
    server = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: list[str] = []
    try:
        assert server.stdout is not None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (lines and lines[-1].startswith("Press")):
            line = server.stdout.readline()
            if not line:
                break
            lines.append(line.rstrip("\n"))
        text = "\n".join(lines)
        assert f"semantic-qa is serving on http://127.0.0.1:{port}/" in text, text
        assert f"API docs:     http://127.0.0.1:{port}/api/docs" in text
        assert "--host 0.0.0.0" in text and "--auth USER:PASSWORD" in text
        assert "share=True" not in text and "public link" not in text
        # it is up when it says so; without an index the API says how to build one
        reply = httpx.get(f"http://127.0.0.1:{port}/api/health")
        assert reply.status_code == 503 and "semantic-qa index" in reply.json()["error"]
    finally:
        server.terminate()
        rest = server.communicate(timeout=30)[0]
    assert "share=True" not in rest and "public link" not in rest
