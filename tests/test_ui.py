"""The web form's handlers (no server), its HTTP API (a real server on 127.0.0.1)."""

from __future__ import annotations

import html
import json
import logging
import re
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import gradio as gr
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

import qa
import ui
from embeddings import DEFAULT_ENCODER, encoder_name
from embeddings.models import NO_MATCH_BELOW, no_match_threshold
from qa.cli import main as cli
from qa.store import DocumentInfo
from ui import EXAMPLES, LiveIndex, build_app, launch, render_hits, search_hits
from ui.render import highlighted

from .conftest import ARTICLES, TINY, FakeEncoder


def _hit(text: str = "First one. Second one.", **extra: object) -> dict:
    hit = qa.Hit("p", "d", "Title", "s.txt", 100, 100 + len(text), text, 0.5, 1).to_dict()
    return {**hit, **extra}


def test_handlers_without_server(tiny_index: qa.Index) -> None:
    hits = search_hits(tiny_index, "Where does the Danube flow?", 2)
    assert hits == [h.to_dict() for h in tiny_index.search("Where does the Danube flow?", 2)]
    with pytest.raises(gr.Error, match="question is empty"):
        search_hits(tiny_index, "  ", 5)


def test_ask_renders_rank_score_title_source_and_answer(tiny_index: qa.Index) -> None:
    page, hits = LiveIndex(tiny_index, threshold=0.0).ask("Where does the Danube flow?", 2)
    assert [h["id"] for h in hits] == [
        h.id for h in tiny_index.search("Where does the Danube flow?", 2)
    ]
    assert hits[0]["doc_id"] == "rivers"
    card = page.split('<div class="hit')[1]
    assert card.startswith(' " data-rank="1"') or 'data-rank="1"' in card
    assert "1. Rivers" in card and f"{hits[0]['score']:.3f}" in card
    assert "cosine similarity" in page  # how to read the score
    marked = re.search(r'<mark class="answer">(.*?)</mark>', card)
    assert marked is not None
    text, start, end = hits[0]["text"], hits[0]["answer_start"], hits[0]["answer_end"]
    assert 0 <= start < end <= len(text)  # the offsets retrieval gives, used as given
    assert marked.group(1) == text[start:end] == "The Danube flows through Vienna."


@pytest.mark.parametrize(
    ("question", "message"),
    [
        ("x" * 5000, "question is 5,000 characters long, the limit is 2,000"),
        ("Danube\x1b[2J?", "U+001B (control character) at position 6"),
    ],
)
def test_bad_question_in_the_form_says_why(
    tiny_index: qa.Index, question: str, message: str
) -> None:
    page, hits = LiveIndex(tiny_index).ask(question, 5)
    assert hits == [] and page.startswith('<div class="notice error">') and message in page


@pytest.mark.parametrize("k", ["abc", None, float("nan"), [3]])
def test_a_forged_k_in_the_form_falls_back_to_the_default(tiny_index: qa.Index, k) -> None:
    assert len(LiveIndex(tiny_index).ask("Danube Moon cats", k)[1]) == 3  # all 3 passages


@pytest.mark.parametrize("question", ["", "   ", "\n\t"])
def test_empty_question_gets_a_friendly_message(tiny_index: qa.Index, question: str) -> None:
    page, hits = LiveIndex(tiny_index).ask(question, 5)
    assert hits == [] and "Type a question first" in page and 'class="hit' not in page


def test_passages_to_show_is_kept_between_1_and_20(fake: FakeEncoder) -> None:
    docs = [qa.Document(f"d{i}", f"Article {i} is about topic {i}.", f"T{i}") for i in range(30)]
    live = LiveIndex(qa.build_index(docs, model=fake))
    assert len(live.ask("topic article", 50)[1]) == 20
    assert len(live.ask("topic article", 0)[1]) == 5  # the control's default
    assert len(live.ask("topic article", 3)[1]) == 3


def test_highlight_uses_offsets_not_a_text_search() -> None:
    text = "Same words. Same words. Other."
    page = render_hits([_hit(text, answer_start=12, answer_end=23)])
    assert 'Same words. <mark class="answer">Same words.</mark> Other.' in page
    # offsets out of range are clamped; an empty or missing span marks nothing
    assert highlighted("abc", -5, 99) == '<mark class="answer">abc</mark>'
    assert highlighted("abc", 2, 2) == "abc" and highlighted("a<b", None, None) == "a&lt;b"


