"""A recording front for the registry: every api-db call the backend makes, in order.

``recording_registry(registry)`` serves the registry's own ASGI app on a second free port,
wrapped so each request's method, path and JSON body are appended to ``.calls`` before the
registry handles it.  Point an install's ``apidb_url`` at ``.url`` to see exactly which
``PUT``s a verb sends (SPEC 3.2-3.4 orders and groups them).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from tests.plugins.paths import serve_in_thread


@dataclass
class Call:
    method: str
    path: str
    body: Any


@dataclass
class Recorder:
    url: str
    calls: list[Call] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def puts(self, prefix: str = "") -> list[Call]:
        """The PUT calls (optionally only those whose path starts with ``prefix``)."""
        with self._lock:
            return [c for c in self.calls if c.method == "PUT" and c.path.startswith(prefix)]

    def clear(self) -> None:
        with self._lock:
            self.calls.clear()


def _wrap(app: Any, recorder: Recorder) -> Any:
    async def asgi(scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        raw = b"".join(chunks)
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        with recorder._lock:
            recorder.calls.append(Call(scope["method"], scope["path"], body))
        sent = False

        async def replay() -> dict:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": raw, "more_body": False}
            return await receive()

        await app(scope, replay, send)

    return asgi


@contextmanager
def recording_registry(registry: Any) -> Iterator[Recorder]:
    recorder = Recorder(url="")
    with serve_in_thread(_wrap(registry.app, recorder), "recording registry") as port:
        recorder.url = f"http://127.0.0.1:{port}/api"
        yield recorder
