"""benchmarks/beir.py: BEIR-format folders load, passages become document rankings,
and the document metrics are BEIR's (checked by hand)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

import qa
from benchmarks.beir import doc_metrics, doc_ranking, evaluate_beir, load_beir

from .conftest import FakeEncoder


def write_beir(folder: Path) -> Path:
    corpus = [
        {"_id": "d1", "title": "Vitamin D", "text": "Vitamin D deficiency weakens bones."},
        {"_id": "d2", "title": "Statins", "text": "Statins lower cholesterol in adults."},
        {"_id": "d3", "title": "", "text": "Aspirin thins the blood and prevents clots."},
        {"_id": "d4", "title": "Empty", "text": ""},
    ]
    queries = [
        {"_id": "q1", "text": "Does vitamin D deficiency weaken bones?"},
        {"_id": "q2", "text": "Aspirin prevents blood clots"},
        {"_id": "q3", "text": "never judged"},
    ]
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text("\n".join(json.dumps(r) for r in corpus) + "\n")
    (folder / "queries.jsonl").write_text("\n".join(json.dumps(r) for r in queries) + "\n")
    (folder / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td3\t2\nq2\td2\t0\n"
    )
    return folder


def test_load_beir_keeps_judged_queries_and_titles(tmp_path: Path) -> None:
    docs, queries, qrels = load_beir(write_beir(tmp_path))
    assert [d.id for d in docs] == ["d1", "d2", "d3", "d4"]
    assert docs[0].text == "Vitamin D\n\nVitamin D deficiency weakens bones."
    assert docs[2].text == "Aspirin thins the blood and prevents clots."
    assert docs[3].text == "Empty"
    assert queries == {
        "q1": "Does vitamin D deficiency weaken bones?",
        "q2": "Aspirin prevents blood clots",
    }
    assert qrels == {"q1": {"d1": 1}, "q2": {"d3": 2, "d2": 0}}


def test_doc_metrics_match_a_hand_computation() -> None:
    qrels = {"a": {"x": 2, "y": 1, "z": 0}, "b": {"w": 1}, "c": {"v": 1}}
    run = {"a": ["z", "x", "u", "y"], "b": ["w"]}  # c: nothing retrieved
    m = doc_metrics(run, qrels)
    dcg = 2 / math.log2(3) + 1 / math.log2(5)
    ideal = 2 / math.log2(2) + 1 / math.log2(3)
    assert m["nDCG@10"] == pytest.approx((dcg / ideal + 1 + 0) / 3)
    assert m["R@10"] == pytest.approx((1 + 1 + 0) / 3)
    assert m["MRR@10"] == pytest.approx((1 / 2 + 1 + 0) / 3)


def test_doc_ranking_takes_each_documents_best_passage_and_its_copies() -> None:
    def hit(doc_id: str, rank: int, also: tuple[str, ...] = ()) -> qa.Hit:
        return qa.Hit(f"p{rank}", doc_id, "", "", 0, 1, "t", 1.0 / rank, rank, also_in=also)

    hits = [hit("a", 1), hit("b", 2, ("c",)), hit("a", 3), hit("d", 4)]
    assert doc_ranking(hits) == ["a", "b", "c", "d"]
    # ArguAna: a query is a corpus document too, and never counts as its own answer
    assert doc_ranking(hits, drop="a") == ["b", "c", "d"]


def test_evaluate_beir_ranks_the_relevant_abstract_first(tmp_path: Path) -> None:
    docs, queries, qrels = load_beir(write_beir(tmp_path))
    report = evaluate_beir(docs, queries, qrels, model=FakeEncoder(), depth=10)
    assert report["documents"] == 4 and report["queries"] == 2
    assert set(report["modes"]) == {"hybrid", "hybrid-fusion", "lexical", "dense"}
    for mode, m in report["modes"].items():
        assert m["nDCG@10"] == pytest.approx(1.0), mode
        assert m["R@10"] == m["MRR@10"] == pytest.approx(1.0), mode
