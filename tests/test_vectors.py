"""qa.vectors: exact and approximate vector indexes over int64 ids, checked against a
brute-force numpy oracle; measured recall; serialization; add/remove; kind by size."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

import qa
import qa.cli
from qa import vectors
from qa.errors import IndexCorruptError, InvalidInputError

N, DIM = 3000, 32
APPROXIMATE = ("ivf", "ivf-sq8", "hnsw")


def clustered(n: int, seed: int) -> np.ndarray:
    """Normalized vectors around 40 centres: neighbourhoods like real embeddings have."""
    centres = np.random.default_rng(0).standard_normal((40, DIM))
    rng = np.random.default_rng(seed)
    x = centres[rng.integers(0, 40, n)] + 0.8 * rng.standard_normal((n, DIM))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    # sparse, large int64 keys: ids are the caller's, never row numbers
    ids = np.arange(N, dtype=np.int64) * 1_000_003 + 2**40
    return clustered(N, 0), ids


@pytest.fixture(scope="module")
def built(data: tuple[np.ndarray, np.ndarray]) -> dict[str, vectors.VectorIndex]:
    x, ids = data
    return {kind: vectors.build(x, ids, kind) for kind in ("flat", *APPROXIMATE)}


def oracle(x: np.ndarray, ids: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    scores = queries @ x.T
    return ids[np.argsort(-scores, axis=1, kind="stable")[:, :k]]


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(
        np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth, strict=True)])
    )


def test_flat_is_exact(data, built):
    x, ids = data
    queries = clustered(50, 1)
    scores, found = built["flat"].search(queries, 10)
    assert (found == oracle(x, ids, queries, 10)).all()
    assert np.allclose(scores, np.sort(queries @ x.T, axis=1)[:, ::-1][:, :10], atol=1e-5)
    assert built["flat"].recall is None and built["flat"].exact


def test_concurrent_single_queries_give_sequential_results(built):
    """A single query runs on one OpenMP thread, set per calling thread: searches in
    several threads at once neither wait on each other nor change the caller's count."""
    from concurrent.futures import ThreadPoolExecutor

    import faiss

    queries = clustered(64, 2)
    expected = {kind: index.search(queries, 10)[1] for kind, index in built.items()}
    before = faiss.omp_get_max_threads()

    def one(job: tuple[str, int]) -> tuple[str, int, np.ndarray]:
        kind, i = job
        return kind, i, built[kind].search(queries[i : i + 1], 10)[1][0]

    jobs = [(kind, i) for kind in built for i in range(len(queries))]
    with ThreadPoolExecutor(8) as pool:
        for kind, i, found in pool.map(one, jobs):
            assert (found == expected[kind][i]).all(), (kind, i)
    assert faiss.omp_get_max_threads() == before


@pytest.mark.parametrize("kind", APPROXIMATE)
def test_approximate_meets_target_recall_on_fresh_queries(data, built, kind):
    x, ids = data
    vi = built[kind]
    assert vi.kind == kind and not vi.exact
    assert vi.recall is not None and vi.recall.value >= vectors.TARGET_RECALL
    assert vi.recall.queries == 200 and vi.recall.sample == "pseudo-queries"
    # queries it was not tuned on: held-out points of the same distribution
    queries = clustered(300, 2)
    _, found = vi.search(queries, 10)
    assert recall(found, oracle(x, ids, queries, 10)) >= vectors.TARGET_RECALL - 0.03
    assert set(found.ravel()) <= set(ids)


@pytest.mark.parametrize("kind", APPROXIMATE)
def test_stored_recall_is_what_search_gives(data, built, kind):
    """The recorded recall and search parameter are the ones search really uses."""
    x, ids = data
    vi = built[kind]
    queries = vectors.pseudo_queries(x, 200, seed=0)
    truth = ids[vectors.exact_top(x, queries, 10)]
    assert vectors.recall_at(vi, queries, truth) == pytest.approx(vi.recall.value, abs=1e-4)
    described = vi.describe()
    assert described["recall_at_10"]["value"] == vi.recall.value
    assert described["search_params"] == vi.search_params and described["count"] == N


def test_search_parameter_is_raised_until_the_target_is_met(data):
    x, ids = data
    pinned = vectors.build(x, ids, "ivf", vectors.Params(nprobe=1))
    tuned = vectors.build(x, ids, "ivf", vectors.Params(target_recall=0.99))
    assert pinned.search_params["nprobe"] == 1  # pinned: only measured
    assert pinned.recall.value < 0.99
    assert tuned.search_params["nprobe"] > 1 and tuned.recall.value >= 0.99


