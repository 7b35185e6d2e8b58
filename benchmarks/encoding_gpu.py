"""Encoding speed of the torch encoder on a GPU (`--device cuda`), with the same
machine's CPU as the baseline, in the same run. Needs only torch and
sentence-transformers, so it runs where the rest of semantic-qa is not installed:

    python benchmarks/encoding.py --save-texts passages.json   # here: the 1,000 passages
    python benchmarks/encoding_gpu.py --model MODEL_DIR --texts passages.json   # on the GPU

It encodes the passages as `SentenceTransformerEncoder.encode_documents` does
(`encode_document`, normalized, one batch size at a time), timing each run after a
warm-up and synchronizing the GPU before the clock stops.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sentence_transformers import SentenceTransformer


def speed(
    model: SentenceTransformer, texts: list[str], batch: int, rounds: int
) -> tuple[float, np.ndarray]:
    model.encode_document(texts[: 2 * batch], batch_size=batch)  # warm-up: kernels, allocator
    speeds = []
    for _ in range(rounds):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        started = time.perf_counter()
        vectors = model.encode_document(
            texts, batch_size=batch, normalize_embeddings=True, convert_to_numpy=True
        )
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        speeds.append(len(texts) / (time.perf_counter() - started))
    return statistics.median(speeds), np.asarray(vectors, dtype=np.float32)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, required=True, help="sentence-transformers model folder")
    ap.add_argument("--texts", type=Path, required=True, help="JSON list of passages")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch-size", type=int, nargs="+", default=[32, 64, 128, 256, 512])
    args = ap.parse_args()
    texts = json.loads(args.texts.read_text(encoding="utf-8"))
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    print(
        f"{len(texts)} passages; {gpu}; {os.cpu_count()} CPUs; torch {torch.__version__}",
        flush=True,
    )
    kwargs = {"model_kwargs": {"dtype": torch.float32}, "local_files_only": True}
    cpu = SentenceTransformer(str(args.model), device="cpu", **kwargs)
    base, ref = speed(cpu, texts, 64, 1)
    rows = [("cpu", "fp32", 64, base, 1.0)]
    print(
        f"cpu fp32 batch 64: {base:.1f} passages/s ({torch.get_num_threads()} threads)", flush=True
    )
    if not torch.cuda.is_available():
        print("no GPU: nothing else to measure", file=sys.stderr)
        return 1
    cuda = SentenceTransformer(str(args.model), device="cuda", **kwargs)
    for dtype in ("fp32", "fp16"):
        if dtype == "fp16":
            cuda = cuda.half()
        for batch in args.batch_size:
            s, vectors = speed(cuda, texts, batch, args.rounds)
            cos = (vectors * ref).sum(axis=1)
            rows.append(("cuda", dtype, batch, s, float(cos.min())))
            print(
                f"cuda {dtype} batch {batch}: {s:.1f} passages/s, min cosine to cpu {cos.min():.5f}",
                flush=True,
            )
    print("\n| device | weights | batch | passages/s | x cpu | min cosine to cpu |")
    print("|---|---|---|---|---|---|")
    for device, dtype, batch, s, cos_min in rows:
        print(f"| {device} | {dtype} | {batch} | {s:.0f} | {s / base:.1f} | {cos_min:.5f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
