"""Secure defaults of a production backend, checked from the outside.

After a full lifecycle (CREATE then CLEANUP over real SMTP, real lifecycle, real
registry): a real unprivileged local account can read no state file nor the settings, and
gets 401 from every ``/api`` route of the app; no secret (api-db password, http_token, the
student's password) appears in any state file, log line, job record or API answer.  And
``wod serve`` refuses to start in production without a token or senders, with one line.
"""

from __future__ import annotations

import json
import logging
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.plugins.paths import ROOT
from tests.plugins.system import open_path_to, restore_modes
from wod.queue import JobQueue
from wod.web.app import create_app

WORKSHOP = "WKSHP-Sample101"
TOKEN = "tok-" + "Zq81" * 8
WOD = [sys.executable, "-c", "from wod.cli import main; main()"]

#: Run as the unprivileged user: try to read each path, call each route; print JSON.
PROBE = r"""
import json, sys, urllib.request, urllib.error
paths, calls = json.loads(sys.stdin.read())
readable = []
for p in paths:
    try:
        with open(p, "rb") as f:
            f.read(1)
        readable.append(p)
    except OSError:
        pass
statuses = []
for method, url in calls:
    req = urllib.request.Request(url, method=method, data=b"{}" if method != "GET" else None,
                                 headers={"Content-Type": "application/json"})
    try:
        statuses.append(urllib.request.urlopen(req, timeout=10).status)
    except urllib.error.HTTPError as exc:
        statuses.append(exc.code)
print(json.dumps([readable, statuses]))
"""


def api_calls(settings, port: int) -> list[tuple[str, str]]:
    """Every (method, URL) of the app's /api routes, from its OpenAPI schema (path
    parameters filled with 1)."""
    app = create_app(settings, JobQueue(settings.db_path))
    calls = []
    for path, operations in app.openapi()["paths"].items():
        if not path.startswith("/api"):
            continue
        url = f"http://127.0.0.1:{port}" + re.sub(r"\{[^}]+\}", "1", path)
        calls.extend((method.upper(), url) for method in sorted(operations))
    return calls


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: a real unprivileged account")
def test_production_backend_keeps_state_and_api_from_local_users(
    install_factory, backend_factory, local_user, caplog
):
    caplog.set_level(logging.DEBUG)
    inst = install_factory(demo=False, http_token=TOKEN)
    backend = backend_factory(inst)
    cust, stdid = backend.customer(WORKSHOP, email="alice@example.com")
    created = backend.run(f"CREATE {stdid} {cust['id']} alice@example.com", WORKSHOP)
    assert created.status == "done", (created.reason, created.output)
    student_password = backend.student(stdid)["password"]
    assert student_password
    cleaned = backend.run(f"CLEANUP {stdid} {cust['id']}", WORKSHOP)
    assert cleaned.status == "done", (cleaned.reason, cleaned.output)

    port = backend.server.http_port
    calls = api_calls(inst.settings, port)
    assert ("POST", f"http://127.0.0.1:{port}/api/requests") in calls
    assert any(u.endswith("/api/jobs") for _m, u in calls)

    state = inst.settings.state_dir
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    state_files = [p for p in state.rglob("*") if p.is_file()]
    assert inst.settings.db_path in state_files
    for path in state_files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    control = inst.root / "readable-control"
    control.write_text("anyone may read this")
    control.chmod(0o644)
    paths = [str(p) for p in [control, inst.config, *state_files]]

    opened = open_path_to(inst.root)
    try:
        probe = local_user.run(
            "/usr/bin/python3", "-c", PROBE, input=json.dumps([paths, calls]).encode()
        )
    finally:
        restore_modes(opened)
    assert probe.returncode == 0, probe.stderr
    readable, statuses = json.loads(probe.stdout)
    assert readable == [str(control)]  # the probe can read; the state and settings not
    assert statuses == [401] * len(calls), list(zip(calls, statuses, strict=True))

    # With the token, the admin sees everything; no answer holds a secret.
    auth = {"Authorization": f"Bearer {TOKEN}"}
    answers = []
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=auth, timeout=10) as http:
        for path in ("/api/jobs", "/api/rejections", "/healthz", "/metrics"):
            resp = http.get(path)
            assert resp.status_code == 200, (path, resp.text)
            answers.append(resp.text)
        for job in (created, cleaned):
            resp = http.get(f"/api/jobs/{job.id}")
            assert resp.status_code == 200
            answers.append(resp.text)
    assert str(created.id) in answers[0]

    secrets = {
        "api-db password": inst.registry.password,
        "http_token": TOKEN,
        "student password": student_password,
    }
    logged = "\n".join(r.getMessage() + " " + str(r.args) for r in caplog.records)
    assert "job %s %s" in " ".join(str(r.msg) for r in caplog.records)  # job lines logged
    for name, secret in secrets.items():
        for path in state_files:
            assert secret.encode() not in path.read_bytes(), (name, path)
        assert secret not in logged, name
        for answer in answers:
            assert secret not in answer, name