def test_real_queries_are_used_when_given(data):
    x, ids = data
    vi = vectors.build(x, ids, "ivf", queries=clustered(120, 3))
    assert vi.recall.sample == "queries" and vi.recall.queries == 120
    assert vi.recall.value >= vectors.TARGET_RECALL


@pytest.mark.parametrize("kind", ("flat", *APPROXIMATE))
def test_serialize_round_trip_gives_identical_results(data, built, kind):
    vi = built[kind]
    data_bytes = vi.to_bytes()
    assert data_bytes.dtype == np.uint8
    back = vectors.VectorIndex.from_bytes(data_bytes, vi.describe())
    also = vectors.VectorIndex.from_bytes(data_bytes.tobytes(), vi.describe())
    queries = clustered(40, 4)
    s1, i1 = vi.search(queries, 10)
    for other in (back, also):
        s2, i2 = other.search(queries, 10)
        assert (i1 == i2).all() and (s1 == s2).all()
        assert other.describe() == vi.describe()


def test_corrupt_bytes_raise_a_clear_error(built):
    vi = built["ivf"]
    with pytest.raises(IndexCorruptError, match="does not load"):
        vectors.VectorIndex.from_bytes(vi.to_bytes()[:100], vi.describe())
    with pytest.raises(IndexCorruptError, match="holds 3000 vectors"):
        vectors.VectorIndex.from_bytes(vi.to_bytes(), {**vi.describe(), "count": 5})


@pytest.mark.parametrize("kind", ("flat", "ivf", "ivf-sq8"))
def test_add_and_remove_by_id(data, kind):
    x, ids = data
    vi = vectors.build(x[:2000], ids[:2000], kind)
    gone = ids[:500]
    assert vi.remove(gone) == 500 and len(vi) == 1500
    vi.add(x[2000:], ids[2000:])
    assert len(vi) == 2500
    queries = x[:500]  # the removed vectors themselves: never found again
    _, found = vi.search(queries, 10)
    assert not set(found.ravel()) & set(gone)
    kept_ids, kept = ids[500:], x[500:]
    _, found = vi.search(x[2000:2100], 10)
    truth = oracle(kept, kept_ids, x[2000:2100], 10)
    assert recall(found, truth) >= (1.0 if kind == "flat" else 0.9)


def test_hnsw_adds_but_cannot_remove(data):
    x, ids = data
    vi = vectors.build(x[:1000], ids[:1000], "hnsw")
    vi.add(x[1000:1100], ids[1000:1100])
    assert len(vi) == 1100 and not vi.removable
    _, found = vi.search(x[1000:1001], 1)
    assert found[0, 0] == ids[1000]
    with pytest.raises(InvalidInputError, match="rebuild it without them"):
        vi.remove(ids[:1])


def test_auto_chooses_by_size():
    params = vectors.Params(flat_below=1000)
    assert vectors.choose_kind(999, "auto", params) == "flat"
    assert vectors.choose_kind(1000, "auto", params) == "ivf"
    assert vectors.choose_kind(1000, "auto", vectors.Params(1000, "hnsw")) == "hnsw"
    assert vectors.choose_kind(10, "hnsw", params) == "hnsw"
    small, big = clustered(999, 5), clustered(1000, 5)
    assert vectors.build(small, kind="auto", params=params).kind == "flat"
    vi = vectors.build(big, kind="auto", params=params)
    assert vi.kind == "ivf" and vi.recall.value >= vectors.TARGET_RECALL
    assert vectors.build(small).kind == "flat"  # default threshold: far above


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda x: vectors.build(x, kind="lsh"), "index kind must be auto or one of"),
        (lambda x: vectors.build(x[:, :5].ravel()), r"vectors must be a \[n, d\] array"),
        (lambda x: vectors.build(x, np.zeros(len(x), dtype=np.int64)), "ids must be distinct"),
        (lambda x: vectors.build(x, np.arange(3)), "ids must be 100 int64 keys"),
        (lambda x: vectors.build(x, params=vectors.Params(approximate="flat")), "approximate"),
        (lambda x: vectors.build(x).search(x[:, :5], 3), r"queries must be a \[n, 32\] array"),
        (lambda x: vectors.build(x).search(x, 0), "k must be at least 1"),
    ],
)
def test_bad_input(call, message):
    with pytest.raises(InvalidInputError, match=message):
        call(clustered(100, 6))


def test_fewer_vectors_than_k_pad_with_minus_one():
    x = clustered(3, 7)
    scores, found = vectors.build(x).search(x[:1], 5)
    assert sorted(found[0, :3]) == [0, 1, 2] and list(found[0, 3:]) == [-1, -1]
    assert (scores[0, 3:] == np.finfo(np.float32).min).all()


