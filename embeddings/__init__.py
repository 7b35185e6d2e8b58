"""Embedding models for semantic-qa: packaged, offline, normalized float32."""

from __future__ import annotations

from .encoder import Encoder, SentenceTransformerEncoder, load_encoder
from .models import DEFAULT_MODEL, REGISTRY, model_path

__all__ = [
    "DEFAULT_MODEL",
    "REGISTRY",
    "Encoder",
    "SentenceTransformerEncoder",
    "load_encoder",
    "model_path",
]
