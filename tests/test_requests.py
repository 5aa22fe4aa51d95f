"""The request parser: SPEC 2.1/2.2 grammar, the api-db's raw layout, and every bad input."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from wod.errors import Rejected
from wod.requests import Request, Verb, parse_fields, parse_message
from wod.settings import Settings

API_DB = "wod-api@api.example.com"


@pytest.fixture
def cfg() -> Settings:
    return Settings(user_min=1, user_max=20, senders=[API_DB], max_message_bytes=1_048_576)


def api_db_mail(subject: str, body: str = "WKSHP-API101\n") -> bytes:
    """The message part of what the api-db writes: Subject, no blank line, body, LF only."""
    return f"Subject: {subject}\n{body}".encode()


def reason(raw: bytes, cfg: Settings, sender: str | None = API_DB) -> str:
    with pytest.raises(Rejected) as info:
        parse_message(raw, cfg, sender=sender)
    return info.value.reason


# -- accepted -------------------------------------------------------------------------------


def test_create_as_the_api_db_writes_it(cfg: Settings) -> None:
    req = parse_message(api_db_mail("CREATE 1 825 alice@example.com"), cfg, sender=API_DB)
    assert req == Request(
        verb=Verb.CREATE,
        stdid=1,
        stdid_max=1,
        customer=825,
        workshop="WKSHP-API101",
        email="alice@example.com",
        channel="smtp",
    )


def test_well_formed_mail_with_crlf_and_other_headers(cfg: Settings) -> None:
    raw = (
        b"Return-Path: <other@x.org>\r\nFrom: API <wod-api@api.example.com>\r\n"
        b"To: wodadmin@backend\r\nSubject: CLEANUP 7 12\r\n\r\n\r\n  CHLG-Python101  \r\n"
        b"trailing text\r\n"
    )
    req = parse_message(raw, cfg, sender="WOD-API@API.EXAMPLE.COM", channel="pipe")
    assert (req.verb, req.stdid, req.customer, req.workshop) == (
        Verb.CLEANUP,
        7,
        12,
        "CHLG-Python101",
    )
    assert req.folder == "WKSHP-Python101" and req.mode == "CHLG" and req.channel == "pipe"


def test_sender_from_headers_when_no_envelope(cfg: Settings) -> None:
    raw = b"From: API db <wod-api@api.example.com>\nSubject: PURGE 3 4\n\nWKSHP-A\n"
    assert parse_message(raw, cfg).verb is Verb.PURGE
    raw = b"Return-Path: <wod-api@api.example.com>\nSubject: PURGE 3 4\n\nWKSHP-A\n"
    assert parse_message(raw, cfg).stdid == 3


def test_mbox_from_line_is_skipped_and_names_the_sender(cfg: Settings) -> None:
    raw = (
        b"From wod-api@api.example.com  Mon Jun  3 10:00:00 2024\nSubject: CLEANUP 2 3\n\nWKSHP-A\n"
    )
    assert parse_message(raw, cfg).stdid == 2
    assert "not allowed" in reason(raw.replace(b"wod-api@", b"evil@", 1), cfg, sender=None)


def test_reset_single_and_range(cfg: Settings) -> None:
    one = parse_message(api_db_mail("RESET 4 9"), cfg, sender=API_DB)
    assert one.stdids == [4] and not one.is_range
    many = parse_message(api_db_mail("RESET 2,5 9"), cfg, sender=API_DB)
    assert (many.stdid, many.stdid_max, many.stdids) == (2, 5, [2, 3, 4, 5])


@pytest.mark.parametrize("verb", ["PURGE", "RESET", "CLEANUP"])
def test_object_promise_student_id_is_recovered_from_customer(cfg: Settings, verb: str) -> None:
    req = parse_message(api_db_mail(f"{verb} [object Promise] 3"), cfg, sender=API_DB)
    assert req.stdid is None and req.recover_stdid and req.customer == 3
    assert "student id recovered from customer" in req.notes


def test_mime_encoded_body_and_subject(cfg: Settings) -> None:
    from email.message import EmailMessage

    msg = EmailMessage()
    msg["From"] = API_DB
    msg["Subject"] = "CREATE 2 5 bob@example.org"
    msg.set_content("WKSHP-Ansible101\nEncore un café\n", cte="base64")
    msg.add_alternative("<p>WKSHP-Ansible101</p>", subtype="html")
    req = parse_message(msg.as_bytes(), cfg)
    assert (req.workshop, req.email) == ("WKSHP-Ansible101", "bob@example.org")


def test_rest_of_body_may_be_any_encoding(cfg: Settings) -> None:
    raw = api_db_mail("PURGE 1 1", "WKSHP-A\n").rstrip(b"\n") + b"\n\xe9t\xe9 latin-1\n"
    assert parse_message(raw, cfg, sender=API_DB).workshop == "WKSHP-A"


def test_other_headers_may_be_any_encoding(cfg: Settings) -> None:
    raw = b"X-Mailer: Caf\xe9 1.0\nFrom: Ren\xe9 <x@y.z>\n" + api_db_mail("CLEANUP 1 2")
    assert parse_message(raw, cfg, sender=API_DB).verb is Verb.CLEANUP
    # A sender header that is not UTF-8 cannot name the allowed sender: refused as such.
    raw = b"Return-Path: <wod-api\xe9@api.example.com>\n" + api_db_mail("CLEANUP 1 2")
    assert "is not allowed" in reason(raw, cfg, sender=None)


def test_parse_fields_for_http(cfg: Settings) -> None:
    req = parse_fields("CREATE 3 4 c@d.io", "\n WKSHP-X \n", cfg, channel="http")
    assert (req.stdid, req.email, req.channel) == (3, "c@d.io", "http")
    with pytest.raises(Rejected, match="sender"):
        parse_fields("CREATE 3 4 c@d.io", "WKSHP-X", cfg, sender="mallory@evil.example")


# -- the "Bad input" list of issue 2 --------------------------------------------------------

BAD = [
    ("unknown verb", "DEPLOY 1 1", "WKSHP-A\n", "unknown verb 'DEPLOY'"),
    ("empty subject", "", "WKSHP-A\n", "empty subject"),
    ("missing ids", "CREATE 1 825", "WKSHP-A\n", "missing arguments"),
    ("missing customer", "PURGE 1", "WKSHP-A\n", "missing arguments"),
    ("extra ids", "CLEANUP 1 2 3", "WKSHP-A\n", "extra arguments"),
    ("non-numeric stdid", "CLEANUP one 2", "WKSHP-A\n", "student id 'one' is not a number"),
    ("negative stdid", "CLEANUP -1 2", "WKSHP-A\n", "is not a number"),
    ("non-numeric customer", "PURGE 1 x", "WKSHP-A\n", "customer id 'x' is not a number"),
    ("promise without customer", "PURGE [object Promise] x", "WKSHP-A\n", "customer id"),
    ("stdid above range", "CLEANUP 21 2", "WKSHP-A\n", "outside this backend's range 1-20"),
    ("stdid zero", "CLEANUP 0 2", "WKSHP-A\n", "outside this backend's range"),
    ("range end out", "RESET 3,99 2", "WKSHP-A\n", "range end 99 is outside"),
    ("range start out", "RESET 0,3 2", "WKSHP-A\n", "range start 0 is outside"),
    ("range reversed", "RESET 5,3 2", "WKSHP-A\n", "reversed"),
    ("range half", "RESET 5, 2", "WKSHP-A\n", "range end '' is not a number"),
    ("range on purge", "PURGE 1,3 2", "WKSHP-A\n", "PURGE takes one student id"),
    ("range on create", "CREATE 1,3 2 a@b.c", "WKSHP-A\n", "CREATE takes one student id"),
    ("malformed e-mail", "CREATE 1 2 alice", "WKSHP-A\n", "malformed e-mail address 'alice'"),
    ("e-mail two @", "CREATE 1 2 a@b@c", "WKSHP-A\n", "malformed e-mail"),
    ("e-mail shell", "CREATE 1 2 $(id)@x.y", "WKSHP-A\n", "malformed e-mail"),
    ("path traversal", "CREATE 1 2 a@b.c", "../../etc\n", "malformed workshop name '../../etc'"),
    ("dots in name", "CREATE 1 2 a@b.c", "WKSHP-..\n", "malformed workshop name"),
    ("shell in name", "CREATE 1 2 a@b.c", "WKSHP-$(id)\n", "malformed workshop name 'WKSHP-$(id)'"),
    ("no prefix", "CREATE 1 2 a@b.c", "API101\n", "malformed workshop name"),
    ("empty body", "CREATE 1 2 a@b.c", "", "no workshop name"),
    ("blank body", "CREATE 1 2 a@b.c", "\n \n", "no workshop name"),
]


@pytest.mark.parametrize(
    ("subject", "body", "expected"), [b[1:] for b in BAD], ids=[b[0] for b in BAD]
)
def test_bad_input_is_rejected_with_a_clear_reason(
    cfg: Settings, subject: str, body: str, expected: str
) -> None:
    assert expected in reason(api_db_mail(subject, body), cfg)


def test_no_subject_header(cfg: Settings) -> None:
    assert "no Subject header" in reason(b"WKSHP-API101\n", cfg)


def test_ten_megabyte_body(cfg: Settings) -> None:
    raw = api_db_mail("CREATE 1 2 a@b.c", "WKSHP-A\n" + "x" * (10 * 1024 * 1024))
    assert "message too large" in reason(raw, cfg)


def test_non_utf8(cfg: Settings) -> None:
    assert "workshop line is not valid UTF-8" in reason(
        b"Subject: CREATE 1 2 a@b.c\nWKSHP-\xff\xfe\n", cfg
    )
    assert "subject header is not valid UTF-8" in reason(
        b"Subject: CREATE \xe9 2 a@b.c\nWKSHP-A\n", cfg
    )


def test_sender_not_allowed(cfg: Settings) -> None:
    raw = api_db_mail("CREATE 1 2 a@b.c")
    assert "sender 'mallory@evil.example' is not allowed" in reason(
        raw, cfg, sender="mallory@evil.example"
    )
    assert "no sender address" in reason(raw, cfg, sender=None)
    # No list configured: anyone may send.
    open_cfg = Settings(senders=[])
    assert parse_message(raw, open_cfg).stdid == 1


@pytest.mark.parametrize(
    "headers",
    [
        b"Subject: CREATE 1 2 a@b.c\nSubject: PURGE 1 2\n",
        b"Subject: CREATE 1 2 a@b.c\nSUBJECT: PURGE 1 2\n",
        b"From: wod-api@api.example.com\nFrom: mallory@evil.example\nSubject: PURGE 1 2\n",
        b"Return-Path: <a@x>\nReturn-Path: <b@y>\nSubject: PURGE 1 2\n",
        b"Sender: a@x\nSender: b@y\nSubject: PURGE 1 2\n",
        b"Content-Type: text/plain\nContent-Type: multipart/mixed\nSubject: PURGE 1 2\n",
        b"Content-Transfer-Encoding: base64\nContent-Transfer-Encoding: 7bit\nSubject: PURGE 1 2\n",
    ],
)
def test_a_header_the_parser_reads_given_twice_is_refused(cfg: Settings, headers: bytes) -> None:
    """Two Subjects (CREATE then PURGE) used to be queued as the first one."""
    why = reason(headers + b"\nWKSHP-API101\n", cfg)
    assert "given more than once" in why


def test_other_headers_may_repeat(cfg: Settings) -> None:
    raw = b"Received: from a\nReceived: from b\nSubject: PURGE 1 2\n\nWKSHP-API101\n"
    assert parse_message(raw, cfg, sender=API_DB).verb is Verb.PURGE


# -- fuzzing: the parser never raises anything but Rejected ---------------------------------

TOKENS = st.sampled_from(
    [
        "CREATE",
        "CLEANUP",
        "RESET",
        "PURGE",
        "create",
        "1",
        "20",
        "21",
        "0",
        "3,5",
        "5,3",
        ",",
        "[object Promise]",
        "a@b.c",
        "x",
        "WKSHP-A",
        "CHLG-B",
        "../",
        "\u00e9",
        "-1",
        "99999999999",
    ]
)
SUBJECTS = st.lists(TOKENS, max_size=6).map(" ".join) | st.text(max_size=80)


@hsettings(max_examples=400, deadline=None)
@given(raw=st.binary(max_size=300))
def test_fuzz_raw_bytes(raw: bytes) -> None:
    cfg = Settings(senders=[])
    try:
        assert isinstance(parse_message(raw, cfg), Request)
    except Rejected as exc:
        assert exc.reason


@hsettings(max_examples=400, deadline=None)
@given(
    subject=SUBJECTS, body=st.text(max_size=80) | TOKENS, crlf=st.booleans(), blank=st.booleans()
)
def test_fuzz_structured(subject: str, body: str, crlf: bool, blank: bool) -> None:
    cfg = Settings(senders=[])
    eol = "\r\n" if crlf else "\n"
    raw = f"Subject: {subject}{eol}{eol if blank else ''}{body}{eol}".encode(
        "utf-8", "surrogatepass"
    )
    try:
        req = parse_message(raw, cfg)
    except Rejected as exc:
        assert exc.reason and "\n" not in exc.reason
        return
    # Whatever got through is fully valid.
    assert req.workshop.startswith(("WKSHP-", "CHLG-")) and ".." not in req.workshop
    for n in req.stdids:
        assert cfg.user_min <= n <= cfg.user_max
    assert (req.email is not None) == (req.verb is Verb.CREATE)
