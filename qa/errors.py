"""The one error hierarchy. Every message says what was wrong, the offending value,
and how to fix it; the CLI prints it as one line, the UI shows it as a `gr.Error`."""

from __future__ import annotations


class QAError(Exception):
    """Base class of every error semantic-qa raises on purpose."""


class InvalidInputError(QAError, ValueError):
    """A bad question, `k`, option or argument passed by the caller."""


class DocumentError(QAError):
    """An article that cannot be loaded (unreadable, empty, undecodable, unknown type)."""


class DuplicateIdError(DocumentError):
    """Two articles with the same id."""


class ModelNotFoundError(QAError):
    """The embedding model is not installed."""


class IndexNotFoundError(QAError):
    """No index at the given path."""


class IndexCorruptError(QAError):
    """An index whose files do not match its manifest (truncated, edited, missing)."""


class IndexFormatError(IndexCorruptError):
    """An index written by an incompatible format version."""


class ModelMismatchError(QAError):
    """An index built with another model or dimension than the one asked for."""


class IndexWriteError(QAError, OSError):
    """An index that could not be saved (read-only folder, full disk); the previous
    index in that folder is left as it was. Also an `OSError`, as it was before."""
