"""The real packaged model on the bundled articles: questions we wrote, answers we know."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import qa

pytestmark = pytest.mark.model

QUESTIONS = [
    ("Which sanctions committees did Kazakhstan chair in the Security Council?",
     "000_ee18342087b7634f.txt", "1267 (ISIL (Da'esh), Al-Qaida)"),
    ("Which countries did Kazakhstan visit as chair of the 1267 and 1988 committees?",
     "000_ee18342087b7634f.txt", "Malaysia and Singapore"),
    ("What ceremony did Kazakhstan introduce at the UN for newly elected Council members?",
     "000_ee18342087b7634f.txt", "flag installation ceremony"),
    ("Who officially launched the draft Code of Conduct?",
     "002_a2b9a235981e6cac.txt", "officially launched by the Minister of Foreign Affairs Kairat"),
    ("Which UN regional office did Jenča head?",
     "003_bd5abb0bfb5bb471.txt", "Regional Centre for Preventive Diplomacy for Central Asia"),
    ("Who is the Deputy Minister of Foreign Affairs of Kazakhstan?",
     "004_1935e6c797c1ede0.txt", "Roman Vassilenko, the Deputy Minister"),
    # Only in dense's top 5 (or not at all): first with hybrid search.
    ("What has long been a source of tension in the Central Asian region?",
     "003_bd5abb0bfb5bb471.txt", "water sharing had long been a source of tension"),
]  # fmt: skip

# Harder: the answer is in the top 5 (dense and hybrid), not always first.
HARDER = [
    ("In which year did Kazakhstan chair the OSCE?",
     "001_e4bdfdd46c2ed16b.txt", "chairmanship of Kazakhstan in 2010"),
    ("By what year should the world be free of terrorism?", "002_a2b9a235981e6cac.txt", "2045"),
    # a vague question: first by the fixed fusion (0.850 against 0.826), third by the
    # learned ranker, after passages on the Code's aims in others' words
    ("What are the major goals of the Code of Conduct?",
     "002_a2b9a235981e6cac.txt", "broad international coalition of partner countries"),
    ("What was the theme of the 13th Bled Strategic Forum?",
     "004_1935e6c797c1ede0.txt", "Bridging the Divide"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("question", "doc_id", "answer"), QUESTIONS, ids=[q[2][:20] for q in QUESTIONS]
)
def test_right_passage_ranks_first(
    sample_index: qa.Index, question: str, doc_id: str, answer: str
) -> None:
    best = sample_index.search(question, k=1)[0]
    assert best.doc_id == doc_id
    assert answer in best.text
    assert 0.3 < best.score <= 1.0


@pytest.mark.parametrize(("question", "doc_id", "answer"), HARDER, ids=[q[2][:20] for q in HARDER])
def test_answer_in_top_five(
    sample_index: qa.Index, question: str, doc_id: str, answer: str
) -> None:
    hits = sample_index.search(question, k=5)
    assert any(h.doc_id == doc_id and answer in h.text for h in hits)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_sample_index_respects_budget_and_offsets(sample_index: qa.Index, real_encoder) -> None:
    docs = {
        d.id: d for d in qa.load_documents([Path(__file__).parent.parent / "data" / "articles"])
    }
    counts = real_encoder.count_tokens([p.text for p in sample_index.passages])
    assert max(counts) <= real_encoder.max_tokens
    for p in sample_index.passages:
        assert docs[p.doc_id].text[p.start : p.end] == p.text
        assert len(p.text) <= 1200


def test_vectors_are_normalized_float32(sample_index: qa.Index, real_encoder) -> None:
    assert sample_index.vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(sample_index.vectors, axis=1), 1.0, atol=1e-4)
    q = real_encoder.encode_queries(["What is the OSCE?"])
    assert q.shape == (1, 384) and q.dtype == np.float32


def test_reload_gives_identical_results(sample_index: qa.Index) -> None:
    assert sample_index.path is not None
    loaded = qa.load_index(sample_index.path)
    for question, _, _ in QUESTIONS:
        assert [h.to_dict() for h in loaded.search(question, 5)] == [
            h.to_dict() for h in sample_index.search(question, 5)
        ]


def test_answer_sentence_holds_the_answer(sample_index: qa.Index) -> None:
    found = 0
    for question, doc_id, answer in QUESTIONS + HARDER:
        hits = sample_index.search(question, k=5)
        hit = next(h for h in hits if h.doc_id == doc_id and answer in h.text)
        assert 0 <= hit.answer_start < hit.answer_end <= len(hit.text)
        found += answer in hit.text[hit.answer_start : hit.answer_end]
    # measured: 11 of 11 with the learned ranker (10 with the fixed fusion: the miss's
    # sentence shares no word with the question); one miss allowed for other CPUs
    assert found >= len(QUESTIONS + HARDER) - 1


@pytest.mark.parametrize(
    ("question", "sentence"),
    [
        ("Who is the head of the UN Counter-Terrorism Office?",
         "Under-Secretary-General of the United Nations Counter-Terrorism Office Vladimir "
         "Voronkov"),
        ("Who officially launched the draft Code of Conduct?",
         "The document was officially launched by the Minister of Foreign Affairs Kairat "
         "Abdrakhmanov."),
    ],
)  # fmt: skip
def test_right_at_first_glance(sample_index: qa.Index, question: str, sentence: str) -> None:
    """Issue 14's two examples: the fixed fusion put another passage first for the
    first and highlighted the title line for the second. Margins, measured on ONNX
    Runtime's AVX2 kernels and its SSE4.1 ones (qemu-x86_64 -cpu Nehalem, index and
    question encoded there): the same hits and sentence probabilities to 3 decimals on
    both (Voronkov's sentence 0.643 against 0.035; the launch sentence 0.114 against
    0.102 for the sentence before it, the narrow one). With 7-bit weights no int8
    path saturates (test_onnx.py), so AVX-512 VNNI computes what SSE4.1 does."""
    first = sample_index.search(question, k=3)[0]
    assert first.doc_id == "002_a2b9a235981e6cac.txt"
    assert sentence in first.text[first.answer_start : first.answer_end]
    fused = sample_index.search(question, k=3, ranker="fusion")[0]
    assert sentence not in fused.text[fused.answer_start : fused.answer_end]


def test_where_filter_on_real_index(sample_index: qa.Index) -> None:
    doc_id = "004_1935e6c797c1ede0.txt"
    hits = sample_index.search("Who launched the Code of Conduct?", 3, where={"doc_id": doc_id})
    assert hits and all(h.doc_id == doc_id for h in hits)
    rows = [p for p in sample_index.passages if p.doc_id == doc_id]
    assert len(hits) == min(3, len(rows))
