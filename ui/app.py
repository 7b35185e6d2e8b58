"""The web form: a question box over an index, uploads, the form's `/search` API and,
on the same port, the JSON API (`ui.api`, mounted at /api by `launch`).

>>> app = build_app(qa.load_index("data/index"))   # doctest: +SKIP
>>> launch(app, host="127.0.0.1", port=7860)       # doctest: +SKIP

Only `/search` is public API of the form; every event of the form itself is private.
Theme and CSS go to `launch` (Gradio 6); the default theme's fonts are served by Gradio
itself, so the page needs no network.
"""

from __future__ import annotations

import html
import ipaddress
import logging
import os
import urllib.parse
import weakref
from pathlib import Path
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr
from starlette.routing import Mount

from qa import Index, InvalidInputError, QAError
from qa.documents import SUPPORTED_SUFFIXES
from qa.search import open_index

from . import api, render
from .handlers import (
    DEFAULT_MAX_UPLOAD_FILES,
    DEFAULT_MAX_UPLOAD_MB,
    MAX_PASSAGES,
    SEARCH_CONCURRENCY,
    LiveIndex,
)

log = logging.getLogger(__name__)

# Questions the bundled articles (data/articles) answer.
EXAMPLES = [
    "When was the Bled Strategic Forum established?",
    "In which year did Kazakhstan chair the OSCE?",
    "Who officially launched the draft Code of Conduct?",
    "Who headed the Kazakhstan delegation to Slovenia?",
]

# Gradio finds a `gr.Progress` default and passes a fresh tracker on each call; with
# track_tqdm it also follows the encoder's progress bar.
_PROGRESS = gr.Progress(track_tqdm=True)
# Where `serve` keeps uploaded files, next to the index folder (data/uploads for the
# bundled data/index); Gradio's cache (GRADIO_TEMP_DIR) points there.
UPLOADS = "uploads"
# The environment variable that turns on password protection: "user:password".
AUTH_ENV = "SEMANTIC_QA_AUTH"
# The index each app built here searches: `launch` serves the JSON API over the same
# one, so articles added through the form appear there too.
_LIVE: weakref.WeakKeyDictionary[gr.Blocks, LiveIndex] = weakref.WeakKeyDictionary()
# Gradio's default theme with its text font in weights whose files hold every glyph.
# The default asks for Source Sans Pro 400 and 600, but Gradio ships 600 as a 55-glyph
# subset (a few capitals, "A" among them): semibold text such as a result's title was
# drawn in two fonts, its "A"s in Source Sans Pro and every other letter in the
# fallback. The browser draws semibold from 700 instead.
FONT_WEIGHTS = (400, 700)


def theme() -> gr.themes.Base:
    """The form's theme: Gradio's default, fonts served locally in complete weights."""
    return gr.themes.Default(
        font=[
            gr.themes.LocalFont("Source Sans Pro", weights=FONT_WEIGHTS),
            "ui-sans-serif",
            "system-ui",
            "sans-serif",
        ]
    )


