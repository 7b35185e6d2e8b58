"""The passage table: an index's passages column by column, built into `Passage`s only
when asked for.

A million `Passage` objects take about a gigabyte and most of a minute to parse;
an index that answers a question needs five of them. So an index keeps its passages
as columns: every text one after the other in a single UTF-8 buffer with the byte
offset where each ends, the ids likewise, and numpy arrays for the article (a
position in `doc_names`), the character span in the article and a hash of the
normalized text (identical passages, up to case and spacing, without reading the
texts). A loaded index's buffers and columns are memory-mapped from its files
(`qa.store`): nothing is read until a passage is.

>>> table = Passages.of([Passage("a1", "a", 0, 5, "Hello"), Passage("b1", "b", 3, 8, "hello")])
>>> table[1]
Passage(id='b1', doc_id='b', start=3, end=8, text='hello')
>>> table.text(0), table.doc_id(1), bool(table.hashes[0] == table.hashes[1])
('Hello', 'b', True)
"""

from __future__ import annotations

import hashlib
import mmap
from collections.abc import Iterable, Iterator, Sequence
from typing import overload

import numpy as np

from .errors import IndexCorruptError
from .passages import Passage

# A passage table row on disk (`qa.store`): its key, its article (row of the
# documents file), its span in the article, where its text and its id end in their
# buffers, the hash of its normalized text.
ROW = np.dtype(
    [
        ("key", "<i8"),
        ("doc", "<i4"),
        ("start", "<i8"),
        ("end", "<i8"),
        ("text_end", "<i8"),
        ("id_end", "<i8"),
        ("hash", "<u8"),
    ]
)

Buffer = bytes | mmap.mmap


def text_hash(text: str) -> int:
    """64-bit hash of `text` up to case and spacing: equal for identical passages."""
    normalized = " ".join(text.lower().split()).encode("utf-8")
    return int.from_bytes(hashlib.blake2b(normalized, digest_size=8).digest(), "little")