def test_hits_with_answer_offsets_from_retrieval_are_used_as_given(tiny_index: qa.Index) -> None:
    hit = tiny_index.search("Moon", 1)[0]
    given = {**hit.to_dict(), "answer_start": 0, "answer_end": 4}
    assert f'<mark class="answer">{hit.text[:4]}</mark>' in render_hits([given])


def test_no_good_match_says_so_and_still_shows_the_closest(tiny_index: qa.Index) -> None:
    strict = LiveIndex(tiny_index, threshold=0.99)
    page, hits = strict.ask("Where does the Danube flow?", 3)
    assert "The articles do not seem to answer this" in page
    assert len(hits) == 3 and page.count('class="hit weak"') == 3
    assert "low: probably not about your question" in page
    page, _ = LiveIndex(tiny_index, threshold=0.1).ask("Where does the Danube flow?", 3)
    assert "do not seem to answer" not in page


@pytest.fixture(scope="module")
def torch_sample_index() -> qa.Index:
    """The bundled articles indexed with the torch encoder, as indexes built before
    ONNX int8 became the default are (passage vectors only: closeness uses those)."""
    from embeddings import load_encoder

    return qa.build_index([ARTICLES], model=load_encoder(backend="torch"), sentences=False)


@pytest.mark.model
@pytest.mark.parametrize("backend", ["onnx-int8", "torch"])
def test_no_match_threshold_on_the_bundled_articles(request, backend: str) -> None:
    index = request.getfixturevalue("torch_sample_index" if backend == "torch" else "sample_index")
    assert index.encoder.name == encoder_name(backend=backend)
    live = LiveIndex(index)  # the threshold measured for this encoder
    assert live.threshold_for(index) == NO_MATCH_BELOW[index.encoder.name]
    for question in EXAMPLES:
        page, hits = live.ask(question, 5)
        assert "do not seem to answer" not in page, (question, hits[0]["score"])
    for question in ["What is the boiling point of liquid nitrogen?", "How do I bake sourdough?"]:
        page, hits = live.ask(question, 5)
        assert "The articles do not seem to answer this" in page, (question, hits[0]["score"])
        assert len(hits) == 5  # the closest passages are still there to look at


# 7 words, one of them the question's: the fake encoder's closeness is 1/sqrt(7) = 0.378,
# between torch's threshold (0.37) and ONNX int8's (0.39)
GLACIERS = qa.Document("g", "Glaciers carve deep valleys across northern mountains", "Ice")


@pytest.mark.parametrize(
    ("encoder", "warned"),
    [
        ("all-MiniLM-L6-v2", False),  # torch
        ("all-MiniLM-L6-v2@onnx-int8", True),
        ("all-MiniLM-L6-v2@onnx-fp32", False),  # torch's vectors, torch's threshold
        ("fake-bow", True),  # not measured: the default encoder's value
    ],
)
def test_the_no_match_threshold_follows_the_index_encoder(encoder: str, warned: bool) -> None:
    index = qa.build_index([GLACIERS], model=FakeEncoder(name=encoder), cache=False)
    live = LiveIndex(index)
    assert live.threshold_for(index) == no_match_threshold(encoder)
    assert no_match_threshold(encoder) == NO_MATCH_BELOW.get(
        encoder, NO_MATCH_BELOW[DEFAULT_ENCODER]
    )
    page, hits = live.ask("Glaciers?", 1)
    assert "Closeness of the best passage: <b>0.38</b>" in page and len(hits) == 1
    assert ("The articles do not seem to answer this" in page) is warned
    assert "do not seem to answer" not in LiveIndex(index, threshold=0.3).ask("Glaciers?", 1)[0]


NASTY = [
    "<script>alert(1)</script>",
    '<img src=x onerror="alert(2)">',
    '<a href="javascript:alert(3)">click</a>',
    "[click me](javascript:alert(4)) **bold** ![img](http://example.com/x.png)",
    "<iframe src=//example.com></iframe><style>body{display:none}</style>",
    "</div></details><div onmouseover=alert(5)>",
]


