"""qa.Index on each storage backend (qa.backend): FAISS in the index folder, milvus-lite
and a real Milvus 2.3.5 server (in the private network namespace `make test` runs
in). The same calls through the public API, checked against a FAISS index built from
scratch on the same articles: same passages in the same order (up to score ties), with
filters, after add / update / remove, after reopening, and on real passages (the
bundled articles, a SQuAD-dev sample) with the real model."""

from __future__ import annotations

import itertools
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import qa
from qa import backend as qa_backend
from qa.cli import main
from qa.milvus import MilvusStore, client_uri
from qa.verify import verify

from .conftest import ARTICLES, SHARED, TINY, FakeEncoder

pytest.importorskip("pymilvus", reason="the Milvus extra: pip install -e '.[milvus]'")

TIE = 1e-5
_names = itertools.count()
# every search below goes through the backend: no "exact below 20,000 passages" shortcut
THROUGH_BACKEND = qa.VectorParams(flat_below=0)


@pytest.fixture(scope="module")
def lite_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("lite") / "passages.db")


def _backend(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """build_index arguments for one backend, in a fresh collection dropped after."""
    if request.param == "faiss":
        yield {}
        return
    uri = request.getfixturevalue("lite_db" if request.param == "lite" else "server_uri")
    collection = f"b{next(_names)}_{os.getpid()}"
    yield {"store": uri, "collection": collection, "vector_params": THROUGH_BACKEND}
    drop(uri, collection)


def drop(uri: str, *collections: str) -> None:
    from pymilvus import MilvusClient

    client = MilvusClient(uri=client_uri(uri)[0])
    for collection in collections:
        client.drop_collection(collection)
    client.close()


@pytest.fixture(params=["faiss", "lite", "server"])
def backend(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    yield from _backend(request)


@pytest.fixture(params=["lite", "server"])
def milvus(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    yield from _backend(request)


def milvus_store(index: qa.Index) -> MilvusStore:
    assert index.store is not None
    return index.store.store


QUESTIONS = [
    "Where does the Danube flow?",
    "Do cats sleep?",
    "When did Apollo 11 land?",
    "felines purr",
    "Which sea does it reach?",
]
MORE = [
    qa.Document("tea", "Green tea comes from China. It is brewed with hot water.", "Tea"),
    qa.Document("alps", "The Alps are mountains in Europe. Mont Blanc is the highest.", "Alps"),
]


def results(index: qa.Index, question: str, mode: str, **kw: Any) -> list[tuple[str, float]]:
    return [(h.id, h.score) for h in index.search(question, k=4, mode=mode, **kw)]


def assert_same_results(got: qa.Index, want: qa.Index, **kw: Any) -> None:
    """Same passages in the same order, up to score ties, in every mode."""
    for question in QUESTIONS:
        for mode in qa.MODES:
            a, b = results(got, question, mode, **kw), results(want, question, mode, **kw)
            assert_same_ranking(a, b, (question, mode))


def assert_same_ranking(a: list[tuple[str, float]], b: list[tuple[str, float]], what: Any) -> None:
    """`a` ranks as `b`: the same scores position by position, and each group of tied
    scores holds the same passages — except the lowest group, which `k` may cut
    anywhere among equals."""
    assert len(a) == len(b), what
    np.testing.assert_allclose([s for _, s in a], [s for _, s in b], atol=TIE, err_msg=str(what))
    assert len({i for i, _ in a}) == len(a), what
    if not b:
        return
    lowest = b[-1][1]
    for _, score in b:
        if score - lowest > TIE:
            group = {i for i, s in b if abs(s - score) <= TIE}
            assert {i for i, s in a if abs(s - score) <= TIE} == group, (what, a, b)


def keys_of(index: qa.Index, doc_id: str) -> set[int]:
    return {int(k) for k, p in zip(index.keys, index.passages, strict=True) if p.doc_id == doc_id}


def assert_store_holds(index: qa.Index) -> None:
    """The collection holds exactly the index's passage keys (Milvus backends)."""
    if index.store is None:
        return
    store = milvus_store(index)
    assert store.count() == len(index)
    assert sorted(store.keys(index.next_key)) == sorted(index.keys.tolist())
    assert store.synced() == index.saved_as


def test_build_search_update_remove_reopen(
    backend: dict[str, Any], fake: FakeEncoder, tmp_path: Path
):
    path = tmp_path / "idx"
    index = qa.build_index(TINY, path, model=fake, **backend)
    assert (index.store is None) == ("store" not in backend)
    assert index.backend.count() == len(index)
    assert_store_holds(index)
    assert_same_results(index, qa.build_index(TINY, model=fake))

    # add, update (new keys for the edited article's passages), remove
    keys_before = set(index.keys.tolist())
    index = index.add(MORE)
    assert_same_results(index, qa.build_index([*TINY, *MORE], model=fake))
    edited = qa.Document("rivers", "The Rhine flows through Basel. It reaches the North Sea.")
    old_river_keys = keys_of(index, "rivers")
    index = index.update([edited])
    docs = [TINY[0], edited, TINY[2], *MORE]
    assert_same_results(index, qa.build_index(docs, model=fake))
    new_river_keys = keys_of(index, "rivers")
    assert not new_river_keys & keys_before and min(new_river_keys) > max(old_river_keys)
    index = index.remove(["cats"])
    docs = [edited, TINY[2], *MORE]
    assert_same_results(index, qa.build_index(docs, model=fake))
    assert_store_holds(index)
    if index.store is not None:  # removed and replaced passages are gone from Milvus
        gone = old_river_keys | {k for k in keys_before if k not in set(index.keys.tolist())}
        assert not milvus_store(index).present(gone)
        found = index.backend.search(fake.encode_queries(["cats purr sleep"]), 50)[1]
        assert not set(found[0].tolist()) & gone

    # a rebuild into the same folder goes on from next_key: no key is ever reused
    every_key = keys_before | old_river_keys | set(index.keys.tolist())
    rebuilt = qa.build_index(docs, path, model=fake, **backend)
    assert not set(rebuilt.keys.tolist()) & every_key
    assert_store_holds(rebuilt)

    # reopened from the folder alone: the same backend, the same results
    loaded = qa.load_index(path, model=fake)
    assert (loaded.store is None) == ("store" not in backend)
    assert_same_results(loaded, rebuilt)
    assert_same_results(loaded, qa.build_index(docs, model=fake))
    assert loaded.info()["vector_index"] == rebuilt.info()["vector_index"]


HOSTILE = [
    'a"b',
    "back\\slash",
    '" or source != "',
    '") or (1 == 1',
    "' or '1' == '1",
    "x || true",
    "line\nbreak",
]


def test_filters_with_quotes_and_operators_stay_literal(
    backend: dict[str, Any], fake: FakeEncoder, tmp_path: Path
):
    docs = [
        qa.Document(
            f"d{i}",
            f"Article {i} about rivers and seas. The river number {i} is long.",
            value,
            value,
            {"tag": value, "n": i},
        )
        for i, value in enumerate(HOSTILE)
    ]
    index = qa.build_index(docs, tmp_path / "idx", model=fake, **backend)
    reference = qa.build_index(docs, model=fake)
    for i, value in enumerate(HOSTILE):
        for where in ({"source": value}, {"title": [value, "nope"]}, {"tag": value}):
            for mode in qa.MODES:
                hits = index.search("river long", k=5, mode=mode, where=where)
                assert {h.doc_id for h in hits} == {f"d{i}"}, (value, where, mode)
                want = reference.search("river long", k=5, mode=mode, where=where)
                assert [h.id for h in hits] == [h.id for h in want]
    assert_same_results(index, reference, where={"n": [1, 3]})
    assert_same_results(index, reference, where={"source": "absent"})
    # min(k, matches): two articles' passages, k larger than that
    hits = index.search("river", k=50, mode="dense", where={"n": [0, 4]})
    assert len(hits) == sum(p.doc_id in ("d0", "d4") for p in index.passages)
    # the backend on its own: a filter selects exactly those passages' keys, best first
    query = fake.encode_queries(["river long"])
    scores, keys = index.backend.search(query, 50, where={"tag": [HOSTILE[1], HOSTILE[3]]})
    wanted = keys_of(index, "d1") | keys_of(index, "d3")
    assert set(keys[0][keys[0] >= 0].tolist()) == wanted
    found = scores[0][keys[0] >= 0]
    assert (np.diff(found) <= TIE).all() and len(found) == len(wanted)
    info = index.backend.info()
    assert info["backend"] == ("milvus" if index.store else "faiss")
    assert info["count"] == index.backend.count() == len(index)


def test_another_model_is_a_clear_error(backend: dict[str, Any], tmp_path: Path):
    index = qa.build_index(TINY, tmp_path / "a", model=FakeEncoder(name="model-a"), **backend)
    other = FakeEncoder(name="model-b")
    with pytest.raises(qa.ModelMismatchError, match="model-a"):
        qa.load_index(tmp_path / "a", model=other)
    if index.store is not None:
        # another index asking for the same collection with another model
        with pytest.raises(qa.ModelMismatchError, match=r"model 'model-a' \(64 dimensions\)"):
            qa.build_index(TINY, tmp_path / "b", model=other, **backend)
        assert milvus_store(index).count() == len(index)  # nothing was written


# ---- Milvus only: moving an index there, interrupted writes, the CLI ----------------------


def test_migrate_moves_vectors_without_encoding_and_resumes(
    milvus: dict[str, Any], fake: FakeEncoder, tmp_path: Path, monkeypatch
):
    path = tmp_path / "idx"
    faiss_index = qa.build_index([*TINY, *MORE], path, model=fake, cache=False)
    uri, collection = milvus["store"], milvus["collection"]
    # interrupted after the first batch of inserts
    monkeypatch.setattr(qa_backend, "STEP", 3)
    real_add, calls = MilvusStore.add, []

    def failing_add(self: MilvusStore, *args: Any, **kw: Any) -> int:
        calls.append(1)
        if len(calls) == 2:
            raise ConnectionError("the server went away")
        return real_add(self, *args, **kw)

    monkeypatch.setattr(MilvusStore, "add", failing_add)
    with pytest.raises(ConnectionError):
        qa.migrate(path, uri, collection=collection, model=fake)
    monkeypatch.setattr(MilvusStore, "add", real_add)
    fake.calls = 0
    interrupted = qa.load_index(path, model=fake)  # the manifest names Milvus already
    assert interrupted.store is not None and milvus_store(interrupted).count() == 3
    moved = qa.migrate(
        path, uri, collection=collection, model=fake
    )  # resumes: 3 there, the rest added
    assert fake.calls == 0  # nothing encoded: the stored vectors moved
    assert_store_holds(moved)
    loaded = qa.load_index(path, model=fake)
    assert loaded.store is not None and loaded.store.location() == moved.store.location()
    loaded.vector_params = THROUGH_BACKEND
    assert_same_results(loaded, faiss_index)
    assert qa.store.read_manifest(path)["store"]["collection"] == collection


def test_an_interrupted_write_is_noticed_and_repaired(
    milvus: dict[str, Any], fake: FakeEncoder, tmp_path: Path, caplog, monkeypatch
):
    path = tmp_path / "idx"
    index = qa.build_index(TINY, path, model=fake, **milvus)

    def unreachable(*args: Any, **kw: Any) -> int:
        raise ConnectionError("the server went away")

    # the folder saves the change, then Milvus fails: the collection lacks MORE
    with monkeypatch.context() as patch:
        patch.setattr(MilvusStore, "add", unreachable)
        with pytest.raises(ConnectionError):
            index.add(MORE)
    with caplog.at_level(logging.WARNING, logger="qa.index"):
        loaded = qa.load_index(path, model=fake)
    assert "does not hold exactly this index's passages" in caplog.text
    assert len(loaded.documents) == 5 and milvus_store(loaded).count() == len(index)
    # searches still work (a missing passage is only no candidate); a stray key, as
    # a write by another index would leave, is never returned
    store = milvus_store(loaded)
    store.add([loaded.next_key + 5], loaded.vectors[:1], loaded._rows([0]))
    hits = loaded.search_vectors(loaded.vectors[:1], 10)[0]
    assert len({h.id for h in hits}) == len(hits) and hits[0].id == loaded.passages[0].id
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="qa.index"):
        qa.load_index(path, model=fake)
    assert "does not hold exactly" in caplog.text
    # the next change compares every key and repairs the collection
    smaller = loaded.remove(["space"])
    assert_store_holds(smaller)
    assert_same_results(smaller, qa.build_index([TINY[0], TINY[1], *MORE], model=fake))


def test_verify_checks_the_collection_holds_the_index(
    milvus: dict[str, Any], fake: FakeEncoder, tmp_path: Path
):
    path = tmp_path / "idx"
    index = qa.build_index(TINY, path, model=fake, **milvus)
    report = verify(path, model=fake, sample=2)
    assert report.ok, report.problems
    assert report.facts["milvus"]["count"] == len(index)
    store = milvus_store(index)
    gone = int(index.keys[0])
    store.remove([gone])
    store.add([index.next_key + 3], index.vectors[:1], index._rows([0]))
    report = verify(path, model=fake, sample=2)
    assert not report.ok
    (problem,) = report.problems
    assert f"lacks 1 of the index's passages (e.g. key {gone})" in problem
    assert f"holds 1 it does not (e.g. key {index.next_key + 3})" in problem
    assert f"semantic-qa migrate --from {path} --to " in problem
    qa.migrate(path, milvus["store"], collection=milvus["collection"], model=fake)
    report = verify(path, model=fake, sample=2)
    assert report.ok, report.problems


@pytest.mark.model
def test_cli_index_ask_info_verify_migrate(milvus: dict[str, Any], tmp_path: Path, capsys):
    uri, collection = milvus["store"], milvus["collection"]
    out = tmp_path / "index"
    assert (
        main(
            ["index", str(ARTICLES), "--out", str(out), "--store", uri, "--collection", collection]
        )
        == 0
    )
    capsys.readouterr()
    index = qa.load_index(out)
    assert index.store is not None and index.store.collection == collection
    assert_store_holds(index)
    assert main(["index", str(ARTICLES), "--out", str(out)]) == 0
    assert "up to date" in capsys.readouterr().out
    question = "Who chaired the 1267 committee?"
    assert main(["ask", question, "--index", str(out), "--json", "--mode", "dense"]) == 0
    got = [h["id"] for h in json.loads(capsys.readouterr().out)]
    faiss_out = tmp_path / "faiss"
    assert main(["index", str(ARTICLES), "--out", str(faiss_out)]) == 0
    capsys.readouterr()
    assert main(["ask", question, "--index", str(faiss_out), "--json", "--mode", "dense"]) == 0
    assert got == [h["id"] for h in json.loads(capsys.readouterr().out)]
    assert main(["info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["vector_index"]["kind"] == "milvus"
    assert info["vector_index"]["collection"] == collection
    assert main(["verify", str(out), "--sample", "2"]) == 0
    assert capsys.readouterr().out.startswith("OK ")
    # a FAISS index moved over by the CLI, into a collection of its own
    assert (
        main(["migrate", "--from", str(faiss_out), "--to", uri, "--collection", collection + "_m"])
        == 0
    )
    assert "(none encoded)" in capsys.readouterr().out
    moved = qa.load_index(faiss_out)
    assert_store_holds(moved)
    # `index --store` on a FAISS index moves it over, then brings it up to date
    again = tmp_path / "again"
    assert main(["index", str(ARTICLES), "--out", str(again)]) == 0
    articles = [p for p in sorted(ARTICLES.iterdir()) if p.is_file()][:4]
    store = ["--store", uri, "--collection", collection + "_i"]
    assert main(["index", *map(str, articles), "--out", str(again), *store]) == 0
    output = capsys.readouterr().out
    assert f"moving its vectors to {client_uri(uri)[1]}" in output
    assert "0 added, 0 updated, 1 removed, 4 unchanged documents" in output
    assert_store_holds(qa.load_index(again))
    drop(uri, collection + "_m", collection + "_i")


# ---- real passages, real model: the same results as exact FAISS ---------------------------


REAL_QUESTIONS = [
    "Who chaired the 1267 committee?",
    "What is the Bled Strategic Forum?",
    "Who launched the Code of Conduct?",
    "When did Kazakhstan chair the OSCE?",
    "fight against terrorism",
]


def assert_real_parity(
    got: qa.Index, want: qa.Index, questions: list[str], candidates: qa.Index | None = None
) -> None:
    """`got` (on Milvus, every search through it) ranks as the exact FAISS index
    `want`: dense search and filtered search of all kinds. Unfiltered hybrid search
    through a backend scores candidates only (see `qa.Index`), so when the index has
    more passages than candidates it ranks as `candidates`, an exhaustive (so exact)
    FAISS IVF index of the same passages, which takes the same path."""
    vectors = got.encoder.encode_queries(questions)
    doc = next(iter(want.documents))
    for mode in qa.MODES:
        for where in (None, {"doc_id": doc}):
            reference = candidates if candidates and mode == "hybrid" and not where else want
            a = got.search_batch(questions, 10, mode=mode, where=where, vectors=vectors)
            b = reference.search_batch(questions, 10, mode=mode, where=where, vectors=vectors)
            for question, x, y in zip(questions, a, b, strict=True):
                assert_same_ranking(
                    [(h.id, h.score) for h in x], [(h.id, h.score) for h in y], (question, mode)
                )


@pytest.mark.model
def test_bundled_articles_same_results_as_exact_faiss(
    milvus: dict[str, Any], sample_index: qa.Index, tmp_path: Path
):
    # the embedding cache holds the sample index's vectors: nothing is encoded again
    index = qa.build_index([ARTICLES], tmp_path / "idx", model=sample_index.encoder, **milvus)
    assert index.vector_index.kind == "flat" and len(index.vector_index) == 0  # no FAISS
    assert_real_parity(index, sample_index, REAL_QUESTIONS)


# the six shortest: ~180 passages, more than hybrid search's 110 candidates for k=10
SQUAD_ARTICLES = (
    "Amazon_rainforest",
    "Sky_(United_Kingdom)",
    "Victoria_(Australia)",
    "1973_oil_crisis",
    "Southern_California",
    "Packet_switching",
)


@pytest.fixture(scope="module")
def squad(real_encoder, tmp_path_factory: pytest.TempPathFactory):
    """Six SQuAD-dev articles (FAISS, exact) and 5 of each one's questions."""
    folder = SHARED / "data" / "squad-dev"
    lines = (folder / "articles.jsonl").read_text("utf-8").splitlines()
    docs = [
        qa.Document(a["id"], a["text"], a["title"], "squad-dev")
        for a in map(json.loads, lines)
        if a["id"] in SQUAD_ARTICLES
    ]
    path = tmp_path_factory.mktemp("squad") / "idx"
    index = qa.build_index(docs, path, model=real_encoder, sentences=False)
    questions: dict[str, list[str]] = {}
    for line in (folder / "questions.jsonl").read_text("utf-8").splitlines():
        q = json.loads(line)
        if q["article_id"] in SQUAD_ARTICLES and len(questions.setdefault(q["article_id"], [])) < 5:
            questions[q["article_id"]].append(q["question"])
    return docs, index, [q for qs in questions.values() for q in qs]


@pytest.mark.model
def test_squad_sample_same_results_as_exact_faiss(milvus: dict[str, Any], squad, tmp_path: Path):
    docs, exact, questions = squad
    assert len(docs) == 6 and len(questions) == 30 and len(exact) > 110
    index = qa.build_index(docs, tmp_path / "idx", model=exact.encoder, sentences=False, **milvus)
    exhaustive = qa.VectorParams(flat_below=0, nlist=4, nprobe=4)
    ivf = qa.build_index(
        docs, model=exact.encoder, sentences=False, cache=True, vector_params=exhaustive
    )
    assert ivf.vector_index.kind == "ivf" and not ivf.exact
    assert_real_parity(index, exact, questions, candidates=ivf)
