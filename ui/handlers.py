"""The form's handlers: thin calls into `qa`, testable without a server.

`LiveIndex` holds the index the form searches. An upload builds a bigger index with
`Index.add` and swaps it in when (and only when) that succeeded, so searches running
meanwhile see the old index or the new one, never a half-built one.

>>> live = LiveIndex(qa.load_index("data/index"))   # doctest: +SKIP
>>> page, hits = live.ask("Who launched the Code of Conduct?", 5)  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr

from embeddings.models import no_match_threshold
from qa import Index, InvalidInputError, QAError, load_documents
from qa.documents import SUPPORTED_SUFFIXES
from qa.query import check_k

from . import render

log = logging.getLogger(__name__)

MAX_PASSAGES = 20
# The HTTP API's largest k: more is not an answer any more, and results are
# de-duplicated pairwise, so a huge k is an easy way to keep the server busy.
MAX_API_K = 100
# Searches each API runs at once (Gradio's default is one: every other request waits
# in line, so latency grows with each client). Searching is read-only and
# thread-safe; an upload swaps the whole index at once (LiveIndex).
SEARCH_CONCURRENCY = max(2, os.cpu_count() or 1)
DEFAULT_MAX_UPLOAD_MB = 10.0
# Files one upload may hold.
DEFAULT_MAX_UPLOAD_FILES = 20
# Characters of the article shown before and after a passage in "Show in the article".
CONTEXT_CHARS = 600

Progress = Callable[..., Any]


def _no_progress(*args: Any, **kwargs: Any) -> None:
    return None


def api_hits(
    index: Index,
    question: Any,
    k: Any = 5,
    *,
    mode: Any = None,
    where: Any = None,
    ranker: Any = None,
) -> list[dict[str, Any]]:
    """The HTTP APIs' answer (the form's `/search` and `/api/search`): the same list of
    `Hit.to_dict()` as `qa.search` and the CLI. Anything wrong with the request (a
    question that is not a string, empty, too long or holding control characters; `k`
    not a whole number from 1 to `MAX_API_K`; an unknown `mode` or `ranker`; `where`
    not a dict) is an `InvalidInputError` with the message Python gives."""
    hits = index.search(question, k=_api_k(k), mode=mode, where=where, ranker=ranker)
    return [hit.to_dict() for hit in hits]


def search_hits(index: Index, question: str, k: Any = 5) -> list[dict[str, Any]]:
    """`api_hits` for the form's `/search`: a bad request is a `gr.Error` with the
    reason, which Gradio returns as the error message."""
    try:
        return api_hits(index, question, k)
    except QAError as err:
        raise _refused_request(str(err)) from err


def _refused_request(reason: str) -> gr.Error:
    """The API's answer to a request it cannot serve: the reason as plain text (API
    clients get it as a JSON string; the form never shows these, its own handlers
    render escaped notices), one line in the server's log and no traceback: the
    mistake is the caller's, not a bug."""
    # %.300s: a request's values are echoed (repr, so one line), but not a megabyte of them
    log.info("refused an API request: %.300s", reason)
    return gr.Error(reason, print_exception=False)


def _api_k(k: Any) -> int:
    # JSON numbers may arrive as floats (5.0); anything else that is not a whole
    # number goes to check_k, which says what is wrong with it.
    if isinstance(k, float) and k.is_integer():
        k = int(k)
    k = check_k(k)
    if k > MAX_API_K:
        raise InvalidInputError(f"k must be at most {MAX_API_K}, got {k}")
    return k


