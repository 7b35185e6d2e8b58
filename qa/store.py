"""The on-disk index: a directory of plain files, written safely and checked on load.

    manifest.json              format version, model, dimension, counts, next_key,
                               checksums
    vectors-<sha>.npy          float32 [passages x dimension], numpy format, no pickle
    passages-<sha>.npy         the passage table (`qa.table.ROW`): one row per passage
                               with its key, article (row of the documents file),
                               start, end, where its text and id end in the two files
                               below, and a hash of its normalized text
    passage-texts-<sha>.txt    every passage's text, UTF-8, one after the other
    passage-ids-<sha>.txt      every passage's id, UTF-8, one after the other
    documents-<sha>.jsonl      one article per line: id, title, source, metadata, sha256,
                               and for a paged one (PDF) page_starts: where each page
                               starts in its text
    bm25-*-<sha>.npy|.json     the lexical (BM25) index as bm25s saves it: .npy arrays
                               (no pickle) and .json vocabulary/parameters
    sentence-vectors-<sha>.npy optional: float32 [sentences x dimension], every
                               sentence of every passage in order (hybrid search)
    vector-index-<sha>.faiss   optional: an approximate FAISS index over the vectors
                               (faiss.serialize_index), ids = passage keys; its kind,
                               search parameters and measured recall are in the
                               manifest's "vector_index" (a flat one is rebuilt on load)
    sentence-counts-<sha>.npy  with sentence vectors: int32 sentences per passage (so
                               loading need not split every passage again)

Data files are named by their content and written before the manifest, which is
replaced atomically last: a save interrupted at any point leaves the previous
manifest pointing at the previous files, which are only deleted afterwards. A save
that fails (full disk, read-only folder) removes what it wrote and raises
`IndexWriteError`; saves into one folder take turns (a lock on the folder).

Loading memory-maps the large files (vectors, sentence vectors, the passage table and
texts, BM25's arrays): a million-passage index opens in seconds and only what a
search touches is read. Every file's size is checked on load, and its sha256 too when
it is at most `CHECKSUM_ON_LOAD` bytes: hashing the gigabytes of a large index would
take longer than the rest of loading it. `check_files` (`semantic-qa verify`)
hashes every file.

A passage's `key` is a stable int64: allocated from `next_key` and never reused after
its passage is removed, so it can serve as the primary key of an external vector
store; row i of the vectors belongs to row i of the passage table.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import io
import json
import mmap
import os
import re
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from .errors import IndexCorruptError, IndexFormatError, IndexNotFoundError, IndexWriteError
from .passages import Passage
from .table import ROW, Passages

FORMAT = "semantic-qa-index"
# 2: adds the BM25 parts (lexical and hybrid search).
# 3: adds stable passage keys (`key` in the passages file, `next_key` in the manifest).
# 4: passages as a table, texts and ids as UTF-8 files (memory-mapped on load), in
#    place of one JSON Lines file that had to be parsed whole.
FORMAT_VERSION = 4
MANIFEST = "manifest.json"
# Files up to this size are checked against their sha256 at every load; larger ones
# (at 1M passages: vectors, sentence vectors, texts, the vector index) by size and
# header, and by checksum in `check_files` (`semantic-qa verify`).
CHECKSUM_ON_LOAD = 64 * 2**20
LEXICAL_PARTS = ("bm25-params", "bm25-vocab", "bm25-data", "bm25-indices", "bm25-indptr")
_SUFFIX = {
    "vectors": ".npy",
    "passages": ".npy",
    "passage-texts": ".txt",
    "passage-ids": ".txt",
    "documents": ".jsonl",
    "bm25-params": ".json",
    "bm25-vocab": ".json",
    "bm25-data": ".npy",
    "bm25-indices": ".npy",
    "bm25-indptr": ".npy",
    "sentence-vectors": ".npy",
    "vector-index": ".faiss",
    "sentence-counts": ".npy",
}
# what older versions wrote that this one does not: removed by the next save
_LEGACY = {"passages": ".jsonl"}
_OPTIONAL = ("sentence-vectors", "vector-index", "sentence-counts")
_PARTS = tuple(part for part in _SUFFIX if part not in _OPTIONAL)
_CHUNK = 16 * 2**20  # bytes hashed or written at a time


@dataclass(frozen=True)
class DocumentInfo:
    """What the index keeps of an article besides its passages."""

    id: str
    title: str
    source: str
    sha256: str
    metadata: dict[str, Any] = field(default_factory=dict)
    # where each page starts in the article's text (PDF); () for articles without pages
    # and in indexes saved before pages were kept
    page_starts: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "page_starts", tuple(int(s) for s in self.page_starts))

    @classmethod
    def of(cls, doc: Any) -> DocumentInfo:
        """What the index keeps of `doc` (a `qa.Document`)."""
        return cls(doc.id, doc.title, doc.source, doc.sha256, doc.metadata, doc.page_starts)

    def row(self) -> dict[str, Any]:
        """Its line in the documents file; `page_starts` only when it has pages, so an
        index of articles without pages is saved byte for byte as before."""
        row = asdict(self)
        if not self.page_starts:
            del row["page_starts"]
        return row


@dataclass
class StoredIndex:
    manifest: dict[str, Any]
    vectors: np.ndarray  # memory-mapped
    passages: Passages  # memory-mapped columns
    documents: dict[str, DocumentInfo]
    lexical: dict[str, Path]  # the checked bm25s files by part name (see qa.lexical)
    sentence_vectors: np.ndarray | None = None  # memory-mapped
    keys: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    next_key: int = 0
    vector_index: Path | None = None  # the checked approximate index's file (qa.vectors)
    # sentences per passage, saved with the sentence vectors: splitting every passage
    # into sentences again is most of the time loading a large index takes
    sentence_counts: np.ndarray | None = None


# A file's content as chunks: bytes, or buffers of arrays and memory maps (written
# and hashed without a copy).
_Chunks = list[Any]


def save(
    path: str | Path,
    vectors: np.ndarray,
    passages: Passages | Sequence[Passage],
    documents: Iterable[DocumentInfo],
    info: dict[str, Any],
    lexical: dict[str, bytes],
    sentence_vectors: np.ndarray | None = None,
    *,
    keys: np.ndarray | None = None,
    next_key: int | None = None,
    vector_index: bytes | np.ndarray | mmap.mmap | None = None,
    sentence_counts: np.ndarray | None = None,
    expect: str | None = None,
) -> dict[str, Any]:
    """Write an index directory; `info` goes into the manifest (model, dimension, ...);
    `lexical` holds the BM25 files by part name (`LexicalIndex.to_files()`); `keys`:
    each passage's stable key (default 0, 1, ...), all below `next_key`; `expect`:
    the `files_identity` of the index the folder must hold (if any), else
    `IndexWriteError` and nothing is written."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise IndexNotFoundError(f"{path} is a file, not an index folder: choose another --out")
    if path.is_dir() and not (path / MANIFEST).exists() and not _only_ours(path):
        raise IndexNotFoundError(
            f"{path} is a non-empty folder that is not an index: refusing to write into it; "
            "choose an empty or new folder"
        )
    table = Passages.of(passages)
    keys = np.arange(len(table), dtype=np.int64) if keys is None else keys
    next_key = int(keys.max(initial=-1)) + 1 if next_key is None else int(next_key)
    docs = list(documents)
    rows, texts, ids = table.columns(keys, {d.id: i for i, d in enumerate(docs)})
    blobs: dict[str, _Chunks] = {
        "vectors": _npy(vectors, np.float32),
        "passages": _npy(rows, ROW),
        "passage-texts": [texts],
        "passage-ids": [ids],
        "documents": [_jsonl_bytes(d.row() for d in docs)],
        **{part: [lexical[part]] for part in LEXICAL_PARTS},
    }
    if sentence_vectors is not None:
        blobs["sentence-vectors"] = _npy(sentence_vectors, np.float32)
    if vector_index is not None:
        blobs["vector-index"] = [vector_index]
    if sentence_counts is not None and sentence_vectors is not None:
        blobs["sentence-counts"] = _npy(sentence_counts, np.int32)
    files: dict[str, dict[str, Any]] = {}
    for part, chunks in blobs.items():
        digest, size = _digest(chunks)
        name = f"{part}-{digest[:16]}{_SUFFIX[part]}"
        files[part] = {"name": name, "sha256": digest, "bytes": size}
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        **info,
        "documents": len(docs),
        "passages": len(table),
        "sentences": None if sentence_vectors is None else len(sentence_vectors),
        "next_key": next_key,
        "files": files,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    had_index = (path / MANIFEST).is_file()
    written: list[Path] = []
    try:
        path.mkdir(parents=True, exist_ok=True)
        with _locked(path):
            if expect is not None:
                _check_unchanged(path, expect)
            for part, chunks in blobs.items():
                file = path / files[part]["name"]
                if not _holds(file, files[part]["bytes"], files[part]["sha256"]):
                    _atomic_write(file, chunks)
                    written.append(file)
            _atomic_write(path / MANIFEST, [json.dumps(manifest, indent=2).encode() + b"\n"])
            written.clear()  # the manifest points at them now
            _remove_unreferenced(path, {f["name"] for f in files.values()})
    except IndexWriteError:
        raise
    except OSError as err:
        # What this save wrote is referenced by no manifest: leave the folder as it was.
        for file in written:
            with contextlib.suppress(OSError):
                file.unlink()
        raise IndexWriteError(_write_failure(path, err, had_index)) from err
    return manifest


