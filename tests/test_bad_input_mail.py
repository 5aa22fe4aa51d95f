"""The bad-input corpus over SMTP: every raw session and request mail of
``tests/corpus/{mail,requests}.py`` against one running ``wod serve`` intake.

Each case must get its stated refusal, be recorded when the refusal is a rejection, create
no job, and leave the server answering the next good request (250).
"""

from __future__ import annotations

import time

import pytest

from tests.corpus import Case, mail, requests
from tests.plugins.intake import API_DB, COMMANDS, IntakeServer


def api_db_session(message: bytes) -> bytes:
    """The api-db's block around ``message`` (pre-greeting, bare LF, no dot-stuffing)."""
    return (
        b"HELO api.example.com\nMAIL FROM: "
        + API_DB.encode()
        + b"\nRCPT TO: "
        + COMMANDS.encode()
        + b"\nDATA\n"
        + message
        + b".\n"
    )


def check(intake_server: IntakeServer, case: Case, data: bytes) -> None:
    jobs, rejections = intake_server.counts()
    replies = intake_server.session(data, eof=case.eof).decode("latin-1")
    if case.recorded:  # a client that hung up is not told: wait for the record
        deadline = time.monotonic() + 5
        while intake_server.counts()[1] == rejections and time.monotonic() < deadline:
            time.sleep(0.01)
    new = intake_server.queue.rejections(limit=100)[: intake_server.counts()[1] - rejections]
    reasons = [r.reason for r in new]
    if case.recorded:
        assert reasons, f"no rejection recorded; replies: {replies[-300:]}"
    # The reply says it, or (the client having hung up) the recorded reason does.
    assert case.expect in replies or any(case.expect in r for r in reasons), (
        replies[-300:],
        reasons,
    )
    for line in replies.splitlines():
        assert "queued as job" not in line, line
    assert intake_server.counts()[0] == jobs  # nothing queued
    good = intake_server.good_mail().decode()
    assert "250 2.0.0 queued as job" in good, good
    assert intake_server.counts()[0] == jobs + 1


@pytest.mark.parametrize("case", mail.CASES, ids=str)
def test_smtp_session(intake_server: IntakeServer, case: Case) -> None:
    check(intake_server, case, case.data)


@pytest.mark.parametrize("case", requests.CASES, ids=str)
def test_request_mail(intake_server: IntakeServer, case: Case) -> None:
    check(intake_server, case, api_db_session(case.data))


def test_the_corpus_is_large_enough() -> None:
    from tests.corpus import http, pipe, settings

    everything = [*mail.CASES, *requests.CASES, *http.CASES, *pipe.CASES, *settings.CASES]
    assert len(everything) >= 300
    assert len({c.name for c in everything}) == len(everything)  # every case named once
