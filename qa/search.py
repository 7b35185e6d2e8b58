"""`qa.search()`: one call from a question to hits, over a saved index.

>>> from qa import search
>>> search("When did Kazakhstan chair the OSCE?", k=1)[0].doc_id   # doctest: +SKIP
'001_e4bdfdd46c2ed16b.txt'
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .hits import Hit
from .index import Index, load_index
from .query import check_k, check_question
from .store import MANIFEST

# The bundled sample index that `make run` builds; SEMANTIC_QA_INDEX overrides it.
PROJECT_ROOT = Path(__file__).resolve().parent.parent
BUNDLED_ARTICLES = PROJECT_ROOT / "data" / "articles"


def default_index_path() -> Path:
    return Path(os.environ.get("SEMANTIC_QA_INDEX") or PROJECT_ROOT / "data" / "index")


_cache: dict[Path, tuple[int, Index]] = {}
_cache_lock = threading.Lock()


def open_index(path: str | Path | None = None) -> Index:
    """A loaded index, reused while its manifest is unchanged on disk."""
    path = Path(path) if path is not None else default_index_path()
    try:
        stamp = (path / MANIFEST).stat().st_mtime_ns
    except OSError:
        stamp = -1  # load_index raises the precise error
    with _cache_lock:
        cached = _cache.get(path)
        if cached and cached[0] == stamp:
            return cached[1]
        index = load_index(path)
        _cache[path] = (stamp, index)
        return index


def search(
    question: str,
    k: int = 5,
    index: Index | str | Path | None = None,
    *,
    mode: str | None = None,
    where: Mapping[str, Any] | None = None,
    ranker: str | None = None,
) -> list[Hit]:
    """The `k` best passages for `question` from `index` (an `Index` or a saved
    index's folder; default: the bundled sample index). `mode`, `where` and `ranker`:
    as in `Index.search`."""
    question, k = check_question(question), check_k(k)
    target = index if isinstance(index, Index) else open_index(index)
    return target.search(question, k, mode=mode, where=where, ranker=ranker)
