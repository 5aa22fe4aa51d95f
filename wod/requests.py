"""Requests: the one validated thing every intake channel produces.

TODO(intake): the parser (``parse_message``, ``parse_fields``) lives here; see
docs/architecture.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Verb(StrEnum):
    CREATE = "CREATE"
    CLEANUP = "CLEANUP"
    RESET = "RESET"
    PURGE = "PURGE"


@dataclass(frozen=True)
class Request:
    """One validated request.  Built only by the parser; trusted downstream.

    ``stdid`` is the local student number (for a RESET range, the low end and
    ``stdid_max`` the high end; otherwise ``stdid_max == stdid``).  ``stdid`` is ``None``
    only when the api-db sent ``[object Promise]`` and the student must be recovered from
    the customer (``recover_stdid`` is then True) — the worker resolves it before acting.
    ``workshop`` is the name as requested (``CHLG-X`` or ``WKSHP-X``).
    """

    verb: Verb
    stdid: int | None
    customer: int
    workshop: str
    email: str | None = None
    stdid_max: int | None = None
    recover_stdid: bool = False
    channel: str = "smtp"
    notes: tuple[str, ...] = field(default=())

    @property
    def folder(self) -> str:
        """Content folder name: ``CHLG-X`` -> ``WKSHP-X``."""
        if self.workshop.startswith("CHLG-"):
            return "WKSHP-" + self.workshop[len("CHLG-"):]
        return self.workshop

    @property
    def mode(self) -> str:
        """``MODEWS``: ``CHLG`` for a challenge, else ``WKSHP``."""
        return "CHLG" if self.workshop.startswith("CHLG-") else "WKSHP"

    @property
    def stdids(self) -> list[int]:
        if self.stdid is None:
            return []
        return list(range(self.stdid, (self.stdid_max or self.stdid) + 1))

    @property
    def is_range(self) -> bool:
        return self.stdid_max is not None and self.stdid_max != self.stdid

    def to_dict(self) -> dict:
        return {
            "verb": self.verb.value,
            "stdid": self.stdid,
            "stdid_max": self.stdid_max,
            "customer": self.customer,
            "workshop": self.workshop,
            "email": self.email,
            "recover_stdid": self.recover_stdid,
            "channel": self.channel,
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, data: dict) -> Request:
        return cls(
            verb=Verb(data["verb"]),
            stdid=data.get("stdid"),
            stdid_max=data.get("stdid_max"),
            customer=int(data["customer"]),
            workshop=data["workshop"],
            email=data.get("email"),
            recover_stdid=bool(data.get("recover_stdid")),
            channel=data.get("channel", "smtp"),
            notes=tuple(data.get("notes") or ()),
        )
