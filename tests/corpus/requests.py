"""Request mails the api-db could never have meant: bad Subjects, headers and bodies.

Each is sent the api-db's way (pre-greeting block, bare LF) by the test; ``data`` is the
message (headers and body, the api-db's layout unless a case says otherwise).
"""

from __future__ import annotations

from tests.corpus import Case, names_are_unique

GOOD_BODY = "WKSHP-API101"


def mail(subject: str, body: str = GOOD_BODY) -> bytes:
    return f"Subject: {subject}\n{body}\n".encode()


SUBJECTS: list[tuple[str, str, str]] = [
    # (name, subject, expected reason)
    ("empty", "", "empty subject"),
    ("blank", "   ", "empty subject"),
    ("verb-unknown", "DELETE 1 2", "unknown verb"),
    ("verb-typo", "CREAT 1 2 a@b.c", "unknown verb"),
    ("verb-longer", "CREATED 1 2 a@b.c", "unknown verb"),
    ("verb-semicolon", "CREATE; 1 2 a@b.c", "unknown verb"),
    ("verb-cedilla", "\u00c7REATE 1 2 a@b.c", "unknown verb"),
    ("verb-split", "CRE ATE 1 2 a@b.c", "unknown verb"),
    ("verb-quoted", '"CREATE" 1 2 a@b.c', "unknown verb"),
    ("verb-cyrillic-e", "CR\u0415ATE 1 2 a@b.c", "unknown verb"),
    ("verb-fullwidth", "\uff23\uff32\uff25\uff21\uff34\uff25 1 2 a@b.c", "unknown verb"),
    ("verb-re-prefix", "Re: CREATE 1 2 a@b.c", "unknown verb"),
    ("verb-fwd-prefix", "Fwd: PURGE 1 2", "unknown verb"),
    ("verb-shell", "$(reboot) 1 2", "unknown verb"),
    ("verb-number", "1 2 3", "unknown verb"),
    ("create-no-args", "CREATE", "missing arguments"),
    ("create-one-arg", "CREATE 1", "missing arguments"),
    ("create-no-email", "CREATE 1 2", "missing arguments"),
    ("create-extra", "CREATE 1 2 a@b.c x", "extra arguments"),
    ("create-two-emails", "CREATE 1 2 a@b.c b@c.d", "extra arguments"),
    ("cleanup-no-args", "CLEANUP", "missing arguments"),
    ("cleanup-one-arg", "CLEANUP 1", "missing arguments"),
    ("cleanup-extra", "CLEANUP 1 2 3", "extra arguments"),
    ("cleanup-email", "CLEANUP 1 2 a@b.c", "extra arguments"),
    ("reset-one-arg", "RESET 1", "missing arguments"),
    ("reset-extra", "RESET 1 2 3", "extra arguments"),
    ("purge-no-args", "PURGE", "missing arguments"),
    ("purge-four", "PURGE 1 2 3 4", "extra arguments"),
    ("stdid-word", "PURGE x 2", "student id 'x' is not a number"),
    ("stdid-negative", "PURGE -1 2", "is not a number"),
    ("stdid-decimal", "PURGE 1.5 2", "is not a number"),
    ("stdid-hex", "PURGE 0x10 2", "is not a number"),
    ("stdid-exponent", "PURGE 1e3 2", "is not a number"),
    ("stdid-plus", "PURGE +1 2", "is not a number"),
    ("stdid-underscore", "PURGE 1_0 2", "is not a number"),
    ("stdid-zero", "PURGE 0 2", "outside"),
    ("stdid-above-range", "PURGE 21 2", "outside"),
    ("stdid-nine-digits", "PURGE 999999999 2", "outside"),
    ("stdid-ten-digits", "PURGE 9999999999 2", "is not a number"),
    ("stdid-arabic-digit", "PURGE \u0663 2", "is not a number"),
    ("stdid-fullwidth-digit", "PURGE \uff13 2", "is not a number"),
    ("stdid-superscript", "PURGE \u00b3 2", "is not a number"),
    ("stdid-promise-suffix", "PURGE [object Promise]x 2", "not a number"),
    ("stdid-promise-prefix", "PURGE x[object Promise] 2", "not a number"),
    ("stdid-shell", "PURGE $(id) 2", "is not a number"),
    ("stdid-path", "PURGE ../1 2", "is not a number"),
    ("customer-word", "PURGE 1 x", "customer id 'x' is not a number"),
    ("customer-negative", "PURGE 1 -2", "customer id"),
    ("customer-decimal", "CLEANUP 1 2.0", "customer id"),
    ("customer-ten-digits", "CLEANUP 1 12345678901", "customer id"),
    ("customer-promise", "CLEANUP 1 [object Promise]", "customer id"),
    ("customer-arabic", "CLEANUP 1 \u0663", "customer id"),
    ("range-reversed", "RESET 5,3 2", "reversed"),
    ("range-above", "RESET 1,99 2", "range end 99 is outside"),
    ("range-zero", "RESET 0,3 2", "range start 0 is outside"),
    ("range-no-start", "RESET ,3 2", "range start '' is not a number"),
    ("range-no-end", "RESET 3, 2", "range end '' is not a number"),
    ("range-three", "RESET 1,2,3 2", "range end '2,3' is not a number"),
    ("range-dash", "RESET 1-3 2", "is not a number"),
    ("range-on-create", "CREATE 1,2 3 a@b.c", "CREATE takes one student id"),
    ("range-on-cleanup", "CLEANUP 1,2 3", "CLEANUP takes one student id"),
    ("range-on-purge", "PURGE 1,2 3", "PURGE takes one student id"),
    ("range-words", "RESET a,b 2", "range start 'a' is not a number"),
    ("email-plain-word", "CREATE 1 2 not-an-address", "malformed e-mail"),
    ("email-no-domain", "CREATE 1 2 a@", "malformed e-mail"),
    ("email-no-local", "CREATE 1 2 @b.c", "malformed e-mail"),
    ("email-two-ats", "CREATE 1 2 a@@b.c", "malformed e-mail"),
    ("email-dots", "CREATE 1 2 a..b@c.d", "malformed e-mail"),
    ("email-domain-dots", "CREATE 1 2 a@b..c", "malformed e-mail"),
    ("email-brackets", "CREATE 1 2 <a@b.c>", "malformed e-mail"),
    ("email-trailing-bracket", "CREATE 1 2 a@b.c>", "malformed e-mail"),
    ("email-too-long", "CREATE 1 2 " + "a" * 250 + "@b.c", "malformed e-mail"),
    ("email-local-too-long", "CREATE 1 2 " + "a" * 65 + "@b.c", "malformed e-mail"),
    ("email-unicode", "CREATE 1 2 \u00e9@b.c", "malformed e-mail"),
    ("email-ip-literal", "CREATE 1 2 a@[127.0.0.1]", "malformed e-mail"),
    ("email-shell", "CREATE 1 2 a@$(id).c", "malformed e-mail"),
    ("email-comma", "CREATE 1 2 a@b.c,x@y.z", "malformed e-mail"),
    ("email-domain-hyphen", "CREATE 1 2 a@-b.c", "malformed e-mail"),
    ("email-quoted", 'CREATE 1 2 "a"@b.c', "malformed e-mail"),
]

