"""qa.milvus against milvus-lite (in-process) and a real Milvus 2.3.5 server (in the
private network namespace `make test` runs in), and the FAISS `qa.vectors` index for
what they share: add, search, remove, keys that stay gone. Results are checked against
exact search (numpy brute force and the flat FAISS index)."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import qa
from qa import vectors as qa_vectors
from qa.milvus import MilvusStore, Params, Row, filter_expression, quote

from .conftest import SHARED

MilvusException = pytest.importorskip(
    "pymilvus", reason="the Milvus extra: pip install -e '.[milvus]'"
).MilvusException

DIM = 32
TIE = 1e-5  # scores this close are ties: their order is either way
_names = itertools.count()


# ---- backends -----------------------------------------------------------------------


@pytest.fixture(scope="session")
def lite_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("milvus-lite") / "passages.db")


class FaissStore:
    """The FAISS flat index behind the same add/remove/search/count calls."""

    def __init__(self, dimension: int):
        self.index = qa_vectors.build(np.zeros((0, dimension), np.float32), kind="flat")

    def add(self, keys: Any, vectors: np.ndarray, rows: Sequence[Row]) -> int:
        self.index.add(vectors, np.asarray(keys, dtype=np.int64))
        return len(keys)

    def remove(self, keys: Any) -> int:
        return self.index.remove(np.asarray(keys, dtype=np.int64))

    def search(self, queries: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
        scores, ids = self.index.search(queries, k)
        return [
            [(int(i), float(s)) for i, s in zip(id_row, score_row, strict=True) if i != -1]
            for id_row, score_row in zip(ids, scores, strict=True)
        ]

    def count(self) -> int:
        return len(self.index)


Opener = Callable[..., Any]


def _opener(kind: str, request: pytest.FixtureRequest) -> Iterator[Opener]:
    """open(model=..., dimension=..., params=..., collection=...) on one backend;
    collections are dropped after the test."""
    opened: list[MilvusStore] = []
    uri = None if kind == "faiss" else request.getfixturevalue(f"{kind}_uri")
    name = f"t{next(_names)}_{os.getpid()}"

    def open_store(
        model: str = "fake-bow",
        dimension: int = DIM,
        params: Params | None = None,
        collection: str | None = None,
    ) -> Any:
        if uri is None:
            return FaissStore(dimension)
        store = MilvusStore.open(
            uri, collection or name, model=model, dimension=dimension, params=params
        )
        opened.append(store)
        return store

    yield open_store
    for store in reversed(opened):  # a test may have closed a client: the others drop
        with contextlib.suppress(MilvusException):
            if store.client.has_collection(store.collection):
                store.drop()
            store.close()


@pytest.fixture(params=["faiss", "lite", "server"])
def open_any(request: pytest.FixtureRequest) -> Iterator[Opener]:
    yield from _opener(request.param, request)


@pytest.fixture(params=["lite", "server"])
def open_milvus(request: pytest.FixtureRequest) -> Iterator[Opener]:
    yield from _opener(request.param, request)


# ---- data and the exact oracle -------------------------------------------------------


def unit(n: int, dimension: int = DIM, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, dimension)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def rows_for(keys: Sequence[int]) -> list[Row]:
    return [
        Row(f"p{k}", f"doc{k % 7}", 0, 10, f"passage {k}", f"Title {k % 3}", f"src{k % 5}.md")
        for k in keys
    ]


def assert_exact(
    found: list[list[tuple[int, float]]],
    keys: np.ndarray,
    vectors: np.ndarray,
    queries: np.ndarray,
    k: int,
) -> None:
    """`found` is exact top-k search of `vectors` (under `keys`): the same scores at
    each position, and the same keys in the same order except among tied scores."""
    exact = queries @ vectors.T
    truth = qa_vectors.exact_top(vectors, queries, k)
    for q, hits in enumerate(found):
        want_keys, want_scores = keys[truth[q]], exact[q, truth[q]]
        got_keys = [key for key, _ in hits]
        got_scores = np.array([score for _, score in hits])
        assert len(hits) == min(k, len(keys))
        assert len(set(got_keys)) == len(got_keys)
        np.testing.assert_allclose(got_scores, want_scores, atol=TIE)
        score_of = dict(zip(keys.tolist(), exact[q].tolist(), strict=True))
        for pos, key in enumerate(got_keys):
            tied = abs(score_of[key] - want_scores[pos]) <= TIE
            assert key == want_keys[pos] or tied, (q, pos, key, int(want_keys[pos]))


# ---- the tests ------------------------------------------------------------------------


def test_add_search_remove_match_exact_search(open_any: Opener):
    store = open_any()
    keys = (1 << 40) + 3 * np.arange(300, dtype=np.int64)  # int64 keys, not row numbers
    vectors, queries = unit(300), unit(20, seed=1)
    assert store.add(keys, vectors, rows_for(keys)) == 300
    assert store.count() == 300
    assert_exact(store.search(queries, 10), keys, vectors, queries, 10)

    gone = keys[::4]
    assert store.remove(gone) == len(gone)
    assert store.remove(gone) == 0  # already gone
    assert store.count() == 300 - len(gone)
    kept = ~np.isin(keys, gone)
    found = store.search(queries, 10)
    assert_exact(found, keys[kept], vectors[kept], queries, 10)
    # searching the stored vectors themselves: a removed passage is never found again
    everything = store.search(vectors[~kept], 300)
    assert not {key for hits in everything for key, _ in hits} & set(gone.tolist())


def test_update_is_remove_then_add_under_a_new_key(open_any: Opener):
    """Keys are never reused: an edited passage gets a new key; the old one stays
    gone whatever is added later."""
    store = open_any()
    keys, vectors = np.arange(50, dtype=np.int64), unit(50)
    store.add(keys, vectors, rows_for(keys))
    edited = unit(1, seed=7)
    store.remove([10])
    store.add([50], edited, rows_for([50]))
    assert store.count() == 50
    hits = store.search(np.vstack([vectors[10], edited[0]]), 50)
    assert all(key != 10 for row in hits for key, _ in row)
    assert hits[1][0][0] == 50 and hits[1][0][1] == pytest.approx(1.0, abs=1e-5)
    store.add(np.arange(51, 60), unit(9, seed=8), rows_for(range(51, 60)))
    assert 10 not in {key for row in store.search(vectors, 60) for key, _ in row}


def test_rows_round_trip_with_unicode_and_metadata(open_milvus: Opener):
    store = open_milvus()
    rows = [
        Row(
            "a1",
            "ünï/cödé.md",
            3,
            40,
            'Ça va? 東京 🚀 "quoted" \\ back',
            "Tïtle",
            "s.md",
            {"year": 2010, "tags": ["x", "y"], "nested": {"k": True}},
        ),
        Row("b2", "doc", 0, 0, "", "", "", {}),
    ]
    store.add([5, 9], unit(2), rows)
    assert store.rows([9, 5, 77]) == {5: rows[0], 9: rows[1]}


def test_existing_keys_are_refused_or_skipped_to_resume(open_milvus: Opener):
    store = open_milvus()
    keys, vectors = np.arange(30, dtype=np.int64), unit(30)
    store.add(keys[:12], vectors[:12], rows_for(keys[:12]), batch_size=5)
    with pytest.raises(qa.InvalidInputError, match=r"already in collection .*remove them first"):
        store.add(keys, vectors, rows_for(keys))
    # an ingestion interrupted after 12 passages resumes where it stopped
    assert store.add(keys, vectors, rows_for(keys), batch_size=7, skip_existing=True) == 18
    assert store.count() == 30


WHERE = [
    {"source": "src1.md"},
    {"title": "Title 2"},
    {"doc_id": "doc3"},
    {"id": "doc3"},
    {"source": ["src1.md", "src4.md"]},
    {"source": "src1.md", "title": "Title 0"},
    {"lang": "de"},
    {"year": 2011},
    {"year": [2010, 2012]},
    {"flag": True},
    {"source": "nope.md"},
    {"source": []},
    {"source": 3},  # a number never equals a text field
    {"missing": "x"},
]


def test_filters_match_exactly_and_return_min_k_matches(open_milvus: Opener):
    store = open_milvus()
    keys, vectors = np.arange(60, dtype=np.int64), unit(60)
    rows = [
        Row(
            f"p{k}",
            f"doc{k % 7}",
            0,
            1,
            f"t{k}",
            f"Title {k % 3}",
            f"src{k % 5}.md",
            {"lang": "de" if k % 2 else "en", "year": 2010 + k % 4, "flag": k % 6 == 0},
        )
        for k in keys.tolist()
    ]
    store.add(keys, vectors, rows)
    queries = unit(3, seed=2)
    for where in WHERE:
        matching = [k for k, r in zip(keys, rows, strict=True) if _matches(r, where)]
        for k in (3, 60):
            found = store.search(queries, k, where=where)
            assert [len(hits) for hits in found] == [min(k, len(matching))] * 3, where
            assert {key for hits in found for key, _ in hits} <= set(matching), where
        if matching:
            picked = np.isin(keys, matching)
            assert_exact(found, keys[picked], vectors[picked], queries, 60)


def _matches(row: Row, where: dict[str, Any]) -> bool:
    """qa.Index's exact-match semantics, as the oracle."""
    fields = {"doc_id": row.doc_id, "id": row.doc_id, "title": row.title, "source": row.source}
    for name, wanted in where.items():
        actual = fields.get(name, row.metadata.get(name, object()))
        values = wanted if isinstance(wanted, list) else [wanted]
        if not any(type(actual) is type(v) and actual == v for v in values):
            return False
    return True