# --- the index uses qa.vectors: kind by size, stored, reported, kept up to date ------

SMALL = vectors.Params(flat_below=100)  # approximate from 100 passages on


def word_docs(count: int, seed: int, prefix: str = "doc") -> list[qa.Document]:
    """Articles of random words (distinct bags of words for the fake encoder)."""
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(400)]
    docs = []
    for i in range(count):
        paragraphs = [
            " ".join(rng.choice(words, 12)) + ". " + " ".join(rng.choice(words, 10)) + "."
            for _ in range(5)
        ]
        docs.append(qa.Document(f"{prefix}{i}", "\n\n".join(paragraphs), f"{prefix} {i}"))
    return docs


@pytest.fixture(scope="module")
def corpus() -> list[qa.Document]:
    return word_docs(60, 0)


def test_index_kind_follows_the_threshold(corpus, fake):
    small = qa.build_index(corpus[:10], model=fake, vector_params=SMALL)
    big = qa.build_index(corpus, model=fake, vector_params=SMALL)
    assert len(small) < 100 <= len(big)
    assert small.vector_index.kind == "flat" and big.vector_index.kind == "ivf"
    assert big.vector_index.recall.value >= vectors.TARGET_RECALL
    assert qa.build_index(corpus, model=fake).vector_index.kind == "flat"  # default threshold


def test_dense_search_on_an_approximate_index_matches_exact(corpus, fake):
    exact = qa.build_index(corpus, model=fake, index_kind="flat")
    approximate = qa.build_index(corpus, model=fake, index_kind="ivf")
    questions = [" ".join(p.text.split()[:6]) for p in exact.passages[::7]]
    same = 0
    for question in questions:
        want = exact.search(question, k=5, mode="dense")
        got = approximate.search(question, k=5, mode="dense")
        # scores of what is found are exact cosines, whatever the index
        for hit in got:
            row = next(r for r, p in enumerate(exact.passages) if p.id == hit.id)
            assert hit.score == pytest.approx(
                float(exact.vectors[row] @ fake.encode_queries([question])[0]), abs=1e-5
            )
        same += [h.id for h in got][:1] == [h.id for h in want][:1]
    assert same >= 0.9 * len(questions)
    hits = approximate.search_vectors(exact.vectors[:3], 1)  # stored vectors find themselves
    assert [h[0].id for h in hits] == [p.id for p in exact.passages[:3]]


