"""Scorers: the learned parts of ranking, read from small JSON files in `qa/rankers/`.

A scorer maps rows of features (`qa.signals`) to a probability. Two kinds:

- "linear": logistic regression on standardized features,
  `sigmoid(((x - mean) / scale) @ coef + intercept)`;
- "trees": gradient-boosted trees (fitted by LightGBM, kept as flat node arrays, see
  `Forest`), their leaf values summed and passed through the sigmoid; LightGBM is
  not needed to score.

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
from collections.abc import Sequence
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
    forest: Forest | None = field(default=None, repr=False)
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
            forest=Forest.from_dict(data["forest"]) if "forest" in data else None,
            version=version,
            training=dict(data.get("training", {})),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "kind": self.kind, "features": self.features}
        if self.forest is None:
            out |= {
                "mean": self.mean.tolist(),
                "scale": self.scale.tolist(),
                "coef": self.coef.tolist(),
                "intercept": self.intercept,
            }
        else:
            out |= {"intercept": self.intercept, "forest": self.forest.to_dict()}
        return out | {"training": self.training}

    def dumps(self) -> str:
        """The scorer as its file holds it: JSON, one line per field (a forest's
        arrays one line each), so that a diff of two versions reads."""
        return _dumps(self.to_dict()) + "\n"

    def raw(self, rows: np.ndarray) -> np.ndarray:
        """The scorer's margin (log-odds) for each row of features."""
        x = np.asarray(rows, dtype=np.float64).reshape(-1, len(self.features))
        if self.forest is None:
            return ((x - self.mean) / self.scale) @ self.coef + self.intercept
        return self.intercept + self.forest.predict(x)

    def score(self, rows: np.ndarray) -> np.ndarray:
        """The probability each row of features is a positive (holds the answer)."""
        return (1.0 / (1.0 + np.exp(-self.raw(rows)))).astype(np.float32)


def _dumps(value: Any, indent: str = "") -> str:
    if not isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    inner = indent + " "
    lines = [f"{inner}{json.dumps(k)}: {_dumps(v, inner)}" for k, v in value.items()]
    return "{\n" + ",\n".join(lines) + "\n" + indent + "}"


@dataclass(frozen=True)
class Forest:
    """Trees as arrays (one node per position, all trees side by side), evaluated for
    every row and every tree at once, one level at a time. Node i of a tree splits on
    feature[i] (go left when the value is <= threshold[i]) or is a leaf (feature -1)
    worth value[i]; roots are where the trees start. Features are never missing here."""

    feature: np.ndarray  # per node; -1 for a leaf
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    value: np.ndarray  # leaf values (0 at inner nodes)
    roots: np.ndarray
    depth: int

    @classmethod
    def of(cls, trees: Sequence[dict[str, Any]]) -> Forest:
        """From LightGBM's JSON dump (`booster.dump_model()`'s trees' `tree_structure`):
        nodes with split_feature, threshold, left_child, right_child; leaves with
        leaf_value."""
        feature: list[int] = []
        threshold: list[float] = []
        left: list[int] = []
        right: list[int] = []
        value: list[float] = []
        roots = []

        def add(node: dict[str, Any]) -> int:
            at = len(feature)
            feature.append(-1)
            threshold.append(0.0)
            left.append(at)
            right.append(at)
            value.append(float(node.get("leaf_value", 0.0)))
            if "leaf_value" not in node:
                if node.get("decision_type", "<=") != "<=":
                    raise ValueError(f"unsupported split {node.get('decision_type')!r}")
                feature[at] = int(node["split_feature"])
                threshold[at] = float(node["threshold"])
                left[at] = add(node["left_child"])
                right[at] = add(node["right_child"])
            return at

        for tree in trees:
            roots.append(add(tree))
        return cls.from_dict(
            {"feature": feature, "threshold": threshold, "left": left, "right": right,
             "value": value, "roots": roots}
        )  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Forest:
        feature = np.asarray(data["feature"], np.int64)
        left = np.asarray(data["left"], np.int64)
        right = np.asarray(data["right"], np.int64)
        roots = np.asarray(data["roots"], np.int64)
        n = len(feature)
        if not all(len(np.asarray(data[k])) == n for k in ("threshold", "left", "right", "value")):
            raise ValueError("a forest's node arrays differ in length")
        if (left < 0).any() or (left >= n).any() or (right < 0).any() or (right >= n).any():
            raise ValueError("a forest's child points outside it")
        # a node's children come after it (or it is a leaf pointing at itself), so the
        # deepest path is found in one pass backwards
        depth = np.zeros(n, np.int64)
        for i in range(n - 1, -1, -1):
            if feature[i] >= 0:
                if left[i] <= i or right[i] <= i:
                    raise ValueError("a forest's nodes are out of order")
                depth[i] = 1 + max(depth[left[i]], depth[right[i]])
        return cls(
            feature,
            np.asarray(data["threshold"], np.float64),
            left,
            right,
            np.asarray(data["value"], np.float64),
            roots,
            int(depth[roots].max()) if len(roots) else 0,
        )

    def to_dict(self) -> dict[str, list]:
        return {
            "roots": self.roots.tolist(),
            "feature": self.feature.tolist(),
            "threshold": self.threshold.tolist(),
            "left": self.left.tolist(),
            "right": self.right.tolist(),
            "value": self.value.tolist(),
        }

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The sum of the trees' leaf values for each row of `x`."""
        node = np.broadcast_to(self.roots, (len(x), len(self.roots))).copy()
        rows = np.arange(len(x))[:, None]
        for _ in range(self.depth):
            feature = self.feature[node]
            inner = feature >= 0
            if not inner.any():
                break
            goes_left = x[rows, np.where(inner, feature, 0)] <= self.threshold[node]
            node = np.where(goes_left, self.left[node], self.right[node])  # a leaf stays
        return self.value[node].sum(axis=1)


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


def default_scorers() -> tuple[Scorer, Scorer]:
    """(passage scorer, sentence scorer) shipped with the package (in `FOLDER`)."""
    return _load(FOLDER)


def versions() -> dict[str, str]:
    """The shipped scorers' kinds and checksums, as the manifest and `info` name them."""
    passage, sentence = default_scorers()
    return {s.name: f"{s.kind} {s.version}" for s in (passage, sentence)}


@functools.lru_cache(maxsize=2)
def _load(folder: Path) -> tuple[Scorer, Scorer]:
    return (
        load_scorer(folder / FILES["passage"], "passage"),
        load_scorer(folder / FILES["sentence"], "sentence"),
    )
