"""Web form latency: from pressing "Ask" to the results on the page, in a real browser.

    python benchmarks/ui_latency.py              # 30 presses over the bundled articles

Indexes the bundled articles (data/articles) with the packaged model, serves the form on
127.0.0.1 and drives Debian's chromium headless with Playwright: click the button, wait
until the new result cards are in the page. Side by side, in the same run: the form's
handler alone (`LiveIndex.ask`: search, closeness, highlighting, HTML) and the bare
`Index.search`, so the share of Gradio and the browser is visible.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import qa  # noqa: E402  (after the environment above)
from ui import EXAMPLES, LiveIndex, build_app, launch  # noqa: E402

QUESTIONS = [
    *EXAMPLES,
    "What did Miroslav Jenča say about Kazakhstan's membership on the Security Council?",
    "What is the Astana process?",
    "Who organizes the Bled Strategic Forum?",
    "What is preventive diplomacy?",
    "Which countries' relations were normalized in 2016?",
    "What is the Joint Plan of Action for Central Asia?",
]
SHOWN = """() => Array.from(document.querySelectorAll('#results .notice, #results .hit'))
    .map(e => e.outerHTML).join('')"""


def percentiles(ms: list[float]) -> str:
    ms = sorted(ms)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    return f"{statistics.median(ms):.0f} | {p95:.0f} | {ms[0]:.0f} | {ms[-1]:.0f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presses", type=int, default=30)
    ap.add_argument("--k", type=int, default=5, help="passages to show (the form's default)")
    args = ap.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="ui-latency-"))
    index = qa.build_index([ROOT / "data" / "articles"], folder / "index")
    questions = [QUESTIONS[i % len(QUESTIONS)] for i in range(args.presses)]

    bare, handler = [], []
    live = LiveIndex(index)
    for q in questions:
        started = time.perf_counter()
        index.search(q, args.k)
        bare.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        live.ask(q, args.k)
        handler.append((time.perf_counter() - started) * 1000)

    from playwright.sync_api import sync_playwright

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    app = build_app(index)
    launch(app, host="127.0.0.1", port=port, prevent_thread_lock=True, quiet=True)
    browser_ms = []
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=shutil.which("chromium") or "/usr/bin/chromium",
                args=[
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                ],
            )
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{port}/")
            box = page.locator("#question textarea, #question input").first
            box.wait_for(timeout=60_000)
            # consecutive questions differ, so every press changes the page
            for i, q in enumerate(["warm-up question", *questions]):
                box.fill(q)
                before = page.evaluate(SHOWN)
                started = time.perf_counter()
                page.click("#ask")
                page.wait_for_function(
                    f"b => {{ const now = ({SHOWN})(); return now !== '' && now !== b; }}",
                    arg=before,
                    timeout=60_000,
                )
                if i:  # the first press warms Gradio's queue up
                    browser_ms.append((time.perf_counter() - started) * 1000)
            browser.close()
    finally:
        app.close()
        shutil.rmtree(folder, ignore_errors=True)

    print(
        f"\nbundled articles ({len(index.documents)} articles, {len(index)} passages), "
        f"model {index.encoder.name}, k={args.k}, {args.presses} questions, "
        f"{os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d')}\n"
    )
    print("| what is timed | median ms | p95 ms | min ms | max ms |")
    print("|---|---|---|---|---|")
    print(f"| button press to results on the page (chromium, Gradio) | {percentiles(browser_ms)} |")
    print(f"| form handler alone (`LiveIndex.ask`) | {percentiles(handler)} |")
    print(f"| bare `Index.search` | {percentiles(bare)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