def test_approximate_index_is_saved_with_its_recall_and_shown_by_info(
    tmp_path, corpus, fake, capsys
):
    path = tmp_path / "idx"
    built = qa.build_index(corpus, path, model=fake, index_kind="ivf-sq8")
    manifest = json.loads((path / "manifest.json").read_text())
    described = manifest["vector_index"]
    assert described["kind"] == "ivf-sq8" and manifest["index_kind"] == "ivf-sq8"
    assert described["recall_at_10"]["value"] == built.vector_index.recall.value >= 0.95
    assert described["search_params"]["nprobe"] >= 1
    assert len(list(path.glob("vector-index-*.faiss"))) == 1
    loaded = qa.load_index(path, model=fake)
    assert loaded.vector_index.kind == "ivf-sq8"
    assert loaded.vector_index.describe() == built.vector_index.describe()
    question = corpus[3].text[:60]
    assert [h.to_dict() for h in loaded.search(question, k=5, mode="dense")] == [
        h.to_dict() for h in built.search(question, k=5, mode="dense")
    ]
    assert qa.cli.main(["info", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)["vector_index"]
    assert info["kind"] == "ivf-sq8" and info["recall@10"] == described["recall_at_10"]["value"]
    assert qa.cli.main(["info", str(path)]) == 0
    assert f"recall@10={info['recall@10']}" in capsys.readouterr().out


def test_flat_index_stores_no_faiss_file(tmp_path, corpus, fake, capsys):
    path = tmp_path / "idx"
    qa.build_index(corpus[:5], path, model=fake)
    assert not list(path.glob("vector-index-*"))
    assert qa.load_index(path, model=fake).vector_index.kind == "flat"
    assert qa.cli.main(["info", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["vector_index"]["recall@10"] == "1 (exact)"


def test_updates_keep_the_approximate_index_and_drop_removed_keys(tmp_path, corpus, fake):
    path = tmp_path / "idx"
    index = qa.build_index(corpus[:40], path, model=fake, index_kind="ivf")
    trained = dict(index.vector_index.build_params)
    gone = {p.id for p in index.passages if p.doc_id in ("doc0", "doc1")}
    index = index.remove(["doc0", "doc1"]).add(corpus[40:])
    vi = index.vector_index
    assert vi.kind == "ivf" and len(vi) == len(index)
    assert vi.build_params == trained  # the trained cells were kept, not retrained
    assert vi.recall.value >= vectors.TARGET_RECALL  # measured again after the change
    _, keys = vi.search(index.vectors, 10)
    assert set(keys.ravel()) - {-1} <= set(index.keys.tolist())
    for doc in corpus[:2]:
        hits = index.search(doc.text[:80], k=10, mode="dense")
        assert not {h.id for h in hits} & gone
    loaded = qa.load_index(path, model=fake)
    assert loaded.vector_index.describe() == vi.describe()


def test_sentence_counts_are_saved_so_loading_need_not_split_passages(tmp_path, corpus, fake):
    from qa.index import _sentence_counts

    with_sentences = qa.build_index(corpus[:8], tmp_path / "a", model=fake)
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert "sentence-counts" in manifest["files"]
    loaded = qa.load_index(tmp_path / "a", model=fake)
    assert (loaded._sentence_counts == _sentence_counts(loaded.passages)).all()
    question = corpus[2].text[:50]
    assert [h.to_dict() for h in loaded.search(question, k=3)] == [
        h.to_dict() for h in with_sentences.search(question, k=3)
    ]
    changed = loaded.remove(["doc0"]).add(corpus[8:10])  # counts carried through changes
    assert (changed._sentence_counts == _sentence_counts(changed.passages)).all()
    qa.build_index(corpus[:8], tmp_path / "b", model=fake, sentences=False)
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert "sentence-counts" not in manifest["files"]


def test_hybrid_on_an_approximate_index_fuses_only_its_candidates(corpus, fake):
    from qa.answers import sentence_bounds
    from qa.fusion import fuse

    exact = qa.build_index(corpus, model=fake, index_kind="flat")
    approximate = qa.build_index(corpus, model=fake, index_kind="ivf")
    # at least 10 k + 10 = 20 from each side for k=1
    approximate.ranking = replace(approximate.ranking, candidates=5)
    assert len(approximate) > 2 * 20
    same = 0
    for p in exact.passages[::9]:
        question = " ".join(p.text.split()[2:8])
        query = fake.encode_queries([question])[0]
        # the oracle: union of the 20 nearest (by the vector index) and the 20 best by
        # BM25 with a score, each signal min-max normalized over that union
        _, nearest = approximate.nearest(query[None, :], 20)
        lexical = approximate.lexical.scores(question)
        cut = np.sort(lexical)[-20]  # rows tied with the 20th are all in
        best = np.flatnonzero((lexical >= cut) & (lexical > 0))
        rows = sorted(set(nearest[0].tolist()) | set(best.tolist()))
        sentences = [
            max(fake.encode_documents([t.text[s:e]])[0] @ query for s, e in sentence_bounds(t.text))
            for t in (approximate.passages[r] for r in rows)
        ]
        want = fuse(approximate.vectors[rows] @ query, lexical[rows], np.array(sentences))
        hit = approximate.search(question, k=1, ranker="fusion")[0]
        assert hit.score == pytest.approx(float(want.max()), abs=1e-5)
        same += hit.id == exact.search(question, k=1, ranker="fusion")[0].id
        # filtered and lexical searches still score every passage they may return
        for kwargs in ({"mode": "lexical"}, {"where": {"doc_id": p.doc_id}}):
            got = approximate.search(question, k=3, **kwargs)
            assert [h.to_dict() for h in got] == [
                h.to_dict() for h in exact.search(question, k=3, **kwargs)
            ]
    assert same >= 0.9 * len(exact.passages[::9])


def test_top_is_a_prefix_of_the_stable_order_with_every_tie():
    from qa.ranking import top

    rng = np.random.default_rng(0)
    for trial in range(600):
        n = int(rng.integers(1, 50))
        x = [
            rng.integers(0, 4, n).astype(np.float32),  # many ties
            rng.random(n).astype(np.float32) * (rng.random(n) < 0.3),  # mostly 0: BM25
            rng.standard_normal(n).astype(np.float32),
        ][trial % 3]
        m = int(rng.integers(1, n + 1))
        order = np.argsort(-x, kind="stable")
        got = top(x, m)
        assert len(got) >= m and (got == order[: len(got)]).all()
        assert (x[got] >= x[order[m - 1]]).all() and (x[order[len(got) :]] < x[order[m - 1]]).all()
