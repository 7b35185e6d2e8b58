from __future__ import annotations

import socket

import gradio as gr
import pytest

import qa
from ui import build_app, render_hits, search_hits


def test_handlers_without_server(tiny_index: qa.Index) -> None:
    hits = search_hits(tiny_index, "Where does the Danube flow?", 2)
    assert hits == [h.to_dict() for h in tiny_index.search("Where does the Danube flow?", 2)]
    with pytest.raises(gr.Error, match="question is empty"):
        search_hits(tiny_index, "  ", 5)


def test_rendering_escapes_article_text() -> None:
    hit = qa.Hit(
        "p", "d", "<b>Title</b>", "s.txt", 0, 30, "<script>alert(1)</script><img onerror=x>", 0.5, 1
    )
    page = render_hits([hit.to_dict()])
    assert "<script>" not in page and "<img" not in page and "<b>Title" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_http_api_returns_hit_dicts(tiny_index: qa.Index) -> None:
    from gradio_client import Client

    app = build_app(tiny_index)
    port = _free_port()
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        result = client.predict("Apollo 11 landing", 2, api_name="/search")
        assert result == [h.to_dict() for h in tiny_index.search("Apollo 11 landing", 2)]
        assert result[0]["doc_id"] == "space"
        assert list(client.view_api(return_format="dict", print_info=False)["named_endpoints"]) == [
            "/search"
        ]
    finally:
        app.close()