def files_identity(manifest: dict[str, Any]) -> str:
    """What a saved index holds, in one string: the checksums of its files."""
    files = json.dumps(manifest.get("files"), sort_keys=True).encode()
    return hashlib.sha256(files).hexdigest()


def _check_unchanged(path: Path, expect: str) -> None:
    try:
        current = files_identity(read_manifest(path)) if (path / MANIFEST).exists() else None
    except (IndexNotFoundError, IndexCorruptError):
        current = None  # nothing this version can read: nothing of it to lose
    if current is not None and current != expect:
        raise IndexWriteError(
            f"cannot save the index to {path}: another process saved it since this one was "
            "loaded; load it again (restart the server) and redo the change; the index "
            "there is unchanged"
        )


def _only_ours(path: Path) -> bool:
    """`path` holds nothing but what an interrupted first save writes (data files and
    temporary files, no manifest yet): it may be written over."""
    parts = re.compile(
        "|".join(rf"{re.escape(p)}-[0-9a-f]{{16}}{re.escape(s)}" for p, s in _SUFFIX.items())
        + r"|\..+\.tmp"
    )
    return all(parts.fullmatch(f.name) for f in path.iterdir())


def _holds(file: Path, size: int, digest: str) -> bool:
    """`file` exists with exactly this content (content-named files are reused, unless
    damaged)."""
    try:
        return file.stat().st_size == size and _file_digest(file) == digest
    except OSError:
        return False


