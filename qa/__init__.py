"""semantic-qa: ask questions of your own articles.

>>> import qa
>>> index = qa.build_index(["data/articles"], "data/index")      # doctest: +SKIP
>>> hit = qa.search("When did Kazakhstan chair the OSCE?")[0]    # doctest: +SKIP
>>> hit.title, hit.score                                         # doctest: +SKIP
"""

from __future__ import annotations

from .documents import Document, load_documents
from .errors import (
    DocumentError,
    DuplicateIdError,
    IndexCorruptError,
    IndexFormatError,
    IndexNotFoundError,
    IndexWriteError,
    InvalidInputError,
    ModelMismatchError,
    ModelNotFoundError,
    QAError,
)
from .hits import Hit
from .index import DEFAULT_MODE, MODES, Changes, Index, build_index, load_index, migrate
from .passages import Passage, SplitSettings, split_document
from .ranking import RANKERS
from .search import default_index_path, search
from .vectors import Params as VectorParams

__all__ = [
    "DEFAULT_MODE",
    "MODES",
    "RANKERS",
    "Changes",
    "Document",
    "DocumentError",
    "DuplicateIdError",
    "Hit",
    "Index",
    "IndexCorruptError",
    "IndexFormatError",
    "IndexNotFoundError",
    "IndexWriteError",
    "InvalidInputError",
    "ModelMismatchError",
    "ModelNotFoundError",
    "Passage",
    "QAError",
    "SplitSettings",
    "VectorParams",
    "build_index",
    "default_index_path",
    "load_documents",
    "load_index",
    "migrate",
    "search",
    "split_document",
]
