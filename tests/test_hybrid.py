"""Hybrid search, modes, metadata filters, duplicate passages and answer sentences,
through `Index.search` as a user calls it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import qa
from qa.answers import sentence_bounds
from qa.fusion import fuse, normalize
from qa.lexical import tokenize

from .conftest import TINY, FakeEncoder

NEWS = [
    qa.Document(
        f"n{i}",
        f"Report {i} on harbour traffic. Ships number {i * 7} arrived on day {i}.",
        f"Report {i}",
        source="news.md" if i % 10 == 0 else "archive.md",
        metadata={"year": 2000 + i % 5},
    )
    for i in range(60)
]


def test_modes_give_their_own_scores(fake: FakeEncoder) -> None:
    """The fixed fusion's scores (the learned ranker's are in test_ranking.py)."""
    index = qa.build_index(TINY, model=fake)
    question = "Where does the Danube flow?"
    query = fake.encode_queries([question])[0]
    dense, lexical = index.vectors @ query, index.lexical.scores(question)
    # the best sentence of each passage, by brute force over its own sentences
    best_sentence = [
        max(fake.encode_documents([p.text[s:e]])[0] @ query for s, e in sentence_bounds(p.text))
        for p in index.passages
    ]
    hybrid = 0.25 * normalize(dense) + 0.25 * normalize(best_sentence) + 0.5 * normalize(lexical)
    for mode, expected in [("dense", dense), ("lexical", lexical), ("hybrid", hybrid)]:
        hits = index.search(question, k=len(index), mode=mode, ranker="fusion")
        assert [h.score for h in hits] == pytest.approx(sorted(expected, reverse=True), abs=1e-5)
        assert hits[0].doc_id == "rivers"


def test_hybrid_without_sentence_vectors_fuses_two_signals(fake: FakeEncoder) -> None:
    index = qa.build_index(TINY, model=fake, sentences=False)
    assert index.sentence_vectors is None
    question = "Where does the Danube flow?"
    dense = index.vectors @ fake.encode_queries([question])[0]
    expected = 0.5 * normalize(dense) + 0.5 * normalize(index.lexical.scores(question))
    hits = index.search(question, k=len(index))
    assert [h.score for h in hits] == pytest.approx(sorted(expected, reverse=True), abs=1e-5)


def test_sentence_vectors_roundtrip_and_add(tmp_path: Path, fake: FakeEncoder) -> None:
    built = qa.build_index(TINY[:2], tmp_path / "idx", model=fake)
    assert built.sentence_vectors is not None
    count = sum(len(sentence_bounds(p.text)) for p in built.passages)
    assert built.sentence_vectors.shape == (count, fake.dimension)
    loaded = qa.load_index(tmp_path / "idx", model=fake)
    assert loaded.sentence_vectors is not None
    np.testing.assert_array_equal(loaded.sentence_vectors, built.sentence_vectors)
    grown = loaded.add([TINY[2]])
    whole = qa.build_index(TINY, model=fake)
    assert grown.sentence_vectors is not None and whole.sentence_vectors is not None
    np.testing.assert_allclose(grown.sentence_vectors, whole.sentence_vectors, atol=1e-6)
    assert [h.to_dict() for h in grown.search("Apollo Moon 1969", 3)] == [
        h.to_dict() for h in whole.search("Apollo Moon 1969", 3)
    ]


def test_tampered_sentence_vectors_raise(tmp_path: Path, fake: FakeEncoder) -> None:
    qa.build_index(TINY, tmp_path / "idx", model=fake)
    file = next((tmp_path / "idx").glob("sentence-vectors-*.npy"))
    file.write_bytes(file.read_bytes()[:-8])
    with pytest.raises(qa.IndexCorruptError, match="truncated or edited"):
        qa.load_index(tmp_path / "idx", model=fake)


def test_default_mode_is_hybrid(fake: FakeEncoder) -> None:
    index = qa.build_index(TINY, model=fake)
    assert [h.to_dict() for h in index.search("cats sleep", 3)] == [
        h.to_dict() for h in index.search("cats sleep", 3, mode="hybrid")
    ]
    assert qa.search("cats sleep", 3, index=index) == index.search("cats sleep", 3)


@pytest.mark.parametrize("mode", ["fast", "", "HYBRID", 3])
def test_bad_mode(tiny_index: qa.Index, mode: object) -> None:
    with pytest.raises(qa.InvalidInputError, match="mode must be one of dense, lexical, hybrid"):
        tiny_index.search("cats", 3, mode=mode)  # type: ignore[arg-type]


def test_fusion_schemes() -> None:
    dense, lexical = np.array([0.9, 0.5, 0.1]), np.array([0.0, 12.0, 3.0])
    assert fuse(dense, lexical).tolist() == pytest.approx([0.5, 0.75, 0.125])
    sentences = np.array([0.1, 0.2, 0.3])
    assert fuse(dense, lexical, sentences).tolist() == pytest.approx(
        [0.25, 0.25 * 0.5 + 0.25 * 0.5 + 0.5, 0.25 + 0.5 * 0.25]
    )
    rrf = fuse(dense, lexical, method="rrf")
    assert rrf.tolist() == pytest.approx(
        [0.5 / 61 + 0.5 / 63, 0.5 / 62 + 0.5 / 61, 0.5 / 63 + 0.5 / 62]
    )
    assert normalize(np.array([2.0, 2.0])).tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match="unknown fusion 'max'"):
        fuse(dense, lexical, method="max")


@pytest.mark.parametrize("mode", ["dense", "lexical", "hybrid"])
def test_where_returns_k_matching_passages_even_when_rare(fake: FakeEncoder, mode: str) -> None:
    index = qa.build_index(NEWS, model=fake)
    news = [h for h in index.search("harbour ships", 50, mode=mode) if h.source == "news.md"]
    assert len(news) < 6  # unfiltered, the 6 news passages are mostly crowded out
    hits = index.search("harbour ships", 5, mode=mode, where={"source": "news.md"})
    assert len(hits) == 5 and all(h.source == "news.md" for h in hits)
    assert [h.rank for h in hits] == [1, 2, 3, 4, 5]
    everything = index.search("harbour ships", 50, mode=mode, where={"source": "news.md"})
    assert sorted(h.doc_id for h in everything) == [f"n{i}" for i in range(0, 60, 10)]


def test_where_fields_and_values(fake: FakeEncoder) -> None:
    index = qa.build_index(NEWS, model=fake)
    assert {h.doc_id for h in index.search("ships", 5, where={"doc_id": "n7"})} == {"n7"}
    assert {h.title for h in index.search("ships", 5, where={"title": "Report 3"})} == {"Report 3"}
    by_year = index.search("ships", 100, where={"year": 2001})
    assert len(by_year) == 12 and all(h.metadata["year"] == 2001 for h in by_year)
    both = index.search("ships", 100, where={"year": [2001, 2002], "source": "archive.md"})
    assert {h.metadata["year"] for h in both} == {2001, 2002}
    assert all(h.source == "archive.md" for h in both)
    assert index.search("ships", 5, where={"source": "nowhere.md"}) == []
    assert index.search("ships", 5, where={"no-such-key": 1}) == []


@pytest.mark.parametrize("where", ["news.md", ["source"], {1: "x"}])
def test_bad_where(tiny_index: qa.Index, where: object) -> None:
    with pytest.raises(qa.InvalidInputError, match="where must be a dict of field -> value"):
        tiny_index.search("cats", 3, where=where)  # type: ignore[arg-type]


def test_duplicate_passages_do_not_crowd_the_results() -> None:
    text = (
        "The lighthouse keeper lit the lamp at dusk every evening, climbed down the "
        "long stair, wrote the hour in the log book and watched the ships pass the "
        "rocks until the morning tide turned and the fishing boats came home."
    )
    docs = [
        qa.Document("orig", text),
        qa.Document("copy", text),
        qa.Document("spaced", text.upper().replace(" ", "  ")),
        qa.Document("edited", text.replace("dusk", "sunset")),
        qa.Document("other", "A keeper of bees collected honey at dusk."),
    ]
    index = qa.build_index(docs, model=FakeEncoder(max_tokens=200))
    assert len(index) == 5
    for mode in ("dense", "lexical", "hybrid"):
        hits = index.search("When did the keeper light the lamp?", 5, mode=mode)
        assert [h.doc_id for h in hits] == ["orig", "other"], mode
        assert hits[0].also_in == ("copy", "spaced", "edited")
        assert hits[0].to_dict()["also_in"] == ["copy", "spaced", "edited"]
        assert hits[1].also_in == ()


def test_answer_sentence_offsets_are_in_the_passage(fake: FakeEncoder) -> None:
    doc = qa.Document(
        "apollo",
        "The Moon is far. Apollo 11 landed there in 1969. The crew came back safely.",
    )
    index = qa.build_index([doc], model=fake)
    for mode in ("dense", "lexical", "hybrid"):
        hit = index.search("In which year did Apollo 11 land?", 1, mode=mode)[0]
        assert hit.text[hit.answer_start : hit.answer_end] == "Apollo 11 landed there in 1969."
        d = hit.to_dict()
        assert (d["answer_start"], d["answer_end"]) == (hit.answer_start, hit.answer_end)
        assert doc.text[hit.start + hit.answer_start : hit.start + hit.answer_end] == (
            "Apollo 11 landed there in 1969."
        )


def test_answer_sentence_without_shared_words(fake: FakeEncoder) -> None:
    index = qa.build_index(TINY, model=fake)
    assert tokenize("zzyzx") == ["zzyzx"]
    hit = index.search("zzyzx", 1, mode="lexical")[0]
    assert hit.answer_start == 0 and 0 < hit.answer_end <= len(hit.text)
    # with a question vector, the sentence closest to it
    hit = index.search("zzyzx", 1, mode="dense")[0]
    query = fake.encode_queries(["zzyzx"])[0]
    bounds = sentence_bounds(hit.text)
    closeness = [fake.encode_documents([hit.text[s:e]])[0] @ query for s, e in bounds]
    assert (hit.answer_start, hit.answer_end) == bounds[int(np.argmax(closeness))]


def test_search_batch_equals_search(fake: FakeEncoder) -> None:
    index = qa.build_index(NEWS, model=fake)
    questions = ["harbour ships", "day 7", "Report 12"]
    for mode in ("dense", "lexical", "hybrid"):
        batch = index.search_batch(questions, 4, mode=mode, where={"year": 2002})
        assert batch == [index.search(q, 4, mode=mode, where={"year": 2002}) for q in questions]


@pytest.mark.parametrize("mode", ["dense", "lexical", "hybrid"])
def test_large_k_with_ties_returns_every_passage_once(mode: str) -> None:
    # 150 passages, most with no word of the question: long runs of tied scores
    docs = [qa.Document(f"d{i:03}", f"Filler text number {i} about nothing.") for i in range(150)]
    docs += [qa.Document("hit", "The harbour master counted ships.")]
    index = qa.build_index(docs, model=FakeEncoder(max_tokens=200))
    hits = index.search("harbour master", k=1000, mode=mode)
    assert hits[0].doc_id == "hit"
    assert sorted(h.doc_id for h in hits) == sorted(d.id for d in docs)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    if mode == "lexical":  # tied zeros come in index order
        assert [h.doc_id for h in hits[1:]] == [f"d{i:03}" for i in range(150)]


def test_answer_sentence_ties_go_to_the_closest_sentence_vector(fake: FakeEncoder) -> None:
    # Both sentences hold the question's only content words ("cats", "purr"); the second
    # also shares its stopwords ("did", "the"), which only the vectors see.
    doc = qa.Document("cats", "Cats purr. Yes, the cats did purr.")
    question = "Did the cats purr?"
    with_vectors = qa.build_index([doc], model=fake)
    hit = with_vectors.search(question, 1, mode="hybrid")[0]
    assert hit.text[hit.answer_start : hit.answer_end] == "Yes, the cats did purr."
    # without sentence vectors (or in lexical mode) the tie goes to the earlier sentence
    for index, mode in [(qa.build_index([doc], model=fake, sentences=False), "hybrid"),
                        (with_vectors, "lexical")]:  # fmt: skip
        hit = index.search(question, 1, mode=mode)[0]
        assert hit.text[hit.answer_start : hit.answer_end] == "Cats purr."