def _write_failure(path: Path, err: OSError, had_index: bool) -> str:
    kept = "the index there is unchanged" if had_index else "nothing was saved"
    why = f"{err.strerror or err}" + (f": {err.filename}" if err.filename else "")
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        how = "the disk is full ({}); free some space and retry"
    elif err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        how = "the folder is not writable ({}); make it writable or choose another folder (--out)"
    else:
        how = "{}"
    return f"cannot save the index to {path}: {how.format(why)}; {kept}"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Saves into one folder take turns: the one that finishes last would otherwise
    delete the files another is about to reference. Released when the process dies."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


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
    for key in ("model", "dimension", "passages", "documents", "next_key", "files"):
        if key not in manifest:
            raise IndexCorruptError(f"{path / MANIFEST} lacks {key!r}: {how}")
    return manifest


def load(path: str | Path, *, checksums: bool = False) -> StoredIndex:
    """Open an index directory, checked against its manifest: every file's size, the
    checksum of every file up to `CHECKSUM_ON_LOAD` bytes (`checksums=True`: of every
    file), the arrays' types and shapes, the counts. The large files are
    memory-mapped, not read."""
    path = Path(path)
    manifest = read_manifest(path)
    files = {
        part: _checked(path, manifest, part, checksums)
        for part in (*_PARTS, *(p for p in _OPTIONAL if p in manifest["files"]))
    }
    how = f"rebuild it with: semantic-qa index ARTICLES... --out {path}"
    n, dim = manifest["passages"], manifest["dimension"]
    try:
        documents = {
            d.id: d for d in (DocumentInfo(**r) for r in _jsonl_rows(_read(files["documents"])))
        }
    except (ValueError, TypeError, KeyError, OverflowError) as err:
        raise IndexCorruptError(
            f"{path}: the documents file does not parse ({err}): {how}"
        ) from err
    if len(documents) != manifest["documents"]:
        raise IndexCorruptError(
            f"{path}: {len(documents)} documents on disk, manifest says "
            f"{manifest['documents']}: {how}"
        )
    vectors = _array(path, files["vectors"], "vectors", np.float32, (n, dim))
    table = _array(path, files["passages"], "the passage table", ROW, (n,))
    try:
        passages = Passages.from_columns(
            table, _map(files["passage-texts"]), _map(files["passage-ids"]), list(documents)
        )
    except ValueError as err:
        raise IndexCorruptError(f"{path}: {err}: {how}") from err
    keys = np.ascontiguousarray(table["key"], dtype=np.int64)
    next_key = manifest["next_key"]
    problem = check_keys(keys, next_key)
    if problem:
        raise IndexCorruptError(f"{path}: {problem}: {how}")
    sentence_vectors = sentence_counts = vector_index = None
    if "sentence-vectors" in files:
        shape = (manifest.get("sentences"), dim)
        sentence_vectors = _array(
            path, files["sentence-vectors"], "sentence vectors", np.float32, shape
        )
    if "vector-index" in files:
        vector_index = files["vector-index"]
    if sentence_vectors is not None and "sentence-counts" in files:
        counts = _array(path, files["sentence-counts"], "sentence counts", np.int32, (n,))
        sentence_counts = np.asarray(counts, dtype=np.int64)
        if int(sentence_counts.sum()) != len(sentence_vectors):
            raise IndexCorruptError(
                f"{path}: sentence counts add up to {int(sentence_counts.sum())}, there are "
                f"{len(sentence_vectors)} sentence vectors: {how}"
            )
    return StoredIndex(
        manifest,
        vectors,
        passages,
        documents,
        {part: files[part] for part in LEXICAL_PARTS},
        sentence_vectors,
        keys,
        next_key,
        vector_index,
        sentence_counts,
    )


