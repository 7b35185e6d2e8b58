from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import qa
from qa.passages import SplitSettings, sentence_spans, split_document

from .conftest import ARTICLES, FakeEncoder

WORDS = st.sampled_from(
    ["The", "cat", "sat.", "Dr.", "Smith", "went", "home!", "Why?", "U.S.", "1969.", "a",
     "antidisestablishmentarianism", "—", "“Quoted.”", "x" * 300, "y" * 900, "e.g.", "Vienna"]
)  # fmt: skip
SEPARATORS = st.sampled_from([" ", " ", " ", "  ", "\n", "\n\n", "\n \n\t", "\t"])


@st.composite
def texts(draw: st.DrawFn) -> str:
    words = draw(st.lists(WORDS, min_size=1, max_size=120))
    seps = draw(st.lists(SEPARATORS, min_size=len(words), max_size=len(words)))
    lead = draw(st.sampled_from(["", " ", "\n\n"]))
    return lead + "".join(w + s for w, s in zip(words, seps, strict=True))


def check_passages(
    doc: qa.Document, passages: list[qa.Passage], enc: FakeEncoder, max_chars: int
) -> None:
    assert passages, "a non-empty article gives at least one passage"
    covered = [False] * len(doc.text)
    for p in passages:
        assert doc.text[p.start : p.end] == p.text
        assert p.doc_id == doc.id
        assert p.text == p.text.strip() and p.text
        assert enc.count_tokens([p.text])[0] <= enc.max_tokens
        assert len(p.text) <= max_chars
        for i in range(p.start, p.end):
            covered[i] = True
    lost = [i for i, c in enumerate(doc.text) if not c.isspace() and not covered[i]]
    assert not lost, f"characters not in any passage: {lost[:10]}"
    starts = [p.start for p in passages]
    assert starts == sorted(starts)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=texts(), target=st.integers(8, 60), overlap=st.integers(0, 20))
def test_split_properties(text: str, target: int, overlap: int) -> None:
    enc = FakeEncoder(max_tokens=30)
    doc = qa.Document("d", text)
    cfg = SplitSettings(
        target_tokens=target, overlap_tokens=min(overlap, target - 1), max_chars=400
    )
    passages = split_document(doc, enc, cfg)
    check_passages(doc, passages, enc, 400)


@settings(max_examples=100, deadline=None)
@given(text=st.text(min_size=1, max_size=400).filter(lambda t: t.strip()))
def test_split_arbitrary_unicode(text: str) -> None:
    enc = FakeEncoder(max_tokens=12)
    doc = qa.Document("u", text)
    check_passages(doc, split_document(doc, enc, SplitSettings(target_tokens=10)), enc, 1200)


def test_sentences_and_paragraphs() -> None:
    text = "Dr. Smith went to Washington. He arrived in 1969! Did he?\n\nNew paragraph here."
    spans = [(text[s:e], para) for s, e, para in sentence_spans(text)]
    assert spans == [
        ("Dr. Smith went to Washington.", 0),
        ("He arrived in 1969!", 0),
        ("Did he?", 0),
        ("New paragraph here.", 1),
    ]


def test_paragraph_boundaries_are_respected() -> None:
    enc = FakeEncoder(max_tokens=200)
    para = "This sentence has exactly eight words in it. " * 7  # 63 tokens
    doc = qa.Document("p", f"{para}\n\n{para}")
    passages = split_document(doc, enc, SplitSettings(target_tokens=120))
    assert len(passages) == 2
    assert [p.text for p in passages] == [para.strip(), para.strip()]


def test_overlap_repeats_whole_sentences() -> None:
    enc = FakeEncoder(max_tokens=40)  # the 72-token paragraph must be cut
    sentences = [f"Sentence number {i} is here." for i in range(12)]
    doc = qa.Document("o", " ".join(sentences))
    plain = split_document(doc, enc, SplitSettings(target_tokens=24, overlap_tokens=0))
    overlapped = split_document(doc, enc, SplitSettings(target_tokens=24, overlap_tokens=7))
    assert all(a.end <= b.start for a, b in itertools.pairwise(plain))
    assert any(b.start < a.end for a, b in itertools.pairwise(overlapped))
    assert overlapped[1].text.startswith(sentences[3])


def test_long_paragraph_is_cut_evenly_and_short_ones_merge() -> None:
    enc = FakeEncoder(max_tokens=60)
    long = " ".join(f"Sentence number {i} is here." for i in range(16))  # 96 tokens
    doc = qa.Document("m", f"Heading\n\nA short line.\n\n{long}\n\nTail one.\n\nTail two.")
    passages = split_document(doc, enc, SplitSettings(target_tokens=40))
    assert passages[0].text == "Heading\n\nA short line."
    sizes = enc.count_tokens([p.text for p in passages[1:-1]])
    assert len(sizes) == 3 and max(sizes) - min(sizes) <= 6  # even runs, not 40+40+16
    assert passages[-1].text == "Tail one.\n\nTail two."


def test_ids_are_content_derived_and_stable() -> None:
    enc = FakeEncoder()
    doc = qa.Document("d", "Same text. Same text.\n\nSame text.")
    a = split_document(doc, enc, SplitSettings(target_tokens=8))
    b = split_document(doc, enc, SplitSettings(target_tokens=8))
    assert [p.id for p in a] == [p.id for p in b]
    assert len({p.id for p in a}) == len(a)  # repeated text in one article stays unique
    other = split_document(qa.Document("e", doc.text), enc, SplitSettings(target_tokens=8))
    assert {p.id for p in other}.isdisjoint({p.id for p in a})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"target_tokens": 2}, "target_tokens must be at least 8"),
        ({"target_tokens": 50, "overlap_tokens": 50}, "overlap_tokens must be in"),
        ({"overlap_tokens": -1}, "overlap_tokens must be in"),
        ({"max_chars": 10}, "max_chars must be at least 64"),
    ],
)
def test_bad_settings(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(qa.InvalidInputError, match=message):
        SplitSettings(**kwargs)


@pytest.mark.model
def test_real_tokenizer_budget_on_bundled_and_hostile_text(real_encoder) -> None:
    docs = qa.load_documents([ARTICLES])
    docs.append(qa.Document("long", "word " * 3000 + "Ünïcödé " * 500 + "x" * 5000))
    docs.append(qa.Document("nospace", "漢字かな交じり文。" * 800))
    for doc in docs:
        passages = split_document(doc, real_encoder, SplitSettings(target_tokens=10_000))
        counts = real_encoder.count_tokens([p.text for p in passages])
        assert max(counts) <= real_encoder.max_tokens == 254
        assert all(doc.text[p.start : p.end] == p.text for p in passages)
        default = split_document(doc, real_encoder)
        assert max(len(p.text) for p in default) <= 1200  # "x" * 5000 is one [UNK] token