def build_app(
    index: Index | LiveIndex | None,
    *,
    title: str = "semantic-qa",
    error: str | None = None,
    threshold: float | None = None,
    max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
    max_upload_files: int = DEFAULT_MAX_UPLOAD_FILES,
    examples: list[str] | None = None,
) -> gr.Blocks:
    """The Gradio app over `index`; importable and testable without a server. With
    `index=None` (it could not be opened: `error` says why) the page explains how to
    build one. `threshold`: the no-match closeness (default: the value measured for the
    index's encoder). Given a `LiveIndex`, the app uses it as it is (its own threshold
    and limits): the caller can then add articles while the app serves."""
    if isinstance(index, LiveIndex):
        live = index
        max_upload_mb = live.max_upload_mb
    else:
        live = LiveIndex(
            index,
            error=error,
            threshold=threshold,
            max_upload_mb=max_upload_mb,
            max_upload_files=max_upload_files,
        )

    def ask(question: str, k: float) -> str:
        return live.ask(question, k)[0]

    def ask_example(sample: list[str], k: float) -> tuple[str, str]:
        return sample[0], live.ask(sample[0], k)[0]

    def add_files(files: list[str] | None, progress: gr.Progress = _PROGRESS) -> tuple[str, str]:
        return live.upload(files, progress), _stats(live)

    def search(question: str, k: int = 5) -> list[dict[str, Any]]:
        """The passages that best answer `question`: a list of Hit.to_dict(), best first."""
        return live.search(question, k)

    with gr.Blocks(title=title, analytics_enabled=False) as app:
        gr.HTML(f"<h1>{html.escape(title)}</h1>", elem_id="title")
        stats = gr.HTML(_stats(live), elem_id="stats")
        with gr.Row(equal_height=True):
            question = gr.Textbox(
                label="Question",
                placeholder="Ask a question about the articles and press Enter",
                lines=1,
                max_lines=1,
                scale=4,
                autofocus=True,
                elem_id="question",
            )
            k = gr.Slider(
                1, MAX_PASSAGES, value=5, step=1, label="Passages to show", scale=1, elem_id="k"
            )
        button = gr.Button("Ask", variant="primary", elem_id="ask")
        picked = gr.Dataset(
            components=[question],
            samples=[[q] for q in (EXAMPLES if examples is None else examples)],
            label="Example questions (click to ask)",
            elem_id="examples",
        )
        results = gr.HTML(elem_id="results")
        with gr.Accordion("Add articles", open=False, elem_id="add-articles"):
            files = gr.File(
                label=(
                    f"Article files ({', '.join(sorted(SUPPORTED_SUFFIXES))}; "
                    f"at most {live.max_upload_files} files of {max_upload_mb:g} MB each)"
                ),
                file_count="multiple",
                file_types=sorted(SUPPORTED_SUFFIXES),
                type="filepath",
                elem_id="files",
            )
            add = gr.Button("Add to the index", elem_id="add")
            added = gr.HTML(elem_id="added")

        for trigger in (button.click, question.submit):
            trigger(ask, [question, k], [results], api_visibility="private")
        picked.click(ask_example, [picked, k], [question, results], api_visibility="private")
        add.click(add_files, [files], [added, stats], api_visibility="private")
        gr.api(search, api_name="search", concurrency_limit=SEARCH_CONCURRENCY)
    _LIVE[app] = live
    return app


def _stats(live: LiveIndex) -> str:
    index = live.index
    if index is None:
        return render.notice(live.missing_message(), kind="error")
    return (
        f'<p class="stats">Searching {len(index.documents)} articles ({len(index)} passages).</p>'
    )


def launch(
    app: gr.Blocks,
    *,
    host: str = "127.0.0.1",
    port: int | None = 7860,
    max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
    auth: tuple[str, str] | None = None,
    quiet: bool = False,
    prevent_thread_lock: bool = False,
    **kwargs: Any,
) -> Any:
    """Serve `app` on `host`:`port` with the form's CSS and the upload size limit
    (enforced by the server as well as by the form), and the JSON API at /api over the
    same index (an app from `build_app`). `auth`: (user, password) that the page and
    both APIs then ask for. Binding anything but a loopback address without `auth`
    logs a warning: anyone who can reach the port can search the articles and add to
    them. Prints where everything is (`start_message`) unless `quiet`; serves until
    interrupted unless `prevent_thread_lock`."""
    if not is_loopback(host) and auth is None:
        log.warning(
            "serving on %s without a password: anyone who can reach this machine's port %s "
            "can read the articles and add to them; set %s=user:password (or "
            "--auth user:password) or serve on 127.0.0.1",
            host,
            port,
            AUTH_ENV,
        )
    live = _LIVE.get(app)
    if live is not None:
        routes = [Mount(api.PATH, api.build_api(live, auth=auth))]
        kwargs["app_kwargs"] = {**kwargs.get("app_kwargs", {}), "routes": routes}
    started = app.launch(
        server_name=host,
        server_port=port,
        css=render.CSS,
        theme=theme(),
        max_file_size=int(max_upload_mb * 1024 * 1024),
        footer_links=["api"],
        show_error=True,
        auth=auth,
        quiet=True,  # Gradio's lines tell a Python programmer to call launch(share=True)
        prevent_thread_lock=True,
        **kwargs,
    )
    if not quiet:
        print(start_message(host, port or app.server_port, auth), flush=True)
    if not prevent_thread_lock:
        app.block_thread()
    return started


