"""Requests: the one validated thing every intake channel produces, and its parser.

The parser is pure (no I/O) and is the only place the request grammar lives (SPEC 2.1/2.2):

- :func:`parse_message` takes a whole mail as bytes (as received by SMTP or on stdin),
  checks its size and sender, splits header and body the way the real api-db writes them
  (LF or CRLF, and possibly *no* blank line between the Subject header and the body), then
  hands the Subject and body to :func:`parse_fields`.
- :func:`parse_fields` checks the subject grammar and the workshop line; the HTTP channel
  calls it directly.

Anything wrong raises :class:`wod.errors.Rejected` with a short reason safe to show to the
sender; nothing else escapes (the parser is fuzzed).  Encoding policy: only the Subject and
the workshop line (the first non-empty body line) matter; each must decode as UTF-8 (and the
workshop pattern then only admits ASCII).  The rest of the body is ignored, whatever its
encoding.  Multipart or transfer-encoded bodies (a relay of a normal mail client) are
decoded with the standard ``email`` package first.
"""

from __future__ import annotations

import email
import email.header
import email.policy
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

from wod.errors import Rejected
from wod.values import seat_error

if TYPE_CHECKING:
    from wod.settings import Settings


class Verb(StrEnum):
    CREATE = "CREATE"
    CLEANUP = "CLEANUP"
    RESET = "RESET"
    PURGE = "PURGE"


_SUBJECT_VERB = re.compile(rb"(?im)^subject:[ \t]*([a-z]+)")
_JSON_VERB = re.compile(rb'"verb"\s*:\s*"([A-Za-z]+)"')


def verb_hint(raw: bytes | None) -> str:
    """The verb a refused request names, when it is one of ours ("" otherwise), for the
    intake counters: the first word of a mail's first ``Subject:`` line, or an HTTP
    request's ``"verb"``.  A hint, never a parse: nothing is raised."""
    if not raw:
        return ""
    head = raw[:16384]
    found = _SUBJECT_VERB.search(head) or _JSON_VERB.search(head)
    word = found.group(1).decode("ascii", "replace").upper() if found else ""
    return word if word in Verb.__members__ else ""


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
            return "WKSHP-" + self.workshop[len("CHLG-") :]
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


# -- the parser ---------------------------------------------------------------------------

WORKSHOP_PATTERN = re.compile(r"^(WKSHP|CHLG)-[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
"""A workshop name as requested: ``WKSHP-X`` or ``CHLG-X``; no ``..`` on top of this."""

EMAIL_PATTERN = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}"
    r"@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
"""Deliberately plain: an address the api-db stored, no comments, quotes or IP literals."""

PROMISE_PATTERN = re.compile(r"\[object [A-Za-z]+\]")
"""What the current api-db writes instead of the student id (``[object Promise]``)."""

PROMISE_TOKEN = "\x00promise\x00"
ID_PATTERN = re.compile(r"^[0-9]{1,9}$")
HEADER_LINE = re.compile(rb"^[!-9;-~]+:")
SINGLE_HEADERS = frozenset(
    {
        "subject",
        "from",
        "sender",
        "return-path",
        "content-type",
        "content-transfer-encoding",
    }
)
"""Headers the parser reads (or a reader of the same mail could take for the sender): a
request mail giving one of them twice is ambiguous and refused."""
ARITY = {Verb.CREATE: 3, Verb.CLEANUP: 2, Verb.RESET: 2, Verb.PURGE: 2}
USAGE = {
    Verb.CREATE: "CREATE <stdid> <customer> <email>",
    Verb.CLEANUP: "CLEANUP <stdid> <customer>",
    Verb.RESET: "RESET <stdid>|<min>,<max> <customer>",
    Verb.PURGE: "PURGE <stdid> <customer>",
}


def _show(text: str, limit: int = 60) -> str:
    """A value quoted for a rejection reason: printable and short."""
    shown = "".join(c if c.isprintable() else "?" for c in text)
    if len(shown) > limit:
        shown = shown[:limit] + "…"
    return repr(shown)


def _number(token: str, what: str) -> int:
    if not ID_PATTERN.match(token):
        raise Rejected(f"{what} {_show(token)} is not a number")
    return int(token)


def _stdid_in_range(stdid: int, settings: Settings, what: str = "student id") -> int:
    problem = seat_error(stdid, settings, what=what)
    if problem:
        raise Rejected(problem)
    return stdid


