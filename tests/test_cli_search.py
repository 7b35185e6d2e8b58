"""`semantic-qa ask --mode/--ranker/--where`: the same hits as `Index.search` with the same options
(fake encoder: fast)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import qa
from qa.cli import main

from .conftest import FakeEncoder

DOCS = [
    qa.Document("a", "The UN met in 2010 in Vienna.", "A", source="news.md"),
    qa.Document("b", "The UN met in 2011 in Geneva.", "B", source="archive.md"),
    qa.Document("c", "Rivers flow to the sea.", "C", source="news.md", metadata={"lang": "en"}),
]


@pytest.fixture
def index_path(tmp_path: Path, fake: FakeEncoder, monkeypatch) -> Path:
    qa.build_index(DOCS, tmp_path / "idx", model=fake)
    monkeypatch.setattr("qa.index.load_encoder", lambda name: fake)
    return tmp_path / "idx"


@pytest.mark.parametrize("mode", ["dense", "lexical", "hybrid"])
def test_ask_mode_and_where_match_python_api(index_path: Path, capsys, mode: str) -> None:
    argv = ["ask", "When did the UN meet?", "--index", str(index_path), "--json"]
    assert main([*argv, "--mode", mode, "--where", "source=news.md", "--k", "3"]) == 0
    got = json.loads(capsys.readouterr().out)
    expected = qa.search(
        "When did the UN meet?", 3, index=index_path, mode=mode, where={"source": "news.md"}
    )
    assert got == [h.to_dict() for h in expected]
    assert {h["doc_id"] for h in got} == {"a", "c"}


def test_ask_ranker_matches_python_api(index_path: Path, tmp_path: Path, capsys) -> None:
    scores = {}
    for ranker in qa.RANKERS:
        argv = ["ask", "When did the UN meet?", "--index", str(index_path), "--json"]
        assert main([*argv, "--ranker", ranker]) == 0
        got = json.loads(capsys.readouterr().out)
        expected = qa.search("When did the UN meet?", 5, index=index_path, ranker=ranker)
        assert got == [h.to_dict() for h in expected]
        scores[ranker] = [h["score"] for h in got]
    assert scores["learned"] != scores["fusion"]  # a probability against a fused score
    qfile = tmp_path / "q.jsonl"
    qfile.write_text('{"id": 1, "question": "When did the UN meet?"}\n')
    argv = ["ask", "--questions", str(qfile), "--index", str(index_path), "--ranker", "fusion"]
    assert main([*argv, "--k", "5"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert [h["score"] for h in row["hits"]] == scores["fusion"]


def test_ask_where_metadata_and_batch(index_path: Path, tmp_path: Path, capsys) -> None:
    qfile = tmp_path / "q.jsonl"
    qfile.write_text('{"id": 1, "question": "Where do rivers flow?"}\n')
    argv = ["ask", "--questions", str(qfile), "--index", str(index_path), "--where", "lang=en"]
    assert main(argv) == 0
    row = json.loads(capsys.readouterr().out)
    assert [h["doc_id"] for h in row["hits"]] == ["c"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--mode", "fast"], "mode must be one of dense, lexical, hybrid, got 'fast'"),
        (["--ranker", "bm25"], "ranker must be one of learned, fusion, got 'bm25'"),
        (["--where", "source"], "--where takes FIELD=VALUE"),
        (["--where", "=x"], "--where takes FIELD=VALUE"),
    ],
)
def test_ask_bad_options(index_path: Path, capsys, extra: list[str], message: str) -> None:
    assert main(["ask", "UN?", "--index", str(index_path), *extra]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
