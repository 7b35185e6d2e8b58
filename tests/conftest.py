"""Shared fixtures: a deterministic fake encoder for fast tests, the real packaged
model (tests marked `model`), a tiny corpus and the bundled sample index."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import qa

from .milvus_server import milvus_server, private_network, unpack

ROOT = Path(__file__).resolve().parent.parent
ARTICLES = ROOT / "data" / "articles"


def _shared() -> Path:
    """The team's shared folder (SQuAD-dev, the reference scorer): $SEMANTIC_QA_SHARED,
    else beside the checkout, else beside the local repository it was cloned from."""
    if os.environ.get("SEMANTIC_QA_SHARED"):
        return Path(os.environ["SEMANTIC_QA_SHARED"])
    beside = ROOT.parent / "shared"
    if beside.is_dir():
        return beside
    origin = subprocess.run(
        ["git", "-C", str(ROOT), "config", "--get", "remote.origin.url"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    if origin and Path(origin).is_dir():
        return Path(origin).resolve().parent / "shared"
    return beside


SHARED = _shared()

_TOKEN = re.compile(r"\w+|[^\w\s]")


class FakeEncoder:
    """Bag of hashed words: texts that share words are close. Deterministic and fast;
    its tokens are words and punctuation marks, its budget small to exercise splitting."""

    def __init__(self, dimension: int = 64, max_tokens: int = 40, name: str = "fake-bow"):
        self.name = name
        self.dimension = dimension
        self.max_tokens = max_tokens
        self.calls = 0

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        return [m.span() for m in _TOKEN.finditer(text)]

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(_TOKEN.findall(t)) for t in texts]

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += len(texts)
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=4).digest(), "little")
                out[row, h % self.dimension] += 1.0
            norm = np.linalg.norm(out[row])
            out[row] = out[row] / norm if norm else out[row]
        return out

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts)

    def encode_documents(self, texts: Sequence[str], *, progress: bool | None = None) -> np.ndarray:
        return self._encode(texts)


@pytest.fixture
def fake() -> FakeEncoder:
    return FakeEncoder()


@pytest.fixture(scope="session", autouse=True)
def embedding_cache_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Tests never touch the user's embedding cache (~/.cache/semantic-qa): saved
    indexes use one of their own, fresh for each test session."""
    folder = tmp_path_factory.mktemp("embedding-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SEMANTIC_QA_CACHE", str(folder))
        yield folder


TINY = [
    qa.Document(
        "cats", "Cats are small felines. They purr when happy.\n\nCats sleep a lot.", "Cats"
    ),
    qa.Document("rivers", "The Danube flows through Vienna. It reaches the Black Sea.", "Rivers"),
    qa.Document("space", "The Moon orbits the Earth. Apollo 11 landed there in 1969.", "Space"),
]


@pytest.fixture
def tiny_docs() -> list[qa.Document]:
    return list(TINY)


@pytest.fixture
def tiny_index(fake: FakeEncoder) -> qa.Index:
    return qa.build_index(TINY, model=fake)


@pytest.fixture(scope="session")
def real_encoder():
    from embeddings import load_encoder

    return load_encoder()


@pytest.fixture(scope="session")
def sample_index(tmp_path_factory: pytest.TempPathFactory, real_encoder) -> qa.Index:
    """The bundled articles indexed with the real packaged model."""
    path = tmp_path_factory.mktemp("sample") / "index"
    return qa.build_index([ARTICLES], path, model=real_encoder)


@pytest.fixture(scope="session")
def server_uri(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """A real Milvus server for the whole session, on a fresh data folder."""
    if not private_network():
        message = (
            "the Milvus server tests run inside a private network namespace: run `make "
            "test` (it uses unshare -n), or `unshare -n sh -c 'ip link set lo up && "
            ".venv/bin/pytest tests/test_milvus.py'` as root"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    # the unpacked binaries are kept between sessions in pytest's cache folder
    cache = request.config.cache
    folder = (
        Path(cache.mkdir("milvus-server-2.3.5"))
        if cache is not None
        else tmp_path_factory.mktemp("milvus-bin")
    )
    binaries = unpack(folder)
    with milvus_server(tmp_path_factory.mktemp("milvus-server"), binaries) as uri:
        yield uri
