"""The on-disk index: a directory of plain files, written safely and checked on load.

    manifest.json              format version, model, dimension, counts, checksums
    vectors-<sha>.npy          float32 [passages x dimension], numpy format, no pickle
    passages-<sha>.jsonl       one passage per line: id, doc_id, start, end, text
    documents-<sha>.jsonl      one article per line: id, title, source, metadata, sha256
    bm25-*-<sha>.npy|.json     the lexical (BM25) index as bm25s saves it: .npy arrays
                               (no pickle) and .json vocabulary/parameters
    sentence-vectors-<sha>.npy optional: float32 [sentences x dimension], every
                               sentence of every passage in order (hybrid search)

Data files are named by their content and written before the manifest, which is
replaced atomically last: a save interrupted at any point leaves the previous
manifest pointing at the previous files, which are only deleted afterwards.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from .errors import IndexCorruptError, IndexFormatError, IndexNotFoundError
from .passages import Passage

FORMAT = "semantic-qa-index"
# 2: adds the BM25 parts (lexical and hybrid search).
FORMAT_VERSION = 2
MANIFEST = "manifest.json"
LEXICAL_PARTS = ("bm25-params", "bm25-vocab", "bm25-data", "bm25-indices", "bm25-indptr")
_SUFFIX = {
    "vectors": ".npy",
    "passages": ".jsonl",
    "documents": ".jsonl",
    "bm25-params": ".json",
    "bm25-vocab": ".json",
    "bm25-data": ".npy",
    "bm25-indices": ".npy",
    "bm25-indptr": ".npy",
    "sentence-vectors": ".npy",
}
_OPTIONAL = ("sentence-vectors",)
_PARTS = tuple(part for part in _SUFFIX if part not in _OPTIONAL)


@dataclass(frozen=True)
class DocumentInfo:
    """What the index keeps of an article besides its passages."""

    id: str
    title: str
    source: str
    sha256: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class StoredIndex:
    manifest: dict[str, Any]
    vectors: np.ndarray
    passages: list[Passage]
    documents: dict[str, DocumentInfo]
    lexical: dict[str, bytes]  # verified bm25s files by part name (see qa.lexical)
    sentence_vectors: np.ndarray | None = None


def save(
    path: str | Path,
    vectors: np.ndarray,
    passages: list[Passage],
    documents: Iterable[DocumentInfo],
    info: dict[str, Any],
    lexical: dict[str, bytes],
    sentence_vectors: np.ndarray | None = None,
) -> dict[str, Any]:
    """Write an index directory; `info` goes into the manifest (model, dimension, ...);
    `lexical` holds the BM25 files by part name (`LexicalIndex.to_files()`)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise IndexNotFoundError(f"{path} is a file, not an index folder: choose another --out")
    if path.is_dir() and not (path / MANIFEST).exists() and any(path.iterdir()):
        raise IndexNotFoundError(
            f"{path} is a non-empty folder that is not an index: refusing to write into it; "
            "choose an empty or new folder"
        )
    path.mkdir(parents=True, exist_ok=True)
    docs = list(documents)
    blobs = {
        "vectors": _npy_bytes(vectors),
        "passages": _jsonl_bytes(asdict(p) for p in passages),
        "documents": _jsonl_bytes(asdict(d) for d in docs),
        **{part: lexical[part] for part in LEXICAL_PARTS},
    }
    if sentence_vectors is not None:
        blobs["sentence-vectors"] = _npy_bytes(sentence_vectors)
    files: dict[str, dict[str, Any]] = {}
    for part, data in blobs.items():
        digest = hashlib.sha256(data).hexdigest()
        name = f"{part}-{digest[:16]}{_SUFFIX[part]}"
        if not (path / name).exists():
            _atomic_write(path / name, data)
        files[part] = {"name": name, "sha256": digest, "bytes": len(data)}
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        **info,
        "documents": len(docs),
        "passages": len(passages),
        "sentences": None if sentence_vectors is None else len(sentence_vectors),
        "files": files,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    _atomic_write(path / MANIFEST, json.dumps(manifest, indent=2).encode() + b"\n")
    _remove_unreferenced(path, {f["name"] for f in files.values()})
    return manifest


def read_manifest(path: str | Path) -> dict[str, Any]:
    """The manifest of an index directory, checked for format and version."""
    path = Path(path)
    how = f"build it with: semantic-qa index ARTICLES... --out {path}"
    if not path.exists():
        raise IndexNotFoundError(f"no index at {path}: {how}")
    if not (path / MANIFEST).is_file():
        raise IndexNotFoundError(f"{path} is not a semantic-qa index (no {MANIFEST}): {how}")
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise IndexCorruptError(f"{path / MANIFEST} is unreadable ({err}): rebuild: {how}") from err
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise IndexFormatError(f"{path / MANIFEST} is not a semantic-qa manifest: {how}")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise IndexFormatError(
            f"{path} has index format version {version!r}, this semantic-qa reads version "
            f"{FORMAT_VERSION}: rebuild it with: semantic-qa index ARTICLES... --out {path}"
        )
    for key in ("model", "dimension", "passages", "documents", "files"):
        if key not in manifest:
            raise IndexCorruptError(f"{path / MANIFEST} lacks {key!r}: {how}")
    return manifest


