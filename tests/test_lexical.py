"""Lexical search: the tokenizer, BM25 through `Index.search(mode="lexical")`, and the
BM25 files saved, loaded and verified with the index."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import qa
from qa.lexical import LexicalIndex, tokenize

from .conftest import FakeEncoder

SHORT = [
    qa.Document("res", "The committee on resolution 1267 met again in spring.", "Sanctions"),
    qa.Document("osce", "Kazakhstan chaired the OSCE in 2010, a first in Asia.", "OSCE"),
    qa.Document("un", "The UN opened a regional centre in Ashgabat.", "UN"),
    qa.Document("vit", "Vitamin C and vitamin D keep bones and gums healthy.", "Vitamins"),
    qa.Document("filler", "The committee met in spring and in autumn in Asia.", "Filler"),
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Resolution 1267 of 1999", ["resolut", "1267", "1999"]),
        ("In 2010 the UN met", ["2010", "un", "met"]),
        ("Vitamin C, vitamin D", ["vitamin", "c", "vitamin", "d"]),
        ("What is the U.S. GDP?", ["u", "s", "gdp"]),
        ("Running studies", ["run", "studi"]),
        ("IT and 3D", ["it", "3d"]),
        ("the of and", []),
    ],
)
def test_tokenizer_keeps_numbers_and_short_words(text: str, expected: list[str]) -> None:
    assert tokenize(text) == expected


@pytest.mark.parametrize(
    ("question", "doc_id"),
    [
        ("resolution 1267", "res"),
        ("1267", "res"),
        ("What happened in 2010?", "osce"),
        ("2010", "osce"),
        ("Where did the UN open a centre?", "un"),
        ("UN", "un"),
        ("vitamin C", "vit"),
    ],
)
def test_numbers_years_and_short_tokens_are_searchable(
    fake: FakeEncoder, question: str, doc_id: str
) -> None:
    index = qa.build_index(SHORT, model=fake)
    best = index.search(question, k=1, mode="lexical")[0]
    assert best.doc_id == doc_id
    assert best.score > 0


def test_lexical_scores_match_a_bm25_oracle(fake: FakeEncoder) -> None:
    """Lucene BM25 (k1=1.2, b=0.75) computed by hand over the same tokens."""
    index = qa.build_index(SHORT, model=fake)
    docs = [tokenize(p.text) for p in index.passages]
    avg = sum(map(len, docs)) / len(docs)
    question = "committee met in spring 2010"
    expected = []
    for doc in docs:
        score = 0.0
        for term in set(tokenize(question)):
            df = sum(term in d for d in docs)
            tf = doc.count(term)
            idf = np.log(1 + (len(docs) - df + 0.5) / (df + 0.5))
            score += idf * tf / (tf + 1.2 * (1 - 0.75 + 0.75 * len(doc) / avg))
        expected.append(score)
    np.testing.assert_allclose(index.lexical.scores(question), expected, rtol=1e-5)
    hits = index.search(question, k=len(index), mode="lexical")
    assert [h.score for h in hits] == pytest.approx(sorted(expected, reverse=True), rel=1e-5)


def test_question_without_known_words_scores_zero(fake: FakeEncoder) -> None:
    index = qa.build_index(SHORT, model=fake)
    assert not index.lexical.scores("zzyzx qwerty").any()
    assert len(index.search("zzyzx qwerty", k=3, mode="lexical")) == 3


def test_bm25_files_roundtrip(fake: FakeEncoder) -> None:
    built = LexicalIndex.build(["The UN in 2010", "Rivers and seas"])
    again = LexicalIndex.from_files(built.to_files(), 2)
    np.testing.assert_array_equal(again.scores("UN 2010"), built.scores("UN 2010"))


def test_saved_index_keeps_bm25_and_gives_identical_lexical_results(
    tmp_path: Path, fake: FakeEncoder
) -> None:
    built = qa.build_index(SHORT, tmp_path / "idx", model=fake)
    manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    for part in ("bm25-params", "bm25-vocab", "bm25-data", "bm25-indices", "bm25-indptr"):
        entry = manifest["files"][part]
        assert (tmp_path / "idx" / entry["name"]).stat().st_size == entry["bytes"]
    assert not list((tmp_path / "idx").glob("*.pkl"))
    loaded = qa.load_index(tmp_path / "idx", model=fake)
    for question in ("1267", "UN centre", "vitamin C 2010"):
        for mode in ("lexical", "hybrid"):
            assert [h.to_dict() for h in loaded.search(question, 5, mode=mode)] == [
                h.to_dict() for h in built.search(question, 5, mode=mode)
            ]


@pytest.mark.parametrize("part", ["bm25-data", "bm25-vocab", "bm25-params"])
def test_tampered_bm25_file_raises(tmp_path: Path, fake: FakeEncoder, part: str) -> None:
    qa.build_index(SHORT, tmp_path / "idx", model=fake)
    manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    file = tmp_path / "idx" / manifest["files"][part]["name"]
    data = bytearray(file.read_bytes())
    data[-2] ^= 1
    file.write_bytes(bytes(data))
    with pytest.raises(qa.IndexCorruptError, match="does not match its checksum"):
        qa.load_index(tmp_path / "idx", model=fake)


def test_missing_bm25_file_raises(tmp_path: Path, fake: FakeEncoder) -> None:
    qa.build_index(SHORT, tmp_path / "idx", model=fake)
    next((tmp_path / "idx").glob("bm25-vocab-*.json")).unlink()
    with pytest.raises(qa.IndexCorruptError, match="bm25-vocab file .* is missing"):
        qa.load_index(tmp_path / "idx", model=fake)
