"""Log output of ``wod serve``: INFO by default, text or one JSON object per line.

Under systemd the lines go to stderr, which journald captures (no extra dependency).
Structured fields given as ``extra=`` (``job``, ``verb``, ``seat``, ``workshop``,
``outcome``, ``seconds``, ``channel``) become keys of the JSON object.  Nothing here adds
secrets: callers never log a password or token (a test greps the logs for them).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

FIELDS = ("job", "verb", "seat", "workshop", "outcome", "seconds", "channel")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            if hasattr(record, name):
                out[name] = getattr(record, name)
        if record.exc_info:
            out["error"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def configure(fmt: str = "text", level: int = logging.INFO) -> None:
    """Route every log record to stderr in ``fmt`` ('text' or 'json') at ``level``."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # uvicorn's per-request access lines would duplicate ours; its errors still show.
    # httpx logs every api-db/hub call at INFO: only with -v (debug).
    for noisy in ("uvicorn.access", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