def check_workshop(name: str) -> str:
    """Return ``name`` if it is a well-formed workshop name, else raise :class:`Rejected`."""
    if not name:
        raise Rejected("no workshop name: the first non-empty body line must name it")
    if ".." in name or not WORKSHOP_PATTERN.match(name):
        raise Rejected(
            f"malformed workshop name {_show(name)}: expected WKSHP-<name> or CHLG-<name> "
            "(letters, digits, '.', '_', '-')"
        )
    return name


def check_email(address: str) -> str:
    """Return ``address`` if it is a plain e-mail address, else raise :class:`Rejected`."""
    if len(address) > 254 or not EMAIL_PATTERN.match(address) or ".." in address:
        raise Rejected(f"malformed e-mail address {_show(address)}")
    return address


def check_sender(sender: str | None, settings: Settings) -> None:
    """Reject unless ``sender`` is one of ``settings.senders`` (no list = anyone)."""
    allowed = {s.strip().lower() for s in settings.senders if s.strip()}
    if not allowed:
        return
    if not sender or not _bare_address(sender):  # also "<>", the null sender
        raise Rejected("no sender address: only mail from the configured sender is accepted")
    if _bare_address(sender).lower() not in allowed:
        raise Rejected(f"sender {_show(_bare_address(sender))} is not allowed")


def _bare_address(value: str) -> str:
    """``Name <a@b>`` / ``<a@b>`` / ``a@b`` -> ``a@b``."""
    value = value.strip()
    if "<" in value and ">" in value.rsplit("<", 1)[1]:
        value = value.rsplit("<", 1)[1].split(">", 1)[0]
    return value.strip()


def workshop_line(body: str) -> str:
    """The first non-empty line of ``body``, stripped."""
    for line in body.split("\n"):  # LF ends a line; a bare CR does not (nor U+2028...)
        if line.strip():
            return line.strip()
    return ""


def parse_fields(
    subject: str,
    body: str,
    settings: Settings,
    *,
    channel: str = "smtp",
    sender: str | None = None,
) -> Request:
    """Build a :class:`Request` from a Subject line and a body (SPEC 2.1).

    ``sender`` is checked against ``settings.senders`` only when given (the HTTP channel
    authenticates differently and passes none).  Raises :class:`Rejected` with a short reason.
    """
    if sender is not None:
        check_sender(sender, settings)
    text = PROMISE_PATTERN.sub(PROMISE_TOKEN, subject.strip())
    tokens = text.split()
    if not tokens:
        raise Rejected("empty subject: expected a verb (CREATE, CLEANUP, RESET, PURGE)")
    word = tokens[0].upper()
    if word not in Verb.__members__:
        raise Rejected(f"unknown verb {_show(tokens[0])}: expected CREATE, CLEANUP, RESET or PURGE")
    verb = Verb(word)
    args = tokens[1:]
    if len(args) != ARITY[verb]:
        what = "missing" if len(args) < ARITY[verb] else "extra"
        raise Rejected(f"{what} arguments: expected '{USAGE[verb]}', got {len(args)}")
    customer = _number(args[1], "customer id")
    stdid: int | None
    stdid_max: int | None
    notes: tuple[str, ...] = ()
    if args[0] == PROMISE_TOKEN:
        stdid, stdid_max = None, None
        notes = ("student id recovered from customer", "the api-db sent '[object Promise]'")
    elif "," in args[0]:
        if verb is not Verb.RESET:
            raise Rejected(f"{verb.value} takes one student id, not a range")
        low, _, high = args[0].partition(",")
        stdid = _stdid_in_range(_number(low, "range start"), settings, "range start")
        stdid_max = _stdid_in_range(_number(high, "range end"), settings, "range end")
        if stdid > stdid_max:
            raise Rejected(f"range {stdid},{stdid_max} is reversed: expected <min>,<max>")
    else:
        if PROMISE_TOKEN in args[0]:
            raise Rejected("student id is not a number")
        stdid = _stdid_in_range(_number(args[0], "student id"), settings)
        stdid_max = stdid
    address = check_email(args[2]) if verb is Verb.CREATE else None
    workshop = check_workshop(workshop_line(body))
    return Request(
        verb=verb,
        stdid=stdid,
        customer=customer,
        workshop=workshop,
        email=address,
        stdid_max=stdid_max,
        recover_stdid=stdid is None,
        channel=channel,
        notes=notes,
    )


