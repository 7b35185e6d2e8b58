"""The JSON HTTP API beside the web form, on the same port: `/api/search`,
`/api/health`, `/api/info`, their OpenAPI schema (`/api/openapi.json`) and docs page
(`/api/docs`, Swagger UI served from the installed package: nothing from the internet).

    $ curl 'http://127.0.0.1:7860/api/search?q=What+is+the+Astana+process%3F&k=3'
    {"hits":[{"id":"...","doc_id":"...","title":"...",...,"also_in":[]},...]}

Hits are `Hit.to_dict()`, as from `qa.search`, `semantic-qa ask --json` and the form's
`/search`. A bad request is `{"error": "..."}` with status 400 and the message Python
gives; 401 without the server's user and password (HTTP Basic), 413 for a body over
`MAX_BODY_BYTES`, 503 while there is no index. `ui.launch` mounts it on the form's
server (`build_api(live, auth=...)` at `PATH`), over the same `LiveIndex`: articles
added through the form are searched here too, all at once.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import functools
import hmac
import json
import logging
import re
import typing
from typing import Any

import anyio
from fastapi import Depends, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException
from swagger_ui_bundle import swagger_ui_path

from qa import MODES, RANKERS, Hit, Index, QAError
from qa.index import DEFAULT_MODE
from qa.query import MAX_QUESTION_CHARS
from qa.store import summary

from .handlers import MAX_API_K, SEARCH_CONCURRENCY, LiveIndex, api_hits

log = logging.getLogger(__name__)

# Where `ui.launch` mounts the API on the form's server.
PATH = "/api"
# The largest POST body: a question is at most 2,000 characters, so 64 KiB leaves
# plenty for `where` and refuses a pasted file before it is read.
MAX_BODY_BYTES = 64 * 1024
REALM = "semantic-qa"
EXAMPLE = "When was the Bled Strategic Forum established?"
_SEARCH_FIELDS = ("q", "k", "mode", "ranker", "where")
_INTEGER = re.compile(r"[+-]?[0-9]{1,18}")
# Swagger UI's files that the docs page loads (not the package's demo page, which
# fetches an example API from the internet).
_DOCS_FILES = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon-32x32.png": "image/png",
}


def build_api(live: LiveIndex, *, auth: tuple[str, str] | None = None) -> FastAPI:
    """The API over `live` as an ASGI app to mount at `PATH`. `auth`: (user, password)
    that every route then asks for (HTTP Basic), as the form does.

    >>> app.mount("/api", build_api(LiveIndex(qa.load_index("data/index"))))  # doctest: +SKIP
    """
    api = FastAPI(
        title="semantic-qa",
        version="1",
        description="Ask questions of the articles this server holds.",
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        dependencies=_password_check(auth),
    )
    api.add_exception_handler(HTTPException, _error_response)  # type: ignore[arg-type]
    _add_search(api, live)
    _add_index_facts(api, live)
    _add_docs(api, auth is not None)
    return api


def _add_search(api: FastAPI, live: LiveIndex) -> None:
    # searches in threads, as many at once as the form's /search runs (the model releases
    # the GIL: two threads use two CPUs); more requests wait on the event loop, where
    # waiting costs nothing, and the loop stays free for the form
    limiter = anyio.CapacityLimiter(SEARCH_CONCURRENCY)

    async def search(question: Any, k: Any, mode: Any, ranker: Any, where: Any) -> JSONResponse:
        index = _index(live)
        find = functools.partial(
            api_hits, index, question, k, mode=mode, where=where, ranker=ranker
        )
        try:
            hits = await anyio.to_thread.run_sync(find, limiter=limiter)
        except QAError as err:
            raise _refused(str(err)) from None
        except Exception as err:
            # a bug, not the caller's mistake: its traceback in the log; the message to
            # the caller, as the form's /search gives it
            log.exception("the search failed")
            raise HTTPException(500, f"internal error: {err}") from err
        return JSONResponse({"hits": hits})

    @api.get(
        "/search",
        summary="The passages that best answer a question",
        openapi_extra={"parameters": _SEARCH_PARAMETERS},
        responses=_SEARCH_RESPONSES,
    )
    async def search_get(request: Request) -> JSONResponse:
        params = request.query_params
        _only(params.keys(), _SEARCH_FIELDS[:4], "parameter", "/api/search?q=...&k=5")
        k = params.get("k", "5")
        return await search(
            _required_q(params),
            int(k) if _INTEGER.fullmatch(k) else k,
            params.get("mode"),
            params.get("ranker"),
            None,
        )

    @api.post(
        "/search",
        summary="The same, with the question in a JSON body (and `where`)",
        openapi_extra={"requestBody": _SEARCH_BODY},
        responses=_SEARCH_RESPONSES,
    )
    async def search_post(request: Request) -> JSONResponse:
        body = await _json_object(request)
        _only(body.keys(), _SEARCH_FIELDS, "field", '{"q": "...", "k": 5}')
        return await search(
            _required_q(body),
            body.get("k", 5),
            body.get("mode"),
            body.get("ranker"),
            body.get("where"),
        )


def _add_index_facts(api: FastAPI, live: LiveIndex) -> None:
    @api.get("/health", summary="Whether an index is loaded, its size and model")
    async def health() -> dict[str, Any]:
        index = _index(live)
        return {
            "status": "ok",
            "documents": len(index.documents),
            "passages": len(index),
            "model": index.encoder.name,
        }

    @api.get("/info", summary="What `semantic-qa info` shows about the index folder")
    def info() -> dict[str, Any]:
        index = _index(live)
        if index.path is None:
            raise HTTPException(404, "this index is not saved in a folder: see /api/health")
        try:
            return summary(index.path)
        except QAError as err:
            raise HTTPException(503, str(err)) from None


def _index(live: LiveIndex) -> Index:
    index = live.index
    if index is None:
        raise HTTPException(503, live.missing_message())
    return index


def _refused(reason: str) -> HTTPException:
    # one line in the log, no traceback: the mistake is the caller's (as the form's API)
    log.info("refused an API request: %.300s", reason)
    return HTTPException(400, reason)


def _only(given: typing.Iterable[str], known: tuple[str, ...], what: str, example: str) -> None:
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise _refused(
            f"unknown {what} {unknown[0]!r:.60}: /api/search takes {', '.join(known)}, "
            f"e.g. {example}"
        )


def _required_q(given: typing.Mapping[str, Any]) -> Any:
    if "q" not in given:
        raise _refused(
            "the question is missing: GET /api/search?q=your+question or "
            'POST /api/search {"q": "your question"}'
        )
    return given["q"]


async def _json_object(request: Request) -> dict[str, Any]:
    """The request's body as a JSON object; 413 past `MAX_BODY_BYTES` (refused on its
    declared length, or as soon as more arrives), 400 for anything but an object."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _too_large(int(declared))
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise _too_large(len(body))
    try:
        value = json.loads(body)
    except (ValueError, RecursionError) as err:
        raise _refused(f'the body is not JSON ({err}): send {{"q": "your question"}}') from None
    if not isinstance(value, dict):
        raise _refused(
            f'the body must be a JSON object such as {{"q": "your question", "k": 5}}, '
            f"got {type(value).__name__}"
        )
    return value


