"""A short load test (the long ones are benchmarks/load.py and benchmarks/http_api.py,
results in BENCHMARKS.md): clients search a served form for a few seconds, half of them
through the form's `/search` (gradio_client), half through the JSON API
(`/api/search`), while articles are uploaded through the form. No request may fail,
and no search may see an upload in part: each batch of articles shows up whole or not
at all, in both APIs."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from gradio_client import Client

import qa
from ui import LiveIndex, build_app, launch

from .conftest import TINY
from .form_client import FormClient

CLIENTS = 4
SEARCHES = 6  # at least, per client; clients keep searching until two uploads are in
UPLOADS = 2  # at least; the uploader keeps going while clients search
LIMIT = 120.0  # seconds; counts, not time, decide the work, so a busy machine only slows it
BATCH = 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _batch(n: int) -> bytes:
    word = f"zyxquokka{n}"
    return "".join(
        json.dumps({"id": f"b{n}-{i}", "text": f"The {word} number {i} eats {word} leaves."}) + "\n"
        for i in range(BATCH)
    ).encode()


def _asker(url: str, api: str) -> Callable[[str], list[dict]]:
    """Ask 10 passages of the form's `/search` ("form") or of `/api/search` ("json")."""
    if api == "form":
        client = Client(url, verbose=False)
        return lambda question: client.predict(question, 10, api_name="/search")
    http = httpx.Client(base_url=url, timeout=LIMIT)

    def ask(question: str) -> list[dict]:
        reply = http.get("api/search", params={"q": question, "k": 10})
        reply.raise_for_status()
        return reply.json()["hits"]

    return ask


@pytest.mark.model
def test_concurrent_searches_while_articles_are_added(tmp_path: Path, real_encoder) -> None:
    live = LiveIndex(qa.build_index(TINY, tmp_path / "index", model=real_encoder))
    app = build_app(live)
    port = _free_port()
    launch(app, host="127.0.0.1", port=port, prevent_thread_lock=True, quiet=True)
    url = f"http://127.0.0.1:{port}/"
    latencies: list[float] = []
    errors: list[str] = []
    torn: list[str] = []
    added: list[int] = []
    searching = [CLIENTS]
    deadline = time.monotonic() + LIMIT

    def search(seed: int) -> None:
        ask = _asker(url, "form" if seed % 2 else "json")
        i, done = seed, 0
        while time.monotonic() < deadline and (done < SEARCHES or len(added) < UPLOADS):
            i += 1
            batch = i % 6
            question = f"What does the zyxquokka{batch} eat?" if i % 2 else "Apollo 11 Moon"
            started = time.perf_counter()
            try:
                hits = ask(question)
            except Exception as err:
                errors.append(f"{type(err).__name__}: {err}")
                continue
            latencies.append(time.perf_counter() - started)
            done += 1
            if i % 2:
                seen = sum(h["doc_id"].startswith(f"b{batch}-") for h in hits)
                if seen not in (0, BATCH):
                    torn.append(f"batch {batch}: {seen} of {BATCH}")
        searching[0] -= 1

    def add() -> None:
        form = FormClient(url)
        n = 0
        while time.monotonic() < deadline and (searching[0] > 0 or n < UPLOADS):
            status = form.add_articles({f"batch{n}.jsonl": _batch(n)})
            if "Added 3 article(s)" not in status:
                errors.append(status)
            added.append(n)
            n += 1

    threads = [threading.Thread(target=search, args=(i,)) for i in range(CLIENTS)]
    threads.append(threading.Thread(target=add))
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=LIMIT + 60)
        assert not any(t.is_alive() for t in threads)
    finally:
        app.close()
    assert errors == [] and torn == []
    assert len(latencies) >= CLIENTS * SEARCHES and len(added) >= UPLOADS
    index = live.index
    assert index is not None
    assert len(index.documents) == len(TINY) + BATCH * len(added)
    for n in added:  # every batch is searchable, and saved
        hits = index.search(f"What does the zyxquokka{n} eat?", BATCH, mode="lexical")
        assert {h.doc_id for h in hits} == {f"b{n}-{i}" for i in range(BATCH)}
    saved = qa.load_index(tmp_path / "index", model=real_encoder)
    assert set(saved.documents) == set(index.documents)