@pytest.mark.parametrize("nasty", NASTY)
def test_article_text_is_escaped_everywhere(fake: FakeEncoder, nasty: str) -> None:
    docs = [
        qa.Document("a", f"Volcano Etna erupts. {nasty}\n\nEtna is in Sicily. {nasty}", nasty),
        qa.Document("b", f"{nasty} Rivers flow. Etna volcano ash.", "B", source=nasty),
    ]
    index = qa.build_index(docs, model=fake, settings=qa.SplitSettings(target_tokens=8))
    page, hits = LiveIndex(index, threshold=0.0).ask("Etna volcano", 20)
    assert len(hits) > 2 and "Show in the article" in page
    for tag in ("<script", "<img", "<a ", "<iframe", "<style", "<div onm"):
        assert tag not in page
    assert f"<h4>1. {html.escape(nasty)}</h4>" in page or html.escape(nasty) in page
    assert f'<span class="source">{html.escape(nasty)}</span>' in page  # as text
    # the page's own markup stays balanced: nothing in the article closed it early
    assert page.count("<details>") == page.count("</details>") == len(hits)


def test_show_in_article_gives_the_neighbouring_text(fake: FakeEncoder) -> None:
    text = "Alpha one is first. Beta two is second.\n\nGamma three is third. Delta four ends."
    pieces = ["Alpha one is first.", "Beta two is second.", "Gamma three is third."]
    pieces += ["Delta four ends.", "is second.\n\nGamma three"]  # the last overlaps two
    spans = [(text.index(t), text.index(t) + len(t)) for t in pieces]
    passages = [qa.Passage(f"p{i}", "d", s, e, text[s:e]) for i, (s, e) in enumerate(spans)]
    info = {"d": DocumentInfo("d", "D", "d.txt", "x")}
    index = qa.Index(fake, passages, fake.encode_documents(pieces), info, qa.SplitSettings())
    live = LiveIndex(index)
    hit = {p.id: {"id": p.id, "doc_id": "d", "start": p.start, "end": p.end} for p in passages}
    # article order: p0, p1, p4 (overlapping p1 and p2), p2, p3
    assert live.context(index, hit["p0"]) == ("", "\nBeta two is second.")
    assert live.context(index, hit["p1"]) == ("Alpha one is first.\n", "\n\nGamma three")
    assert live.context(index, hit["p4"]) == ("Beta two ", " is third.")
    assert live.context(index, hit["p2"]) == ("is second.\n\n", "\nDelta four ends.")
    assert live.context(index, hit["p3"]) == ("Gamma three is third.\n", "")
    assert live.context(index, {**hit["p0"], "id": "gone"}) == ("", "")


def test_missing_index_explains_how_to_build_it() -> None:
    error = "no index at /srv/idx: build it with: semantic-qa index ARTICLES... --out /srv/idx"
    live = LiveIndex(None, error=error)
    page, hits = live.ask("Anything?", 5)
    assert hits == []
    assert page.startswith('<div class="notice error">The index cannot be opened: no index at')
    assert "then restart `semantic-qa serve` (`make run` does both" in page
    with pytest.raises(gr.Error, match="The index cannot be opened: no index at /srv/idx"):
        live.search("Anything?", 5)
    assert "The index cannot be opened" in live.upload(["x.txt"])
    assert (
        "There is no index to search: build one with `semantic-qa index"
        in (LiveIndex(None).ask("Anything?", 5)[0])
    )
    assert isinstance(build_app(None, error="no index"), gr.Blocks)


def test_serve_with_a_broken_index_still_serves_a_page(tmp_path: Path, monkeypatch) -> None:
    served: dict = {}
    monkeypatch.setattr(ui.app, "launch", lambda app, **kw: served.update(app=app, **kw))
    monkeypatch.setenv("GRADIO_TEMP_DIR", "")  # serve sets it: undone after the test
    ui.serve(tmp_path / "nothing-here", port=1234, max_upload_mb=2)
    assert isinstance(served["app"], gr.Blocks)
    assert served["host"] == "127.0.0.1" and served["port"] == 1234
    assert served["max_upload_mb"] == 2


def test_cli_serve_rejects_a_bad_upload_limit(capsys) -> None:
    assert cli(["serve", "--max-upload-mb", "0"]) == 1
    assert "--max-upload-mb must be above 0, got 0.0" in capsys.readouterr().err


# -- uploads -------------------------------------------------------------------------


