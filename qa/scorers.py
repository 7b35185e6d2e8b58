"""Scorers: the learned parts of ranking, read from small JSON files in `qa/rankers/`.

A scorer maps rows of features (`qa.signals`) to a probability. Two kinds:

- "linear": logistic regression on standardized features,
  `sigmoid(((x - mean) / scale) @ coef + intercept)`;
- "trees": gradient-boosted trees (LightGBM's own JSON dump), their leaf values summed
  and passed through the sigmoid.

Each file names its features, so a scorer refuses rows of another feature set, and
says how it was trained (`training`: the command, the data and what it measured). They
are made by `python benchmarks/train_ranker.py`; no pickle, nothing executable.

>>> passage, sentence = default_scorers()          # doctest: +SKIP
>>> passage.score(features).round(3)               # doctest: +SKIP
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import IndexCorruptError
from .signals import PASSAGE_FEATURES, SENTENCE_FEATURES

FOLDER = Path(__file__).resolve().parent / "rankers"
FILES = {"passage": "passage.json", "sentence": "sentence.json"}
FEATURES = {"passage": PASSAGE_FEATURES, "sentence": SENTENCE_FEATURES}


@dataclass(frozen=True)
class Scorer:
    """A fitted scorer (see the module's doc); `name` says which, `version` the
    checksum of its file, `training` how it was made."""

    name: str
    kind: str
    features: tuple[str, ...]
    mean: np.ndarray = field(repr=False)
    scale: np.ndarray = field(repr=False)
    coef: np.ndarray = field(repr=False)
    intercept: float = 0.0
    trees: tuple[dict[str, Any], ...] = field(default=(), repr=False)
    version: str = ""
    training: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any], version: str = "") -> Scorer:
        n = len(data["features"])
        zeros = np.zeros(n)
        return cls(
            name=str(data["name"]),
            kind=str(data["kind"]),
            features=tuple(data["features"]),
            mean=np.asarray(data.get("mean", zeros), np.float64),
            scale=np.asarray(data.get("scale", zeros + 1), np.float64),
            coef=np.asarray(data.get("coef", zeros), np.float64),
            intercept=float(data.get("intercept", 0.0)),
            trees=tuple(data.get("trees", ())),
            version=version,
            training=dict(data.get("training", {})),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "kind": self.kind, "features": self.features}
        if self.kind == "linear":
            out |= {
                "mean": self.mean.tolist(),
                "scale": self.scale.tolist(),
                "coef": self.coef.tolist(),
                "intercept": self.intercept,
            }
        else:
            out |= {"intercept": self.intercept, "trees": list(self.trees)}
        return out | {"training": self.training}

    def raw(self, rows: np.ndarray) -> np.ndarray:
        """The scorer's margin (log-odds) for each row of features."""
        x = np.asarray(rows, dtype=np.float64).reshape(-1, len(self.features))
        if self.kind == "linear":
            return ((x - self.mean) / self.scale) @ self.coef + self.intercept
        return self.intercept + sum(
            (_tree(tree, x) for tree in self.trees), np.zeros(len(x), np.float64)
        )

    def score(self, rows: np.ndarray) -> np.ndarray:
        """The probability each row of features is a positive (holds the answer)."""
        return (1.0 / (1.0 + np.exp(-self.raw(rows)))).astype(np.float32)


def _tree(node: dict[str, Any], x: np.ndarray) -> np.ndarray:
    """Leaf values of one LightGBM tree (its JSON dump: split_feature, threshold,
    decision_type "<=", default_left, left_child, right_child, leaf_value) for each
    row of `x`, all rows at once, level by level."""
    out = np.zeros(len(x))
    stack = [(node, np.arange(len(x)))]
    while stack:
        n, at = stack.pop()
        if "leaf_value" in n:
            out[at] = n["leaf_value"]
            continue
        values = x[at, n["split_feature"]]
        left = values <= n["threshold"]
        if n.get("default_left", True):
            left |= np.isnan(values)
        stack += [(n["left_child"], at[left]), (n["right_child"], at[~left])]
    return out


def load_scorer(path: str | Path, expect: str) -> Scorer:
    """A scorer file, checked to score `expect`'s features ("passage" or "sentence")."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        scorer = Scorer.from_dict(json.loads(raw), hashlib.sha256(raw).hexdigest()[:12])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise IndexCorruptError(
            f"ranking model {path} cannot be read ({err}): reinstall semantic-qa, or "
            "retrain it with: python benchmarks/train_ranker.py"
        ) from err
    if scorer.features != FEATURES[expect]:
        raise IndexCorruptError(
            f"ranking model {path} scores other features than this version computes: "
            "retrain it with: python benchmarks/train_ranker.py"
        )
    return scorer


@functools.lru_cache(maxsize=1)
def default_scorers() -> tuple[Scorer, Scorer]:
    """(passage scorer, sentence scorer) shipped with the package."""
    return (
        load_scorer(FOLDER / FILES["passage"], "passage"),
        load_scorer(FOLDER / FILES["sentence"], "sentence"),
    )
