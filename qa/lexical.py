"""Lexical search: BM25 (bm25s) over stemmed words, stored with the index.

The tokenizer keeps every word of one or more letters or digits: numbers, years and
short names ("1267", "2010", "UN", "X") are exactly what keyword search is for, so
unlike common defaults (bm25s and scikit-learn drop one-character tokens; scikit-learn
lists "un" as a stopword) nothing short is dropped except a small list of function
words and question words. Words are stemmed with Snowball (PyStemmer); tokens that
hold a digit are kept as they are.

>>> tokenize("When did the UN adopt resolution 1267 in 1999?")
['un', 'adopt', 'resolut', '1267', '1999']
>>> lex = LexicalIndex.build(["The UN Security Council", "Rivers of Europe"])
>>> lex.scores("UN council").round(2).tolist()                   # doctest: +SKIP
[0.93, 0.0]
"""

from __future__ import annotations

import functools
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import bm25s
import numpy as np

from .errors import IndexCorruptError

# Function words and the words questions are made of: frequent in questions, they
# carry no topic. Deliberately short: "us", "un", "it" as names must stay searchable
# ("US", "UN", "IT"), so only words that are never names are listed.
STOPWORDS = frozenset({
    "a", "an", "and", "are", "as", "at", "be", "been", "but", "by", "did", "do", "does",
    "for", "from", "had", "has", "have", "if", "in", "into", "is", "its", "no", "not",
    "of", "on", "or", "such", "than", "that", "the", "their", "then", "there", "these",
    "they", "this", "to", "was", "were", "will", "with", "what", "which", "who", "whom",
    "whose", "when", "where", "why", "how",
})  # fmt: skip
_WORD = re.compile(r"\w+")

# bm25s's own file names (BM25.save / BM25.load) -> the index's part names.
FILES = {
    "bm25-params": "params.index.json",
    "bm25-vocab": "vocab.index.json",
    "bm25-data": "data.csc.index.npy",
    "bm25-indices": "indices.csc.index.npy",
    "bm25-indptr": "indptr.csc.index.npy",
}


@functools.lru_cache(maxsize=1)
def _stemmer() -> Any:
    import Stemmer

    return Stemmer.Stemmer("english")


def tokenize(text: str) -> list[str]:
    """Lower-cased, stemmed words of `text`, stopwords removed; digits kept whole."""
    words = [w for w in _WORD.findall(text.lower()) if w not in STOPWORDS]
    stem = _stemmer().stemWord
    return [w if any(c.isdigit() for c in w) else stem(w) for w in words]


class LexicalIndex:
    """BM25 over a list of texts; `scores(question)` gives one score per text."""

    def __init__(self, bm25: bm25s.BM25, count: int):
        self.bm25 = bm25
        self.count = count

    @classmethod
    def build(cls, texts: Sequence[str], *, k1: float = 1.2, b: float = 0.75) -> LexicalIndex:
        """Index `texts` (k1, b: the usual BM25 parameters, Lucene's variant)."""
        bm25 = bm25s.BM25(k1=k1, b=b, method="lucene")
        if texts:
            bm25.index([tokenize(t) for t in texts], show_progress=False)
        return cls(bm25, len(texts))

    def scores(self, text: str) -> np.ndarray:
        """BM25 score of every indexed text for the words of `text` (float32, >= 0)."""
        if self.count == 0:
            return np.zeros(0, dtype=np.float32)
        ids = self.bm25.get_tokens_ids(tokenize(text))
        if not ids:
            return np.zeros(self.count, dtype=np.float32)
        return np.asarray(self.bm25.get_scores_from_ids(ids), dtype=np.float32)

    def idf(self, tokens: Sequence[str]) -> dict[str, float]:
        """BM25 inverse document frequency of each known token (unknown ones left out)."""
        if self.count == 0:
            return {}
        vocab, indptr = self.bm25.vocab_dict, self.bm25.scores["indptr"]
        out = {}
        for token in tokens:
            column = vocab.get(token)
            if column is not None and column + 1 < len(indptr):
                df = float(indptr[column + 1] - indptr[column])
                out[token] = float(np.log(1 + (self.count - df + 0.5) / (df + 0.5)))
        return out

    def to_files(self) -> dict[str, bytes]:
        """The index as bm25s writes it (.npy arrays and .json, no pickle), by part name."""
        with tempfile.TemporaryDirectory(prefix="semantic-qa-bm25-") as tmp:
            self.bm25.save(tmp, show_progress=False)
            return {part: (Path(tmp) / name).read_bytes() for part, name in FILES.items()}

    @classmethod
    def load(cls, files: dict[str, Path], count: int) -> LexicalIndex:
        """Open the files `to_files` gave, saved by part name in one folder (an index's,
        checked by the store): its arrays memory-mapped, not read."""
        folders = {Path(f).parent for f in files.values()}
        if len(folders) != 1 or set(files) != set(FILES):
            raise ValueError(f"BM25 files must be the parts {sorted(FILES)} in one folder")
        names = {f"{part[5:]}_name": Path(f).name for part, f in files.items()}
        folder = folders.pop()
        try:
            try:
                bm25 = bm25s.BM25.load(
                    folder, **names, mmap=True, allow_pickle=False, show_progress=False
                )
            except ValueError:  # what cannot be mapped: numpy says why without mapping
                bm25 = bm25s.BM25.load(folder, **names, allow_pickle=False, show_progress=False)
        except (ValueError, KeyError, OSError, EOFError) as err:  # e.g. a planted pickle
            raise IndexCorruptError(
                f"the BM25 part of the index cannot be read ({err}): rebuild the index "
                "with: semantic-qa index ARTICLES... --out DIR"
            ) from err
        return cls(bm25, count)

    @classmethod
    def from_files(cls, files: dict[str, bytes], count: int) -> LexicalIndex:
        """Load what `to_files` gave (already checksum-verified by the store)."""
        with tempfile.TemporaryDirectory(prefix="semantic-qa-bm25-") as tmp:
            for part, name in FILES.items():
                (Path(tmp) / name).write_bytes(files[part])
            try:
                bm25 = bm25s.BM25.load(tmp, allow_pickle=False, show_progress=False)
            except (ValueError, KeyError, OSError) as err:  # e.g. a planted pickle
                raise IndexCorruptError(
                    f"the BM25 part of the index cannot be read ({err}): rebuild the index "
                    "with: semantic-qa index ARTICLES... --out DIR"
                ) from err
        return cls(bm25, count)
