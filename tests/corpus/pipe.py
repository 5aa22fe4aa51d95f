"""Messages on ``wod intake``'s stdin (procmail, Postfix ``mailbox_command``) to refuse.

``data`` is the message; the envelope sender the MTA passes is ``SENDERS[name]`` when a
case sets one (``-f``/``$SENDER``), else none (the parser falls back on the mbox ``From``
line, ``Return-Path``, ``From``).  ``expect`` is the reason (exit status 65).
"""

from __future__ import annotations

from tests.corpus import Case, names_are_unique

API_DB = "wod-api@api.example.com"
RP = b"Return-Path: <wod-api@api.example.com>\n"
GOOD = RP + b"Subject: CLEANUP 3 77\n\nWKSHP-API101\n"


def case(name: str, data: bytes, expect: str) -> Case:
    return Case(f"pipe/{name}", data, expect)


#: Envelope senders given by the MTA for some cases.
SENDERS = {
    "pipe/envelope-wrong": "mallory@evil.example",
    "pipe/envelope-lookalike": "wod-api@api.example.com.evil",
    "pipe/envelope-wins-over-return-path": "x@evil.example",
}

PIPE = [
    # -- what stands for the sender -----------------------------------------------------------
    case("envelope-wrong", GOOD, "sender 'mallory@evil.example' is not allowed"),
    case("envelope-lookalike", GOOD, "is not allowed"),
    case("envelope-wins-over-return-path", GOOD, "sender 'x@evil.example' is not allowed"),
    case("no-sender-at-all", b"Subject: CLEANUP 3 77\n\nWKSHP-API101\n", "no sender address"),
    case(
        "return-path-wrong",
        b"Return-Path: <x@evil.example>\nSubject: CLEANUP 3 77\n\nWKSHP-API101\n",
        "sender 'x@evil.example' is not allowed",
    ),
    case(
        "return-path-empty",
        b"Return-Path: <>\nSubject: CLEANUP 3 77\n\nWKSHP-API101\n",
        "no sender address",
    ),
    case(
        "return-path-beats-from",
        b"Return-Path: <x@evil.example>\nFrom: wod-api@api.example.com\n"
        b"Subject: CLEANUP 3 77\n\nWKSHP-API101\n",
        "is not allowed",
    ),
    case(
        "from-header-wrong",
        b"From: Mallory <x@evil.example>\nSubject: CLEANUP 3 77\n\nWKSHP-API101\n",
        "sender 'x@evil.example' is not allowed",
    ),
    case(
        "from-display-name-is-the-api-db",
        b"From: wod-api@api.example.com <x@evil.example>\nSubject: CLEANUP 3 77\n\nWKSHP-API101\n",
        "sender 'x@evil.example' is not allowed",
    ),
    case(
        "mbox-line-wrong",
        b"From x@evil.example Mon Jan  1 00:00:00 2024\nSubject: CLEANUP 3 77\n\nWKSHP-API101\n",
        "sender 'x@evil.example' is not allowed",
    ),
    case(
        "mbox-line-empty",
        b"From \nSubject: CLEANUP 3 77\n\nWKSHP-API101\n",
        "no sender address",
    ),
    case(
        "return-path-twice",
        b"Return-Path: <wod-api@api.example.com>\nReturn-Path: <x@evil.example>\n"
        b"Subject: CLEANUP 3 77\n\nWKSHP-API101\n",
        "given more than once",
    ),
    case(
        "from-twice",
        b"From: wod-api@api.example.com\nFrom: x@evil.example\nSubject: CLEANUP 3 77\n\n"
        b"WKSHP-API101\n",
        "given more than once",
    ),
    case(
        "sender-header-twice",
        RP + b"Sender: a@x.y\nSender: b@x.y\nSubject: CLEANUP 3 77\n\nWKSHP-API101\n",
        "given more than once",
    ),
    # -- the message as a whole ---------------------------------------------------------------
    case("empty", b"", "empty message"),
    case("blank", b"\n\n  \n", "empty message"),
    case("too-large", GOOD + b"x" * 70_000, "message too large"),
    case("too-large-lines", GOOD + (b"y" * 99 + b"\n") * 700, "message too large"),
    case("binary", RP + bytes(range(256)), "no Subject header"),
    case("nul-only", b"\x00" * 100, "no sender address"),
    case("body-only", RP + b"\nWKSHP-API101\n", "no Subject header"),
    case("headers-only", RP + b"Subject: CLEANUP 3 77\n", "no workshop name"),
    case(
        "subject-twice-create-purge",
        RP + b"Subject: CREATE 3 77 a@b.c\nSubject: PURGE 3 77\n\nWKSHP-API101\n",
        "given more than once",
    ),
    case(
        "subject-twice-folded",
        RP + b"Subject: CREATE 3 77\n a@b.c\nSubject: PURGE 3 77\n\nWKSHP-API101\n",
        "given more than once",
    ),
    case(
        "subject-bare-cr-hides-body",
        RP + b"Subject: CLEANUP 3 77\rWKSHP-API101\n\nother\n",
        "extra arguments",
    ),
    case(
        "subject-crlf-then-bad-verb",
        RP.replace(b"\n", b"\r\n") + b"Subject: ERASE 3 77\r\n\r\nWKSHP-API101\r\n",
        "unknown verb",
    ),
    case(
        "subject-latin1",
        RP + b"Subject: CLEANUP 3 77 \xe9\n\nWKSHP-API101\n",
        "not valid UTF-8",
    ),
    case(
        "subject-encoded-bad-base64",
        RP + b"Subject: =?utf-8?B?***?=\n\nWKSHP-API101\n",
        "empty subject",
    ),
    case(
        "subject-encoded-unknown-charset",
        RP + b"Subject: =?klingon?Q?CLEANUP_3_77?=\n\nWKSHP-API101\n",
        "not decodable",
    ),
    case(
        "subject-encoded-purge-in-create",
        RP + b"Subject: =?utf-8?Q?PURGE_3_77?= CREATE\n\nWKSHP-API101\n",
        "extra arguments",
    ),
    case(
        "subject-student-out-of-range", RP + b"Subject: CLEANUP 41 77\n\nWKSHP-API101\n", "outside"
    ),
    case(
        "subject-promise-create-junk",
        RP + b"Subject: CREATE [object Promise]] 77 a@b.c\n\nWKSHP-API101\n",
        "not a number",
    ),
    # -- the body --------------------------------------------------------------------------
    case(
        "workshop-traversal",
        RP + b"Subject: CLEANUP 3 77\n\n../../../etc\n",
        "malformed workshop name",
    ),
    case("workshop-latin1", RP + b"Subject: CLEANUP 3 77\n\nWKSHP-\xe9\n", "not valid UTF-8"),
    case(
        "workshop-u2028",
        RP + "Subject: CLEANUP 3 77\n\nWKSHP-A\u2028B\n".encode(),
        "malformed workshop name",
    ),
    case(
        "workshop-vertical-tab",
        RP + b"Subject: CLEANUP 3 77\n\nWKSHP-A\x0bB\n",
        "malformed workshop name",
    ),
    case(
        "workshop-form-feed",
        RP + b"Subject: CLEANUP 3 77\n\nWKSHP-A\x0cB\n",
        "malformed workshop name",
    ),
    case(
        "workshop-after-signature",
        RP + b"Subject: CLEANUP 3 77\n\n-- \nWKSHP-API101\n",
        "malformed workshop name",
    ),
    case(
        "mime-multipart-html-only",
        RP + b"Subject: CLEANUP 3 77\nMIME-Version: 1.0\n"
        b"Content-Type: multipart/alternative; boundary=B\n\n--B\nContent-Type: text/html\n\n"
        b"<p>WKSHP-API101</p>\n--B--\n",
        "no text/plain part",
    ),
    case(
        "mime-base64-bad-workshop",
        RP + b"Subject: CLEANUP 3 77\nContent-Transfer-Encoding: base64\n\nV0tTSFAtJChpZCk=\n",
        "malformed workshop name",
    ),
    case(
        "mime-qp-traversal",
        RP + b"Subject: CLEANUP 3 77\nContent-Transfer-Encoding: quoted-printable\n\n"
        b"=2E=2E/=2E=2E/x\n",
        "malformed workshop name",
    ),
    case(
        "mime-multipart-no-boundary",
        RP + b"Subject: CLEANUP 3 77\nContent-Type: multipart/mixed\n\nWKSHP-API101\n",
        "no text/plain part",
    ),
    case(
        "mime-content-type-twice",
        RP + b"Content-Type: text/plain\nContent-Type: multipart/mixed; boundary=Q\n"
        b"Subject: CLEANUP 3 77\n\nWKSHP-API101\n",
        "given more than once",
    ),
]

CASES = names_are_unique(PIPE)