HOSTILE = [
    'a"b',
    "a'b",
    "back\\slash",
    "trailing\\",
    '" or source != "',
    '") or (1 == 1',
    "' or '1' == '1",
    '\\" or true or \\"',
    'x" || source like "%',
    "line\nbreak\r\n\ttab",
    "nul\x00byte\x01\x1b",
    "\u2028line sep é 東京 🚀",
    "[1, 2] in metadata",
    "",  # this and the NUL one: not as metadata keys (see below)
]


def test_hostile_filter_values_stay_literal(open_milvus: Opener):
    """A value (or metadata key) full of quotes, backslashes, operators or control
    characters matches exactly the passages that hold it, and nothing else."""
    store = open_milvus()
    n = len(HOSTILE)
    keys = np.arange(n, dtype=np.int64)
    rows = [
        Row(f"p{i}", f"d{i}", 0, 1, "t", value, value, {value: "hit", "v": value})
        for i, value in enumerate(HOSTILE)
    ]
    store.add(keys, unit(n), rows)
    query = unit(1, seed=3)
    for i, value in enumerate(HOSTILE):
        wheres = [{"source": value}, {"title": [value]}, {"v": value}, {value: "hit"}]
        for where in wheres if value and "\x00" not in value else wheres[:3]:
            found = [key for key, _ in store.search(query, n, where=where)[0]]
            assert found == [i], (value, where, found)
    assert len(store.search(query, n, where={"v": HOSTILE})[0]) == n
    # Milvus refuses an empty JSON key and reads keys as C strings: refused here, so
    # a filter never silently matches nothing
    for key in ("", "nul\x00byte"):
        with pytest.raises(qa.InvalidInputError, match="empty metadata key or one with a NUL"):
            store.search(query, n, where={key: "hit"})


