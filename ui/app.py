"""The web form: a question box over an index, and the `/search` HTTP API.

>>> app = build_app(qa.load_index("data/index"))   # doctest: +SKIP
>>> app.launch(server_name="127.0.0.1")             # doctest: +SKIP
"""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr

from qa import Index, QAError
from qa.search import open_index


def search_hits(index: Index, question: str, k: int = 5) -> list[dict[str, Any]]:
    """The API's answer: the same list of `Hit.to_dict()` as `qa.search` and the CLI."""
    try:
        return [hit.to_dict() for hit in index.search(question, k=int(k))]
    except QAError as err:
        raise gr.Error(str(err)) from err


def render_hits(hits: list[dict[str, Any]]) -> str:
    """Hits as HTML; article text is untrusted, so every piece of it is escaped."""
    if not hits:
        return "<p>No passages found.</p>"
    parts = []
    for h in hits:
        parts.append(
            '<div class="hit">'
            f"<h4>{h['rank']}. {html.escape(h['title'])} "
            f"<small>(score {h['score']:.3f} · {html.escape(h['source'])})</small></h4>"
            f"<p>{html.escape(h['text'])}</p></div>"
        )
    return "\n".join(parts)


def build_app(index: Index, *, title: str = "semantic-qa") -> gr.Blocks:
    """The Gradio app over `index`; importable and testable without a server."""

    def ask(question: str, k: float) -> tuple[str, list[dict[str, Any]]]:
        hits = search_hits(index, question, int(k))
        return render_hits(hits), hits

    def api_search(question: str, k: float = 5) -> list[dict[str, Any]]:
        return search_hits(index, question, int(k))

    with gr.Blocks(title=title, analytics_enabled=False) as app:
        gr.Markdown(f"# {html.escape(title)}\nAsk a question about the indexed articles.")
        with gr.Row():
            question = gr.Textbox(label="Question", scale=4, autofocus=True)
            k = gr.Slider(1, 20, value=5, step=1, label="Passages to show", scale=1)
        button = gr.Button("Ask", variant="primary")
        results = gr.HTML()
        raw = gr.JSON(visible=False)
        for trigger in (button.click, question.submit):
            trigger(ask, [question, k], [results, raw], api_visibility="private")
        gr.api(api_search, api_name="search")
    return app


def serve(
    index_path: str | Path | None = None, *, host: str = "127.0.0.1", port: int = 7860
) -> None:
    """Load the index and serve the form until interrupted."""
    index = open_index(index_path)
    build_app(index).launch(server_name=host, server_port=port, show_error=True)