def _array(path: Path, file: Path, what: str, dtype: Any, shape: tuple[Any, ...]) -> np.ndarray:
    """The .npy `file`, memory-mapped, checked to hold `dtype` in `shape`."""
    how = f"rebuild it with: semantic-qa index ARTICLES... --out {path}"
    try:
        try:
            array = np.load(file, mmap_mode="r", allow_pickle=False)
        except ValueError:  # an empty array cannot be mapped
            array = np.load(file, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise IndexCorruptError(f"{path}: {what} do not parse ({err}): {how}") from err
    if array.dtype != np.dtype(dtype) or array.shape != shape:
        name = "float32" if np.dtype(dtype) == np.float32 else str(np.dtype(dtype))
        raise IndexCorruptError(
            f"{path}: {what} are {array.dtype}{list(array.shape)}, manifest says "
            f"{name}[{', '.join(str(x) for x in shape)}]: {how}"
        )
    return array.view(np.ndarray)  # a plain array over the map (np.memmap's ops copy)


def _map(file: Path) -> bytes | mmap.mmap:
    """`file`'s bytes, memory-mapped (an empty file cannot be: b"")."""
    with file.open("rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            return b""
        return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)


def upgrade(path: str | Path) -> bool:
    """Rewrite an index of format version 3 in this version, in place: the same
    passages, keys, vectors and BM25, nothing embedded again (a rebuild of a large
    index would encode every passage). False, and nothing done, for any other index.
    Every file is checked against its checksum first; a damaged one raises
    `IndexCorruptError`."""
    path = Path(path)
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        return False
    if manifest.get("format_version") != 3 or not isinstance(manifest.get("files"), dict):
        return False
    files = {part: _checked(path, manifest, part, True) for part in manifest["files"]}
    how = f"rebuild it with: semantic-qa index ARTICLES... --out {path} --force"
    try:
        rows = _jsonl_rows(_read(files["passages"]))
        keys = np.fromiter((row.pop("key") for row in rows), dtype=np.int64, count=len(rows))
        passages = [Passage(**row) for row in rows]
        documents = [DocumentInfo(**r) for r in _jsonl_rows(_read(files["documents"]))]
        lexical = {part: _read(files[part]) for part in LEXICAL_PARTS}
        vectors = np.load(files["vectors"], mmap_mode="r", allow_pickle=False)
        sentence_vectors = counts = None
        if "sentence-vectors" in files:
            sentence_vectors = np.load(files["sentence-vectors"], mmap_mode="r", allow_pickle=False)
        if "sentence-counts" in files:
            counts = np.load(files["sentence-counts"], allow_pickle=False)
    except (ValueError, TypeError, KeyError, OverflowError, OSError) as err:
        raise IndexCorruptError(f"{path}: index files do not parse ({err}): {how}") from err
    # what `save` writes anew; the rest (model, dimension, split, vector index...) stays
    anew = ("format", "format_version", "documents", "passages", "sentences", "next_key")
    info = {k: v for k, v in manifest.items() if k not in (*anew, "files", "created")}
    save(
        path,
        vectors,
        passages,
        documents,
        info,
        lexical,
        sentence_vectors,
        keys=keys,
        next_key=manifest["next_key"],
        vector_index=_map(files["vector-index"]) if "vector-index" in files else None,
        sentence_counts=counts,
    )
    return True


def next_key_of(path: str | Path) -> int:
    """The next key of the index at `path`; 0 when there is none (or it is unreadable)."""
    try:
        next_key = read_manifest(path)["next_key"]
    except IndexFormatError:  # another version's index: its keys must not come back
        try:
            next_key = json.loads((Path(path) / MANIFEST).read_text(encoding="utf-8"))["next_key"]
        except (OSError, ValueError, TypeError, KeyError):
            return 0
    except (IndexNotFoundError, IndexCorruptError):
        return 0
    return next_key if isinstance(next_key, int) and next_key > 0 else 0


def check_keys(keys: np.ndarray, next_key: Any) -> str | None:
    """What is wrong with a set of passage keys, if anything: they must be distinct,
    at least 0 and below `next_key` (which is never handed out twice)."""
    if not isinstance(next_key, int) or isinstance(next_key, bool) or next_key < 0:
        return f"next_key must be a whole number >= 0, got {next_key!r}"
    if len(keys) and (int(keys.min()) < 0 or int(keys.max()) >= next_key):
        return f"passage keys span {int(keys.min())}..{int(keys.max())}, outside 0..{next_key - 1}"
    ordered = np.sort(keys)  # not np.unique: its hashing took 1 s for 1M keys
    twice = int(np.count_nonzero(ordered[1:] == ordered[:-1]))
    if twice:
        return f"{twice} passage keys are used twice"
    return None


def summary(path: str | Path) -> dict[str, Any]:
    """What `semantic-qa info` shows: the manifest's facts, without loading the index.

    >>> summary("data/index")["passages"]  # doctest: +SKIP
    70
    """
    path = Path(path)
    manifest = read_manifest(path)
    files = manifest["files"]
    return {
        "path": str(path),
        "format_version": manifest["format_version"],
        "model": manifest["model"],
        **({"export": manifest["export"]} if "export" in manifest else {}),
        "dimension": manifest["dimension"],
        "documents": manifest["documents"],
        "passages": manifest["passages"],
        "sentences": manifest.get("sentences"),
        "next_key": manifest["next_key"],
        "split": manifest.get("split", {}),
        "vector_index": _vector_summary(manifest.get("vector_index")),
        "ranking": _ranking_summary(manifest.get("ranking")),
        "bytes": sum(int(f.get("bytes", 0)) for f in files.values()),
        "files": len(files) + 1,
        "created": manifest.get("created"),
    }


def _ranking_summary(described: Any) -> dict[str, Any]:
    """The ranking line of `summary`: the index's settings, and the scorers its searches
    use now (those of this version of semantic-qa, whichever saved the index)."""
    from . import scorers

    out = dict(described) if isinstance(described, dict) else {"ranker": "fusion"}
    if out.get("ranker") == "learned":
        out["scorers"] = scorers.versions()
    return out


def _vector_summary(described: Any) -> dict[str, Any]:
    """The vector index line of `summary`: kind, measured recall@10, search parameters."""
    if not isinstance(described, dict):
        return {"kind": "flat", "recall@10": "1 (exact)"}
    recall = described.get("recall_at_10")
    out: dict[str, Any] = {"kind": described.get("kind")}
    if isinstance(recall, dict):
        out["recall@10"] = recall.get("value")
        out["measured_on"] = f"{recall.get('queries')} {recall.get('sample')}"
    elif described.get("kind") == "flat":
        out["recall@10"] = "1 (exact)"
    return {**out, **described.get("search_params", {}), **described.get("build_params", {})}


def check_files(path: str | Path) -> list[str]:
    """Every problem with the files of an index (missing, truncated, edited), not just
    the first as `load` reports."""
    path = Path(path)
    manifest = read_manifest(path)
    problems = []
    for part in manifest["files"]:
        try:
            _checked(path, manifest, part, True)
        except IndexCorruptError as err:
            problems.append(str(err).split(": rebuild it with")[0])
    missing = [p for p in _PARTS if p not in manifest["files"]]
    problems += [f"{path / MANIFEST} names no {part} file" for part in missing]
    return problems


def leftovers(path: str | Path) -> list[str]:
    """Files an interrupted save left behind (not referenced by the manifest); the
    next save removes them."""
    path = Path(path)
    keep = {f["name"] for f in read_manifest(path)["files"].values()}
    names = [old.name for part, suffix in _suffixes() for old in path.glob(f"{part}-*{suffix}")]
    return sorted({n for n in names if n not in keep} | {t.name for t in path.glob(".*.tmp")})


def read_documents(path: str | Path) -> dict[str, DocumentInfo]:
    """Only the article list of an index (cheap: used to tell whether it is stale)."""
    manifest = read_manifest(path)
    raw = _read(_checked(Path(path), manifest, "documents", True))
    return {d.id: d for d in (DocumentInfo(**r) for r in _jsonl_rows(raw))}


def _checked(path: Path, manifest: dict[str, Any], part: str, checksum: bool) -> Path:
    """The file of `part`, there and of its recorded size, and of its recorded sha256
    when `checksum` or when it is small (`CHECKSUM_ON_LOAD`)."""
    how = f"rebuild it with: semantic-qa index ARTICLES... --out {path}"
    entry = manifest["files"].get(part)
    if not isinstance(entry, dict) or "name" not in entry:
        raise IndexCorruptError(f"{path / MANIFEST} names no {part} file: {how}")
    file = path / Path(entry["name"]).name
    try:
        size = file.stat().st_size
        if size != entry.get("bytes"):
            raise IndexCorruptError(
                f"{path}: {file.name} is {size} bytes, manifest says {entry.get('bytes')} "
                f"(truncated or edited): {how}"
            )
        if (checksum or size <= CHECKSUM_ON_LOAD) and _file_digest(file) != entry.get("sha256"):
            raise IndexCorruptError(
                f"{path}: {file.name} does not match its checksum (edited?): {how}"
            )
    except FileNotFoundError:
        raise IndexCorruptError(f"{path}: {part} file {file.name} is missing: {how}") from None
    except OSError as err:
        raise IndexCorruptError(f"{path}: cannot read {file.name} ({err}): {how}") from err
    return file


def _read(file: Path) -> bytes:
    try:
        return file.read_bytes()
    except OSError as err:
        raise IndexCorruptError(f"cannot read {file} ({err}): rebuild the index") from err


def _file_digest(file: Path) -> str:
    digest = hashlib.sha256()
    with file.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _npy(array: np.ndarray, dtype: Any) -> _Chunks:
    """`array` as a .npy file (as `np.save` writes it), without copying its data."""
    array = np.ascontiguousarray(array, dtype=dtype)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, np.lib.format.header_data_from_array_1_0(array))
    return [header.getvalue(), array.reshape(-1).view(np.uint8)]