def test_filter_expressions_quote_values():
    assert filter_expression(None) == ""
    assert filter_expression({"source": 'a"b'}) == '(source == "a\\"b")'
    assert filter_expression({"id": ["x", "y"]}) == '(doc_id == "x" or doc_id == "y")'
    assert (
        filter_expression({'k"]': 1.5, "on": False})
        == '(metadata["k\\"]"] == 1.5) and (metadata["on"] == false)'
    )
    assert filter_expression({"title": []}) is None
    assert filter_expression({"source": None}) is None  # never equals a text field
    assert quote('\\"\n') == '"\\\\\\"\\n"'
    for bad in ({"x": None}, {"x": {"a": 1}}, {"x": float("nan")}, ["source"], {1: "a"}):
        with pytest.raises(qa.InvalidInputError):
            filter_expression(bad)  # type: ignore[arg-type]


def test_reopen_with_a_new_client_keeps_everything(open_milvus: Opener):
    params = Params(index_type="FLAT")
    store = open_milvus(params=params)
    keys, vectors, queries = np.arange(40, dtype=np.int64) * 11, unit(40), unit(5, seed=4)
    store.add(keys, vectors, rows_for(keys))
    before = store.search(queries, 7, where={"source": "src2.md"})
    # as after a server restart: the collection is no longer loaded; open loads it
    store.client.release_collection(store.collection)
    store.close()
    again = open_milvus(collection=store.collection)  # default params: the stored ones win
    assert again.params == params
    assert again.count() == 40
    assert again.search(queries, 7, where={"source": "src2.md"}) == before
    assert again.rows([11]) == {11: rows_for([11])[0]}
    info = again.info()
    assert (info["model"], info["dimension"], info["count"], info["index"]["index_type"]) == (
        "fake-bow",
        DIM,
        40,
        "FLAT",
    )


