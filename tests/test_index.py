from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import qa
from qa import store

from .conftest import TINY, FakeEncoder


def test_faiss_matches_numpy_oracle(fake: FakeEncoder) -> None:
    docs = [
        qa.Document(f"d{i}", f"Word{i} shared text number {i}. Extra{i % 3} words.")
        for i in range(40)
    ]
    index = qa.build_index(docs, model=fake)
    for question in ["shared text", "Word7 Extra1", "number 12"]:
        hits = index.search(question, k=10, mode="dense")
        query = fake.encode_queries([question])[0]
        scores = index.vectors @ query
        order = np.argsort(-scores, kind="stable")[:10]
        assert [h.score for h in hits] == pytest.approx(scores[order].tolist(), abs=1e-5)
        # Same passages up to ties: every hit's score equals the oracle's at that rank.
        assert {h.id for h in hits if h.score > scores[order][-1] + 1e-5} <= {
            index.passages[i].id for i in order
        }
        assert [h.rank for h in hits] == list(range(1, 11))


def test_hit_fields_and_to_dict(tiny_index: qa.Index) -> None:
    hit = tiny_index.search("Where does the Danube flow?", k=1)[0]
    assert (hit.doc_id, hit.title, hit.rank) == ("rivers", "Rivers", 1)
    doc = next(d for d in TINY if d.id == "rivers")
    assert doc.text[hit.start : hit.end] == hit.text
    assert set(hit.to_dict()) == {
        "id", "doc_id", "title", "source", "start", "end", "text", "score", "rank", "metadata",
        "answer_start", "answer_end", "also_in", "pages",
    }  # fmt: skip
    assert hit.to_dict()["pages"] == []  # an article without pages
    json.dumps(hit.to_dict())


def test_k_larger_than_index_returns_all(tiny_index: qa.Index) -> None:
    hits = tiny_index.search("cats", k=1000)
    assert len(hits) == len(tiny_index)
    assert sorted(h.id for h in hits) == sorted(p.id for p in tiny_index.passages)


@pytest.mark.parametrize(
    ("question", "k", "message"),
    [
        ("", 5, "question is empty"),
        ("   \n\t", 5, "question is empty"),
        (None, 5, "question must be a string, got NoneType"),
        (42, 5, "question must be a string, got int"),
        (["cats"], 5, "question must be a string, got list"),
        ("cats", 0, "k must be at least 1"),
        ("cats", -3, "k must be at least 1"),
        ("cats", 2.5, "k must be an integer"),
        ("cats", True, "k must be an integer"),
        ("cats", "5", "k must be an integer"),
    ],
)
def test_bad_search_input(tiny_index: qa.Index, question: object, k: object, message: str) -> None:
    with pytest.raises(ValueError, match=message) as err:
        tiny_index.search(question, k=k)  # type: ignore[arg-type]
    assert isinstance(err.value, qa.QAError)


def test_save_load_roundtrip_identical(tmp_path: Path, fake: FakeEncoder) -> None:
    built = qa.build_index(TINY, tmp_path / "idx", model=fake)
    loaded = qa.load_index(tmp_path / "idx", model=fake)
    assert loaded.passages == built.passages
    assert loaded.documents == built.documents
    np.testing.assert_array_equal(loaded.vectors, built.vectors)
    for q in ["cats purr", "Moon landing 1969", "Black Sea"]:
        assert [h.to_dict() for h in loaded.search(q, 3)] == [
            h.to_dict() for h in built.search(q, 3)
        ]
    manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    assert manifest["model"] == "fake-bow" and manifest["dimension"] == 64
    assert manifest["passages"] == len(built) and manifest["documents"] == 3
    assert manifest["format_version"] == store.FORMAT_VERSION


def test_qa_search_with_index_path(tmp_path: Path, fake: FakeEncoder, monkeypatch) -> None:
    qa.build_index(TINY, tmp_path / "idx", model=fake)
    monkeypatch.setattr("qa.index.load_encoder", lambda name: fake)
    hits = qa.search("Apollo 11", k=2, index=tmp_path / "idx")
    assert hits[0].doc_id == "space"


def test_resave_replaces_files_and_keeps_one_version(tmp_path: Path, fake: FakeEncoder) -> None:
    qa.build_index(TINY, tmp_path / "idx", model=fake)
    qa.build_index(TINY[:2], tmp_path / "idx", model=fake)
    names = sorted(p.name for p in (tmp_path / "idx").iterdir())
    # one file per part (vectors, the passage table, texts and ids, documents, 5 BM25
    # files, sentence vectors and their counts per passage) + the manifest
    assert len(names) == 13 and "manifest.json" in names
    assert len(qa.load_index(tmp_path / "idx", model=fake).documents) == 2


