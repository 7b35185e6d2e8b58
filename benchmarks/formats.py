"""PDF and Word articles against plain text, on SQuAD-dev.

    python benchmarks/formats.py                  # both tables, all 24 articles
    python benchmarks/formats.py --articles 6 --no-retrieval

1. Extraction: the articles rendered as two-column PDFs (benchmarks/render_documents.py:
   running headers, footers with page numbers, justified hyphenated text, ligatures, a
   table), read by pypdf, pdfminer.six, pdfplumber, pypdfium2 as they come, and by
   semantic-qa (pypdfium2 in a limited child process, then qa.pdf's clean-up). Scored
   against where the renderer put everything:
   - paragraphs intact: share of the article's paragraphs found word for word (spaces
     squeezed) in the text: reading order, columns, hyphens and ligatures all right;
   - in order (normalized): the same with spaces, hyphens and ligatures ignored;
   - hyphens joined: share of the words hyphenated at line ends found whole;
   - ligatures: "ﬁ"/"ﬂ" characters left in the text;
   - running lines left: headers, footers and page numbers found in the text;
   - table rows: share of the table's rows found on one line, cells in order;
   - pages/s: all pages, one process, this machine.
2. Retrieval: the articles indexed three ways (the text, the PDFs, the Word files) with
   the default settings and the same encoder, every question asked of each (hybrid,
   k=10). A hit is a passage of the question's article whose text contains a gold
   answer, spaces and hyphens ignored (offsets differ between the versions). Page
   numbers: each PDF passage's pages (from qa's page starts) against the pages the
   renderer put its first and last words on, for every passage and for the first hits.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from render_documents import DATA, load_articles, render

import qa
from qa.documents import pages_between


def _squeeze(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _norm(text: str) -> str:
    """Spaces, hyphens (and a PDF reader's hyphen marks) and ligatures ignored."""
    text = text.replace("\ufb01", "fi").replace("\ufb02", "fl")
    return re.sub(r"[\s\-\u00ad\ufffe\x02]+", "", text).lower()


# -- extraction ------------------------------------------------------------------------


def _pypdf(path: Path) -> str:
    import pypdf

    return "\n".join(p.extract_text() for p in pypdf.PdfReader(path).pages)


def _pdfminer(path: Path) -> str:
    from pdfminer.high_level import extract_text

    return str(extract_text(path))


def _pdfplumber(path: Path) -> str:
    import pdfplumber

    with pdfplumber.open(path) as pdf:
        return "\n".join(p.extract_text() or "" for p in pdf.pages)


def _pypdfium2(path: Path) -> str:
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(path)
    out = [page.get_textpage().get_text_range().replace("\r\n", "\n") for page in pdf]
    pdf.close()
    return "\n".join(out)


def _semantic_qa(path: Path) -> str:
    return qa.load_documents([path])[0].text


READERS: dict[str, Callable[[Path], str]] = {
    "pypdf 7 (extract_text)": _pypdf,
    "pdfminer.six (extract_text)": _pdfminer,
    "pdfplumber (extract_text)": _pdfplumber,
    "pypdfium2 5 (get_text_range)": _pypdfium2,
    "semantic-qa (pypdfium2 + qa.pdf)": _semantic_qa,
}


def score_extraction(text: str, article: dict[str, Any], truth: dict[str, Any]) -> dict[str, float]:
    source = article["text"]
    paragraphs = [source[s:e] for s, e in article["paragraphs"]]
    squeezed, normed = _squeeze(text), _norm(text)
    intact = sum(_squeeze(p) in squeezed for p in paragraphs)
    in_order, at = 0, 0
    for p in paragraphs:
        found = normed.find(_norm(p), at)
        if found >= 0:
            in_order += 1
            at = found
    words = Counter(re.findall(r"\S+", text))
    wanted = Counter(re.findall(r"\S+", source))
    hyphenated = {h["word"] for h in truth["hyphenated"]}
    joined = sum(words[w] >= wanted[w] for w in hyphenated)
    left = 0
    for page in truth["pages"]:
        for line in (page["header"], page["footer"]):
            if not line:
                continue
            if re.fullmatch(r"\d+", line):  # a bare page number: on a line of its own
                left += len(re.findall(rf"(?m)^\s*{line}\s*$", text)) > 0
            else:  # a title also heads page 1, and may open a row of the table
                cells = sum(cell.count(line) for row in truth["table"] for cell in row)
                left += text.count(line) > source.count(line) + (line == truth["title"]) + cells
    rows = sum(
        re.search(r"[ \t|]+".join(re.escape(c) for c in row), text) is not None
        for row in truth["table"]
    )
    return {
        "intact": intact / len(paragraphs),
        "order": in_order / len(paragraphs),
        "hyphens": joined / max(1, len(hyphenated)),
        "ligatures": text.count("\ufb01") + text.count("\ufb02"),
        "running": left,
        "running_total": sum(bool(p["header"]) + bool(p["footer"]) for p in truth["pages"]),
        "rows": rows / len(truth["table"]),
    }


def extraction_table(
    folder: Path, articles: list[dict], truths: list[dict], slow: int, only: str = ""
) -> None:
    print(
        "\n| reader | paragraphs intact | in order (normalized) | hyphens joined | ligatures left | running lines left | table rows intact | pages/s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, read in READERS.items():
        if only not in name:
            continue
        chosen = list(zip(articles, truths, strict=True))
        if "pdfminer" in name or "pdfplumber" in name:
            chosen = chosen[:slow]  # 3-6 pages/s: a subset says as much
        scores, pages = [], 0
        started = time.perf_counter()
        for article, truth in chosen:
            text = read(folder / f"{article['id']}.pdf")
            pages += len(truth["pages"])
            scores.append(score_extraction(text, article, truth))
        seconds = time.perf_counter() - started
        mean = {k: sum(s[k] for s in scores) / len(scores) for k in scores[0]}
        running = sum(s["running"] for s in scores)
        total = sum(s["running_total"] for s in scores)
        ligatures = sum(s["ligatures"] for s in scores)
        print(
            f"| {name}{'' if len(chosen) == len(articles) else f' ({len(chosen)} articles)'} | "
            f"{mean['intact']:.1%} | {mean['order']:.1%} | {mean['hyphens']:.1%} | {ligatures:,} | "
            f"{running} of {total} | {mean['rows']:.0%} | {pages / seconds:.1f} |",
            flush=True,
        )


# -- retrieval -------------------------------------------------------------------------


def _is_hit(hit: qa.Hit, question: dict[str, Any], doc_of: dict[str, str]) -> bool:
    if doc_of.get(hit.doc_id) != question["article_id"]:
        return False
    text = _norm(hit.text)
    return any(_norm(a["text"]) in text for a in question["answers"])


def retrieval_scores(
    index: qa.Index, questions: list[dict], vectors: Any, doc_of: dict[str, str]
) -> tuple[dict, list]:
    hits = index.search_batch([q["question"] for q in questions], 10, vectors=vectors)
    r1 = mrr = 0.0
    for q, found in zip(questions, hits, strict=True):
        for rank, hit in enumerate(found, 1):
            if _is_hit(hit, q, doc_of):
                r1 += rank == 1
                mrr += 1 / rank
                break
    n = len(questions)
    return {"R@1": r1 / n, "MRR@10": mrr / n}, hits


class PageTruth:
    """Which page the renderer put each character of an article on, found from a
    passage's text by its first and last words (normalized)."""

    def __init__(self, article: dict[str, Any], truth: dict[str, Any]):
        source = article["text"]
        self.page = [0] * (len(source) + 1)
        for page in truth["pages"]:
            for start, end in page["spans"]:
                for i in range(start, min(end + 1, len(source))):
                    self.page[i] = page["number"]
        keep = [i for i, c in enumerate(source) if not (c.isspace() or c in "-")]
        self.normed = "".join(source[i].lower() for i in keep)
        self.where = keep

    def pages(self, text: str) -> tuple[int, ...] | None:
        normed = _norm(text)
        head = self._find(normed[:40]) if len(normed) >= 40 else None
        tail = self._find(normed[-40:]) if len(normed) >= 40 else None
        if head is None or tail is None:
            return None  # not article text (the title, the table): nothing to check against
        first = self.page[self.where[head]]
        last = self.page[self.where[tail + 39]]
        return tuple(range(first, last + 1)) if first and last >= first else None

    def _find(self, needle: str) -> int | None:
        at = self.normed.find(needle)
        return at if at >= 0 and self.normed.find(needle, at + 1) < 0 else None


def page_accuracy(
    index: qa.Index, truths: dict[str, PageTruth], first_hits: list[qa.Hit]
) -> tuple[int, int, int, int]:
    right = checked = 0
    for doc_id, info in index.documents.items():
        truth = truths[doc_id]
        for p in index.passages_of(doc_id):
            expected = truth.pages(p.text)
            if expected is None:
                continue
            checked += 1
            right += pages_between(info.page_starts, p.start, p.end) == expected
    hit_right = hit_checked = 0
    for hit in first_hits:
        expected = truths[hit.doc_id].pages(hit.text)
        if expected is not None:
            hit_checked += 1
            hit_right += hit.pages == expected
    return right, checked, hit_right, hit_checked


def retrieval_table(
    folder: Path, articles: list[dict], truths: list[dict], questions: list[dict]
) -> None:
    from embeddings import EmbeddingCache, load_encoder

    encoder = load_encoder()
    wanted = {a["id"] for a in articles}
    questions = [q for q in questions if q["article_id"] in wanted]
    started = time.perf_counter()
    vectors = encoder.encode_queries([q["question"] for q in questions])
    print(
        f"encoded {len(questions)} questions in {time.perf_counter() - started:.0f} s",
        file=sys.stderr,
    )
    texts = [qa.Document(a["id"], a["text"], a["title"], "squad") for a in articles]
    versions: dict[str, list[qa.Document]] = {"text": texts}
    seconds: dict[str, float] = {}
    for suffix in ("pdf", "docx"):
        started = time.perf_counter()
        versions[suffix] = qa.load_documents([folder / f"{a['id']}.{suffix}" for a in articles])
        seconds[suffix] = time.perf_counter() - started
    page_count = sum(len(t["pages"]) for t in truths)
    print(
        f"read {len(articles)} PDFs ({page_count} pages) in {seconds['pdf']:.1f} s "
        f"({page_count / seconds['pdf']:.1f} pages/s), Word files in {seconds['docx']:.1f} s",
        file=sys.stderr,
    )
    rows = []
    with tempfile.TemporaryDirectory() as cache_dir:
        cache = EmbeddingCache(Path(cache_dir))  # the same vectors, once for all three
        for name, docs in versions.items():
            started = time.perf_counter()
            index = qa.build_index(docs, model=encoder, cache=cache, progress=False)
            built = time.perf_counter() - started
            doc_of = {d.id: d.id.rsplit(".", 1)[0] if name != "text" else d.id for d in docs}
            scores, hits = retrieval_scores(index, questions, vectors, doc_of)
            pages = None
            if name == "pdf":
                page_truth = {
                    f"{a['id']}.pdf": PageTruth(a, t) for a, t in zip(articles, truths, strict=True)
                }
                pages = page_accuracy(index, page_truth, [h[0] for h in hits if h])
            rows.append((name, scores, len(index), built, pages))
            print(f"done: {name} ({built:.0f} s)", file=sys.stderr, flush=True)
    print(
        f"\n{len(articles)} articles, {len(questions)} questions, hybrid, k=10, encoder {encoder.name}\n"
    )
    print(
        "| articles as | passages | R@1 | MRR@10 | vs text R@1 | vs text MRR@10 | page numbers right: passages | first hits |"
    )
    print("|---|---|---|---|---|---|---|---|")
    base = rows[0][1]
    for name, scores, count, _built, pages in rows:
        page_cells = "– | –"
        if pages is not None:
            right, checked, hit_right, hit_checked = pages
            page_cells = f"{right / checked:.2%} ({right:,} of {checked:,}) | {hit_right / hit_checked:.2%} ({hit_right:,} of {hit_checked:,})"
        print(
            f"| {name} | {count:,} | {scores['R@1']:.3f} | {scores['MRR@10']:.3f} | "
            f"{(scores['R@1'] - base['R@1']) * 100:+.1f} | {(scores['MRR@10'] - base['MRR@10']) * 100:+.1f} | {page_cells} |"
        )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--articles", type=int, default=0, help="the first N articles (0: all)")
    ap.add_argument("--slow", type=int, default=6, help="articles for pdfminer and pdfplumber")
    ap.add_argument("--no-retrieval", action="store_true")
    ap.add_argument("--no-extraction", action="store_true")
    ap.add_argument("--readers", default="", help="only readers whose name contains this")
    args = ap.parse_args()
    articles = load_articles(args.data)
    if args.articles:
        articles = articles[: args.articles]
    with open(args.data / "questions.jsonl", encoding="utf-8") as f:
        questions = [json.loads(line) for line in f if line.strip()]
    print(
        f"{len(articles)} SQuAD-dev articles, {os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d')}",
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        truths = render(articles, folder)
        print(
            f"rendered {sum(len(t['pages']) for t in truths)} PDF pages and {len(articles)} Word files"
        )
        if not args.no_extraction:
            extraction_table(folder, articles, truths, args.slow, args.readers)
        if not args.no_retrieval:
            retrieval_table(folder, articles, truths, questions)
    return 0


if __name__ == "__main__":
    sys.exit(main())
