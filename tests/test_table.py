"""The passage table (qa.table) and how an index stores and memory-maps it (qa.store)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import qa
from qa import store
from qa.table import ROW, Passages, text_hash
from qa.verify import verify

from .conftest import TINY, FakeEncoder

PASSAGES = [
    qa.Passage("a1", "a", 0, 11, "Cats purr. "),
    qa.Passage("a2", "a", 11, 20, "Ünïcode ✓"),
    qa.Passage("b1", "b", 4, 15, "cats   PURR."),
    qa.Passage("c1", "c", 0, 0, ""),
]


def test_a_table_gives_back_the_passages_it_was_made_of() -> None:
    table = Passages.of(PASSAGES)
    assert len(table) == 4 and list(table) == PASSAGES and table == PASSAGES
    assert table[1] == PASSAGES[1] and table[-1] == PASSAGES[-1] and table[1:3] == PASSAGES[1:3]
    assert table.text(1) == "Ünïcode ✓" and table.doc_id(2) == "b"
    assert table.doc_names == ["a", "b", "c"]
    with pytest.raises(IndexError):
        table[4]


def test_identical_texts_up_to_case_and_spacing_share_a_hash() -> None:
    table = Passages.of(PASSAGES)
    assert table.hashes[0] == table.hashes[2] == text_hash("cats purr.")
    assert len(set(table.hashes.tolist())) == 3


def test_gather_takes_rows_across_tables_in_the_order_given() -> None:
    first, second = Passages.of(PASSAGES[:2]), Passages.of(PASSAGES[2:])
    rows = np.array([3, 0, 2, 1])
    gathered = Passages.gather([first, second], rows)
    assert list(gathered) == [PASSAGES[r] for r in rows]
    assert gathered.hashes.tolist() == Passages.of(PASSAGES).hashes[rows].tolist()


def test_columns_that_do_not_fit_together_are_refused() -> None:
    table, texts, ids = Passages.of(PASSAGES).columns(np.arange(4), {"a": 0, "b": 1, "c": 2})
    assert (
        table.dtype == ROW and Passages.from_columns(table, texts, ids, ["a", "b", "c"]) == PASSAGES
    )
    with pytest.raises(ValueError, match="text offsets do not fit the 10-byte text file"):
        Passages.from_columns(table, texts[:10], ids, ["a", "b", "c"])
    with pytest.raises(ValueError, match="the index has 2"):
        Passages.from_columns(table, texts, ids, ["a", "b"])
    with pytest.raises(ValueError, match="not in the index: 'c'"):
        Passages.of(PASSAGES).columns(np.arange(4), {"a": 0, "b": 1})


def test_a_loaded_index_maps_its_files_and_searches_as_built(
    tmp_path: Path, fake: FakeEncoder
) -> None:
    built = qa.build_index(TINY, tmp_path / "idx", model=fake)
    loaded = qa.load_index(tmp_path / "idx", model=fake)
    assert loaded.passages == built.passages
    assert isinstance(loaded.vectors.base, np.memmap)
    assert isinstance(loaded.sentence_vectors.base, np.memmap)  # type: ignore[union-attr]
    for question in ("Where do cats sleep?", "rivers of Europe"):
        assert loaded.search(question, k=3) == built.search(question, k=3)


def test_a_large_file_is_checked_by_size_on_load_and_by_checksum_in_verify(
    tmp_path: Path, fake: FakeEncoder, monkeypatch
) -> None:
    """Over `CHECKSUM_ON_LOAD` (here: every file) an edit of the same size loads; the
    passage it damaged says what to do when a search returns it, and verify finds it."""
    path = tmp_path / "idx"
    qa.build_index(TINY, path, model=fake)
    monkeypatch.setattr(store, "CHECKSUM_ON_LOAD", 0)
    texts = next(path.glob("passage-texts-*.txt"))
    data = bytearray(texts.read_bytes())
    data[0] = 0xFF  # not UTF-8
    texts.write_bytes(bytes(data))
    index = qa.load_index(path, model=fake)
    with pytest.raises(qa.IndexCorruptError, match="not UTF-8 .* semantic-qa verify"):
        [index.hit(row, 0.0, 1) for row in range(len(index))]
    problems = verify(path, model=fake).problems
    assert any(f"{texts.name} does not match its checksum" in p for p in problems)
    texts.write_bytes(bytes(data[:-3]))
    with pytest.raises(
        qa.IndexCorruptError, match=r"bytes, manifest says .*\(truncated or edited\)"
    ):
        qa.load_index(path, model=fake)


def test_passages_of_an_article_in_article_order(fake: FakeEncoder) -> None:
    index = qa.build_index(TINY, model=fake, settings=qa.SplitSettings(target_tokens=8))
    for doc_id in index.documents:
        expected = sorted((p for p in index.passages if p.doc_id == doc_id), key=lambda p: p.start)
        assert index.passages_of(doc_id) == expected and expected
    assert index.passages_of("no such article") == []


def test_answer_sentences_kept_for_a_bounded_number_of_passages(
    fake: FakeEncoder, monkeypatch
) -> None:
    index = qa.build_index(TINY, model=fake, settings=qa.SplitSettings(target_tokens=8))
    questions = ["Where do cats sleep?", "rivers of Europe", "planets and stars", "cats purr"]
    expected = [index.search(q, k=5) for q in questions]
    monkeypatch.setattr("qa.index.SENTENCES_KEPT", 2)
    capped = qa.Index(index.encoder, index.passages, index.vectors, index.documents,
                      index.settings, sentence_vectors=index.sentence_vectors)  # fmt: skip
    assert [capped.search(q, k=5) for q in questions] == expected
    assert 0 < len(capped._sentences) <= 2