def start_message(host: str, port: int, auth: tuple[str, str] | None) -> str:
    """What `semantic-qa serve` prints once it answers: where the form, the API and its
    docs are, and how to change who can reach them (never the password)."""
    local = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    url = f"http://{f'[{local}]' if ':' in local else local}:{port}"
    question = urllib.parse.quote_plus(api.EXAMPLE)
    lines = [
        f"semantic-qa is serving on {url}/",
        f"  the form:     {url}/",
        f"  the JSON API: {url}{api.PATH}/search?q={question}&k=3",
        f"  API docs:     {url}{api.PATH}/docs",
    ]
    if is_loopback(host):
        lines.append(
            f"Only this machine can connect ({host}): --host 0.0.0.0 lets other machines in, "
            "--port PORT serves another port."
        )
    else:
        lines.append(
            f"Listening on {host}: other machines connect to this machine's address, port "
            f"{port}; --host 127.0.0.1 keeps them out, --port PORT serves another port."
        )
    if auth is None:
        lines.append(
            f"No password: --auth USER:PASSWORD (or {AUTH_ENV}=USER:PASSWORD) makes the form "
            "and the API ask for one."
        )
    else:
        lines.append(
            f"Password protected: log in on the form as {auth[0]}; "
            f"curl -u {auth[0]}:PASSWORD '{url}{api.PATH}/search?q=...'"
        )
    lines.append("Press Ctrl+C to stop.")
    return "\n".join(lines)


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.1, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def parse_auth(value: str | None) -> tuple[str, str] | None:
    """`"user:password"` as (user, password); None for None or "". The password may
    itself hold colons; neither part may be empty."""
    if not value:
        return None
    user, sep, password = value.partition(":")
    if not sep or not user.strip() or not password:
        raise InvalidInputError(
            f"authentication must look like USER:PASSWORD (both non-empty), got a value "
            f"with {'no colon' if not sep else 'an empty part'} ({AUTH_ENV} or --auth)"
        )
    return user.strip(), password


def serve(
    index_path: str | Path | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 7860,
    max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
    max_upload_files: int = DEFAULT_MAX_UPLOAD_FILES,
    auth: tuple[str, str] | None = None,
    upload_dir: str | Path | None = None,
) -> None:
    """Load the index and serve the form until interrupted. A missing or broken
    index still serves a page that says how to build one. Uploaded files are kept
    in `upload_dir` (default: `uploads` beside the index folder) and removed after an
    hour; `auth` as in `launch`."""
    from qa.search import default_index_path

    index_folder = Path(index_path) if index_path is not None else default_index_path()
    uploads = Path(upload_dir) if upload_dir is not None else index_folder.parent / UPLOADS
    try:
        uploads.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InvalidInputError(
            f"cannot make the uploads folder {uploads} ({err.strerror or err}): "
            "choose another with --upload-dir"
        ) from err
    # read by Gradio when the components and the server are made, below
    os.environ["GRADIO_TEMP_DIR"] = str(uploads.resolve())
    index, error = None, None
    try:
        index = open_index(index_folder)
    except QAError as err:
        log.error("%s", err)
        error = str(err)
    app = build_app(
        index, error=error, max_upload_mb=max_upload_mb, max_upload_files=max_upload_files
    )
    app.delete_cache = (3600, 3600)  # uploads are indexed at once; keep them an hour at most
    launch(app, host=host, port=port, max_upload_mb=max_upload_mb, auth=auth)
