"""The learned ranker (qa.ranking, qa.signals, qa.scorers) through `Index.search`: which
ranker applies when, what its scores mean, the shipped scorers, and the tree scorer
against LightGBM itself."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import qa
from qa import ranking, scorers
from qa import signals as sig
from qa.answers import Sentences

from .conftest import TINY, FakeEncoder
from .test_hybrid import NEWS


def test_learned_is_the_default_with_sentence_vectors(fake: FakeEncoder) -> None:
    index = qa.build_index(NEWS, model=fake)
    question = "How many ships arrived on day 7?"
    learned = index.search(question, 5)
    assert learned == index.search(question, 5, ranker="learned")
    fusion = index.search(question, 5, ranker="fusion")
    assert [h.score for h in learned] != [h.score for h in fusion]
    # a probability that the passage holds the answer, best first
    assert all(0.0 <= h.score <= 1.0 for h in learned)
    assert [h.score for h in learned] == sorted((h.score for h in learned), reverse=True)
    assert index.info()["ranking"]["ranker"] == "learned"


def test_without_sentence_vectors_the_fusion_ranks(fake: FakeEncoder) -> None:
    index = qa.build_index(NEWS, model=fake, sentences=False)
    question = "How many ships arrived on day 7?"
    assert index.search(question, 5) == index.search(question, 5, ranker="fusion")
    assert index.info()["ranking"] == {"ranker": "fusion", "fusion": "score", "weight": 0.5}


def test_more_hits_than_it_reranks(fake: FakeEncoder) -> None:
    index = qa.build_index(NEWS, model=fake)
    index.ranking = replace(index.ranking, reranked=5)
    hits = index.search("harbour traffic report", 40)
    assert len(hits) == 40 and len({h.id for h in hits}) == 40
    assert [h.rank for h in hits] == list(range(1, 41))
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


@pytest.mark.parametrize("ranker", ["best", "", None, 1])
def test_bad_ranker(tiny_index: qa.Index, ranker: object) -> None:
    if ranker is None:
        assert tiny_index.search("cats", 2, ranker=None)  # the index's own
        return
    with pytest.raises(qa.InvalidInputError, match="ranker must be one of learned, fusion"):
        tiny_index.search("cats", 2, ranker=ranker)  # type: ignore[arg-type]


def test_lexical_and_dense_modes_keep_their_own_scores(fake: FakeEncoder) -> None:
    index = qa.build_index(TINY, model=fake)
    question = "Where does the Danube flow?"
    dense = index.vectors @ fake.encode_queries([question])[0]
    hits = index.search(question, len(index), mode="dense")
    assert [h.score for h in hits] == pytest.approx(sorted(dense, reverse=True), abs=1e-5)


def test_question_kinds() -> None:
    kinds = {
        "When did Apollo 11 land?": "time",
        "In which year did Kazakhstan chair the OSCE?": "time",
        "How many member states took part?": "number",
        "Who launched the Code of Conduct?": "person",
        "Where is the Bled Strategic Forum held?": "place",
        "Why did the talks fail?": "reason",
        "How did the committee decide?": "manner",
        "What is the OSCE?": "thing",
        "Name the river.": "other",
    }
    assert {q: sig.question_kind(q) for q in kinds} == kinds


def test_sentence_signals_for_a_time_question() -> None:
    text = "The Moon is far. Apollo 11 landed there in July 1969. The crew came back."
    question = sig.Question.of(
        "When did Apollo 11 land on the Moon?", None, lambda ts: dict.fromkeys(ts, 1.0)
    )
    rows, starts = sig.sentence_features([Sentences.of(text)], question, [None])
    f = dict(zip(sig.SENTENCE_FEATURES, rows[1], strict=True))
    assert starts.tolist() == [0] and len(rows) == 3
    assert f["coverage"] == pytest.approx(3 / 4)  # apollo, 11, land of apollo 11 land moon
    assert (f["has_year"], f["has_month"], f["time_x_year"], f["person_x_year"]) == (1, 1, 1, 0)
    assert f["previous_coverage"] == pytest.approx(1 / 4) and f["coverage_rank"] == 0
    assert rows[0][sig.SENTENCE_FEATURES.index("first")] == 1


def test_shipped_scorers_load_and_say_how_they_were_trained() -> None:
    passage, sentence = scorers.default_scorers()
    assert passage.features == sig.PASSAGE_FEATURES
    assert sentence.features == sig.SENTENCE_FEATURES
    for scorer in (passage, sentence):
        assert scorer.training["command"].startswith("python benchmarks/train_ranker.py")
        assert "squad-train" in scorer.training["data"]["questions"]
        assert len(scorer.version) == 12


def test_a_scorer_of_other_features_is_refused(tmp_path: Path) -> None:
    passage, _ = scorers.default_scorers()
    body = passage.to_dict() | {"features": [*passage.features, "new"]}
    (tmp_path / "passage.json").write_text(json.dumps(body))
    with pytest.raises(qa.IndexCorruptError, match="scores other features .*train_ranker"):
        scorers.load_scorer(tmp_path / "passage.json", "passage")
    (tmp_path / "passage.json").write_text("{not json")
    with pytest.raises(qa.IndexCorruptError, match="cannot be read"):
        scorers.load_scorer(tmp_path / "passage.json", "passage")
    forest = passage.to_dict()["forest"]
    broken = forest | {"left": [len(forest["left"]), *forest["left"][1:]]}  # outside it
    (tmp_path / "passage.json").write_text(json.dumps(passage.to_dict() | {"forest": broken}))
    with pytest.raises(qa.IndexCorruptError, match="cannot be read .*points outside"):
        scorers.load_scorer(tmp_path / "passage.json", "passage")


def test_linear_scorer_is_logistic_regression() -> None:
    s = scorers.Scorer(
        "passage", "linear", ("a", "b"), np.array([1.0, 0.0]), np.array([2.0, 1.0]),
        np.array([0.5, -1.0]), 0.25,
    )  # fmt: skip
    x = np.array([[3.0, 1.0], [1.0, 0.0]])
    want = 1 / (1 + np.exp(-(np.array([0.5 * 1 - 1, 0.0]) + 0.25)))
    np.testing.assert_allclose(s.score(x), want, rtol=1e-6)


def test_trees_score_as_lightgbm_does() -> None:
    lightgbm = pytest.importorskip("lightgbm")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2000, 6))
    x[:, 2] = np.round(x[:, 2])  # ties at thresholds
    y = ((x[:, 0] + x[:, 1] * x[:, 2] + rng.standard_normal(2000) * 0.3) > 0).astype(int)
    params = {"objective": "binary", "num_leaves": 15, "verbose": -1, "seed": 0}
    booster = lightgbm.train(params, lightgbm.Dataset(x, y), num_boost_round=40)
    forest = scorers.Forest.of([t["tree_structure"] for t in booster.dump_model()["tree_info"]])
    zeros = np.zeros(6)
    s = scorers.Scorer("passage", "trees", tuple("abcdef"), zeros, zeros + 1, zeros, 0.0, forest)
    test = rng.standard_normal((500, 6))
    test[:, 2] = np.round(test[:, 2])
    np.testing.assert_allclose(s.raw(test), booster.predict(test, raw_score=True), atol=1e-9)
    again = scorers.Scorer.from_dict(json.loads(s.dumps()))
    np.testing.assert_allclose(again.score(test), s.score(test), atol=1e-12)


def test_head_and_passage_rows_agree_with_search(fake: FakeEncoder) -> None:
    """What training reads (head_of, passage_rows) is what search scores."""
    index = qa.build_index(NEWS, model=fake)
    question = "How many ships arrived on day 7?"
    vector = fake.encode_queries([question])[0]
    query = sig.Question.of(question, vector, index.lexical.idf)
    found = ranking.candidates(index, question, vector, 5, "hybrid", None)
    positions = ranking.top(found.scores, ranking.RERANKED)[: ranking.RERANKED]
    features, spans = ranking.passage_rows(ranking.head_of(index, query, found, positions), query)
    probability = scorers.default_scorers()[0].score(features)
    best = int(np.argmax(probability))
    hit = index.search(question, 1)[0]
    assert hit.score == pytest.approx(float(probability[best]), abs=1e-6)
    assert (hit.answer_start, hit.answer_end) == spans[best]


def test_copies_are_found_as_comparing_with_every_kept_passage(fake: FakeEncoder) -> None:
    """`_Copies` looks shingles up instead of comparing pairs: the same answers as the
    definition (same text up to case and spacing, or 3-gram Jaccard >= 0.8)."""
    words = [f"word{i}" for i in range(60)]
    rng = np.random.default_rng(0)
    texts = []
    for _ in range(40):
        edited = list(words)
        for j in rng.choice(60, int(rng.integers(0, 12)), replace=False):
            edited[j] = f"other{rng.integers(1000)}"
        texts.append(" ".join(edited))
    texts += [texts[0].upper(), "  ".join(texts[1].split()), "A short unrelated passage."]
    index = qa.build_index([qa.Document(f"d{i}", t) for i, t in enumerate(texts)], model=fake)

    def near(a: int, b: int) -> bool:
        if index.passages.hashes[a] == index.passages.hashes[b]:
            return True
        x, y = index.sentences_of(a).shingles, index.sentences_of(b).shingles
        return bool(x and y) and len(x & y) >= ranking.NEAR_DUPLICATE * len(x | y)

    copies, kept, folded = ranking._Copies(index), [], 0
    for row in rng.permutation(len(index)).tolist():
        first = next((r for r in kept if near(row, r)), None)
        assert copies.first_of(row) == first
        if first is None:
            copies.keep(row)
            kept.append(row)
        folded += first is not None
    assert 5 < folded < len(index) - 5  # both answers were tested


def test_a_query_longer_than_any_training_question_is_ranked_by_the_fusion(
    fake: FakeEncoder,
) -> None:
    index = qa.build_index(NEWS, model=fake)
    short = "How many ships arrived on day 7?"
    long = " ".join([short] * 6)  # 42 words: longer than any SQuAD-train question
    assert len(sig.WORDS.findall(long)) > ranking.LEARNED_MAX_WORDS
    assert index.search(long, 5) == index.search(long, 5, ranker="fusion")
    assert index.search(short, 5) != index.search(short, 5, ranker="fusion")
