"""``wod send --wait`` / ``--http`` against a real ``wod serve`` (real lifecycle, registry)."""

from __future__ import annotations

import json

import httpx
from click.testing import CliRunner

from tests.plugins.install import Backend, Install
from wod.cli import _register, cli

WORKSHOP = "WKSHP-Sample101"
TOKEN = "send-wait-test-token"


def _wod(install: Install, *args: str):
    _register()
    return CliRunner().invoke(cli, ["-c", str(install.config), *args], catch_exceptions=False)


def _started(install_factory, backend_factory) -> Backend:
    return backend_factory(install_factory(http_token=TOKEN))


def test_wait_prints_each_outcome(install_factory, backend_factory) -> None:
    backend = _started(install_factory, backend_factory)
    cust = backend.install.registry.create_customer(WORKSHOP, email="alice@example.com")
    stdid = cust["studentId"] - backend.settings.base_stdid
    port = str(backend.server.smtp_port)

    done = _wod(
        backend.install,
        "send", "CREATE", str(stdid), str(cust["id"]), "alice@example.com",
        "-w", WORKSHOP, "--port", port, "--wait", "--timeout", "60",
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    job = backend.queue.jobs()[0]
    assert f"'CREATE {stdid} {cust['id']} alice@example.com': 250" in done.output
    assert f"job {job.id} 'CREATE {stdid} {cust['id']} alice@example.com' done in " in done.output
    assert (backend.install.home(stdid) / WORKSHOP / "0-ReadMeFirst.ipynb").is_file()

    failed = _wod(
        backend.install,
        "send", "CLEANUP", str(cust["id"]), "--range", "2-3",
        "-w", "WKSHP-Nowhere", "--port", port, "--wait", "--json",
    )  # fmt: skip
    assert failed.exit_code == 1, failed.output
    result = json.loads(failed.output)
    assert [s["ok"] for s in result["sent"]] == [True, True]
    assert sorted(o["subject"] for o in result["outcomes"]) == [
        f"CLEANUP 2 {cust['id']}",
        f"CLEANUP 3 {cust['id']}",
    ]
    for outcome in result["outcomes"]:
        assert outcome["status"] == "failed" and "WKSHP-Nowhere" in outcome["reason"]


def test_http_sends_and_errors_are_readable(install_factory, backend_factory) -> None:
    backend = _started(install_factory, backend_factory)
    url = f"http://127.0.0.1:{backend.server.http_port}"
    cust = backend.install.registry.create_customer(WORKSHOP, email="bob@example.com")
    stdid = cust["studentId"] - backend.settings.base_stdid

    done = _wod(
        backend.install,
        "send", "--http", "--url", url, "CREATE", str(stdid), str(cust["id"]),
        "bob@example.com", "-w", WORKSHOP, "--wait",
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    assert "202 queued as job" in done.output and "' done in " in done.output

    refused = _wod(
        backend.install,
        "send", "--http", "--url", url, "--no-check", "FROB", "1", "2", "-w", WORKSHOP,
    )  # fmt: skip
    assert refused.exit_code == 1
    assert "'FROB 1 2': HTTP 422 Unprocessable Entity: unknown verb 'FROB'" in refused.output
    assert "no detail" not in refused.output

    install = backend.install
    wrong = install.config.read_text().replace(TOKEN, "not-the-token")
    install.config.write_text(wrong)
    denied = _wod(install, "send", "--http", "--url", url, "CLEANUP", "1", "2", "-w", WORKSHOP)
    assert denied.exit_code == 1
    assert "HTTP 401 Unauthorized: missing or wrong token" in denied.output


def test_send_over_the_admin_api(install_factory, backend_factory) -> None:
    backend = _started(install_factory, backend_factory)
    cust = backend.install.registry.create_customer(WORKSHOP, email="carol@example.com")
    stdid = cust["studentId"] - backend.settings.base_stdid
    url = f"http://127.0.0.1:{backend.server.http_port}/api/send"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    body = {
        "verb": "CREATE",
        "args": [str(stdid), str(cust["id"]), "carol@example.com"],
        "workshop": WORKSHOP,
        "port": backend.server.smtp_port,
        "wait": 60,
    }
    assert httpx.post(url, json=body).status_code == 401
    done = httpx.post(url, json=body, headers=auth, timeout=90)
    assert done.status_code == 200, done.text
    (sent,) = done.json()["sent"]
    (outcome,) = done.json()["outcomes"]
    assert sent["ok"] and sent["job"] == outcome["job"]
    assert outcome["status"] == "done" and outcome["subject"].startswith(f"CREATE {stdid} ")
    refused = httpx.post(url, json={**body, "verb": "FROB"}, headers=auth)
    assert refused.status_code == 400
    assert "the server would refuse it: unknown verb 'FROB'" in refused.json()["error"]
    ranged = httpx.post(
        url, json={**body, "verb": "PURGE", "args": ["1"], "students": "2-3"}, headers=auth
    )
    assert ranged.json() == {"error": "PURGE refuses a range: purge one seat at a time"}