def load(path: str | Path) -> StoredIndex:
    """Read and verify an index directory: every file's size and checksum, the counts."""
    path = Path(path)
    manifest = read_manifest(path)
    raw = {part: _read_checked(path, manifest, part) for part in _PARTS}
    how = f"rebuild it with: semantic-qa index ARTICLES... --out {path}"
    try:
        vectors = np.load(io.BytesIO(raw["vectors"]), allow_pickle=False)
        passages = [Passage(**row) for row in _jsonl_rows(raw["passages"])]
        documents = {d.id: d for d in (DocumentInfo(**r) for r in _jsonl_rows(raw["documents"]))}
    except (ValueError, TypeError, KeyError) as err:
        raise IndexCorruptError(f"{path}: index files do not parse ({err}): {how}") from err
    n, dim = manifest["passages"], manifest["dimension"]
    if vectors.dtype != np.float32 or vectors.shape != (n, dim):
        raise IndexCorruptError(
            f"{path}: vectors are {vectors.dtype}{list(vectors.shape)}, manifest says "
            f"float32[{n}, {dim}]: {how}"
        )
    if len(passages) != n or len(documents) != manifest["documents"]:
        raise IndexCorruptError(
            f"{path}: {len(passages)} passages / {len(documents)} documents on disk, manifest "
            f"says {n} / {manifest['documents']}: {how}"
        )
    unknown = {p.doc_id for p in passages} - documents.keys()
    if unknown:
        raise IndexCorruptError(
            f"{path}: passages of unknown documents {sorted(unknown)[:3]}: {how}"
        )
    lexical = {part: raw[part] for part in LEXICAL_PARTS}
    sentence_vectors = None
    if "sentence-vectors" in manifest["files"]:
        data = _read_checked(path, manifest, "sentence-vectors")
        try:
            sentence_vectors = np.load(io.BytesIO(data), allow_pickle=False)
        except ValueError as err:
            raise IndexCorruptError(
                f"{path}: sentence vectors do not parse ({err}): {how}"
            ) from err
        if sentence_vectors.dtype != np.float32 or sentence_vectors.shape != (
            manifest.get("sentences"),
            dim,
        ):
            raise IndexCorruptError(
                f"{path}: sentence vectors are {sentence_vectors.dtype}"
                f"{list(sentence_vectors.shape)}, manifest says "
                f"float32[{manifest.get('sentences')}, {dim}]: {how}"
            )
    return StoredIndex(manifest, vectors, passages, documents, lexical, sentence_vectors)


def read_documents(path: str | Path) -> dict[str, DocumentInfo]:
    """Only the article list of an index (cheap: used to tell whether it is stale)."""
    manifest = read_manifest(path)
    raw = _read_checked(Path(path), manifest, "documents")
    return {d.id: d for d in (DocumentInfo(**r) for r in _jsonl_rows(raw))}


def _read_checked(path: Path, manifest: dict[str, Any], part: str) -> bytes:
    how = f"rebuild it with: semantic-qa index ARTICLES... --out {path}"
    entry = manifest["files"].get(part)
    if not isinstance(entry, dict) or "name" not in entry:
        raise IndexCorruptError(f"{path / MANIFEST} names no {part} file: {how}")
    file = path / Path(entry["name"]).name
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        raise IndexCorruptError(f"{path}: {part} file {file.name} is missing: {how}") from None
    except OSError as err:
        raise IndexCorruptError(f"{path}: cannot read {file.name} ({err}): {how}") from err
    if len(data) != entry.get("bytes"):
        raise IndexCorruptError(
            f"{path}: {file.name} is {len(data)} bytes, manifest says {entry.get('bytes')} "
            f"(truncated or edited): {how}"
        )
    if hashlib.sha256(data).hexdigest() != entry.get("sha256"):
        raise IndexCorruptError(f"{path}: {file.name} does not match its checksum (edited?): {how}")
    return data


def _npy_bytes(vectors: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(vectors, dtype=np.float32), allow_pickle=False)
    return buf.getvalue()


def _jsonl_bytes(rows: Iterable[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")


def _jsonl_rows(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.decode("utf-8").splitlines() if line]


def _atomic_write(file: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over `file`."""
    fd, tmp = tempfile.mkstemp(prefix=f".{file.name}.", suffix=".tmp", dir=file.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, file)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # persist the rename itself
        dir_fd = os.open(file.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _remove_unreferenced(path: Path, keep: set[str]) -> None:
    for part in _SUFFIX:
        for old in path.glob(f"{part}-*{_SUFFIX[part]}"):
            if old.name not in keep:
                with contextlib.suppress(OSError):
                    old.unlink()
    for tmp in path.glob(".*.tmp"):
        with contextlib.suppress(OSError):
            tmp.unlink()
