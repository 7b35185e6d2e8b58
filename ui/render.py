"""Hits and messages as HTML for the form. Article text, titles, sources, file names
and error messages are untrusted: every piece is `html.escape`d where it is written,
and nothing is ever passed through Markdown.

>>> render_hits([hit.to_dict()], threshold=0.3)  # doctest: +SKIP
'<div class="hit">...<mark class="answer">...</mark>...</div>'
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

from qa.hits import page_label

HOW_TO_READ = (
    "How to read the results: passages are ranked by score, higher is better: how likely "
    "the passage holds the answer (0 to 1), as the ranker trained on SQuAD questions "
    "judges it (an index without sentence vectors, or a question of over 40 words, ranks "
    "by a fused score that only compares passages for this one question). Closeness is the "
    "cosine similarity (-1 to 1) of your question and the closest passage by meaning; "
    "when it is low, the articles probably do not answer the question. "
    "Highlighted: the sentence most likely to hold the answer."
)

CSS = """
.hit { border: 1px solid var(--border-color-primary); border-radius: 8px;
       padding: 10px 14px; margin: 0 0 12px 0; }
.hit.weak { opacity: 0.8; }
.hit h4 { margin: 0 0 4px 0; }
.hit h4 .pages { font-weight: normal; font-size: 0.85em; color: var(--body-text-color-subdued);
                 margin-left: 0.4em; white-space: nowrap; }
.hit .meta { font-size: 0.9em; color: var(--body-text-color-subdued); margin-bottom: 6px; }
.hit .passage, .hit .context { white-space: pre-wrap; line-height: 1.5; }
.hit mark.answer { background: #ffe58a; color: #000; padding: 0 2px; border-radius: 3px; }
.hit .context .around { color: var(--body-text-color-subdued); }
.hit .context .here { border-left: 3px solid #f0b400; padding-left: 6px; display: block; }
.notice { border-radius: 8px; padding: 10px 14px; margin-bottom: 12px;
          background: var(--background-fill-secondary);
          border: 1px solid var(--border-color-primary); }
.notice.error { border-color: #d33; }
.notice.success { border-color: #2a2; }
.notice.no-match { border-color: #f0b400; font-weight: 600; }
"""


def notice(message: str, *, kind: str = "info") -> str:
    """A message box; `message` is escaped."""
    return f'<div class="notice {html.escape(kind)}">{html.escape(message)}</div>'


def closeness_words(closeness: float, threshold: float) -> str:
    """How to read the closeness of the best passage, against the no-match threshold."""
    if closeness < threshold:
        return "low: probably not about your question"
    if closeness < threshold + 0.15:
        return "fair: may answer it"
    return "high: likely answers it"


def highlighted(text: str, start: int | None, end: int | None) -> str:
    """`text` escaped, with `text[start:end]` in a <mark>. The offsets come from the
    hit; they are clamped, and an empty or missing span marks nothing."""
    if start is None or end is None:
        return html.escape(text)
    start, end = max(0, min(int(start), len(text))), max(0, min(int(end), len(text)))
    if start >= end:
        return html.escape(text)
    return (
        html.escape(text[:start])
        + f'<mark class="answer">{html.escape(text[start:end])}</mark>'
        + html.escape(text[end:])
    )


def render_hit(
    hit: Mapping[str, Any], weak: bool = False, context: tuple[str, str] | None = None
) -> str:
    """One result card: rank, score and what it means, title, source, the passage with
    its answer highlighted, and the passage in its article (`context`: the text just
    before and after it)."""
    start, end = hit.get("answer_start"), hit.get("answer_end")
    passage = highlighted(hit["text"], start, end)
    parts = [
        f'<div class="hit{" weak" if weak else ""}" data-rank="{int(hit["rank"])}">',
        f"<h4>{int(hit['rank'])}. {html.escape(hit['title'] or hit['doc_id'])}{_pages(hit)}</h4>",
        f'<div class="meta">score <b class="score">{hit["score"]:.3f}</b> · '
        f'<span class="source">{html.escape(hit["source"] or hit["doc_id"])}</span>, '
        f"characters {int(hit['start'])}–{int(hit['end'])}</div>",
        f'<div class="passage">{passage}</div>',
    ]
    if context is not None:
        before, after = context
        parts.append(
            "<details><summary>Show in the article</summary>"
            f'<div class="context"><span class="around">{html.escape(before)}</span>'
            f'<span class="here">{passage}</span>'
            f'<span class="around">{html.escape(after)}</span></div></details>'
        )
    parts.append("</div>")
    return "".join(parts)


def _pages(hit: Mapping[str, Any]) -> str:
    """The pages a hit lies on ("p. 3–4"), beside its title; nothing when it has none."""
    try:
        label = page_label([int(p) for p in hit.get("pages") or []])
    except (TypeError, ValueError):
        return ""
    return f' <span class="pages">{html.escape(label)}</span>' if label else ""


def render_hits(
    hits: list[dict[str, Any]],
    *,
    threshold: float = 0.0,
    closeness: float | None = None,
    contexts: Mapping[str, tuple[str, str]] | None = None,
) -> str:
    """Result cards for `hits` (dicts from `Hit.to_dict()`), best first. `closeness`:
    cosine similarity of the question and its closest passage (default: the best
    hit's score). Below `threshold`, a notice says the articles do not seem to answer
    the question; the closest passages still follow, marked as weak."""
    if not hits:
        return notice("No passages found: the index is empty. Upload some articles.")
    contexts = contexts or {}
    closeness = hits[0]["score"] if closeness is None else closeness
    weak = closeness < threshold
    head = ""
    if weak:
        head = notice(
            "The articles do not seem to answer this. The closest passages are below, "
            "but they are probably not about your question.",
            kind="no-match",
        )
    summary = (
        f'<p class="closeness">Closeness of the best passage: <b>{closeness:.2f}</b> '
        f"({html.escape(closeness_words(closeness, threshold))})</p>"
        f'<p class="how-to-read">{html.escape(HOW_TO_READ)}</p>'
    )
    cards = "\n".join(render_hit(h, weak, contexts.get(h["id"])) for h in hits)
    return f"{head}{summary}\n{cards}"
