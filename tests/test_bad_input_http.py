"""The bad-input corpus over HTTP: every body and request head of ``tests/corpus/http.py``
against one running ``wod serve`` (uvicorn on a real port).

Each case must get its stated status (and reason), a refused body is recorded, no job is
created, and the server answers the next good request (202).
"""

from __future__ import annotations

import json

import pytest

from tests.corpus import Case, http
from tests.plugins.intake import IntakeServer, http_post


@pytest.mark.parametrize("case", http.CASES, ids=str)
def test_http_input(intake_server: IntakeServer, case: Case) -> None:
    jobs, rejections = intake_server.counts()
    raw = case.data if case.name.startswith("http-head/") else http_post("/api/requests", case.data)
    status, answer = intake_server.http(raw)
    code, _, reason = case.expect.partition(" ")
    assert status == int(code), answer[:400]
    if reason:
        body = answer.partition(b"\r\n\r\n")[2]
        assert reason in json.loads(body)["error"], body[:400]
    after_jobs, after_rejections = intake_server.counts()
    assert after_jobs == jobs  # nothing queued
    if case.recorded:
        assert after_rejections == rejections + 1
        [rejection] = intake_server.queue.rejections(limit=1)
        assert rejection.channel == "http" and reason in rejection.reason
    status, answer = intake_server.http(http_post("/api/requests", http.GOOD_BODY))
    assert status == 202, answer[:400]
    assert intake_server.counts()[0] == jobs + 1
