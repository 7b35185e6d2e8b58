"""Encoders: a thin layer over SentenceTransformer that returns normalized float32
vectors, knows its token budget, and never reaches for a hub.

>>> enc = load_encoder()                  # doctest: +SKIP
>>> enc.encode_queries(["Who chaired the committee?"]).shape
(1, 384)
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from .models import DEFAULT_MODEL, model_path

log = logging.getLogger(__name__)

# How an encoder runs the model. torch: sentence-transformers; onnx-*: embeddings.onnx.
BACKENDS = ("torch", "onnx-int8", "onnx-fp32")
ALIASES = {"onnx": "onnx-int8"}
# New indexes use ONNX Runtime int8: 3.3x torch's passages/s on this CPU, SQuAD-dev
# Recall@5 within 0.4 points (BENCHMARKS.md, "Encoding"). A bare model name stays the
# torch encoder, so indexes built before keep being searched with torch.
DEFAULT_BACKEND = "onnx-int8"
DEFAULT_ENCODER = f"{DEFAULT_MODEL}@{DEFAULT_BACKEND}"

# Set before transformers or sentence_transformers are imported anywhere.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@runtime_checkable
class Encoder(Protocol):
    """What the index needs from a model. An encoder may also offer
    `encode_passages(texts, spans, progress=...) -> (vectors, [span vectors per text])`:
    each text's vector and the vectors of character spans of it (its sentences) pooled
    from the same pass (`pool_spans`); the index then needs one run per passage
    instead of one more per sentence."""

    @property
    def name(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    @property
    def max_tokens(self) -> int:
        """Content tokens per input the model can see, special tokens excluded."""
        ...

    def token_spans(self, text: str) -> list[tuple[int, int]]: ...

    def count_tokens(self, texts: Sequence[str]) -> list[int]: ...

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray: ...

    def encode_documents(
        self, texts: Sequence[str], *, progress: bool | None = None
    ) -> np.ndarray: ...


Spans = Sequence[tuple[int, int]]


def pool_spans(
    hidden: np.ndarray,
    offsets: Sequence[tuple[int, int]],
    special: Sequence[int],
    spans: Spans,
) -> np.ndarray:
    """[spans x dimension]: the mean of the token vectors (`hidden`, one per token,
    `offsets` in the text, `special` 1 for [CLS]/[SEP]) of the tokens inside each
    character span, unit length; as a model's mean pooling is over its text's tokens,
    this is over the span's, each token read in the context of the whole text. A span
    without a token (cut off by truncation) gets the whole text's mean."""
    starts = np.fromiter((o[0] for o in offsets), np.int64, len(offsets))
    ends = np.fromiter((o[1] for o in offsets), np.int64, len(offsets))
    real = (np.asarray(special, dtype=bool) == 0) & (ends > starts)
    out = np.empty((len(spans), hidden.shape[1]), dtype=np.float32)
    whole = hidden.mean(axis=0)
    for i, (start, end) in enumerate(spans):
        inside = real & (starts >= start) & (ends <= end)
        vector = hidden[inside].mean(axis=0) if inside.any() else whole
        out[i] = vector / max(float(np.linalg.norm(vector)), 1e-12)
    return out


