"""The outbox: participant mail the backend kept (no smarthost, or the relay failed), read
from the Maildir ``settings.outbox_dir``; newest first, headers only."""

from __future__ import annotations

import mailbox
from dataclasses import dataclass
from email.header import decode_header, make_header

from wod.settings import Settings


@dataclass(frozen=True)
class KeptMail:
    key: str
    at: float
    sender: str
    recipient: str
    subject: str
    size: int


def _text(value: object) -> str:
    if value is None:
        return ""
    try:
        return str(make_header(decode_header(str(value))))[:200]
    except Exception:
        return str(value)[:200]


def kept_mail(settings: Settings, limit: int = 200) -> list[KeptMail]:
    """Mail stored in the outbox (what was not relayed), newest first."""
    path = settings.outbox_dir
    if not (path / "new").is_dir() and not (path / "cur").is_dir():
        return []
    box = mailbox.Maildir(path, create=False)
    out = []
    for key in box.keys():
        try:
            msg = box.get_message(key)
            raw_size = len(box.get_bytes(key))
        except (OSError, KeyError):
            continue
        out.append(
            KeptMail(
                key=key,
                at=msg.get_date(),
                sender=_text(msg.get("Return-Path")).strip("<>"),
                recipient=_text(msg.get("X-Original-To")),
                subject=_text(msg.get("Subject")),
                size=raw_size,
            )
        )
    out.sort(key=lambda m: m.at, reverse=True)
    return out[:limit]
