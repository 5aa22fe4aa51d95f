"""The operations through their CLI commands and their admin API routes, on a real install
(system accounts as root, real files, owners and ACLs, real processes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
from click.testing import CliRunner

from tests.plugins.install import Install
from tests.plugins.paths import serve_in_thread
from wod.cli import _register, cli
from wod.queue import JobQueue
from wod.requests import Request, Verb
from wod.web.app import create_app

TOKEN = "ops-routes-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: real student accounts"),
]


@pytest.fixture
def inst(install_factory) -> Install:
    return install_factory(accounts="system", http_token=TOKEN, user_max=12)


@pytest.fixture
def api(inst: Install) -> Iterator[httpx.Client]:
    s = inst.settings
    with serve_in_thread(create_app(s, JobQueue(s.db_path)), "api") as port:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}/api", headers=AUTH) as client:
            yield client


def wod(inst: Install, *args: str):
    _register()
    return CliRunner().invoke(cli, ["-c", str(inst.config), *args], catch_exceptions=False)


def test_deploy_refuses_a_seat_the_server_would_refuse(inst: Install, api: httpx.Client) -> None:
    """Issue 11 fault 5: a dry run said yes to a seat outside the ranges."""
    for student, reason in [
        ("0", "student 0 is outside this backend's range 1-12"),
        ("9", "student 9 is outside the range 1-8 of WKSHP-Sample301"),
    ]:
        done = wod(inst, "deploy", "WKSHP-Sample301", "--student", student, "--dry-run")
        assert done.exit_code == 1 and done.output == f"Error: {reason}\n"
        answer = api.post(
            "/deploy",
            json={"workshop": "WKSHP-Sample301", "student": int(student), "dry_run": True},
        )
        assert answer.status_code == 400 and answer.json() == {"error": reason}
    ok = wod(inst, "deploy", "WKSHP-Sample301", "-s", "8", "--dry-run", "--var", "PASSSTU=x")
    assert ok.exit_code == 0 and "every template renders" in ok.output, ok.output
    unknown = api.post("/deploy", json={"workshop": "WKSHP-Nowhere", "student": 2})
    assert unknown.status_code == 404


def test_deploy_vars_completion(inst: Install, api: httpx.Client) -> None:
    done = wod(inst, "deploy", "WKSHP-Sample101", "-s", "2", "--var", "PASSSTU=pw2", "--json")
    assert done.exit_code == 0, done.output
    report = json.loads(done.output)
    assert report["rendered"] == 2 and report["workshop"] == "WKSHP-Sample101"
    notebook = inst.home(2) / "WKSHP-Sample101" / "1-Sample-Notebook.ipynb"
    st = notebook.stat()
    assert (st.st_uid, st.st_gid) == (inst.accounts.uid(2), inst.accounts.gid(2))
    assert "pw2" in notebook.read_text()

    over_http = api.post(
        "/deploy",
        json={"workshop": "WKSHP-Sample101", "student": 3, "variables": {"PASSSTU": "pw3"}},
    )
    assert over_http.status_code == 200 and over_http.json()["rendered"] == 2
    assert "pw3" in (inst.home(3) / "WKSHP-Sample101" / "1-Sample-Notebook.ipynb").read_text()

    shown = api.get("/vars", params={"workshop": "WKSHP-Sample101", "student": 2}).json()
    assert shown["STDID"] == {"value": "2", "origin": "runtime"}
    assert shown["BRANDING"]["value"] == "WoD sample"
    cli_vars = json.loads(wod(inst, "vars", "WKSHP-Sample101", "-s", "2", "--json").output)
    assert cli_vars == shown

    ratio = api.get("/completion", params={"workshop": "WKSHP-Sample101", "student": 2})
    assert ratio.status_code == 200 and ratio.json()["percent"] == 0
    assert ratio.json()["total"] > 0
    cli_ratio = json.loads(wod(inst, "completion", "WKSHP-Sample101", "-s", "2", "--json").output)
    assert cli_ratio == ratio.json()


def test_accounts_and_seats(inst: Install, api: httpx.Client) -> None:
    inst.accounts.remove(12)
    rows = json.loads(wod(inst, "accounts", "provision", "--min", "10", "--json").output)
    assert [(r["stdid"], r["action"]) for r in rows] == [
        (10, "present"),
        (11, "present"),
        (12, "created"),
    ]
    assert inst.accounts.exists(12) and (inst.home(12) / ".ssh").is_dir()

    kept = inst.home(2) / "work.txt"
    kept.write_text("mine")
    refused = api.post("/accounts/wipe", json={"students": "2-13"})
    assert refused.status_code == 400
    assert refused.json() == {"error": "student 13 is outside this backend's range 1-12"}
    assert kept.exists()
    wiped = api.post("/accounts/wipe", json={"students": "2"})
    assert wiped.status_code == 200 and wiped.json()[0]["action"] == "wiped"
    assert not kept.exists()

    queue = JobQueue(inst.settings.db_path)
    job = queue.submit(Request(Verb.CREATE, 4, 44, "WKSHP-Sample101", "d@example.com"))
    queue.claim("w")
    queue.complete(job)
    seats = api.get("/seats", params={"first": 3, "last": 5}).json()
    assert seats["notes"] == []
    assert [(s["stdid"], s["state"]) for s in seats["seats"]] == [
        (3, "free"),
        (4, "in use"),
        (5, "free"),
    ]
    assert seats["seats"][1]["last_job"]["finished_local"].startswith(time.strftime("%Y-"))


def test_kill_stale_over_http(inst: Install, api: httpx.Client) -> None:
    uid, gid = inst.accounts.uid(5), inst.accounts.gid(5)
    marker = "jupyter-ops-routes-test"
    proc = subprocess.Popen(
        ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups"]
        + [sys.executable, "-c", "import time; time.sleep(120)", marker]
    )
    try:
        deadline = time.monotonic() + 10
        while not any(marker in p.cmdline for p in inst.accounts.processes(5)):
            assert time.monotonic() < deadline, "the test process did not start"
            time.sleep(0.05)
        kept = api.post("/accounts/kill-stale", json={"older_than": "1d", "match": marker})
        assert kept.status_code == 200 and kept.json() == []
        assert proc.poll() is None
        bad = api.post("/accounts/kill-stale", json={"older_than": "soon"})
        assert bad.status_code == 400 and "expected e.g. 90d" in bad.json()["error"]
        killed = api.post("/accounts/kill-stale", json={"older_than": "0s", "match": marker})
        assert [(k["stdid"], k["pid"]) for k in killed.json()] == [(5, proc.pid)]
        assert proc.wait(10) == -9
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_jobs_routes_show_local_times_and_prune(inst: Install, api: httpx.Client) -> None:
    queue = JobQueue(inst.settings.db_path)
    job = queue.submit(Request(Verb.CLEANUP, 2, 9, "WKSHP-Sample101"))
    shown = api.get(f"/jobs/{job}").json()
    assert shown["created_local"][:19] == time.strftime(
        "%Y-%m-%dT%H:%M:%S", time.localtime(shown["created"])
    )
    assert api.get("/jobs", params={"status": "nope"}).status_code == 400
    assert api.post("/jobs/prune", json={"older_than": "soon"}).status_code == 400
    pruned = api.post("/jobs/prune", json={"older_than": "1d"}).json()
    assert pruned["jobs"] == 0 and pruned["before_local"]
    text = wod(inst, "jobs", "show", str(job)).output
    assert f"created  {shown['created_local']}" in text
    queue.reject("http", "unknown verb 'FROB'", b'{"verb": "FROB"}')
    listed = wod(inst, "jobs", "rejections").output.splitlines()
    assert listed[0].split() == ["ID", "AT", "CHANNEL", "REASON"]
    assert listed[1].split()[2:] == ["http", "unknown", "verb", "'FROB'"]
    rejected = json.loads(wod(inst, "jobs", "rejections", "--json").output)
    assert rejected[0]["at_local"] == listed[1].split()[1]
    assert api.get("/rejections").json() == rejected
    listing = json.loads(wod(inst, "jobs", "--json").output)
    assert listing[0]["id"] == job and listing[0]["created_local"] == shown["created_local"]