class SentenceTransformerEncoder:
    """A packaged sentence-transformers model, loaded offline on the CPU (or `device`)."""

    def __init__(
        self, name: str = DEFAULT_MODEL, *, device: str = "cpu", batch_size: int | None = None
    ):
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # "Loading weights" bars on every start

        self._name = name
        self.backend = "torch"
        self.device = device
        # A GPU is fastest with larger batches (256 vs 64: +14% on an H200, BENCHMARKS.md).
        self.batch_size = batch_size or (256 if device.startswith("cuda") else 64)
        path = model_path(name)
        log.info("loading model %s from %s", name, path)
        self.model = SentenceTransformer(str(path), device=device, local_files_only=True)
        self.tokenizer = self.model.tokenizer
        self._dimension = int(self.model.get_embedding_dimension() or 0)
        special = len(self.tokenizer("", add_special_tokens=True)["input_ids"])
        self._max_tokens = int(self.model.max_seq_length or 512) - special

    @property
    def name(self) -> str:
        return self._name

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
        enc = self.tokenizer(
            text, add_special_tokens=False, return_offsets_mapping=True, verbose=False
        )
        return [(int(s), int(e)) for s, e in enc["offset_mapping"]]

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        enc = self.tokenizer(list(texts), add_special_tokens=False, verbose=False)
        return [len(ids) for ids in enc["input_ids"]]

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        # A single short query runs on one thread: torch's default pool makes it wait
        # on busy cores (~0.5 s under load vs ~10 ms). Batches use the whole pool.
        with _torch_threads(1) if len(texts) <= 4 else contextlib.nullcontext():
            vectors = self.model.encode_query(
                list(texts), normalize_embeddings=True, convert_to_numpy=True
            )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def encode_passages(
        self, texts: Sequence[str], spans: Sequence[Spans], *, progress: bool | None = None
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Each text's vector and its `spans`' vectors, pooled from one pass (see
        `pool_spans`): sentence-transformers' token embeddings, the tokenizer's offsets."""
        if progress is None:
            progress = sys.stderr.isatty() and len(texts) > 2 * self.batch_size
        tokens = self.model.encode_document(
            list(texts),
            batch_size=self.batch_size,
            output_value="token_embeddings",
            show_progress_bar=progress,
        )
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        pooled = []
        for i, (text, hidden) in enumerate(zip(texts, tokens, strict=True)):
            hidden = hidden.float().cpu().numpy()
            enc = self.tokenizer(
                text,
                return_offsets_mapping=True,
                return_special_tokens_mask=True,
                truncation=True,
                max_length=self.model.max_seq_length,
                verbose=False,
            )
            vector = hidden.mean(axis=0)
            vectors[i] = vector / max(float(np.linalg.norm(vector)), 1e-12)
            pooled.append(
                pool_spans(hidden, enc["offset_mapping"], enc["special_tokens_mask"], spans[i])
            )
        return vectors, pooled

    def encode_documents(self, texts: Sequence[str], *, progress: bool | None = None) -> np.ndarray:
        if progress is None:
            progress = sys.stderr.isatty() and len(texts) > 2 * self.batch_size
        vectors = self.model.encode_document(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=progress,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(texts), self.dimension)


_threads_lock = threading.Lock()


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    import torch

    with _threads_lock:
        before = torch.get_num_threads()
        if before != n:
            torch.set_num_threads(n)
        try:
            yield
        finally:
            if before != n:
                torch.set_num_threads(before)


def split_name(name: str) -> tuple[str, str]:
    """(model, backend) from an encoder name: "all-MiniLM-L6-v2" is the torch encoder,
    "all-MiniLM-L6-v2@onnx-int8" the ONNX one. Indexes record this name, so an index is
    searched with the backend that embedded it."""
    model, sep, backend = name.rpartition("@")
    if sep and backend in BACKENDS:
        return model, backend
    return name, "torch"


def encoder_name(model: str | None = None, backend: str | None = None) -> str:
    """The name `load_encoder(model, backend=backend)` gives its encoder, without loading it."""
    base, named = split_name(model or DEFAULT_ENCODER)
    backend = _check_backend(backend or named)
    return base if backend == "torch" else f"{base}@{backend}"


def _check_backend(backend: str) -> str:
    from qa.errors import InvalidInputError

    backend = ALIASES.get(backend, backend)
    if backend not in BACKENDS:
        raise InvalidInputError(
            f"unknown encoder {backend!r}: use one of {', '.join(sorted({*BACKENDS, *ALIASES}))}"
        )
    return backend


def default_device() -> str:
    """$SEMANTIC_QA_DEVICE when set ("cpu", "cuda", "cuda:1"); otherwise (or "auto")
    "cuda" when torch sees a GPU, else "cpu"."""
    device = os.environ.get("SEMANTIC_QA_DEVICE", "auto")
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_encoder(
    name: str = DEFAULT_ENCODER, *, backend: str | None = None, device: str | None = None
) -> Encoder:
    """The encoder for a packaged model, loaded once per process. `name` may carry its
    backend ("all-MiniLM-L6-v2@onnx-int8"); `backend` ("torch", "onnx" = "onnx-int8",
    "onnx-fp32") overrides it. `device` ("cpu", "cuda", "auto") is for torch."""
    from qa.errors import InvalidInputError

    model, named = split_name(name)
    backend = _check_backend(backend or named)
    if backend == "torch":
        return _load(model, backend, default_device() if device in (None, "auto") else device)
    if device not in (None, "auto", "cpu"):
        raise InvalidInputError(
            f"the {backend} encoder runs on the CPU only, not {device!r}: "
            "use --encoder torch with --device cuda"
        )
    return _load(model, backend, "cpu")


@functools.lru_cache(maxsize=4)
def _load(model: str, backend: str, device: str) -> Encoder:
    if backend == "torch":
        return SentenceTransformerEncoder(model, device=device)
    from .onnx import OnnxEncoder

    return OnnxEncoder(model, quantized=backend == "onnx-int8")
