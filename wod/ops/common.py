"""What every operation shares: its error (with an HTTP status and a remedy) and JSON.

An operation raises :class:`OpsError` for anything a user can act on (bad input, unknown
job, a missing tool); the CLI prints ``reason`` (and ``remedy``) and exits 1, the web API
answers ``status`` with ``{"error": reason}``.
"""

from __future__ import annotations

import dataclasses
import enum
from pathlib import Path
from typing import Any

from wod.errors import WodError


class OpsError(WodError):
    """A refused or failed operation: ``reason`` (one line), ``remedy``, HTTP ``status``."""

    status = 400

    def __init__(self, reason: str, *, remedy: str = "", status: int | None = None) -> None:
        super().__init__(reason)
        self.remedy = remedy
        if status is not None:
            self.status = status

    def __str__(self) -> str:
        return self.reason + (f" ({self.remedy})" if self.remedy else "")


class NotFound(OpsError):
    status = 404


class Conflict(OpsError):
    status = 409


class Unavailable(OpsError):
    status = 503


def jsonable(value: Any) -> Any:
    """A typed result (dataclasses, paths, enums, tuples) as plain JSON values."""
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return jsonable(to_dict())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    return value
