"""`semantic-qa eval` and `qa.evaluation`: its numbers agree with the reference
scorer (../shared/tools/squad_bench.py) on the same hits. A subset of squad-dev keeps
it fast: two short articles and their questions."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from qa.cli import main
from qa.evaluation import evaluate, load_squad, metrics, run_file_rows

from .conftest import SHARED, FakeEncoder

SQUAD = SHARED / "data" / "squad-dev"
SCORER = SHARED / "tools" / "squad_bench.py"
SUBSET = ("Sky_(United_Kingdom)", "1973_oil_crisis")
KEYS = ("R@1", "R@5", "R@20", "MRR@10", "nDCG@10")


@pytest.fixture(scope="module")
def subset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("squad")
    articles = [
        line
        for line in (SQUAD / "articles.jsonl").read_text("utf-8").splitlines()
        if json.loads(line)["id"] in SUBSET
    ]
    questions = [
        line
        for line in (SQUAD / "questions.jsonl").read_text("utf-8").splitlines()
        if json.loads(line)["article_id"] in SUBSET
    ]
    assert len(articles) == 2 and len(questions) > 150
    (out / "articles.jsonl").write_text("\n".join(articles) + "\n", "utf-8")
    (out / "questions.jsonl").write_text("\n".join(questions) + "\n", "utf-8")
    return out / "articles.jsonl", out / "questions.jsonl"


def reference_score(run_file: Path, articles: Path, questions: Path) -> dict[str, float]:
    done = subprocess.run(
        [
            *(sys.executable, str(SCORER), "score", str(run_file), "--json"),
            *("--questions", str(questions), "--articles", str(articles)),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)


def test_metrics_agree_with_reference_scorer(tmp_path: Path, subset: tuple[Path, Path]) -> None:
    docs, questions = load_squad(*subset)
    report = evaluate(docs, questions, model=FakeEncoder(), baselines=True, latency_questions=5)
    assert set(report["modes"]) == {"hybrid", "hybrid-fusion", "lexical", "dense"}
    run = report["run"]
    run_file = tmp_path / "run.jsonl"
    run_file.write_text("".join(json.dumps(r) + "\n" for r in run_file_rows(run)), "utf-8")
    reference = reference_score(run_file, *subset)
    assert reference["questions"] == len(questions) and reference["missing"] == 0
    for key in KEYS:
        assert report["modes"]["hybrid"][key] == pytest.approx(reference[key], abs=1e-4)
    assert metrics(run, questions)["R@1"] == pytest.approx(reference["R@1"], abs=1e-12)
    # the metrics are not trivial: some questions are missed at rank 1, some found
    assert 0 < reference["R@1"] < reference["R@20"] <= 1
    assert report["passages"] > 0 and report["index_passages_per_s"] > 0
    assert report["latency_ms"]["hybrid"]["questions"] == 5
    assert 0 <= report["modes"]["hybrid"]["answer_sentence@1"] <= 1


def test_metrics_count_a_missing_question_as_a_miss(subset: tuple[Path, Path]) -> None:
    _, questions = load_squad(*subset)
    q = questions[0]
    answer = q["answers"][0]
    hit = {"doc_id": q["article_id"], "start": answer["start"], "end": answer["end"]}
    result = metrics({q["id"]: [{"doc_id": "elsewhere", "start": 0, "end": 9}, hit]}, questions)
    assert result["R@1"] == 0
    assert result["R@5"] == pytest.approx(1 / len(questions))
    assert result["MRR@10"] == pytest.approx(0.5 / len(questions))


@pytest.mark.model
def test_eval_command_json_agrees_with_reference_scorer(
    tmp_path: Path, subset: tuple[Path, Path], capsys, real_encoder
) -> None:
    articles, questions = subset
    run_file = tmp_path / "run.jsonl"
    argv = ["eval", "--articles", str(articles), "--questions", str(questions), "--json"]
    argv += ["--baselines", "--latency-questions", "20", "--run-file", str(run_file)]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    reference = reference_score(run_file, articles, questions)
    for key in KEYS:
        assert report["modes"]["hybrid"][key] == pytest.approx(reference[key], abs=1e-4)
    assert report["mode"] == "hybrid" and report["model"] == "all-MiniLM-L6-v2@onnx-int8"
    for mode in ("dense", "lexical"):
        assert report["modes"][mode]["R@20"] >= report["modes"][mode]["R@1"] > 0.3
        assert report["latency_ms"][mode]["p95"] >= report["latency_ms"][mode]["p50"] > 0
    assert report["peak_memory_mib"] > 50
    # hybrid beats both baselines on MRR here too
    assert report["modes"]["hybrid"]["MRR@10"] > max(
        report["modes"][m]["MRR@10"] for m in ("dense", "lexical")
    )


@pytest.mark.model
def test_eval_command_table(subset: tuple[Path, Path], capsys, real_encoder) -> None:
    articles, questions = subset
    argv = ["eval", "--articles", str(articles), "--questions", str(questions)]
    assert main([*argv, "--mode", "lexical", "--k", "5", "--latency-questions", "3"]) == 0
    out = capsys.readouterr().out
    assert "| lexical | " in out and "| hybrid |" not in out and "passages/s" in out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--mode", "fast"], "mode must be one of dense, lexical, hybrid, got 'fast'"),
        (["--k", "0"], "k must be at least 1"),
    ],
)
def test_eval_bad_options(
    subset: tuple[Path, Path], capsys, extra: list[str], message: str
) -> None:
    articles, questions = subset
    assert main(["eval", "--articles", str(articles), "--questions", str(questions), *extra]) == 1
    assert message in capsys.readouterr().err


def test_eval_missing_file(tmp_path: Path, capsys) -> None:
    argv = ["eval", "--articles", str(tmp_path / "no.jsonl"), "--questions", "q.jsonl"]
    assert main(argv) == 1
    assert "no.jsonl: cannot read JSON Lines" in capsys.readouterr().err