def _too_large(size: int) -> HTTPException:
    log.info("refused an API request: a body of %s bytes or more", size)
    return HTTPException(
        413, f"the request body is over {MAX_BODY_BYTES:,} bytes: send a question, not a file"
    )


def _password_check(auth: tuple[str, str] | None) -> list[Any]:
    """The dependency that asks every request for `auth` (none when None). Both parts
    are compared in constant time, and both always, so a wrong user name takes as long
    as a wrong password."""
    if auth is None:
        return []
    user, password = (part.encode() for part in auth)

    async def require_password(request: Request) -> None:
        given = _basic_credentials(request.headers.get("authorization", ""))
        if given is None or not (
            hmac.compare_digest(given[0], user) & hmac.compare_digest(given[1], password)
        ):
            raise HTTPException(
                401,
                "this server asks for a user name and password (semantic-qa serve --auth): "
                "curl -u USER:PASSWORD ..., or log in on the form",
                headers={"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'},
            )

    return [Depends(require_password)]


def _basic_credentials(header: str) -> tuple[bytes, bytes] | None:
    """(user, password) from an `Authorization: Basic ...` header, as UTF-8 bytes (the
    user stripped of spaces, as the form's login does); None when there is none."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, sep, password = decoded.partition(b":")
    return (user.strip(), password) if sep else None


async def _error_response(request: Request, err: HTTPException) -> JSONResponse:
    return JSONResponse({"error": err.detail}, err.status_code, headers=err.headers)


# -- the OpenAPI schema and the docs page ---------------------------------------------


def _add_docs(api: FastAPI, protected: bool) -> None:
    @api.get("/openapi.json", include_in_schema=False)
    async def openapi(request: Request) -> dict[str, Any]:
        schema = get_openapi(
            title=api.title,
            version=api.version,
            description=api.description,
            routes=api.routes,
            servers=[{"url": request.scope.get("root_path", "") or "/"}],
        )
        if protected:
            basic = {"basic": {"type": "http", "scheme": "basic"}}
            schema.setdefault("components", {})["securitySchemes"] = basic
            schema["security"] = [{"basic": []}]
        return schema

    @api.get("/docs", include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}/openapi.json",
            title="semantic-qa API",
            swagger_js_url=f"{root}/docs/swagger-ui-bundle.js",
            swagger_css_url=f"{root}/docs/swagger-ui.css",
            swagger_favicon_url=f"{root}/docs/favicon-32x32.png",
            # no badge from the online validator: the page loads nothing from the internet
            swagger_ui_parameters={"validatorUrl": None, "tryItOutEnabled": True},
        )

    @api.get("/docs/{name}", include_in_schema=False)
    async def docs_file(name: str) -> FileResponse:
        if name not in _DOCS_FILES:
            raise HTTPException(404, f"no file {name!r:.60} here")
        return FileResponse(str(swagger_ui_path / name), media_type=_DOCS_FILES[name])


def _hit_schema() -> dict[str, Any]:
    """The JSON schema of `Hit.to_dict()`, from the dataclass itself."""
    types = {"str": "string", "int": "integer", "float": "number"}
    properties: dict[str, Any] = {}
    for field in dataclasses.fields(Hit):
        kind = str(field.type).split("[")[0]
        if kind.startswith("tuple"):
            properties[field.name] = {"type": "array", "items": {"type": "string"}}
        else:
            properties[field.name] = {"type": types.get(kind, "object")}
    return {"type": "object", "properties": properties, "required": list(properties)}


def _error(description: str) -> dict[str, Any]:
    schema = {"type": "object", "properties": {"error": {"type": "string"}}}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_SEARCH_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The hits, best first: the same objects as qa.search and ask --json",
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {"hits": {"type": "array", "items": _hit_schema()}},
                }
            }
        },
    },
    400: _error("A bad question, k, mode or where; the message says what and why"),
    401: _error("The server asks for a user name and password (HTTP Basic)"),
    413: _error(f"A body over {MAX_BODY_BYTES:,} bytes"),
    503: _error("No index could be opened; the message says how to build one"),
}
_QUESTION = {"type": "string", "maxLength": MAX_QUESTION_CHARS, "example": EXAMPLE}
_K = {"type": "integer", "minimum": 1, "maximum": MAX_API_K, "default": 5}
_MODE = {"type": "string", "enum": list(MODES), "default": DEFAULT_MODE}
_RANKER = {
    "type": "string",
    "enum": list(RANKERS),
    "description": "hybrid mode's ranking: the learned ranker (the index's default) or "
    "the fixed fusion of the dense and BM25 scores",
}
_SEARCH_PARAMETERS = [
    {"name": "q", "in": "query", "required": True, "schema": _QUESTION},
    {"name": "k", "in": "query", "schema": _K, "description": "how many passages"},
    {"name": "mode", "in": "query", "schema": _MODE},
    {"name": "ranker", "in": "query", "schema": _RANKER},
]
_SEARCH_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["q"],
                "properties": {
                    "q": _QUESTION,
                    "k": _K,
                    "mode": _MODE,
                    "ranker": _RANKER,
                    "where": {
                        "type": "object",
                        "description": "exact match on doc_id, title, source or a metadata "
                        "key; a list value matches any of its items",
                        "example": {"source": "data/articles/002_a2b9a235981e6cac.txt"},
                    },
                },
            }
        }
    },
}
