"""Index.add: new articles into a live index, as the web form's upload does it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import qa

from .conftest import TINY, FakeEncoder


def test_add_equals_building_everything_at_once(fake: FakeEncoder) -> None:
    small = qa.build_index(TINY[:2], model=fake)
    grown = small.add([TINY[2]])
    whole = qa.build_index(TINY, model=fake)
    assert grown.passages == whole.passages
    assert grown.documents == whole.documents
    np.testing.assert_allclose(grown.vectors, whole.vectors, atol=1e-6)
    assert grown.search("Apollo 11 Moon", 1)[0].doc_id == "space"
    # the old index is untouched: a search running on it meanwhile is unaffected
    assert len(small.documents) == 2 and "space" not in small.documents
    assert all(h.doc_id != "space" for h in small.search("Apollo 11 Moon", 5))


def test_add_saves_over_the_index_folder(tmp_path: Path, fake: FakeEncoder) -> None:
    index = qa.build_index(TINY[:2], tmp_path / "idx", model=fake)
    (tmp_path / "new.md").write_text("# Volcanoes\n\nEtna erupts often in Sicily.", "utf-8")
    grown = index.add([tmp_path / "new.md"])
    assert grown.path == tmp_path / "idx"
    loaded = qa.load_index(tmp_path / "idx", model=fake)
    assert sorted(loaded.documents) == ["cats", "new.md", "rivers"]
    assert loaded.documents["new.md"].title == "Volcanoes"
    assert [h.to_dict() for h in loaded.search("Etna Sicily", 2)] == [
        h.to_dict() for h in grown.search("Etna Sicily", 2)
    ]


def test_duplicate_id_is_refused_and_nothing_changes(tmp_path: Path, fake: FakeEncoder) -> None:
    index = qa.build_index(TINY, tmp_path / "idx", model=fake)
    before = (tmp_path / "idx" / "manifest.json").read_bytes()
    again = qa.Document("cats", "Dogs bark.", "Dogs")
    with pytest.raises(qa.DuplicateIdError, match="article id 'cats' is already in the index"):
        index.add([again])
    assert (tmp_path / "idx" / "manifest.json").read_bytes() == before
    assert len(index.documents) == 3


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("a.odt", b"PK\x03\x04", "unknown article type '.odt'"),
        ("a.pdf", b"%PDF-1.4", r"a\.pdf: the PDF is truncated \(it does not end with %%EOF\)"),
        ("a.txt", b"\x00\x01binary", "looks like a binary file"),
        ("a.txt", b"   \n", "empty"),
    ],
)
def test_bad_file_is_refused_and_nothing_changes(
    tmp_path: Path, fake: FakeEncoder, name: str, data: bytes, message: str
) -> None:
    index = qa.build_index(TINY, tmp_path / "idx", model=fake)
    before = sorted((tmp_path / "idx").iterdir())
    (tmp_path / name).write_bytes(data)
    with pytest.raises(qa.DocumentError, match=message):
        index.add([tmp_path / name])
    assert sorted((tmp_path / "idx").iterdir()) == before
    assert len(qa.load_index(tmp_path / "idx", model=fake).documents) == 3


def test_add_hands_out_new_keys_and_keeps_the_others(fake: FakeEncoder) -> None:
    small = qa.build_index(TINY[:2], model=fake)
    grown = small.add([TINY[2]])
    assert grown.keys[: len(small)].tolist() == small.keys.tolist()
    assert grown.keys[len(small) :].tolist() == list(range(small.next_key, grown.next_key))
    assert grown.changes is not None and grown.changes.added == ("space",)