class LiveIndex:
    """The index behind the form (None when it could not be opened: `error` says
    why), the no-match threshold and the upload limit. `threshold=None` (the default)
    follows the index's encoder: each has its own measured value
    (`embeddings.models.NO_MATCH_BELOW`)."""

    def __init__(
        self,
        index: Index | None,
        *,
        error: str | None = None,
        threshold: float | None = None,
        max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
        max_upload_files: int = DEFAULT_MAX_UPLOAD_FILES,
    ):
        self._index = index
        self.error = error
        self.threshold = threshold
        self.max_upload_mb = max_upload_mb
        self.max_upload_files = max_upload_files
        self._add_lock = threading.Lock()

    @property
    def index(self) -> Index | None:
        return self._index

    def threshold_for(self, index: Index) -> float:
        """The closeness below which the form says the articles do not seem to answer."""
        if self.threshold is not None:
            return self.threshold
        return no_match_threshold(index.encoder.name)

    def missing_message(self) -> str:
        """Why there is nothing to search, and how to build an index."""
        restart = (
            "then restart `semantic-qa serve` (`make run` does both for the bundled articles)."
        )
        if self.error:
            return f"The index cannot be opened: {self.error.rstrip('. ')}; {restart}"
        return (
            "There is no index to search: build one with "
            f"`semantic-qa index data/articles --out data/index`, {restart}"
        )

    def search(self, question: str, k: float = 5) -> list[dict[str, Any]]:
        """For the HTTP API: hit dicts, or a `gr.Error` with the reason."""
        index = self._index
        if index is None:
            raise _refused_request(self.missing_message())
        return search_hits(index, question, k)

    def ask(self, question: str, k: float = 5) -> tuple[str, list[dict[str, Any]]]:
        """For the form: (results HTML, hit dicts). User mistakes become friendly
        messages on the page rather than errors."""
        index = self._index
        if index is None:
            return render.notice(self.missing_message(), kind="error"), []
        if not isinstance(question, str) or not question.strip():
            return render.notice(
                "Type a question first, for example: When was the Bled Strategic Forum "
                "established? Or click one of the examples."
            ), []
        k = max(1, min(MAX_PASSAGES, _form_k(k)))
        try:
            hits = [h.to_dict() for h in index.search(question, k=k)]
            closeness = _closeness(index, question)
        except QAError as err:
            log.info("refused a question in the form: %.300s", err)
            return render.notice(str(err), kind="error"), []
        contexts = {h["id"]: self.context(index, h) for h in hits}
        page = render.render_hits(
            hits, threshold=self.threshold_for(index), closeness=closeness, contexts=contexts
        )
        return page, hits

    def context(self, index: Index, hit: dict[str, Any]) -> tuple[str, str]:
        """The article text just before and after a hit's passage: the neighbouring
        passages, cut where they overlap it (passages keep their place in the article)."""
        doc_passages = index.passages_of(hit["doc_id"])
        at = next((i for i, p in enumerate(doc_passages) if p.id == hit["id"]), None)
        if at is None:
            return "", ""
        before = after = ""
        if at > 0:
            prev = doc_passages[at - 1]
            before = prev.text[: max(0, hit["start"] - prev.start)]
            before += "\n" if prev.end < hit["start"] else ""
        if at + 1 < len(doc_passages):
            nxt = doc_passages[at + 1]
            after = ("\n" if nxt.start > hit["end"] else "") + nxt.text[
                max(0, hit["end"] - nxt.start) :
            ]
        return before[-CONTEXT_CHARS:], after[:CONTEXT_CHARS]

    def upload(self, files: list[str] | None, progress: Progress = _no_progress) -> str:
        """Add uploaded article files to the index. A bad file, a file over the size
        limit, too many files or an id already indexed leaves the index as it was."""
        if self._index is None:
            return render.notice(self.missing_message(), kind="error")
        if not files:
            return render.notice(
                f"Choose one or more article files ({', '.join(sorted(SUPPORTED_SUFFIXES))})."
            )
        paths = [Path(f) for f in files]
        if len(paths) > self.max_upload_files:
            return _refused(
                f"{len(paths)} files at once, the limit is {self.max_upload_files} "
                "(semantic-qa serve --max-upload-files); add them in smaller groups"
            )
        limit = self.max_upload_mb * 1024 * 1024
        for path in paths:
            size = path.stat().st_size
            if size > limit:
                return _refused(
                    f"{path.name} is {size / 1024 / 1024:.1f} MB, over the upload limit of "
                    f"{self.max_upload_mb:g} MB (semantic-qa serve --max-upload-mb)."
                )
        with self._add_lock:
            index = self._index
            try:
                progress(0.0, desc=f"Reading {len(paths)} file(s)")
                docs = [
                    dataclasses.replace(doc, source=f"uploaded: {path.name}")
                    for path in paths
                    for doc in load_documents([path])
                ]
                progress(0.1, desc=f"Splitting and embedding {len(docs)} article(s)")
                grown = index.add(docs, progress=True)
            except QAError as err:
                return _refused(_without_folders(str(err), paths))
            except OSError as err:
                log.exception("saving the index after an upload failed")
                return _refused(f"the index could not be saved ({err}).")
            self._index = grown
        titles = ", ".join(f"“{d.title or d.id}”" for d in docs[:5])
        more = f" and {len(docs) - 5} more" if len(docs) > 5 else ""
        added = len(grown) - len(index)
        return render.notice(
            f"Added {len(docs)} article(s), {added} passage{'' if added == 1 else 's'}: "
            f"{titles}{more}. "
            f"They are searchable now ({len(grown.documents)} articles in the index).",
            kind="success",
        )


def _form_k(k: Any) -> int:
    # the slider sends a number; a hand-made request may send anything
    try:
        return int(k or 5)
    except (TypeError, ValueError, OverflowError):
        return 5


def _closeness(index: Index, question: str) -> float:
    """Cosine similarity of the question and its closest passage by meaning: what the
    no-match threshold was measured on, whatever score the search itself ranks by."""
    best = index.search_vectors(index.encoder.encode_queries([question]), 1)[0]
    return best[0].score if best else -1.0


def _refused(reason: str) -> str:
    reason = reason.rstrip(". ")
    return render.notice(f"Not added: {reason}. The index is unchanged.", kind="error")


def _without_folders(message: str, paths: list[Path]) -> str:
    """Error messages name uploads by file name, not by the server's temporary folder."""
    for path in paths:
        message = message.replace(f"{path.parent}/", "")
    return message
