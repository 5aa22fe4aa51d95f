"""``POST /api/requests`` bodies and HTTP request heads the backend must refuse.

Body cases: ``data`` is the body, sent with the right token; ``expect`` is
``"<status> <error substring>"``.  Head cases: ``data`` is the whole raw request;
``expect`` is ``"<status>"`` (plus an optional substring of the answer); ``recorded`` says
whether a rejection is kept (only bodies that reached the intake are).
"""

from __future__ import annotations

import json

from tests.corpus import Case, names_are_unique
from tests.plugins.intake import TOKEN, http_post

GOOD = {"verb": "CLEANUP", "stdid": 2, "customer": 7, "workshop": "WKSHP-API101"}


def with_(**fields: object) -> bytes:
    data = dict(GOOD)
    for key, value in fields.items():
        if value is ...:
            data.pop(key, None)
        else:
            data[key] = value
    return json.dumps(data).encode()


def body(name: str, data: bytes, status: int, reason: str) -> Case:
    return Case(f"http-body/{name}", data, f"{status} {reason}")


BODIES = [
    # -- not JSON, or not an object ---------------------------------------------------------
    body("empty", b"", 400, "body is not valid JSON"),
    body("whitespace", b"   \n", 400, "body is not valid JSON"),
    body("truncated", b'{"verb": "CLEANUP", "stdid": 2', 400, "body is not valid JSON"),
    body("single-quotes", b"{'verb': 'CLEANUP'}", 400, "body is not valid JSON"),
    body("trailing-comma", b'{"verb": "CLEANUP",}', 400, "body is not valid JSON"),
    body("comment", b'{"verb": "CLEANUP" /* x */}', 400, "body is not valid JSON"),
    body("two-objects", with_() + with_(), 400, "body is not valid JSON"),
    body("not-utf8", b'{"verb": "\xff\xfe"}', 400, "body is not valid JSON"),
    body(
        "latin1-text",
        with_(verb="CL\u00e9ANUP").replace(b"\\u00e9", b"\xe9"),
        400,
        "body is not valid JSON",
    ),
    body("utf8-bom", b"\xef\xbb\xbf" + with_(), 400, "body is not valid JSON"),
    body("utf16", with_().decode().encode("utf-16"), 400, "body is not valid JSON"),
    body("utf32", with_().decode().encode("utf-32"), 400, "body is not valid JSON"),
    body("form-encoded", b"verb=CLEANUP&stdid=2", 400, "body is not valid JSON"),
    body("xml", b"<request verb='CLEANUP'/>", 400, "body is not valid JSON"),
    body("nested-deep", b"[" * 500 + b"]" * 500, 400, "expected a JSON object"),
    body("nested-too-deep", b"[" * 50_000, 400, "body is not valid JSON"),
    body("too-large", b'{"x": "' + b"a" * 70_000 + b'"}', 400, "request body larger than"),
    body("array", b"[1, 2]", 400, "expected a JSON object"),
    body("string", b'"CLEANUP 2 7"', 400, "expected a JSON object"),
    body("number", b"42", 400, "expected a JSON object"),
    body("null", b"null", 400, "expected a JSON object"),
    body("true", b"true", 400, "expected a JSON object"),
    body("array-of-object", b"[" + with_() + b"]", 400, "expected a JSON object"),
    # -- keys -------------------------------------------------------------------------------
    body(
        "duplicate-verb",
        b'{"verb": "CLEANUP", "stdid": 2, "customer": 7, "workshop": "WKSHP-API101",'
        b' "verb": "PURGE"}',
        400,
        "field 'verb' given more than once",
    ),
    body(
        "duplicate-stdid",
        b'{"verb": "PURGE", "stdid": 2, "stdid": 3, "customer": 7, "workshop": "WKSHP-X"}',
        400,
        "field 'stdid' given more than once",
    ),
    body(
        "duplicate-workshop",
        b'{"verb": "PURGE", "stdid": 2, "customer": 7, "workshop": "WKSHP-A",'
        b' "workshop": "WKSHP-B"}',
        400,
        "field 'workshop' given more than once",
    ),
    body(
        "duplicate-same-value",
        b'{"verb": "PURGE", "stdid": 2, "customer": 7, "customer": 7, "workshop": "WKSHP-A"}',
        400,
        "given more than once",
    ),
    body(
        "duplicate-escaped-key",
        b'{"verb": "PURGE", "stdid": 2, "customer": 7, "workshop": "WKSHP-A",'
        b' "\\u0076erb": "CREATE"}',
        400,
        "field 'verb' given more than once",
    ),
    body(
        "duplicate-in-nested",
        b'{"verb": "PURGE", "stdid": 2, "customer": 7, "workshop": "WKSHP-A",'
        b' "x": {"a": 1, "a": 2}}',
        400,
        "field 'a' given more than once",
    ),
    body("unknown-field", with_(extra=1), 400, "unknown field(s): 'extra'"),
    body("unknown-field-case", with_(Verb="PURGE"), 400, "unknown field(s): 'Verb'"),
    body("unknown-field-empty-name", with_(**{"": 1}), 400, "unknown field(s)"),
    body("missing-verb", with_(verb=...), 400, "missing field 'verb'"),
    body("missing-stdid", with_(stdid=...), 400, "missing field 'stdid'"),
    body("missing-customer", with_(customer=...), 400, "missing field 'customer'"),
    body("missing-workshop", with_(workshop=...), 400, "missing field 'workshop'"),
    body("empty-object", b"{}", 400, "missing field 'verb'"),
    # -- types ------------------------------------------------------------------------------
    body("verb-null", with_(verb=None), 400, "missing field 'verb'"),
    body("verb-empty", with_(verb=""), 400, "missing field 'verb'"),
    body("verb-number", with_(verb=1), 422, "unknown verb"),
    body("verb-bool", with_(verb=True), 400, "must be a string or a number"),
    body("verb-list", with_(verb=["CLEANUP"]), 400, "must be a string or a number"),
    body("verb-object", with_(verb={"v": "CLEANUP"}), 400, "must be a string or a number"),
    body("verb-two-words", with_(verb="CLEANUP 2"), 400, "must be one word"),
    body("verb-tab", with_(verb="CLEAN\tUP"), 400, "must be one word"),
    body("verb-newline", with_(verb="CLEANUP\nPURGE"), 400, "must be one word"),
    body("stdid-float", with_(stdid=2.5), 400, "must be a string or a number"),
    body("stdid-bool", with_(stdid=False), 400, "must be a string or a number"),
    body(
        "stdid-nan",
        b'{"verb":"PURGE","stdid":NaN,"customer":7,"workshop":"WKSHP-A"}',
        400,
        "must be a string or a number",
    ),
    body(
        "stdid-infinity",
        b'{"verb":"PURGE","stdid":Infinity,"customer":7,"workshop":"WKSHP-A"}',
        400,
        "must be a string or a number",
    ),
    body("stdid-huge", with_(stdid=10**30), 422, "is not a number"),
    body("stdid-negative", with_(stdid=-3), 422, "is not a number"),
    body("stdid-zero", with_(stdid=0), 422, "outside"),
    body("stdid-out-of-range", with_(stdid=21), 422, "outside"),
    body("stdid-word", with_(stdid="two"), 422, "is not a number"),
    body("stdid-spaces", with_(stdid="1 2"), 400, "must be one word"),
    body("stdid-range-on-purge", with_(verb="PURGE", stdid="1,3"), 422, "takes one student id"),
    body("stdid-range-reversed", with_(verb="RESET", stdid="5,3"), 422, "reversed"),
    body("stdid-promise-suffix", with_(stdid="[object Promise]x"), 400, "must be one word"),
    body("customer-list", with_(customer=[7]), 400, "must be a string or a number"),
    body("customer-negative", with_(customer=-7), 422, "customer id"),
    body("customer-word", with_(customer="seven"), 422, "customer id 'seven' is not a number"),
    body("workshop-traversal", with_(workshop="../../etc"), 422, "malformed workshop name"),
    body("workshop-command", with_(workshop="WKSHP-$(id)"), 422, "malformed workshop name"),
    body("workshop-space", with_(workshop="WKSHP-A B"), 400, "must be one word"),
    body("workshop-number", with_(workshop=101), 422, "malformed workshop name"),
    body("workshop-unicode", with_(workshop="WKSHP-\u00e9"), 422, "malformed workshop name"),
    body("workshop-nul", with_(workshop="WKSHP-A\u0000B"), 422, "malformed workshop name"),
    body("create-no-email", with_(verb="CREATE"), 422, "missing arguments"),
    body("create-bad-email", with_(verb="CREATE", email="nope"), 422, "malformed e-mail"),
    body(
        "create-email-list",
        with_(verb="CREATE", email=["a@b.c"]),
        400,
        "must be a string or a number",
    ),
    body("cleanup-with-email", with_(email="a@b.c"), 422, "extra arguments"),
    body("verb-unknown", with_(verb="DROP"), 422, "unknown verb"),
]