@pytest.fixture
def saved(tmp_path: Path, fake: FakeEncoder) -> qa.Index:
    return qa.build_index(TINY, tmp_path / "idx", model=fake)


def _files(tmp_path: Path, **named: bytes | str) -> list[str]:
    folder = tmp_path / "upload"
    folder.mkdir(exist_ok=True)
    out = []
    for name, data in named.items():
        path = folder / name.replace("__", ".")
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        out.append(str(path))
    return out


def test_upload_adds_articles_that_are_searchable_at_once(tmp_path: Path, saved) -> None:
    live = LiveIndex(saved, threshold=0.0)
    calls: list = []
    jsonl = "\n".join(
        json.dumps({"id": f"j{i}", "title": f"Glacier {i}", "text": f"Glacier {i} melts slowly."})
        for i in range(2)
    )
    files = _files(
        tmp_path, volcano__md="# Volcanoes\n\nEtna erupts often in Sicily.", more__jsonl=jsonl
    )
    status = live.upload(files, lambda *a, **kw: calls.append((a, kw)))
    assert "Added 3 article(s)" in status and "searchable now" in status
    assert "“Volcanoes”" in status and "6 articles in the index" in status
    assert calls and calls[0][1]["desc"].startswith("Reading")
    page, hits = live.ask("Etna erupts in Sicily", 1)
    assert hits[0]["doc_id"] == "volcano.md" and hits[0]["source"] == "uploaded: volcano.md"
    assert "Volcanoes" in page
    assert len(qa.load_index(saved.path, model=saved.encoder).documents) == 6  # saved too


@pytest.mark.parametrize(
    ("named", "message"),
    [
        ({"a__odt": b"PK\x03\x04"}, "unknown article type '.odt'"),
        ({"a__pdf": b"%PDF-1.4"}, "a.pdf: the PDF is truncated"),
        ({"a__docx": b"not a zip"}, "a.docx: not a Word file"),
        ({"a__txt": b"\x00\x01\x02"}, "a.txt: looks like a binary file"),
        ({"a__txt": "  \n"}, "a.txt: article is empty"),
        ({"a__jsonl": '{"id": "x", "text": "ok"}\n{broken'}, "a.jsonl"),
        ({"ok__txt": "Fine text.", "a__txt": b"\x00"}, "a.txt: looks like a binary file"),
        ({"cats__txt": "New cats."}, None),  # same name as an indexed article: see below
        ({"big__txt": "x" * 2_000_000}, "big.txt is 1.9 MB, over the upload limit of 1 MB"),
    ],
)
def test_bad_upload_is_refused_and_the_index_unchanged(
    tmp_path: Path, saved, fake: FakeEncoder, named: dict, message: str | None
) -> None:
    index = qa.build_index(
        [*TINY, qa.Document("cats.txt", "Cats again.", "C")], saved.path, model=fake
    )
    live = LiveIndex(index, max_upload_mb=1)
    before = sorted(p.read_bytes() for p in saved.path.iterdir())
    status = live.upload(_files(tmp_path, **named))
    assert status.startswith('<div class="notice error">Not added: ')
    assert "The index is unchanged." in status
    assert message is None or html.escape(message) in status
    assert str(tmp_path) not in status  # names the file, not the server's folder
    if message is None:
        assert "article id &#x27;cats.txt&#x27; is already in the index" in status
    assert live.index is index and len(index.documents) == 4
    assert sorted(p.read_bytes() for p in saved.path.iterdir()) == before


def test_upload_messages_escape_file_names_and_titles(tmp_path: Path, saved) -> None:
    live = LiveIndex(saved)
    status = live.upload(
        _files(tmp_path, **{"x<img src=y onerror=alert(1)>__md": "# <b>T</b>\n\nBody text."})
    )
    assert "Added 1 article(s)" in status
    assert "<img" not in status and "<b>" not in status and "&lt;b&gt;T&lt;/b&gt;" in status
    status = live.upload(_files(tmp_path, **{"<script>x__pdf": "x"}))
    assert "<script>" not in status and "&lt;script&gt;x.pdf" in status


def test_nothing_chosen_asks_for_files(saved) -> None:
    assert "Choose one or more article files (.docx, .htm, .html" in LiveIndex(saved).upload(None)