def test_another_model_or_dimension_is_a_clear_error(open_milvus: Opener):
    store = open_milvus(model="model-a", dimension=DIM)
    store.add([1], unit(1), rows_for([1]))
    with pytest.raises(
        qa.ModelMismatchError, match=r"model 'model-a' \(32 dimensions\), not 'model-b'"
    ):
        open_milvus(model="model-b", collection=store.collection)
    with pytest.raises(qa.ModelMismatchError, match=r"not 'model-a' \(16\)"):
        open_milvus(model="model-a", dimension=16, collection=store.collection)
    # a collection semantic-qa did not make is refused, not written into
    foreign = store.collection + "_foreign"
    store.client.create_collection(foreign, dimension=DIM)
    try:
        with pytest.raises(qa.IndexFormatError, match="not made by semantic-qa"):
            open_milvus(collection=foreign)
    finally:
        store.client.drop_collection(foreign)


def test_bad_inputs_are_clear_errors(lite_uri: str, tmp_path: Path):
    with pytest.raises(qa.InvalidInputError, match="collection name"):
        MilvusStore.open(lite_uri, "no-dashes", model="m", dimension=4)
    with pytest.raises(qa.InvalidInputError, match="ends in .db"):
        MilvusStore.open(str(tmp_path / "store"), model="m", dimension=4)
    with pytest.raises(qa.InvalidInputError, match="scheme"):
        MilvusStore.open("ftp://host/x", model="m", dimension=4)
    with pytest.raises(qa.IndexNotFoundError, match=r"cannot reach Milvus at http://127.0.0.1:1\b"):
        MilvusStore.open("milvus://user:secret@127.0.0.1:1", model="m", dimension=4)
    with pytest.raises(qa.IndexNotFoundError, match="no collection 'absent'"):
        MilvusStore.open(lite_uri, "absent", model="m", dimension=4, create=False)
    store = MilvusStore.open(lite_uri, f"bad_{os.getpid()}", model="m", dimension=4)
    try:
        with pytest.raises(qa.InvalidInputError, match=r"\[n, 4\]"):
            store.add([1], unit(1, 5), rows_for([1]))
        with pytest.raises(qa.InvalidInputError, match="one key, vector and row"):
            store.add([1, 2], unit(1, 4), rows_for([1]))
        with pytest.raises(qa.InvalidInputError, match="distinct"):
            store.add([1, 1], unit(2, 4), rows_for([1, 1]))
        with pytest.raises(qa.InvalidInputError, match="more than Milvus's 65535"):
            store.add([1], unit(1, 4), [Row("p", "d", 0, 1, "x" * 70_000)])
        with pytest.raises(qa.InvalidInputError, match="k must be at least 1"):
            store.search(unit(1, 4), 0)
        with pytest.raises(qa.InvalidInputError, match="at most 16384"):
            store.search(unit(1, 4), 20_000)
        with pytest.raises(qa.InvalidInputError, match="NaN"):
            store.search(np.full((1, 4), np.nan), 1)
        assert store.count() == 0
        assert store.search(unit(2, 4), 3) == [[], []]
    finally:
        store.drop()
        store.close()


