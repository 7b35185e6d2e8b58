"""Fusing dense and lexical scores into one ranking (hybrid search).

Both schemes work on full score arrays (one score per candidate passage):

- reciprocal rank fusion (RRF): `1/(c + dense rank) + 1/(c + lexical rank)`; uses
  ranks only, so it cannot tell a clear winner from a near tie.
- normalized score fusion (the default): each score list min-max normalized over
  the candidates, then `weight * dense + (1 - weight) * lexical`, equal weights. It
  keeps how far apart the scores are, which measures better (BENCHMARKS.md,
  "Retrieval quality").

>>> [round(float(x), 2) for x in fuse(np.array([0.9, 0.5, 0.1]), np.array([0, 12.0, 3]))]
[0.5, 0.75, 0.12]
"""

from __future__ import annotations

import numpy as np

FUSIONS = ("score", "rrf")
DEFAULT_FUSION = "score"
# Share of the dense score: equal weights, no tuning (0.4-0.6 measure within 0.5
# points of each other on squad-dev; BENCHMARKS.md).
DEFAULT_WEIGHT = 0.5
RRF_C = 60


def fuse(
    dense: np.ndarray,
    lexical: np.ndarray,
    sentences: np.ndarray | None = None,
    *,
    method: str = DEFAULT_FUSION,
    weight: float = DEFAULT_WEIGHT,
) -> np.ndarray:
    """One fused score per candidate (higher is better). `sentences`: each
    candidate's best sentence score (dense), a third signal; with it the dense share
    `weight` is split evenly between the passage and its best sentence."""
    signals = [(dense, weight), (lexical, 1 - weight)]
    if sentences is not None:
        signals = [(dense, weight / 2), (sentences, weight / 2), (lexical, 1 - weight)]
    if method == "rrf":
        return sum((w / (RRF_C + _ranks(x)) for x, w in signals), np.zeros(len(dense)))
    if method == "score":
        return sum((w * normalize(x) for x, w in signals), np.zeros(len(dense), np.float32))
    raise ValueError(f"unknown fusion {method!r}: use one of {', '.join(FUSIONS)}")


def normalize(scores: np.ndarray) -> np.ndarray:
    """Min-max normalize to [0, 1] (all zeros when the scores are all equal)."""
    scores = np.asarray(scores, dtype=np.float32)
    if scores.size == 0:
        return scores
    lo, hi = float(scores.min()), float(scores.max())
    if hi - lo <= 1e-9:
        return np.zeros_like(scores)
    return (scores - lo) / (hi - lo)


def _ranks(scores: np.ndarray) -> np.ndarray:
    order = np.argsort(-scores, kind="stable")
    ranks = np.empty(scores.size, dtype=np.float64)
    ranks[order] = np.arange(1, scores.size + 1)
    return ranks