BODIES: list[tuple[str, str, str]] = [
    # (name, body, expected reason) -- all with a valid CLEANUP subject
    ("workshop-missing", "", "no workshop name"),
    ("workshop-blank-lines", "\n\n   \n", "no workshop name"),
    ("workshop-traversal", "../../etc/passwd", "malformed workshop name"),
    ("workshop-traversal-inside", "WKSHP-../x", "malformed workshop name"),
    ("workshop-dots", "WKSHP-a..b", "malformed workshop name"),
    ("workshop-prefix-only", "WKSHP-", "malformed workshop name"),
    ("workshop-challenge-prefix-only", "CHLG-", "malformed workshop name"),
    ("workshop-lower-prefix", "wkshp-api101", "malformed workshop name"),
    ("workshop-no-prefix", "API101", "malformed workshop name"),
    ("workshop-other-prefix", "LAB-API101", "malformed workshop name"),
    ("workshop-command", "WKSHP-$(id)", "malformed workshop name"),
    ("workshop-backticks", "WKSHP-`id`", "malformed workshop name"),
    ("workshop-semicolon", "WKSHP-a;rm -rf /", "malformed workshop name"),
    ("workshop-space", "WKSHP-a b", "malformed workshop name"),
    ("workshop-slash", "WKSHP-a/b", "malformed workshop name"),
    ("workshop-absolute", "/etc/passwd", "malformed workshop name"),
    ("workshop-leading-dot", "WKSHP-.hidden", "malformed workshop name"),
    ("workshop-leading-dash", "WKSHP--x", "malformed workshop name"),
    ("workshop-too-long", "WKSHP-" + "A" * 70, "malformed workshop name"),
    ("workshop-unicode", "WKSHP-\u00e9t\u00e9", "malformed workshop name"),
    ("workshop-percent", "WKSHP-%2e%2e", "malformed workshop name"),
    ("workshop-nul", "WKSHP-API\x00101", "malformed workshop name"),
    ("workshop-glob", "WKSHP-*", "malformed workshop name"),
    ("workshop-tilde", "~root", "malformed workshop name"),
    ("workshop-html", "<b>WKSHP-API101</b>", "malformed workshop name"),
    ("workshop-quoted", '"WKSHP-API101"', "malformed workshop name"),
    ("workshop-two-words", "WKSHP-API101 WKSHP-API102", "malformed workshop name"),
    ("workshop-backslash", "WKSHP-a\\b", "malformed workshop name"),
]

