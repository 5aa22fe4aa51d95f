"""Properties of the request parser (``wod/requests.py``), checked with hypothesis:

- on any input it returns a valid Request or raises Rejected (a one-line reason), nothing
  else, whatever the headers (repeated, folded, MIME) and line endings;
- a parsed Request survives its record (``to_dict``/``from_dict``) and, written back as the
  api-db's mail, parses to the same Request;
- every subject the grammar allows parses, in every layout the api-db and relays use.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from wod.errors import Rejected
from wod.requests import Request, Verb, parse_fields, parse_message
from wod.settings import Settings

API_DB = "wod-api@api.example.com"
CFG = Settings(user_min=1, user_max=60, senders=[API_DB], max_message_bytes=65536)

# -- generators ------------------------------------------------------------------------------
NAME_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
workshops = st.builds(
    lambda prefix, first, rest: f"{prefix}-{first}{rest}",
    st.sampled_from(["WKSHP", "CHLG"]),
    st.sampled_from(NAME_CHARS),
    st.text(alphabet=NAME_CHARS + "._-", max_size=40).filter(lambda s: ".." not in s),
)
stdids = st.integers(min_value=CFG.user_min, max_value=CFG.user_max)
customers = st.integers(min_value=0, max_value=999_999_999)
emails = st.builds(
    lambda local, host, tld: f"{local}@{host}.{tld}",
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789._+-", min_size=1, max_size=20).filter(
        lambda s: ".." not in s
    ),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=20),
    st.sampled_from(["com", "org", "example", "io"]),
)


@st.composite
def valid_requests(draw: st.DrawFn) -> tuple[str, dict]:
    """(subject, expected fields) for a request the grammar allows."""
    verb = draw(st.sampled_from(list(Verb)))
    spelled = draw(st.sampled_from([verb.value, verb.value.lower(), verb.value.title()]))
    customer = draw(customers)
    email = None
    if verb is Verb.RESET and draw(st.booleans()):
        low = draw(stdids)
        high = draw(st.integers(min_value=low, max_value=CFG.user_max))
        ids, stdid, stdid_max = f"{low},{high}", low, high
    elif verb is not Verb.CREATE and draw(st.booleans()):
        ids, stdid, stdid_max = "[object Promise]", None, None
    else:
        stdid = stdid_max = draw(stdids)
        ids = str(stdid)
    parts = [spelled, ids, str(customer)]
    if verb is Verb.CREATE:
        email = draw(emails)
        parts.append(email)
    space = draw(st.sampled_from([" ", "  ", "\t"]))
    expected = {
        "verb": verb,
        "stdid": stdid,
        "stdid_max": stdid_max,
        "customer": customer,
        "email": email,
        "recover_stdid": stdid is None,
    }
    return space.join(parts), expected


@st.composite
def layouts(draw: st.DrawFn, subject: str, workshop: str) -> bytes:
    """The mail as the api-db, a relay or a procmail pipe may hand it over."""
    eol = draw(st.sampled_from(["\n", "\r\n"]))
    headers = [f"Subject: {subject}"]
    if draw(st.booleans()):
        headers.insert(0, f"Return-Path: <{API_DB}>")
    if draw(st.booleans()):
        headers.append("To: wodadmin@backend.example.com")
    if draw(st.booleans()):
        headers.append("Received: from a by b")
        headers.append("Received: from c by d")  # may repeat: not read
    blank = draw(st.booleans())
    before = ""
    if blank:  # without the blank line, an indented line would continue the last header
        before = eol * draw(st.integers(0, 2)) + draw(st.sampled_from(["", " ", "\t"]))
    trailer = draw(st.sampled_from(["", "more text" + eol, "\u00e9t\u00e9" + eol]))
    text = eol.join(headers) + eol + (eol if blank else "") + before + workshop + eol + trailer
    return text.encode()


header_names = st.sampled_from(
    [
        "Subject",
        "subject",
        "From",
        "Sender",
        "Return-Path",
        "Content-Type",
        "Content-Transfer-Encoding",
        "MIME-Version",
        "X-Other",
        "Received",
    ]
)
header_values = st.sampled_from(
    [
        "CREATE 1 2 a@b.c",
        "PURGE [object Promise] 3",
        "text/plain",
        "base64",
        "multipart/mixed; boundary=Z",
        "quoted-printable",
        API_DB,
        "<>",
        "=?utf-8?Q?x?=",
        "=?x?B?**?=",
        "1.0",
        "",
    ]
) | st.text(max_size=30)


# -- properties ------------------------------------------------------------------------------


@hsettings(max_examples=300, deadline=None)
@given(
    headers=st.lists(st.tuples(header_names, header_values), max_size=8),
    body=st.binary(max_size=200) | st.sampled_from([b"WKSHP-API101\n", b"--Z\n\nWKSHP-A\n--Z--"]),
    eol=st.sampled_from([b"\n", b"\r\n", b"\r"]),
    blank=st.booleans(),
)
def test_only_rejected_escapes_whatever_the_headers(
    headers: list[tuple[str, str]], body: bytes, eol: bytes, blank: bool
) -> None:
    raw = eol.join(f"{n}: {v}".encode("utf-8", "surrogatepass") for n, v in headers)
    raw += eol + (eol if blank else b"") + body
    try:
        req = parse_message(raw, CFG, sender=API_DB)
    except Rejected as exc:
        assert exc.reason and "\n" not in exc.reason
        return
    assert isinstance(req, Request)
    subjects = [n for n, _ in headers if n.lower() == "subject"]
    assert len(subjects) == 1  # a repeated Subject never gets through


@hsettings(max_examples=300, deadline=None)
@given(request=valid_requests(), workshop=workshops, data=st.data())
def test_valid_subjects_always_parse(request: tuple[str, dict], workshop: str, data) -> None:
    subject, expected = request
    raw = data.draw(layouts(subject, workshop))
    req = parse_message(raw, CFG, sender=API_DB)
    got = {k: getattr(req, k) for k in expected}
    assert got == expected
    assert req.workshop == workshop


@hsettings(max_examples=300, deadline=None)
@given(request=valid_requests(), workshop=workshops)
def test_a_parsed_request_round_trips(request: tuple[str, dict], workshop: str) -> None:
    subject, _ = request
    req = parse_message(f"Subject: {subject}\n{workshop}\n".encode(), CFG, sender=API_DB)
    # Its record (the queue stores to_dict) gives the same Request back...
    assert Request.from_dict(req.to_dict()) == req
    # ...and written back as the api-db would mail it, it parses to the same Request.
    ids = (
        "[object Promise]"
        if req.stdid is None
        else f"{req.stdid},{req.stdid_max}"
        if req.is_range
        else str(req.stdid)
    )
    again = " ".join(p for p in (req.verb.value, ids, str(req.customer), req.email) if p)
    assert parse_fields(again, req.workshop, CFG) == req
