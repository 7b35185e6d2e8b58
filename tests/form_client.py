"""What a browser does with the web form, over plain HTTP: log in, upload files, run
one of the form's private events (gradio_client only calls public API endpoints).
Used by the security and load tests and by benchmarks/load.py."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx


class FormError(Exception):
    """The server answered an event with an error (its message is the error's)."""


class FormClient:
    """One browser session on a served form at `url`."""

    def __init__(self, url: str, auth: tuple[str, str] | None = None, timeout: float = 120):
        self.http = httpx.Client(base_url=url.rstrip("/"), timeout=timeout)
        if auth is not None:
            reply = self.http.post("/login", data={"username": auth[0], "password": auth[1]})
            reply.raise_for_status()
        self.session = uuid.uuid4().hex[:11]
        self.config = self.http.get("/config").raise_for_status().json()

    def close(self) -> None:
        self.http.close()

    def event(self, elem_id: str, trigger: str = "click") -> tuple[int, int]:
        """(fn_index, component id) of the event `trigger` on the element `elem_id`."""
        ids = [c["id"] for c in self.config["components"] if c["props"].get("elem_id") == elem_id]
        for index, dep in enumerate(self.config["dependencies"]):
            for target, event in dep["targets"]:
                if target in ids and event == trigger:
                    return dep.get("id", index), target
        raise LookupError(f"no {trigger} event on #{elem_id}")

    def upload(self, files: dict[str, bytes]) -> list[dict[str, Any]]:
        """Upload files as the file picker does; FileData dicts to pass to an event."""
        reply = self.http.post(
            "/gradio_api/upload", files=[("files", (name, data)) for name, data in files.items()]
        )
        reply.raise_for_status()
        return [
            {"path": path, "orig_name": Path(path).name, "meta": {"_type": "gradio.FileData"}}
            for path in reply.json()
        ]

    def run(self, elem_id: str, data: list[Any], trigger: str = "click") -> list[Any]:
        """Run the event as the page does; its outputs, or `FormError`."""
        fn_index, target = self.event(elem_id, trigger)
        self.http.post(
            "/gradio_api/queue/join",
            json={
                "data": data,
                "fn_index": fn_index,
                "trigger_id": target,
                "session_hash": self.session,
                "event_data": None,
            },
        ).raise_for_status()
        with self.http.stream(
            "GET", "/gradio_api/queue/data", params={"session_hash": self.session}
        ) as stream:
            for line in stream.iter_lines():
                if not line.startswith("data:"):
                    continue
                message = json.loads(line[5:])
                if message.get("msg") == "process_completed":
                    output = message.get("output", {})
                    if not message.get("success", False):
                        raise FormError(output.get("error") or json.dumps(output))
                    return list(output["data"])
        raise FormError("the server closed the stream before the event completed")

    def add_articles(self, files: dict[str, bytes]) -> str:
        """Upload `files` and press "Add to the index"; the status message (HTML)."""
        return str(self.run("add", [self.upload(files)])[0])