RAW: list[tuple[str, bytes, str]] = [
    # (name, message bytes, expected reason)
    ("no-subject-header", b"From: wod-api@api.example.com\n\nWKSHP-API101\n", "no Subject"),
    ("no-headers-at-all", b"WKSHP-API101\n", "no Subject"),
    (
        "subject-twice-create-purge",
        b"Subject: CREATE 1 2 a@b.c\nSubject: PURGE 1 2\nWKSHP-API101\n",
        "given more than once",
    ),
    (
        "subject-twice-same",
        b"Subject: PURGE 1 2\nSubject: PURGE 1 2\nWKSHP-API101\n",
        "given more than once",
    ),
    (
        "subject-twice-case",
        b"Subject: PURGE 1 2\nsubject: CREATE 1 2 a@b.c\nWKSHP-API101\n",
        "given more than once",
    ),
    (
        "from-twice",
        b"From: wod-api@api.example.com\nFrom: x@evil.example\nSubject: PURGE 1 2\nWKSHP-API101\n",
        "given more than once",
    ),
    (
        "sender-twice",
        b"Sender: a@x.y\nSender: b@x.y\nSubject: PURGE 1 2\nWKSHP-API101\n",
        "given more than once",
    ),
    (
        "return-path-twice",
        b"Return-Path: <a@x.y>\nReturn-Path: <b@x.y>\nSubject: PURGE 1 2\nWKSHP-API101\n",
        "given more than once",
    ),
    (
        "content-type-twice",
        b"Content-Type: text/plain\nContent-Type: text/html\nSubject: PURGE 1 2\n\nWKSHP-API101\n",
        "given more than once",
    ),
    (
        "transfer-encoding-twice",
        b"Content-Transfer-Encoding: base64\n"
        b"Content-Transfer-Encoding: 7bit\nSubject: PURGE 1 2\n\nWKSHP-API101\n",
        "given more than once",
    ),
    ("subject-not-utf8", b"Subject: PURGE \xff\xfe 2\nWKSHP-API101\n", "not valid UTF-8"),
    ("workshop-line-not-utf8", b"Subject: PURGE 1 2\n\xffWKSHP\n", "not valid UTF-8"),
    (
        "subject-encoded-unknown-charset",
        b"Subject: =?x-nope?Q?PURGE_1_2?=\nWKSHP-API101\n",
        "not decodable",
    ),
    (
        "subject-encoded-to-bad-verb",
        b"Subject: =?utf-8?Q?DROP_1_2?=\nWKSHP-API101\n",
        "unknown verb",
    ),
    (
        "mime-base64-garbage",
        b"Subject: PURGE 1 2\nContent-Transfer-Encoding: base64\n\n!!!!\n",
        "no workshop name",
    ),
    (
        "mime-multipart-no-text",
        b"Subject: PURGE 1 2\nMIME-Version: 1.0\n"
        b"Content-Type: multipart/mixed; boundary=XX\n\n--XX\nContent-Type: image/png\n\nabc\n"
        b"--XX--\n",
        "no text/plain part",
    ),
    (
        "mime-base64-traversal",
        b"Subject: PURGE 1 2\nContent-Transfer-Encoding: base64\n\nLi4vLi4vZXRjL3Bhc3N3ZA==\n",
        "malformed workshop name",
    ),
    (
        "mime-qp-command",
        b"Subject: PURGE 1 2\nContent-Transfer-Encoding: quoted-printable\n\nWKSHP-=24(id)\n",
        "malformed workshop name",
    ),
    ("subject-only-header-no-body", b"Subject: PURGE 1 2\n\n", "no workshop name"),
    ("subject-folded-extra", b"Subject: PURGE 1\n 2 3\nWKSHP-API101\n", "extra arguments"),
]

CASES = names_are_unique(
    [Case(f"subject/{n}", mail(s), r) for n, s, r in SUBJECTS]
    + [Case(f"body/{n}", mail("CLEANUP 1 2", b), r) for n, b, r in BODIES]
    + [Case(f"message/{n}", m, r) for n, m, r in RAW]
)