def test_interrupted_save_keeps_previous_index(
    tmp_path: Path, fake: FakeEncoder, monkeypatch
) -> None:
    path = tmp_path / "idx"
    before = qa.build_index(TINY, path, model=fake)
    real_write = store._atomic_write
    calls = []

    def failing_write(file: Path, data: bytes) -> None:
        calls.append(file.name)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real_write(file, data)

    monkeypatch.setattr(store, "_atomic_write", failing_write)
    with pytest.raises(OSError):
        qa.build_index(
            [*TINY[:1], qa.Document("new", "Completely new words here.")], path, model=fake
        )
    monkeypatch.undo()
    after = qa.load_index(path, model=fake)
    assert after.passages == before.passages


def _tamper_vectors(path: Path) -> None:
    f = next(path.glob("vectors-*.npy"))
    f.write_bytes(f.read_bytes()[:-100])


def _edit_passages(path: Path) -> None:
    f = next(path.glob("passage-texts-*.txt"))
    f.write_text(f.read_text().replace("Cats", "Dogs"))


def _delete_documents(path: Path) -> None:
    next(path.glob("documents-*.jsonl")).unlink()


def _edit_manifest(key: str, value: object):
    def edit(path: Path) -> None:
        m = json.loads((path / "manifest.json").read_text())
        m[key] = value
        (path / "manifest.json").write_text(json.dumps(m))

    return edit


def _garble_manifest(path: Path) -> None:
    (path / "manifest.json").write_text("{not json")


@pytest.mark.parametrize(
    ("tamper", "error", "message"),
    [
        (_tamper_vectors, qa.IndexCorruptError, "truncated or edited"),
        (_edit_passages, qa.IndexCorruptError, "does not match its checksum"),
        (_delete_documents, qa.IndexCorruptError, "documents file .* is missing"),
        (_edit_manifest("format_version", 99), qa.IndexFormatError, "format version 99"),
        (_edit_manifest("passages", 1), qa.IndexCorruptError, "manifest says"),
        (_edit_manifest("format", "other"), qa.IndexFormatError, "not a semantic-qa manifest"),
        (_garble_manifest, qa.IndexCorruptError, "unreadable"),
    ],
)
def test_tampered_index_raises(tmp_path: Path, fake: FakeEncoder, tamper, error, message) -> None:
    path = tmp_path / "idx"
    qa.build_index(TINY, path, model=fake)
    tamper(path)
    with pytest.raises(error, match=message) as err:
        qa.load_index(path, model=fake)
    assert "semantic-qa index" in str(err.value)  # says how to fix it


def test_model_mismatch(tmp_path: Path, fake: FakeEncoder) -> None:
    qa.build_index(TINY, tmp_path / "idx", model=fake)
    with pytest.raises(qa.ModelMismatchError, match="built with model 'fake-bow', not 'other'"):
        qa.load_index(tmp_path / "idx", model=FakeEncoder(name="other"))
    with pytest.raises(qa.ModelMismatchError, match="64-d vectors"):
        qa.load_index(tmp_path / "idx", model=FakeEncoder(dimension=32))


def test_missing_and_non_index_folders(tmp_path: Path, fake: FakeEncoder) -> None:
    with pytest.raises(qa.IndexNotFoundError, match="no index at .*semantic-qa index"):
        qa.load_index(tmp_path / "nothing")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(qa.IndexNotFoundError, match="not a semantic-qa index"):
        qa.load_index(tmp_path / "other")
    with pytest.raises(qa.IndexNotFoundError, match="refusing to write"):
        qa.build_index(TINY, tmp_path / "other", model=fake)
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"


def test_unknown_model_name() -> None:
    with pytest.raises(qa.ModelNotFoundError, match="unknown model 'no-such-model'"):
        qa.build_index(TINY, model="no-such-model")


def test_missing_model_package_names_it(monkeypatch) -> None:
    from embeddings import models

    missing = models.PackagedModel("not-installed", "not-installed-pkg", "not_installed_pkg_xyz")
    monkeypatch.setitem(models.REGISTRY, missing.name, missing)
    with pytest.raises(qa.ModelNotFoundError, match="pip install not-installed-pkg"):
        qa.build_index(TINY, model="not-installed")


def test_no_articles(tmp_path: Path, fake: FakeEncoder) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(qa.DocumentError, match="no articles found"):
        qa.build_index([tmp_path / "empty"], model=fake)
