"""Embedding models for semantic-qa: packaged, offline, normalized float32."""

from __future__ import annotations

from .cache import CachedEncoder, EmbeddingCache
from .encoder import (
    BACKENDS,
    DEFAULT_BACKEND,
    DEFAULT_ENCODER,
    Encoder,
    SentenceTransformerEncoder,
    default_device,
    encoder_name,
    load_encoder,
    split_name,
)
from .models import DEFAULT_MODEL, REGISTRY, model_path

__all__ = [
    "BACKENDS",
    "DEFAULT_BACKEND",
    "DEFAULT_ENCODER",
    "DEFAULT_MODEL",
    "REGISTRY",
    "CachedEncoder",
    "EmbeddingCache",
    "Encoder",
    "SentenceTransformerEncoder",
    "default_device",
    "encoder_name",
    "load_encoder",
    "model_path",
    "split_name",
]