class Passages(Sequence[Passage]):
    """Passages as columns (see the module docstring); `table[row]` builds one
    `Passage`, `text(row)` and `doc_id(row)` read one field."""

    def __init__(
        self,
        texts: Buffer,
        text_ends: np.ndarray,
        ids: Buffer,
        id_ends: np.ndarray,
        docs: np.ndarray,
        doc_names: Sequence[str],
        starts: np.ndarray,
        ends: np.ndarray,
        hashes: np.ndarray,
    ):
        n = len(text_ends)
        if not all(len(a) == n for a in (id_ends, docs, starts, ends, hashes)):
            raise ValueError("passage columns of different lengths")
        self._texts, self._text_ends = texts, text_ends
        self._ids, self._id_ends = ids, id_ends
        self.docs = np.ascontiguousarray(docs, dtype=np.int32)
        self.doc_names = list(doc_names)
        self.starts, self.ends = starts, ends
        self.hashes = np.ascontiguousarray(hashes, dtype=np.uint64)

    @classmethod
    def of(cls, passages: Iterable[Passage]) -> Passages:
        """The table of `passages` (a list of `Passage`, or already a table)."""
        if isinstance(passages, Passages):
            return passages
        passages = list(passages)
        names: dict[str, int] = {}
        docs = np.fromiter(
            (names.setdefault(p.doc_id, len(names)) for p in passages), np.int32, len(passages)
        )
        texts = [p.text.encode("utf-8") for p in passages]
        ids = [p.id.encode("utf-8") for p in passages]
        return cls(
            b"".join(texts),
            _ends(texts),
            b"".join(ids),
            _ends(ids),
            docs,
            list(names),
            np.fromiter((p.start for p in passages), np.int64, len(passages)),
            np.fromiter((p.end for p in passages), np.int64, len(passages)),
            np.fromiter((text_hash(p.text) for p in passages), np.uint64, len(passages)),
        )

    @classmethod
    def gather(cls, parts: Sequence[Passages], rows: np.ndarray) -> Passages:
        """The table of `rows`, numbered through `parts` one after the other (the rows of
        `parts[0]`, then those of `parts[1]`, ...): copies only the texts it keeps."""
        firsts = np.cumsum([0] + [len(p) for p in parts])
        names: dict[str, int] = {}
        remap = [
            np.asarray([names.setdefault(d, len(names)) for d in p.doc_names] or [0], np.int32)
            for p in parts
        ]
        texts, ids = [], []
        docs = np.empty(len(rows), np.int32)
        starts, ends = np.empty(len(rows), np.int64), np.empty(len(rows), np.int64)
        hashes = np.empty(len(rows), np.uint64)
        which = np.searchsorted(firsts, rows, side="right") - 1
        for i, part in enumerate(parts):
            at = np.flatnonzero(which == i)
            local = rows[at] - firsts[i]
            docs[at] = remap[i][part.docs[local]]
            starts[at], ends[at], hashes[at] = (
                part.starts[local],
                part.ends[local],
                part.hashes[local],
            )
        for row, i in zip(rows.tolist(), which.tolist(), strict=True):
            part, local = parts[i], row - int(firsts[i])
            texts.append(part._slice(part._texts, part._text_ends, local))
            ids.append(part._slice(part._ids, part._id_ends, local))
        return cls(
            b"".join(texts), _ends(texts), b"".join(ids), _ends(ids),
            docs, list(names), starts, ends, hashes,
        )  # fmt: skip

    def __len__(self) -> int:
        return len(self._text_ends)

    @overload
    def __getitem__(self, row: int) -> Passage: ...

    @overload
    def __getitem__(self, row: slice) -> list[Passage]: ...

    def __getitem__(self, row: int | slice) -> Passage | list[Passage]:
        if isinstance(row, slice):
            return [self[i] for i in range(*row.indices(len(self)))]
        row = self._row(row)
        return Passage(
            self._decode(self._ids, self._id_ends, row),
            self.doc_id(row),
            int(self.starts[row]),
            int(self.ends[row]),
            self.text(row),
        )

    def __iter__(self) -> Iterator[Passage]:
        return (self[row] for row in range(len(self)))

    def __repr__(self) -> str:
        return f"<Passages: {len(self)} passages of {len(self.doc_names)} articles>"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Passages | list | tuple):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def text(self, row: int) -> str:
        """The text of passage `row`, without building the `Passage`."""
        return self._decode(self._texts, self._text_ends, self._row(row))

    def texts(self) -> Iterator[str]:
        """Every text, in order."""
        return (self.text(row) for row in range(len(self)))

    def doc_id(self, row: int) -> str:
        """The article id of passage `row`."""
        return self.doc_names[int(self.docs[self._row(row)])]

    def columns(
        self, keys: np.ndarray, doc_rows: dict[str, int]
    ) -> tuple[np.ndarray, Buffer, Buffer]:
        """What `qa.store` writes: the table (`ROW`, with `keys` and each passage's
        article as its position in `doc_rows`) and the text and id buffers."""
        remap = np.asarray([doc_rows.get(name, -1) for name in self.doc_names] or [0], np.int64)
        table = np.zeros(len(self), dtype=ROW)
        table["key"] = keys
        table["doc"] = remap[self.docs] if len(self) else 0
        if len(self) and int(table["doc"].min()) < 0:
            missing = self.doc_id(int(np.argmin(table["doc"])))
            raise ValueError(f"passages of an article that is not in the index: {missing!r}")
        table["start"], table["end"] = self.starts, self.ends
        table["text_end"], table["id_end"] = self._text_ends, self._id_ends
        table["hash"] = self.hashes
        return table, self._texts, self._ids

    @classmethod
    def from_columns(
        cls, table: np.ndarray, texts: Buffer, ids: Buffer, doc_names: Sequence[str]
    ) -> Passages:
        """The table `columns` wrote (memory-mapped or not), over `doc_names` (the
        documents file's ids, in order). `ValueError` when the columns do not fit
        together (offsets out of their buffers, unknown articles)."""
        n = len(table)
        text_ends, id_ends = table["text_end"], table["id_end"]
        docs = np.ascontiguousarray(table["doc"])
        for what, ends, size in (("text", text_ends, len(texts)), ("id", id_ends, len(ids))):
            if n and (int(ends[-1]) != size or int(ends[0]) < 0 or (np.diff(ends) < 0).any()):
                raise ValueError(f"passage {what} offsets do not fit the {size}-byte {what} file")
            if not n and size:
                raise ValueError(f"a {size}-byte {what} file for no passages")
        if n and (int(docs.min()) < 0 or int(docs.max()) >= len(doc_names)):
            raise ValueError(
                f"passages name articles {int(docs.min())}..{int(docs.max())}, the index has "
                f"{len(doc_names)}"
            )
        return cls(
            texts, text_ends, ids, id_ends, docs, doc_names, table["start"], table["end"],
            table["hash"],
        )  # fmt: skip

    def _row(self, row: int) -> int:
        row = int(row)
        n = len(self)
        if row < 0:
            row += n
        if not 0 <= row < n:
            raise IndexError(f"passage {row} of {n}")
        return row

    @staticmethod
    def _slice(buffer: Buffer, ends: np.ndarray, row: int) -> bytes:
        start = int(ends[row - 1]) if row else 0
        return bytes(buffer[start : int(ends[row])])

    def _decode(self, buffer: Buffer, ends: np.ndarray, row: int) -> str:
        data = self._slice(buffer, ends, row)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as err:
            # a loaded index's large files are checked by size, not checksum (qa.store)
            raise IndexCorruptError(
                f"passage {row}'s text is not UTF-8 ({err}): the index files are damaged; "
                "check them with: semantic-qa verify INDEX, and rebuild with: semantic-qa "
                "index ARTICLES... --out INDEX"
            ) from err


def _ends(chunks: Sequence[bytes]) -> np.ndarray:
    return np.cumsum(np.fromiter((len(c) for c in chunks), np.int64, len(chunks)), dtype=np.int64)
