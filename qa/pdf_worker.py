"""Reads one PDF's text layer in a child process, under limits (see `qa.pdf`).

    python -I qa/pdf_worker.py FILE MAX_PAGES MEMORY_MB CPU_SECONDS CPU_SECONDS_PER_PAGE

A PDF is parsed by PDFium (C++), and a hostile one can inflate a stream to gigabytes,
keep the CPU busy or crash the parser: here that ends this process, not the one that
indexes or serves. The process limits its own address space and CPU time before it
opens the file, and prints one JSON object: {"pages", "title", "lines"} where each
line is [page, text, x0, bottom, x1, top, font size, wide gaps] in PDFium's reading order (a line
broken by a hyphen PDFium recognised ends with U+FFFE), or {"error", "detail"}.

Standalone on purpose: it imports nothing of `qa` (run with `python -I`, it sees only
the standard library and site-packages), so it starts fast and trusts no local file.
"""

from __future__ import annotations

import json
import resource
import sys
from typing import Any


def _limit(memory_mb: int, cpu_seconds: float, final: bool = False) -> None:
    """Cap this process's address space and CPU time. Past the CPU soft limit the
    kernel sends SIGXCPU, which ends it; the hard limit is set last (`final`): it can
    only be lowered after that."""
    if memory_mb > 0:
        size = memory_mb * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (size, size))
    used = resource.getrusage(resource.RUSAGE_SELF)
    seconds = int(used.ru_utime + used.ru_stime + cpu_seconds) + 1
    hard = seconds + 1 if final else resource.RLIM_INFINITY
    resource.setrlimit(resource.RLIMIT_CPU, (seconds, hard))


def read(path: str, max_pages: int, cpu_seconds: float, per_page_seconds: float) -> dict[str, Any]:
    import pypdfium2 as pdfium
    import pypdfium2.raw as raw

    try:
        pdf = pdfium.PdfDocument(path)
    except pdfium.PdfiumError:
        code = raw.FPDF_GetLastError()
        if code == raw.FPDF_ERR_PASSWORD:
            return {"error": "password", "detail": ""}
        if code == raw.FPDF_ERR_SECURITY:
            return {"error": "security", "detail": ""}
        reasons = {2: "cannot open the file", 3: "damaged or not a PDF"}
        return {"error": "format", "detail": reasons.get(code, f"error {code}")}
    pages = len(pdf)
    if pages > max_pages:
        return {"error": "pages", "detail": pages}
    _limit(0, cpu_seconds + per_page_seconds * pages, final=True)
    title = (pdf.get_metadata_value("Title") or "").strip()
    lines: list[list[Any]] = []
    for number in range(pages):
        page = pdf[number]
        textpage = page.get_textpage()
        lines.extend([number, *line] for line in _lines(textpage, raw))
        textpage.close()
        page.close()
    pdf.close()
    return {"pages": pages, "title": title, "lines": lines}


def _lines(textpage: Any, raw: Any) -> list[list[Any]]:
    """A page's lines: PDFium's text with its generated line breaks, split also after
    the hyphens it recognised at line ends (which it joins to the next line)."""
    count = textpage.count_chars()
    text = textpage.get_text_range() if count > 0 else ""
    if len(text) != count:  # offsets must be char indices: read them one by one
        text = "".join(chr(raw.FPDFText_GetUnicode(textpage, i)) for i in range(count))
        text = text.replace("\x02", "\ufffe")
    out = []
    start = 0
    for end in range(count + 1):
        if end < count and text[end] not in "\r\n\ufffe":
            continue
        stop = end + 1 if end < count and text[end] == "\ufffe" else end
        piece = text[start:stop]
        first = start + len(piece) - len(piece.lstrip())
        last = start + len(piece.rstrip()) - 1
        if last >= first:
            left, bottom, _, top = textpage.get_charbox(first)
            _, bottom2, right, top2 = textpage.get_charbox(last)
            size = raw.FPDFText_GetFontSize(textpage, first)
            # only a line whose letters are spread wider than text's could hold wide gaps
            spread = (right - left) / (last - first + 1) > 0.55 * size
            gaps = _wide_gaps(textpage, text, first, last, size) if spread else []
            out.append(
                [text[first : last + 1], round(left, 2), round(min(bottom, bottom2), 2),
                 round(right, 2), round(max(top, top2), 2), round(size, 2), gaps]
            )  # fmt: skip
        start = stop if stop > end else end + 1
    return out


def _wide_gaps(textpage: Any, text: str, first: int, last: int, size: float) -> list[int]:
    """Offsets (in the line) of spaces wider than the font size: between table cells
    or tab stops, where words of running text are never that far apart unless the
    line is justified (which `qa.pdf` tells apart)."""
    gaps = []
    i = first + 1
    while i < last:
        if text[i] == " ":
            j = i
            while j < last and text[j] == " ":
                j += 1
            right = textpage.get_charbox(i - 1)[2]
            left = textpage.get_charbox(j)[0]
            if left - right > size:
                gaps.append(i - first)
            i = j
        i += 1
    return gaps


def main(argv: list[str]) -> int:
    path, max_pages, memory_mb = argv[1], int(argv[2]), int(argv[3])
    cpu_seconds, per_page = float(argv[4]), float(argv[5])
    _limit(memory_mb, cpu_seconds)
    try:
        result = read(path, max_pages, cpu_seconds, per_page)
    except MemoryError:
        result = {"error": "memory", "detail": memory_mb}
    sys.stdout.write(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