def _decode(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise Rejected(f"{what} is not valid UTF-8") from None


def _split(raw: bytes) -> tuple[dict[str, str], bytes, bool]:
    """Split a message into (headers, body, had_blank_separator).

    Tolerates the api-db's layout: the body may start right after the last header line
    when that line is not a header (``WKSHP-API101`` has no colon).
    """
    # Lines end at LF (CRLF included); a bare CR is part of its line, so that
    # "Subject: CLEANUP 1 2<CR>WKSHP-X" is one (bad) Subject, as most mail readers see it.
    lines = raw.split(b"\n")
    lines = [line + b"\n" for line in lines[:-1]] + ([lines[-1]] if lines[-1] else [])
    headers: list[bytes] = []
    index = 0
    separated = False
    while index < len(lines):
        line = lines[index]
        stripped = line.rstrip(b"\r\n")
        if not stripped:
            separated = True
            index += 1
            break
        if HEADER_LINE.match(stripped):
            headers.append(stripped)
        elif stripped[:1] in (b" ", b"\t") and headers:
            headers[-1] += b" " + stripped.strip()
        else:
            break
        index += 1
    found: dict[str, str] = {}
    for header in headers:
        name, _, value = header.partition(b":")
        key = name.decode("ascii", "replace").strip().lower()
        if key in found:
            if key in SINGLE_HEADERS:
                # Two Subjects (CREATE then PURGE) or two senders: which one counts would
                # depend on the reader; refuse rather than guess.
                raise Rejected(
                    f"header {name.decode('ascii', 'replace')[:40]!r} given more than once: "
                    "a request mail carries it once"
                )
            continue  # other headers are not read
        if key == "subject":  # only the Subject must be UTF-8
            found[key] = _decode(value.strip(), "the subject header")
        else:
            found[key] = value.strip().decode("utf-8", "replace")
    return found, b"".join(lines[index:]), separated


def _decoded_header(value: str) -> str:
    """Decode RFC 2047 encoded words (``=?utf-8?...?=``) when present."""
    if "=?" not in value:
        return value
    try:
        return str(email.header.make_header(email.header.decode_header(value)))
    except (ValueError, LookupError, UnicodeError):
        raise Rejected("the subject header is not decodable") from None


def _mime_body(raw: bytes) -> str:
    """The plain-text body of a MIME message (multipart or transfer-encoded)."""
    try:
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        part = msg.get_body(preferencelist=("plain",))
        if part is None:
            raise Rejected("no text/plain part holding the workshop name")
        payload = part.get_payload(decode=True) or b""
    except Rejected:
        raise
    except Exception:  # the email package raises many things on broken MIME
        raise Rejected("the message body is not decodable MIME") from None
    return _body_text(payload)


def _body_text(body: bytes) -> str:
    """The body as text: only its first non-empty line must be UTF-8 (encoding policy)."""
    for line in body.split(b"\n"):
        if line.strip():
            return _decode(line, "the workshop line")
    return ""


def parse_message(
    raw: bytes,
    settings: Settings,
    *,
    channel: str = "smtp",
    sender: str | None = None,
) -> Request:
    """Parse one mail (SPEC 2.1/2.2) into a :class:`Request`.

    ``sender`` is the envelope sender (SMTP ``MAIL FROM``, the pipe's ``-f``/``$SENDER``).
    When it is not known, the ``Return-Path`` header, else a leading mbox ``From <sender>``
    line (skipped in any case), else the ``From`` header, stands in.
    When ``settings.senders`` is non-empty that address must be one of them
    (case-insensitive).
    """
    if len(raw) > settings.max_message_bytes:
        raise Rejected(f"message too large: {len(raw)} bytes (limit {settings.max_message_bytes})")
    if not raw.strip():
        raise Rejected("empty message")
    mbox_sender = None
    if raw.startswith(b"From "):  # mbox envelope line (procmail, Postfix mailbox_command)
        first, _, raw = raw.partition(b"\n")
        words = first[5:].split()
        mbox_sender = words[0].decode("utf-8", "replace") if words else None
    headers, body, separated = _split(raw)
    if sender is None:
        sender = headers.get("return-path") or mbox_sender or headers.get("from")
    check_sender(sender or "", settings)
    if "subject" not in headers:
        raise Rejected("no Subject header: expected e.g. 'Subject: CREATE 1 2 a@b.c'")
    subject = _decoded_header(headers["subject"])
    mime = (
        "content-transfer-encoding" in headers
        or "multipart" in headers.get("content-type", "").lower()
    )
    text = _mime_body(raw) if (mime and separated) else _body_text(body)
    return parse_fields(subject, text, settings, channel=channel)
