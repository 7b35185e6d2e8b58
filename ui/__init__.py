"""The Gradio web form over a semantic-qa index.

>>> from ui import build_app, launch
>>> launch(build_app(qa.load_index("data/index")), port=7860)  # doctest: +SKIP
"""

from __future__ import annotations

from embeddings.models import no_match_threshold

from .app import EXAMPLES, build_app, launch, serve
from .handlers import LiveIndex, search_hits
from .render import render_hits

__all__ = [
    "EXAMPLES",
    "LiveIndex",
    "build_app",
    "launch",
    "no_match_threshold",
    "render_hits",
    "search_hits",
    "serve",
]
