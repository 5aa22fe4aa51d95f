"""Limits on what an HTTP client may send before the app sees it.

uvicorn (h11) bounds only a request still arriving in pieces; a request whose whole head
arrives at once reaches the app whatever its size.  :class:`HeaderLimit` wraps the ASGI app
and answers ``431 Request Header Fields Too Large`` (RFC 6585) when the request line's
target or the header fields together exceed :data:`MAX_HEADER_BYTES`, or there are more
than :data:`MAX_HEADERS` of them.
"""

from __future__ import annotations

import json
import logging
from typing import Any

log = logging.getLogger(__name__)

MAX_HEADER_BYTES = 16 * 1024
MAX_HEADERS = 100

Scope = dict[str, Any]


class HeaderLimit:
    """ASGI middleware: 431 for oversized request heads."""

    def __init__(
        self, app: Any, max_bytes: int = MAX_HEADER_BYTES, max_headers: int = MAX_HEADERS
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_headers = max_headers

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = scope.get("headers") or []
            size = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"")
            size += sum(len(name) + len(value) + 4 for name, value in headers)
            if size > self.max_bytes or len(headers) > self.max_headers:
                client = (scope.get("client") or ("?", 0))[0]
                log.warning("HTTP request from %s refused: header fields too large", client)
                await _refuse(send)
                return
        await self.app(scope, receive, send)


async def _refuse(send: Any) -> None:
    body = json.dumps({"error": "request header fields too large"}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 431,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
