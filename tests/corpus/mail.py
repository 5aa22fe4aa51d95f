"""Raw SMTP sessions that misuse the protocol or its limits.

``data`` is everything the client sends after the greeting (the test then ends its side);
``expect`` must be among the replies.  ``recorded``: the refusal is in the rejections.
Nothing here may become a job.
"""

from __future__ import annotations

from tests.corpus import Case, names_are_unique

API_DB = b"wod-api@api.example.com"
RCPT = b"wodadmin@backend.example.com"
HELO = b"HELO api.example.com\r\n"
MAIL = b"MAIL FROM:<" + API_DB + b">\r\n"
TO = b"RCPT TO:<" + RCPT + b">\r\n"
GOOD = b"Subject: CLEANUP 1 2\r\n\r\nWKSHP-API101\r\n"


def envelope(message: bytes = GOOD, *, sender: bytes = MAIL, rcpt: bytes = TO) -> bytes:
    return HELO + sender + rcpt + b"DATA\r\n" + message + b".\r\nQUIT\r\n"


def protocol(name: str, data: bytes, expect: str) -> Case:
    return Case(f"session/{name}", data, expect, recorded=False)


SESSIONS = [
    # -- sequence -----------------------------------------------------------------------------
    protocol("mail-before-helo", MAIL + b"QUIT\r\n", "503 5.5.1 send HELO or EHLO first"),
    protocol("rcpt-before-mail", HELO + TO + b"QUIT\r\n", "503 5.5.1 send MAIL FROM first"),
    protocol("data-before-rcpt", HELO + MAIL + b"DATA\r\n", "503 5.5.1 send MAIL FROM and RCPT"),
    protocol("data-before-anything", b"DATA\r\n", "503 5.5.1"),
    protocol("data-with-argument", HELO + MAIL + TO + b"DATA now\r\n", "501 5.5.4 DATA takes no"),
    protocol("second-mail-from", HELO + MAIL + MAIL, "503 5.5.1 sender already given"),
    protocol("rset-then-data", HELO + MAIL + TO + b"RSET\r\nDATA\r\n", "503 5.5.1"),
    protocol("helo-again-resets", HELO + MAIL + TO + HELO + b"DATA\r\n", "503 5.5.1"),
    protocol("helo-no-name", b"HELO\r\n", "501 5.5.4 HELO needs a host name"),
    protocol("ehlo-no-name", b"EHLO\r\n", "501 5.5.4 EHLO needs a host name"),
    protocol("helo-blank-name", b"HELO    \r\n", "501 5.5.4"),
    # -- syntax -------------------------------------------------------------------------------
    protocol("mail-no-colon", HELO + b"MAIL FROM a@b.c\r\n", "501 5.5.4 syntax: MAIL FROM"),
    protocol("mail-open-bracket", HELO + b"MAIL FROM:<a@b.c\r\n", "501 5.5.4 syntax: MAIL FROM"),
    protocol("mail-to-keyword", HELO + b"MAIL TO:<a@b.c>\r\n", "501 5.5.4 syntax: MAIL FROM"),
    protocol("mail-no-keyword", HELO + b"MAIL <a@b.c>\r\n", "501 5.5.4"),
    protocol("rcpt-empty", HELO + MAIL + b"RCPT TO:\r\n", "501 5.5.4 syntax: RCPT TO"),
    protocol("rcpt-null", HELO + MAIL + b"RCPT TO:<>\r\n", "501 5.5.4 syntax: RCPT TO"),
    protocol("rcpt-from-keyword", HELO + MAIL + b"RCPT FROM:<x@y>\r\n", "501 5.5.4"),
    protocol("rcpt-open-bracket", HELO + MAIL + b"RCPT TO:<x@y\r\n", "501 5.5.4"),
    protocol("unknown-command", b"BOGUS\r\n", "502 5.5.2 command 'BOGUS' not implemented"),
    protocol("starttls", b"EHLO x\r\nSTARTTLS\r\n", "502 5.5.2 command 'STARTTLS'"),
    protocol("auth", b"EHLO x\r\nAUTH PLAIN AGFAYg==\r\n", "502 5.5.2 command 'AUTH'"),
    protocol("expn", b"EXPN root\r\n", "502 5.5.2 command 'EXPN'"),
    protocol("turn", b"TURN\r\n", "502 5.5.2"),
    protocol("etrn", b"ETRN example.com\r\n", "502 5.5.2"),
    protocol("bdat", b"EHLO x\r\nBDAT 10 LAST\r\n", "502 5.5.2 command 'BDAT'"),
    protocol("empty-line", b"\r\n", "500 5.5.2 empty command"),
    protocol("spaces-line", b"    \r\n", "500 5.5.2 empty command"),
    protocol("http-request", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "502 5.5.2 command 'GET'"),
    protocol("nul-bytes", b"\x00\x00\x00\r\n", "502 5.5.2"),
    protocol("binary-garbage", bytes(range(1, 10)) + b"\xff\xfe\r\n", "502 5.5.2"),
    protocol("tls-client-hello", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n", "502"),
    protocol("long-verb", b"X" * 500 + b"\r\n", "502 5.5.2"),
    # -- limits -------------------------------------------------------------------------------
    protocol("line-100k-noop", b"NOOP " + b"x" * 100_000 + b"\r\n", "500 5.5.2 line too long"),
    protocol("line-100k-helo", b"HELO " + b"x" * 100_000 + b"\r\n", "500 5.5.2 line too long"),
    protocol(
        "line-100k-mail",
        HELO + b"MAIL FROM:<" + b"a" * 100_000 + b">\r\n",
        "500 5.5.2 line too long",
    ),
    protocol("line-100k-rcpt", HELO + MAIL + b"RCPT TO:<" + b"a" * 100_000 + b">\r\n", "500 5.5.2"),
    protocol("line-1m-no-newline", b"NOOP " + b"y" * 1_000_000, "500 5.5.2 line too long"),
    protocol(
        "too-many-recipients",
        HELO + MAIL + b"".join(b"RCPT TO:<u%d@x.y>\r\n" % n for n in range(101)),
        "452 4.5.3 too many recipients",
    ),
    protocol("too-many-errors", b"BOGUS\r\n" * 25, "421 4.7.0 too many errors"),
    Case(
        "session/size-announced-too-large",
        HELO + b"MAIL FROM:<" + API_DB + b"> SIZE=99999999\r\n",
        "552 5.3.4 rejected: message too large: 99999999 bytes announced",
    ),
    Case(
        "session/message-too-large",
        envelope(GOOD + (b"z" * 998 + b"\r\n") * 70),  # over the 64 KiB of the corpus server
        "552 5.3.4 rejected: message too large",
    ),
    # -- senders and recipients ---------------------------------------------------------------
    Case(
        "session/wrong-sender",
        envelope(sender=b"MAIL FROM:<mallory@evil.example>\r\n"),
        "550 5.6.0 rejected: sender 'mallory@evil.example' is not allowed",
    ),
    Case(
        "session/null-sender",
        envelope(sender=b"MAIL FROM:<>\r\n"),
        "550 5.6.0 rejected: no sender address",
    ),
    Case(
        "session/sender-lookalike-domain",
        envelope(sender=b"MAIL FROM:<wod-api@api.example.com.evil>\r\n"),
        "is not allowed",
    ),
    Case(
        "session/sender-display-name",
        envelope(sender=b"MAIL FROM:<mallory@evil.example> wod-api@api.example.com\r\n"),
        "is not allowed",
    ),
    Case(
        "session/sender-in-header-only",
        envelope(
            b"From: wod-api@api.example.com\r\n" + GOOD, sender=b"MAIL FROM:<x@evil.example>\r\n"
        ),
        "is not allowed",
    ),
    Case(
        "session/command-and-participant-recipients",
        envelope(
            b"Subject: FROB 1 2\r\n\r\nWKSHP-API101\r\n",
            rcpt=TO + b"RCPT TO:<ann@example.com>\r\n",
        ),
        "550 5.6.0 rejected: unknown verb",
    ),
    Case(
        "session/alias-case-command-mailbox",
        envelope(b"Subject: FROB 1 2\r\n\r\nWKSHP-API101\r\n", rcpt=b"RCPT TO:<WODADMIN@x>\r\n"),
        "550 5.6.0 rejected: unknown verb",
    ),
    # -- message layout -----------------------------------------------------------------------
    Case(
        "session/dot-stuffed-subject",
        envelope(b"..Subject: CLEANUP 1 2\r\n\r\nWKSHP-API101\r\n"),
        "550 5.6.0 rejected: no Subject header",
    ),
    Case(
        "session/lone-dot-ends-before-body",
        HELO + MAIL + TO + b"DATA\r\nSubject: CLEANUP 1 2\r\n.\r\nWKSHP-API101\r\n.\r\n",
        "550 5.6.0 rejected: no workshop name",
    ),
    Case(
        "session/bare-cr-line-ends",
        HELO + MAIL + TO + b"DATA\r\nSubject: CLEANUP 1 2\rWKSHP-API101\r\n.\r\n",
        "550 5.6.0 rejected: extra arguments",
    ),
    Case(
        "session/empty-message",
        HELO + MAIL + TO + b"DATA\r\n.\r\n",
        "550 5.6.0 rejected: empty message",
    ),
    Case(
        "session/only-blank-lines",
        HELO + MAIL + TO + b"DATA\r\n\r\n\r\n.\r\n",
        "550 5.6.0 rejected: empty message",
    ),
    Case(
        "session/two-messages-second-bad",
        HELO
        + MAIL
        + TO
        + b"DATA\r\nSubject: FROB 1 2\r\n\r\nWKSHP-API101\r\n.\r\n"
        + MAIL
        + TO
        + b"DATA\r\nSubject: CLEANUP 1 2\r\n\r\n../x\r\n.\r\n",
        "malformed workshop name",
    ),
    Case(
        "session/eof-inside-header",
        HELO + MAIL + TO + b"DATA\r\nSubject: CLEANUP 1",
        "connection closed before the message was complete",
        eof=True,
    ),
    Case(
        "session/eof-right-after-data",
        HELO + MAIL + TO + b"DATA\r\n",
        "connection closed before the message was complete",
        eof=True,
    ),
    Case(
        "session/header-line-60k",
        envelope(b"Subject: CLEANUP 1 2\r\nX-Big: " + b"h" * 60_000 + b"\r\n\r\n../x\r\n"),
        "550 5.6.0 rejected: malformed workshop name",
    ),
    Case(
        "session/subject-twice-pipelined-lf",
        b"HELO a\nMAIL FROM: wod-api@api.example.com\nRCPT TO: wodadmin@b\nDATA\n"
        b"Subject: CREATE 1 2 a@b.c\nSubject: PURGE 1 2\nWKSHP-API101\n.\n",
        "given more than once",
    ),
]

CASES = names_are_unique(SESSIONS)
