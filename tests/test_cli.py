from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import qa
from qa.cli import main

from .conftest import ARTICLES

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def cli_index(tmp_path_factory: pytest.TempPathFactory, real_encoder) -> Path:
    out = tmp_path_factory.mktemp("cli") / "index"
    assert main(["index", str(ARTICLES), "--out", str(out)]) == 0
    return out


def test_index_summary_and_up_to_date(tmp_path: Path, capsys, real_encoder) -> None:
    articles = tmp_path / "articles"
    shutil.copytree(ARTICLES, articles)
    out = tmp_path / "idx"
    assert main(["index", str(articles), "--out", str(out)]) == 0
    first = capsys.readouterr().out
    assert first.startswith("indexed 5 documents, ") and f"-> {out}" in first
    assert main(["index", str(articles), "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == f"{out}: up to date (5 documents)"
    (articles / "extra.md").write_text("# Extra\n\nThe Astana Summit took place in December 2010.")
    assert main(["index", str(articles), "--out", str(out)]) == 0
    assert capsys.readouterr().out.startswith("indexed 6 documents, ")
    assert len(qa.load_index(out).documents) == 6


def test_ask_text_output(cli_index: Path, capsys) -> None:
    assert (
        main(
            [
                "ask",
                "In which year did Kazakhstan chair the OSCE?",
                "--index",
                str(cli_index),
                "--k",
                "2",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert out.startswith("1. [0.")
    assert "Kazakhstan and OSCE" in out and "\n2. [" in out


def test_ask_json_matches_python_api(cli_index: Path, capsys) -> None:
    question = "Who officially launched the draft Code of Conduct?"
    assert main(["ask", question, "--index", str(cli_index), "--k", "3", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    expected = [h.to_dict() for h in qa.search(question, k=3, index=cli_index)]
    assert printed == expected and len(printed) == 3


def test_ask_batch_questions(cli_index: Path, tmp_path: Path, capsys) -> None:
    qfile = tmp_path / "q.jsonl"
    qfile.write_text(
        '{"id": "a", "question": "What is the OSCE?"}\n\n{"id": 2, "question": "Bled forum theme?"}\n'
    )
    assert (
        main(["ask", "--questions", str(qfile), "--k", "4", "--json", "--index", str(cli_index)])
        == 0
    )
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["id"] for r in rows] == ["a", 2]
    assert all(len(r["hits"]) == 4 and r["hits"][0]["rank"] == 1 for r in rows)
    assert rows[0]["hits"] == [
        h.to_dict() for h in qa.search("What is the OSCE?", 4, index=cli_index)
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ask", ""], "question is empty"),
        (["ask", "   "], "question is empty"),
        (["ask", "what?", "--k", "0"], "k must be at least 1"),
        (["ask", "what?", "--k", "many"], "invalid int value"),
        (["ask"], "give a question, or --questions"),
        (["ask", "what?", "--index", "/nonexistent/idx"], "no index at /nonexistent/idx"),
        (["index", "/nonexistent/articles", "--out", "/tmp/x"], "no such file or folder"),
        (["index", str(ARTICLES), "--target-tokens", "2"], "target_tokens must be at least 8"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_user_errors_one_line_exit_1(
    cli_index: Path, capsys, args: list[str], message: str
) -> None:
    if args[0] == "ask" and "--index" not in args:
        args = [*args, "--index", str(cli_index)]
    code = main(args)
    err = capsys.readouterr().err
    assert code == 1
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_bad_questions_file(cli_index: Path, tmp_path: Path, capsys) -> None:
    qfile = tmp_path / "q.jsonl"
    qfile.write_text('{"id": 1, "question": "ok?"}\n{"question": "no id"}\n')
    assert main(["ask", "--questions", str(qfile), "--index", str(cli_index)]) == 1
    assert "q.jsonl, line 2: expected" in capsys.readouterr().err


def test_console_script_end_to_end(cli_index: Path) -> None:
    exe = Path(sys.executable).with_name("semantic-qa")
    env = {**os.environ, "SEMANTIC_QA_INDEX": str(cli_index)}
    ok = subprocess.run(
        [
            exe,
            "ask",
            "Who is the Deputy Minister of Foreign Affairs of Kazakhstan?",
            "--json",
            "--k",
            "1",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert ok.returncode == 0, ok.stderr
    assert "Roman Vassilenko" in json.loads(ok.stdout)[0]["text"]
    bad = subprocess.run([exe, "ask", " "], capture_output=True, text=True, env=env, timeout=300)
    assert bad.returncode == 1
    assert bad.stderr.strip() == (
        "semantic-qa: error: question is empty: type a question, e.g. 'Who chairs the OSCE?'"
    )