def write_settings(tmp_path: Path, **values) -> Path:
    base = {
        "state_dir": str(tmp_path / "state"),
        "http_port": 0,
        "smtp_port": 0,
        "students_dir": str(tmp_path),
        "notebooks_dir": str(tmp_path),
        "accounts": "directory",
    }
    base.update(values)
    path = tmp_path / "wod.yml"
    path.write_text("".join(f"{k}: {json.dumps(v)}\n" for k, v in base.items()))
    path.chmod(0o644)
    return path


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"senders": ["api@example.com"]}, "http_token is empty"),
        ({"http_token": TOKEN}, "senders is empty"),
        (
            {"http_token": TOKEN, "senders": ["api@example.com"], "students_dir": "/nonexistent"},
            "the students' folder /nonexistent does not exist",
        ),
        (
            {"http_token": TOKEN, "senders": ["api@example.com"], "notebooks_dir": "/nowhere"},
            "the notebooks tree /nowhere does not exist",
        ),
        (
            {
                "http_token": TOKEN,
                "senders": ["api@example.com"],
                "accounts": "system",
                "admin_user": "wodnosuchadmin",
            },
            "the admin account 'wodnosuchadmin' does not exist",
        ),
    ],
)
def test_serve_refuses_an_unsafe_or_incomplete_host_with_one_line(tmp_path, values, expected):
    config = write_settings(tmp_path, **values)
    done = subprocess.run(
        [*WOD, "-c", str(config), "serve"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if "cannot start" in line]
    assert len(lines) == 1 and expected in lines[0], done.stderr
    assert "wod install" in lines[0] or "set " in lines[0]
    # Even a refused start leaves the settings file private.
    assert stat.S_IMODE(config.stat().st_mode) == 0o600


def test_serve_refuses_a_taken_port(tmp_path, free_port):
    import socket

    holder = socket.socket()
    holder.bind(("127.0.0.1", free_port))
    holder.listen()
    try:
        config = write_settings(tmp_path, demo=True, smtp_port=free_port)
        done = subprocess.run(
            [*WOD, "-c", str(config), "serve"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
        )
    finally:
        holder.close()
    assert done.returncode == 1
    assert f"smtp_port port 127.0.0.1:{free_port} is taken" in done.stderr, done.stderr
    # The state was made private before anything listened.
    assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o700


def test_wod_init_is_a_demo_layout_and_says_so(tmp_path: Path):
    done = subprocess.run(
        [*WOD, "init", str(tmp_path / "inst")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "local/demo layout" in done.stdout and "wod install" in done.stdout
    config = tmp_path / "inst" / "wod.yml"
    assert "demo: true" in config.read_text()
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "inst" / "state").stat().st_mode) == 0o700


def test_metrics_only_for_allowed_clients_healthz_open(tmp_path: Path):
    from tests.plugins.paths import serve_in_thread
    from wod.settings import Settings

    for allowed, expected in ((["10.9.0.0/16"], 403), (["127.0.0.1/32"], 200)):
        settings = Settings(state_dir=tmp_path / "state", http_token=TOKEN, allowed_clients=allowed)
        app = create_app(settings, JobQueue(settings.db_path))
        with serve_in_thread(app, "metrics") as port:
            base = f"http://127.0.0.1:{port}"
            assert httpx.get(f"{base}/metrics", timeout=5).status_code == expected
            assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200
