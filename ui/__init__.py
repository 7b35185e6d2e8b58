"""The Gradio web form over a semantic-qa index.

>>> from ui import build_app, launch
>>> launch(build_app(qa.load_index("data/index")), port=7860)  # doctest: +SKIP
"""

from __future__ import annotations

from .app import EXAMPLES, build_app, launch, serve
from .handlers import NO_MATCH_BELOW, LiveIndex, search_hits
from .render import render_hits

__all__ = [
    "EXAMPLES",
    "NO_MATCH_BELOW",
    "LiveIndex",
    "build_app",
    "launch",
    "render_hits",
    "search_hits",
    "serve",
]
