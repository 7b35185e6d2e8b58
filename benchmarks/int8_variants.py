"""The int8 variants issue 17 asked about, on one CPU thread each, in one run: does
anything run the default model faster on this CPU than the shipped export (dynamic
int8, one text per run)?

    python benchmarks/int8_variants.py              # ~5 minutes on 2 CPUs
    python benchmarks/int8_variants.py --passages 200 --rounds 5

Rows (each an ONNX Runtime session on one intra-op thread, the same SQuAD-dev
passages, the project's splitter, rounds taken in turns, medians):

- fp32: the shipped fp32 export (fused by ONNX Runtime's BERT optimizer);
- dynamic int8, one text per run: the shipped int8 export, as `OnnxEncoder` runs it;
- dynamic int8, batches of 8 (sorted by length): what batching would gain;
- static int8 (QDQ, activation ranges calibrated once on 200 SQuAD-train passages,
  min-max, per-channel weights; the raw torch export, MatMuls quantized), one text
  per run and in batches of 8: fixed activation scales would make batching safe.

Cosine: each passage's mean-pooled vector against fp32's, mean and minimum. Then
where the default's time goes (ONNX Runtime's profile, by operator), and
`OnnxEncoder` on one thread against one run per CPU (its default).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from embeddings import load_encoder
from embeddings.models import DEFAULT_MODEL, model_path
from embeddings.onnx import export_model, export_raw
from qa.evaluation import load_squad
from qa.passages import split_document

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
Run = Callable[[list[list[int]]], list[np.ndarray]]


def session(path: Path, *, profiling: bool = False) -> Any:
    """An ONNX Runtime session of `path` on one thread, as `OnnxEncoder` runs one."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if profiling:
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(tempfile.gettempdir()) / "semantic-qa-int8")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def runner(path: Path, batch: int) -> Run:
    """Mean-pooled, normalized vectors of token sequences, `batch` texts per run."""
    s = session(path)

    def run(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return s.run(None, {"input_ids": ids, "attention_mask": mask})[0]

    def vectors(seqs: list[list[int]]) -> list[np.ndarray]:
        out: list[np.ndarray] = [np.zeros(0)] * len(seqs)
        order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
        for b in range(0, len(order), batch):
            rows = order[b : b + batch]
            length = max(len(seqs[i]) for i in rows)
            ids = np.zeros((len(rows), length), np.int64)
            mask = np.zeros_like(ids)
            for j, i in enumerate(rows):
                ids[j, : len(seqs[i])], mask[j, : len(seqs[i])] = seqs[i], 1
            hidden = run(ids, mask)
            for j, i in enumerate(rows):
                v = hidden[j, : len(seqs[i])].mean(axis=0)
                out[i] = v / np.linalg.norm(v)
        return out

    return vectors


def static_int8(calibration: list[list[int]], folder: Path) -> Path:
    """The raw torch export, quantized with fixed activation ranges (QDQ)."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    raw, out = folder / "raw.onnx", folder / "static-int8.onnx"
    export_raw(model_path(DEFAULT_MODEL), raw)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.seqs = iter(calibration)

        def get_next(self) -> dict[str, np.ndarray] | None:
            seq = next(self.seqs, None)
            if seq is None:
                return None
            ids = np.array([seq], np.int64)
            return {"input_ids": ids, "attention_mask": np.ones_like(ids)}

    quantize_static(
        str(raw),
        str(out),
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        weight_type=QuantType.QInt8,
        activation_type=QuantType.QUInt8,
        op_types_to_quantize=["MatMul"],
        calibrate_method=CalibrationMethod.MinMax,
    )
    return out


def profile(path: Path, seqs: list[list[int]]) -> None:
    """The share of run time of each operator type, one text per run, one thread."""
    s = session(path, profiling=True)
    for seq in seqs:
        ids = np.array([seq], np.int64)
        s.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids)})
    trace = Path(s.end_profiling())
    spent: dict[str, float] = {}
    for event in json.loads(trace.read_text()):
        if event.get("cat") == "Node" and "op_name" in event.get("args", {}):
            op = event["args"]["op_name"]
            spent[op] = spent.get(op, 0.0) + event["dur"]
    trace.unlink()
    total = sum(spent.values())
    shares = sorted(spent.items(), key=lambda kv: -kv[1])
    print(
        "\nthe default's time by operator: "
        + ", ".join(f"{op} {100 * t / total:.0f}%" for op, t in shares if t / total >= 0.005)
    )


def threads(seqs: list[list[int]], texts: list[str], rounds: int) -> None:
    """`OnnxEncoder.encode_documents` with one run at a time and with one per CPU."""
    from embeddings.onnx import OnnxEncoder

    speed = {}
    for n in (1, os.cpu_count() or 1):
        encoder = OnnxEncoder(threads=n)
        encoder.encode_documents(texts[:2])
        seconds = []
        for _ in range(rounds):
            started = time.perf_counter()
            encoder.encode_documents(texts)
            seconds.append(time.perf_counter() - started)
        speed[n] = len(texts) / statistics.median(seconds)
    print(
        "OnnxEncoder: "
        + ", ".join(f"{n} run(s) at once {s:.1f} passages/s" for n, s in speed.items())
        + f" ({speed[max(speed)] / speed[1]:.2f}x)"
    )


def passages(split: str, articles: int, count: int, seed: int) -> list[str]:
    """`count` passages of the first `articles` articles, a fixed sample."""
    encoder = load_encoder()
    docs, _ = load_squad(DATA / split / "articles.jsonl", DATA / split / "questions.jsonl")
    texts = [p.text for d in docs[:articles] for p in split_document(d, encoder)]
    pick = np.random.default_rng(seed).choice(len(texts), min(count, len(texts)), replace=False)
    return [texts[i] for i in sorted(pick)]


def token_ids(texts: list[str]) -> list[list[int]]:
    return [e.ids for e in load_encoder()._tokenizer.encode_batch(texts)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--passages", type=int, default=120)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    texts = passages("squad-dev", 6, args.passages, 0)
    seqs = token_ids(texts)
    calibration = token_ids(passages("squad-train", 40, 200, 0))
    with tempfile.TemporaryDirectory(prefix="semantic-qa-int8-") as tmp:
        static = static_int8(calibration, Path(tmp))
        rows: dict[str, Run] = {
            "fp32 (shipped export)": runner(export_model(quantized=False), 1),
            "dynamic int8, one text per run (shipped, the default)": runner(export_model(), 1),
            "dynamic int8, batches of 8": runner(export_model(), 8),
            "static int8 (QDQ, calibrated), one text per run": runner(static, 1),
            "static int8 (QDQ, calibrated), batches of 8": runner(static, 8),
        }
        names = list(rows)
        seconds: dict[str, list[float]] = {n: [] for n in names}
        got: dict[str, list[np.ndarray]] = {}
        for r in range(args.rounds):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                rows[name](seqs[:4])
                started = time.perf_counter()
                got[name] = rows[name](seqs)
                seconds[name].append(time.perf_counter() - started)
                print(f"round {r + 1} {name}: {seconds[name][-1]:.2f} s", file=sys.stderr)
    tokens = sum(len(s) for s in seqs) / len(seqs)
    print(f"\n{len(seqs)} SQuAD-dev passages ({tokens:.0f} tokens on average), one thread each")
    print("\n| variant | passages/s | x default | cosine to fp32 mean / min |")
    print("|---|---:|---:|---|")
    default = statistics.median(seconds[names[1]])
    for name in names:
        cos = np.array([a @ b for a, b in zip(got[name], got[names[0]], strict=True)])
        s = statistics.median(seconds[name])
        print(
            f"| {name} | {len(seqs) / s:.1f} | {default / s:.2f} | "
            f"{cos.mean():.4f} / {cos.min():.4f} |"
        )
    profile(export_model(), seqs)
    threads(seqs, texts, args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