def _digest(chunks: _Chunks) -> tuple[str, int]:
    """sha256 and size of the file made of `chunks`."""
    digest, size = hashlib.sha256(), 0
    for chunk in chunks:
        view = memoryview(chunk).cast("B")
        for at in range(0, len(view), _CHUNK):
            digest.update(view[at : at + _CHUNK])
        size += len(view)
    return digest.hexdigest(), size


def _jsonl_bytes(rows: Iterable[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")


def _jsonl_rows(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.decode("utf-8").splitlines() if line]


def _atomic_write(file: Path, chunks: _Chunks) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over `file`."""
    fd, tmp = tempfile.mkstemp(prefix=f".{file.name}.", suffix=".tmp", dir=file.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in chunks:
                view = memoryview(chunk).cast("B")
                for at in range(0, len(view), _CHUNK):
                    f.write(view[at : at + _CHUNK])
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


def _suffixes() -> list[tuple[str, str]]:
    """(part, suffix) of every data file this version or an older one writes."""
    return [*_SUFFIX.items(), *_LEGACY.items()]


def _remove_unreferenced(path: Path, keep: set[str]) -> None:
    for part, suffix in _suffixes():
        for old in path.glob(f"{part}-*{suffix}"):
            if old.name not in keep:
                with contextlib.suppress(OSError):
                    old.unlink()
    for tmp in path.glob(".*.tmp"):
        with contextlib.suppress(OSError):
            tmp.unlink()
