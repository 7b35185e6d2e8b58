"""The same packaged model run by ONNX Runtime, int8-quantized: faster than torch on a
CPU, and no torch import when serving queries (torch is only needed once, to export).

The ONNX file is made here, offline, from the installed package's weights: a torch
export of the transformer (eager attention, so ONNX Runtime can fuse it), fused by ONNX
Runtime's BERT optimizer, then dynamic int8 quantization with one scale per output
channel (cosine ~0.99 to the torch vectors on SQuAD paragraphs; one scale per tensor
gave 0.946) and 7-bit weights (`reduce_range`): with them no int16 intermediate of the
u8 x s8 products that AVX2 and SSE kernels pair up can saturate, as VNNI and AMX never
do. Vectors still differ a little between CPUs (each layer quantizes its activations
again, so float rounding that differs between kernels can move a value by one step),
but the same text's vectors on an AVX2 and an SSE4.1 CPU agree to cosine >= 0.996
instead of 0.963 with 8-bit weights; SQuAD-dev measures the same either way
(BENCHMARKS.md "Encoding"). Mean pooling and normalization are done here exactly as the model's
sentence-transformers pipeline does them, with the model's own tokenizer.

Exports are cached in `$SEMANTIC_QA_ONNX_CACHE` (default ~/.cache/semantic-qa/onnx), in a
folder named by the checksum of the weights and the export settings; each file has a
sidecar `.json` with its size and checksum, written last, so a partial or corrupt file
is noticed and exported again.

>>> enc = OnnxEncoder()                                        # doctest: +SKIP
>>> enc.encode_documents(["Kazakhstan chaired the OSCE in 2010."]).shape
(1, 384)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from .encoder import Spans, pool_spans
from .models import DEFAULT_MODEL, model_path

log = logging.getLogger(__name__)

# Bump when the export recipe changes: old caches are then left alone and re-made.
# 2: 7-bit weights (reduce_range): no saturation on AVX2, closer vectors across CPUs.
EXPORT_VERSION = 2
OPSET = 17
INPUTS = ("input_ids", "attention_mask")
# Files that define the model's vectors; their bytes name the cache folder.
_MODEL_FILES = (
    "model.safetensors",
    "pytorch_model.bin",
    "config.json",
    "tokenizer.json",
    "modules.json",
    "sentence_bert_config.json",
    "1_Pooling/config.json",
)
# fp32: a batch holds at most BATCH_SIZE texts and BATCH_TOKENS tokens (padding
# included), ~6 passages or ~40 sentences; larger batches were slower here, their
# activations spill out of the CPU caches (benchmarks/encoding.py --sweep).
# int8 runs one text at a time: its activations are quantized with one scale per run,
# so in a batch a text's vector would depend (cosine ~0.95-0.99) on its batch mates;
# alone, a text always gets the same vector, as the embedding cache and incremental
# updates assume. Batching gains little on a CPU: 13% less CPU time for sentences in
# batches of 32 (BENCHMARKS.md "Indexing"); one text is already a large matrix product.
BATCH_SIZE = 64
BATCH_TOKENS = 1024


def cache_dir() -> Path:
    """Where exports live: `$SEMANTIC_QA_ONNX_CACHE`, default ~/.cache/semantic-qa/onnx."""
    default = Path.home() / ".cache" / "semantic-qa" / "onnx"
    return Path(os.environ.get("SEMANTIC_QA_ONNX_CACHE") or default).expanduser()


class OnnxEncoder:
    """An `Encoder` (see embeddings.encoder) over an ONNX export of a packaged model:
    `quantized` (int8, the default) or fp32. Every run (one batch) is computed on one
    thread (`run_threads`, ONNX Runtime's intra-op threads): a question never waits for
    a second thread that a busy machine has descheduled, the threads trap. Documents
    use the CPUs with `threads` runs at once (default: one per CPU), which also beats
    splitting each run's matrix products over them. `batch_size`: texts per run,
    default 1 for int8 so that a text always gets the same vector (see BATCH_SIZE)."""

    def __init__(
        self,
        name: str = DEFAULT_MODEL,
        *,
        quantized: bool = True,
        threads: int | None = None,
        run_threads: int = 1,
        batch_size: int | None = None,
        batch_tokens: int = BATCH_TOKENS,
        cache: Path | None = None,
    ):
        from tokenizers import Tokenizer

        from qa.errors import ModelNotFoundError

        folder = model_path(name)
        self._name = name
        self.backend = "onnx-int8" if quantized else "onnx-fp32"
        self.batch_size = batch_size or (1 if quantized else BATCH_SIZE)
        self.batch_tokens = batch_tokens
        self.threads = threads or os.cpu_count() or 1
        self.run_threads = run_threads
        if not _mean_pooled(folder):
            raise ModelNotFoundError(
                f"model {name!r}: the ONNX encoder supports mean-pooled models only; "
                "use the torch encoder (--encoder torch) for this one"
            )
        config = json.loads((folder / "sentence_bert_config.json").read_text(encoding="utf-8"))
        self._max_seq = int(config.get("max_seq_length") or 512)
        # Two copies: counting sees every token, encoding truncates like
        # sentence-transformers (special tokens kept, content cut to fit).
        self._counter = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self._counter.no_padding()
        self._counter.no_truncation()
        self._tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_length=self._max_seq)
        self._pad_id = self._tokenizer.token_to_id("[PAD]") or 0
        special = len(self._counter.encode("", add_special_tokens=True).ids)
        self._max_tokens = self._max_seq - special
        self.path = export_model(name, quantized=quantized, cache=cache)
        # The export's own checksum (its sidecar's, checked by export_model): an index
        # records it, and a different export (another recipe) is another encoder.
        self.export_id = str(json.loads(self.path.with_suffix(".json").read_text())["sha256"])[:16]
        # What the embedding cache files vectors under (embeddings.cache.model_key): the
        # export and whether a text was embedded alone or batched.
        runs = "single" if self.batch_size == 1 else "batched"
        self.cache_key = f"{self.name}:{self.export_id}:{runs}"
        self._session = _session(self.path, run_threads)
        self._dimension = int(self._session.get_outputs()[0].shape[-1])

    @property
    def name(self) -> str:
        return f"{self._name}@{self.backend}"

    @property
    def model_name(self) -> str:
        return self._name

    @property
    def dimension(self) -> int:
        return self._dimension

    @property
    def max_tokens(self) -> int:
        return self._max_tokens

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        return [
            (int(s), int(e))
            for s, e in self._counter.encode(text, add_special_tokens=False).offsets
        ]

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        encoded = self._counter.encode_batch(list(texts), add_special_tokens=False)
        return [len(e.ids) for e in encoded]

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, progress=False)

    def encode_documents(self, texts: Sequence[str], *, progress: bool | None = None) -> np.ndarray:
        return self._encode(texts, progress=_progress(progress, texts))

    def encode_passages(
        self, texts: Sequence[str], spans: Sequence[Spans], *, progress: bool | None = None
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Each text's vector (as `encode_documents` makes it) and its `spans`' vectors,
        pooled from the same run (see `embeddings.encoder.pool_spans`)."""
        encodings = self._tokenizer.encode_batch(list(texts), add_special_tokens=True)
        pooled = [np.zeros((0, self._dimension), np.float32)] * len(texts)

        def keep(i: int, hidden: np.ndarray) -> None:
            e = encodings[i]
            pooled[i] = pool_spans(hidden, e.offsets, e.special_tokens_mask, spans[i])

        ids = [e.ids for e in encodings]
        return self._run(ids, _progress(progress, texts), keep), pooled

    def _encode(self, texts: Sequence[str], *, progress: bool) -> np.ndarray:
        ids = [e.ids for e in self._tokenizer.encode_batch(list(texts), add_special_tokens=True)]
        return self._run(ids, progress)

    def _run(
        self,
        ids: list[list[int]],
        progress: bool,
        keep: Callable[[int, np.ndarray], None] | None = None,
    ) -> np.ndarray:
        """Vectors of the token sequences `ids`, in batches (see BATCH_SIZE) run on
        `threads` threads; `keep(i, hidden)` gets text i's token vectors."""
        from tqdm.auto import tqdm

        out = np.zeros((len(ids), self._dimension), dtype=np.float32)
        if not ids:
            return out
        # Batches of similar lengths: almost no padding is computed.
        order = [int(i) for i in np.argsort([len(i) for i in ids], kind="stable")]
        batches = list(self._batches(order, ids))

        def run(rows: list[int]) -> list[int]:
            hidden, out[rows] = self._encode_batch([ids[i] for i in rows])
            if keep is not None:
                for j, i in enumerate(rows):
                    keep(i, hidden[j, : len(ids[i])])
            return rows

        with tqdm(total=len(ids), desc="encoding", unit="text", disable=not progress) as bar:
            if len(batches) == 1 or self.threads == 1:  # one question: on this thread
                done: Iterator[list[int]] = map(run, batches)
                for rows in done:
                    bar.update(len(rows))
            else:
                with ThreadPoolExecutor(self.threads, thread_name_prefix="onnx") as pool:
                    for rows in pool.map(run, batches):
                        bar.update(len(rows))
        return out

    def _batches(self, order: list[int], ids: list[list[int]]) -> Iterator[list[int]]:
        """Runs of `order` (shortest first) within the batch's text and token limits."""
        batch: list[int] = []
        for i in order:
            if batch and (
                len(batch) >= self.batch_size or (len(batch) + 1) * len(ids[i]) > self.batch_tokens
            ):
                yield batch
                batch = []
            batch.append(i)
        if batch:
            yield batch

    def _encode_batch(self, ids: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
        """(token vectors [texts x tokens x dimension], text vectors) of one run."""
        length = max(len(i) for i in ids)
        input_ids = np.full((len(ids), length), self._pad_id, dtype=np.int64)
        mask = np.zeros((len(ids), length), dtype=np.int64)
        for row, seq in enumerate(ids):
            input_ids[row, : len(seq)] = seq
            mask[row, : len(seq)] = 1
        hidden = self._session.run(None, {"input_ids": input_ids, "attention_mask": mask})[0]
        # Mean over real tokens, then unit length: sentence-transformers' Pooling and
        # Normalize modules (same clamps: 1e-9 on the count, 1e-12 on the norm).
        weights = mask[..., None].astype(np.float32)
        vectors = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return hidden, (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


def _progress(progress: bool | None, texts: Sequence[str]) -> bool:
    """A progress bar when asked, or by default on a terminal for more than 64 texts."""
    return sys.stderr.isatty() and len(texts) > 64 if progress is None else progress


def _session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # Spinning threads burn the CPU other processes (and our own other threads) need.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _mean_pooled(folder: Path) -> bool:
    try:
        pooling = json.loads((folder / "1_Pooling" / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    modes = [k for k, v in pooling.items() if k.startswith("pooling_mode_") and v]
    return modes == ["pooling_mode_mean_tokens"]


def export_settings(quantized: bool) -> dict[str, Any]:
    """What an export depends on besides the weights (recorded beside the file)."""
    settings: dict[str, Any] = {"version": EXPORT_VERSION, "opset": OPSET, "fused": True}
    if quantized:
        settings["quantization"] = {
            "weights": "int8",
            "per_channel": True,
            "dynamic": True,
            "reduce_range": True,
        }
    return settings


def export_folder(name: str = DEFAULT_MODEL, *, cache: Path | None = None) -> Path:
    """The cache folder for a model's exports, named by its weights and the recipe."""
    folder = model_path(name)
    digest = hashlib.sha256(json.dumps(export_settings(False), sort_keys=True).encode())
    for rel in _MODEL_FILES:
        file = folder / rel
        if file.is_file():
            digest.update(rel.encode() + b"\0")
            with open(file, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
    label = re.sub(r"[^\w.-]+", "_", Path(name).name)
    return (cache or cache_dir()) / f"{label}-{digest.hexdigest()[:16]}"


def export_model(
    name: str = DEFAULT_MODEL, *, quantized: bool = True, cache: Path | None = None
) -> Path:
    """The ONNX file of a packaged model, exported (and quantized) on first use, and
    exported again when the cached file is partial or corrupt. Never downloads."""
    folder = export_folder(name, cache=cache)
    fp32 = folder / "model-fp32.onnx"
    target = folder / ("model-int8.onnx" if quantized else "model-fp32.onnx")
    if _is_valid(target, export_settings(quantized)):
        return target
    folder.mkdir(parents=True, exist_ok=True)
    log.warning("exporting %s to ONNX in %s (once; about a minute)", name, folder)
    if not _is_valid(fp32, export_settings(False)):
        with _temp_file(folder, ".onnx") as tmp:
            _export_fp32(model_path(name), tmp)
            _publish(tmp, fp32, export_settings(False))
    if quantized:
        with _temp_file(folder, ".onnx") as tmp:
            _quantize(fp32, tmp)
            _publish(tmp, target, export_settings(True))
    return target


def _is_valid(file: Path, settings: dict[str, Any]) -> bool:
    """True when `file` and its sidecar agree: complete, unedited, same recipe."""
    try:
        meta = json.loads(file.with_suffix(".json").read_text(encoding="utf-8"))
        if meta.get("settings") != settings or file.stat().st_size != meta.get("bytes"):
            raise ValueError("size or settings differ")
        if _sha256(file) != meta.get("sha256"):
            raise ValueError("checksum differs")
    except FileNotFoundError:
        return False
    except (OSError, ValueError, AttributeError) as err:
        log.warning("cached ONNX export %s is unusable (%s): exporting it again", file, err)
        return False
    return True


def _publish(tmp: Path, file: Path, settings: dict[str, Any]) -> None:
    """Move a finished export into place, then write its sidecar last."""
    meta = {"settings": settings, "bytes": tmp.stat().st_size, "sha256": _sha256(tmp)}
    with _temp_file(file.parent, ".json") as tmp_meta:
        tmp_meta.write_text(json.dumps(meta, indent=2), encoding="utf-8")
        os.replace(tmp, file)
        os.replace(tmp_meta, file.with_suffix(".json"))


@contextlib.contextmanager
def _temp_file(folder: Path, suffix: str) -> Any:
    fd, name = tempfile.mkstemp(prefix=".export-", suffix=suffix, dir=folder)
    os.close(fd)
    try:
        yield Path(name)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)


def _sha256(file: Path) -> str:
    digest = hashlib.sha256()
    with open(file, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _export_fp32(folder: Path, out: Path) -> None:
    """torch -> ONNX (last hidden state), then ONNX Runtime's BERT fusions."""
    from transformers import AutoConfig

    raw = out.with_name(out.name + ".raw.onnx")
    try:
        export_raw(folder, raw)
        config = AutoConfig.from_pretrained(str(folder), local_files_only=True)
        if config.model_type == "bert":
            from onnxruntime.transformers import optimizer

            fused = optimizer.optimize_model(
                str(raw),
                model_type="bert",
                num_heads=config.num_attention_heads,
                hidden_size=config.hidden_size,
                opt_level=1,
                use_gpu=False,
            )
            fused.save_model_to_file(str(out))
        else:
            os.replace(raw, out)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(raw)


def export_raw(folder: Path, out: Path) -> None:
    """The transformer of the model in `folder` as ONNX (its last hidden state, batch and
    tokens dynamic), exported by torch, not yet fused or quantized."""
    import torch
    from transformers import AutoModel

    # Eager attention exports as plain MatMul/Softmax, which the optimizer fuses into
    # one Attention op (sdpa's export is not recognized and stays ~25% slower int8).
    model = AutoModel.from_pretrained(
        str(folder), local_files_only=True, attn_implementation="eager"
    ).eval()

    class Hidden(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return self.inner(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    sample = torch.tensor([[101, 7592, 2088, 102], [101, 7592, 102, 0]])
    mask = (sample != 0).long()
    # The legacy exporter warns that it is legacy, and the tracer about a padding branch
    # that is constant here (the mask always spans the whole input).
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Hidden(model).eval(),
            (sample, mask),
            str(out),
            input_names=list(INPUTS),
            output_names=["last_hidden_state"],
            dynamic_axes={n: {0: "batch", 1: "tokens"} for n in (*INPUTS, "last_hidden_state")},
            opset_version=OPSET,
            dynamo=False,  # the dynamo exporter needs onnxscript and more time
        )


def _quantize(fp32: Path, out: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(fp32),
        str(out),
        weight_type=QuantType.QInt8,
        per_channel=True,
        reduce_range=True,
        # The fused ops are in ONNX Runtime's own domain: shape inference cannot type
        # their outputs, which are all float.
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )
