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

# Set before transformers or sentence_transformers are imported anywhere.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@runtime_checkable
class Encoder(Protocol):
    """What the index needs from a model."""

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


class SentenceTransformerEncoder:
    """A packaged sentence-transformers model, loaded offline on the CPU (or `device`)."""

    def __init__(self, name: str = DEFAULT_MODEL, *, device: str = "cpu", batch_size: int = 64):
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # "Loading weights" bars on every start

        self._name = name
        self.batch_size = batch_size
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


@functools.lru_cache(maxsize=4)
def load_encoder(name: str = DEFAULT_MODEL) -> SentenceTransformerEncoder:
    """The encoder for a packaged model, loaded once per process."""
    return SentenceTransformerEncoder(name)