def head(name: str, raw: bytes, expect: str) -> Case:
    return Case(f"http-head/{name}", raw, expect, recorded=False)


GOOD_BODY = with_()
HEADS = [
    head(
        "header-64k", http_post("/api/requests", GOOD_BODY, headers={"X-Big": "a" * 65536}), "431"
    ),
    head(
        "header-20k", http_post("/api/requests", GOOD_BODY, headers={"X-Big": "a" * 20_000}), "431"
    ),
    head(
        "many-headers",
        http_post("/api/requests", GOOD_BODY, headers={f"X-H{n}": "v" for n in range(150)}),
        "431",
    ),
    head(
        "headers-total-large",
        http_post("/api/requests", GOOD_BODY, headers={f"X-H{n}": "v" * 900 for n in range(30)}),
        "431",
    ),
    head(
        "cookie-huge",
        http_post("/api/requests", GOOD_BODY, headers={"Cookie": "c=" + "x" * 40_000}),
        "431",
    ),
    head("query-huge", http_post("/api/requests?" + "q" * 30_000, GOOD_BODY), "431"),
    head(
        "token-missing",
        http_post("/api/requests", GOOD_BODY, headers={"Authorization": None}),
        "401",
    ),
    head(
        "token-wrong",
        http_post("/api/requests", GOOD_BODY, headers={"Authorization": "Bearer nope"}),
        "401",
    ),
    head(
        "token-prefix",
        http_post("/api/requests", GOOD_BODY, headers={"Authorization": f"Bearer {TOKEN[:-1]}"}),
        "401",
    ),
    head(
        "token-longer",
        http_post("/api/requests", GOOD_BODY, headers={"Authorization": f"Bearer {TOKEN}x"}),
        "401",
    ),
    head(
        "token-basic-scheme",
        http_post("/api/requests", GOOD_BODY, headers={"Authorization": f"Basic {TOKEN}"}),
        "401",
    ),
    head(
        "token-no-scheme",
        http_post("/api/requests", GOOD_BODY, headers={"Authorization": TOKEN}),
        "401",
    ),
    head(
        "token-empty-bearer",
        http_post("/api/requests", GOOD_BODY, headers={"Authorization": "Bearer "}),
        "401",
    ),
    head(
        "wrong-method",
        b"GET /api/requests HTTP/1.1\r\nHost: w\r\nAuthorization: Bearer "
        + TOKEN.encode()
        + b"\r\nConnection: close\r\n\r\n",
        "405",
    ),
    head("unknown-path", http_post("/api/request", GOOD_BODY), "404"),
    head(
        "content-length-short",
        http_post("/api/requests", GOOD_BODY, headers={"Content-Length": "5"}),
        "400",
    ),
    head(
        "content-length-bad",
        http_post("/api/requests", GOOD_BODY, headers={"Content-Length": "abc"}),
        "400",
    ),
    head(
        "content-length-twice-different",
        http_post("/api/requests", GOOD_BODY).replace(
            b"Connection: close", b"Content-Length: 3\r\nConnection: close"
        ),
        "400",
    ),
    head(
        "header-name-space", http_post("/api/requests", GOOD_BODY, headers={"Bad Name": "v"}), "400"
    ),
    head(
        "header-no-colon",
        http_post("/api/requests", GOOD_BODY).replace(b"Connection: close", b"Connection close"),
        "400",
    ),
    head("not-http", b"HELO api.example.com\r\n\r\n", "400"),
    head("http-0.9", b"GET /\r\n\r\n", "400"),
    head(
        "bad-chunked",
        http_post(
            "/api/requests",
            b"zz\r\nbad\r\n0\r\n\r\n",
            headers={"Content-Length": None, "Transfer-Encoding": "chunked"},
        ),
        "400",
    ),
]

CASES = names_are_unique(BODIES + HEADS)