# ---- the same results as exact FAISS on real passages ------------------------------------


def _check_real_passages(
    opener: Opener, model: str, vectors: np.ndarray, rows: list[Row], queries: np.ndarray
) -> None:
    keys = 1000 + 2 * np.arange(len(vectors), dtype=np.int64)
    flat = FaissStore(vectors.shape[1])
    flat.add(keys, vectors, rows)
    # HNSW, but well under the 1,024 rows from which Milvus 2.3 builds the index of a
    # segment (smaller ones are searched exactly); ef >= the collection's size too.
    store = opener(model=model, dimension=vectors.shape[1], params=Params(ef=len(vectors)))
    store.add(keys, vectors, rows)
    for k in (1, 10, 50):
        found = store.search(queries, k)
        assert_exact(found, keys, vectors, queries, k)
        assert_exact(flat.search(queries, k), keys, vectors, queries, k)
    # filtered: each document's passages only
    doc = rows[0].doc_id
    mine = np.array([r.doc_id == doc for r in rows])
    assert_exact(
        store.search(queries, 5, where={"doc_id": doc}), keys[mine], vectors[mine], queries, 5
    )


@pytest.mark.model
def test_bundled_articles_same_results_as_exact_faiss(open_milvus: Opener, sample_index: qa.Index):
    index = sample_index
    rows = [Row.of(p, index.documents[p.doc_id]) for p in index.passages]
    queries = index.encoder.encode_queries(
        [
            "Who chaired the 1267 committee?",
            "What is the Bled Strategic Forum?",
            "Who launched the Code of Conduct?",
            "When did Kazakhstan chair the OSCE?",
            "fight against terrorism",
        ]
    )
    _check_real_passages(open_milvus, index.encoder.name, index.vectors, rows, queries)


SQUAD_SAMPLE = ("Amazon_rainforest", "Sky_(United_Kingdom)", "Geology")  # short: ~70 passages


@pytest.fixture(scope="session")
def squad_sample(real_encoder) -> tuple[qa.Index, np.ndarray]:
    """Three short SQuAD-dev articles and 15 of each one's questions, with the real
    model (kept small: encoding is most of this module's time)."""
    folder = SHARED / "data" / "squad-dev"
    lines = (folder / "articles.jsonl").read_text("utf-8").splitlines()
    picked = [a for a in map(json.loads, lines) if a["id"] in SQUAD_SAMPLE]
    docs = [
        qa.Document(a["id"], a["text"], a["title"], "squad-dev", {"paragraphs": a["paragraphs"]})
        for a in picked
    ]
    index = qa.build_index(docs, model=real_encoder, sentences=False)
    questions: dict[str, list[str]] = {}
    for line in (folder / "questions.jsonl").read_text("utf-8").splitlines():
        q = json.loads(line)
        if q["article_id"] in SQUAD_SAMPLE and len(questions.setdefault(q["article_id"], [])) < 15:
            questions[q["article_id"]].append(q["question"])
    assert len(docs) == 3 and sum(map(len, questions.values())) == 45
    return index, real_encoder.encode_queries([q for qs in questions.values() for q in qs])


@pytest.mark.model
def test_squad_sample_same_results_as_exact_faiss(open_milvus: Opener, squad_sample):
    index, queries = squad_sample
    rows = [Row.of(p, index.documents[p.doc_id]) for p in index.passages]
    _check_real_passages(open_milvus, index.encoder.name, index.vectors, rows, queries)