# -- the HTTP API --------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class BuggyEncoder(FakeEncoder):
    """The fake encoder with a bug: a question holding "explode" breaks it."""

    def encode_queries(self, texts):
        if any("explode" in t for t in texts):
            raise RuntimeError("a bug, not the user's mistake")
        return super().encode_queries(texts)


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[str, qa.Index]]:
    """The form over a tiny index, served on 127.0.0.1 for this module's API tests."""
    index = qa.build_index(TINY, model=BuggyEncoder())
    app = build_app(index)
    port = _free_port()
    launch(app, host="127.0.0.1", port=port, max_upload_mb=2, prevent_thread_lock=True, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/", index
    finally:
        app.close()


def test_http_api_returns_hit_dicts(served: tuple[str, qa.Index]) -> None:
    url, index = served
    with urllib.request.urlopen(f"{url}config", timeout=30) as page:
        assert json.load(page)["max_file_size"] == 2 * 1024 * 1024  # enforced by the server
    client = Client(url, verbose=False)
    result = client.predict("Apollo 11 landing", 2, api_name="/search")
    assert result == [h.to_dict() for h in index.search("Apollo 11 landing", 2)]
    assert result[0]["doc_id"] == "space"
    assert client.predict("Apollo 11 landing", api_name="/search") == [
        h.to_dict() for h in index.search("Apollo 11 landing", 5)
    ]
    api = client.view_api(return_format="dict", print_info=False)
    assert list(api["named_endpoints"]) == ["/search"]
    assert api["unnamed_endpoints"] == {}
    with pytest.raises(Exception, match="question is empty"):
        client.predict("  ", 2, api_name="/search")


REFUSED = [
    ("x" * 5000, 2, "question is 5,000 characters long, the limit is 2,000: ask a shorter"),
    ("Danube\x1b[2J?", 2, "question holds a character that is not text, U+001B (control"),
    (["<b>not</b>", "a & b"], 2, "question must be a string, got list: ['<b>not</b>', 'a & b']"),
    ('Where does the "Danube" flow?', "<3>", "k must be an integer >= 1, got str: '<3>'"),
    ("Where does the Danube flow?", 101, "k must be at most 100, got 101"),
]


@pytest.mark.parametrize(("question", "k", "message"), REFUSED, ids=range(len(REFUSED)))
def test_http_api_refusals_are_plain_text_logged_in_one_line_without_traceback(
    served: tuple[str, qa.Index], capfd, caplog, question: object, k: object, message: str
) -> None:
    url, _ = served
    caplog.set_level(logging.INFO, logger="ui")
    capfd.readouterr()
    with pytest.raises(AppError) as err:
        Client(url, verbose=False).predict(question, k, api_name="/search")
    # the client gets the message as it is, not HTML: `>=`, `<`, `&` and quotes stay themselves
    reason = str(err.value)
    assert reason.startswith(message) and "&lt;" not in reason and "&gt;" not in reason
    refused = [r for r in caplog.records if r.name == "ui.handlers"]
    assert [(r.levelno, r.getMessage(), r.exc_info) for r in refused] == [
        (logging.INFO, f"refused an API request: {reason[:300]}", None)
    ]
    assert "Traceback" not in capfd.readouterr().err  # a user's mistake, not a bug


def test_http_api_bugs_still_log_a_traceback(served: tuple[str, qa.Index], capfd) -> None:
    url, _ = served
    capfd.readouterr()
    client = Client(url, verbose=False)
    with pytest.raises(AppError, match="a bug, not the user's mistake"):
        client.predict("Why does it explode?", 2, api_name="/search")
    err = capfd.readouterr().err
    assert "Traceback" in err and "RuntimeError: a bug, not the user's mistake" in err
    assert client.predict("Apollo 11 landing", 1, api_name="/search")[0]["doc_id"] == "space"


def test_the_form_logs_a_refused_question_in_one_line(tiny_index: qa.Index, caplog) -> None:
    caplog.set_level(logging.INFO, logger="ui")
    page, _ = LiveIndex(tiny_index).ask("Danube <b>\x1b?", 3)
    assert page.startswith('<div class="notice error">question holds a character')
    assert [(r.levelno, r.exc_info) for r in caplog.records if r.name == "ui.handlers"] == [
        (logging.INFO, None)
    ]
