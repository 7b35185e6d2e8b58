"""The Gradio web form over a semantic-qa index."""

from __future__ import annotations

from .app import build_app, render_hits, search_hits, serve

__all__ = ["build_app", "render_hits", "search_hits", "serve"]
