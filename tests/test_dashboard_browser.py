"""The dashboard in a real browser (Debian's chromium through Playwright), logged in through
a real JupyterHub, over ``wod serve`` running the real lifecycle: a CREATE appears and
finishes live, a failed hook is read and retried, the seat grid follows a CLEANUP, and
/metrics counts what was sent.

``WOD_SCREENSHOTS=docs/img`` saves the screenshots the README shows (``make screenshots``).
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

WORKSHOP = "WKSHP-Sample101"
SHOTS = os.environ.get("WOD_SCREENSHOTS", "")

pytestmark = pytest.mark.hub


def shot(page: Any, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)


def start(install_factory, backend_factory, jupyterhub, **values: Any):
    inst = install_factory(
        hub_url=jupyterhub.url,
        hub_token=jupyterhub.token,
        hub_spawn_wait=30.0,
        http_port=jupyterhub.dashboard_port,
        hub_oauth_client_id="service-wod",  # the test hub's service is called "wod"
        **values,
    )
    backend = backend_factory(inst)
    return backend, f"http://127.0.0.1:{backend.server.http_port}"


def hub_login(page: Any, base: str, user: str) -> Any:
    """Open the dashboard, log in on the hub's own login page; the callback's response."""
    page.goto(base + "/")
    page.wait_for_url(re.compile(r"/hub/login"))
    page.fill("#username_input", user)
    page.fill("#password_input", "any")
    try:
        with page.expect_response(lambda r: "/oauth_callback" in r.url) as callback:
            page.click("#login_submit")
    except Exception:
        print("hub login stopped at", page.url, page.inner_text("body")[:1500])
        raise
    return callback.value


def wait_for(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met"
        time.sleep(0.05)


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample of ``name`` with exactly ``labels``."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and line.split(" ")[0] != name:
            continue
        sample, _, value = line.rpartition(" ")
        found = dict(re.findall(r'(\w+)="([^"]*)"', sample))
        if sample.split("{")[0] == name and found == labels:
            return float(value)
    return 0.0


def test_hub_admin_gets_in_and_others_get_403(
    install_factory, backend_factory, jupyterhub, new_page
):
    backend, base = start(install_factory, backend_factory, jupyterhub)

    page = new_page()
    response = hub_login(page, base, jupyterhub.hub_admin)
    assert response.status == 200
    page.wait_for_url(base + "/")
    assert page.locator("#queued").inner_text() == "0"
    assert page.locator(".who").inner_text() == jupyterhub.hub_admin
    # the peers are probed in the background; the panel shows the answers as they come
    page.wait_for_selector("#peer-hub .answer:text-is('yes')")
    page.wait_for_selector("#peer-api-db .answer:text-is('yes')")
    assert page.locator("#peer-ldap .answer").inner_text() == "not configured"
    shot(page, "now")
    page.click("header .logout button")  # and out again: the session cookie is gone
    page.wait_for_selector("#logged-out")
    assert "wod_session" not in [c["name"] for c in page.context.cookies(base)]

    other = new_page()
    refused = hub_login(other, base, "alice")
    assert refused.status == 403
    assert "alice, who is not a hub admin" in other.locator("[role=alert]").inner_text()
    # and she has no session: the dashboard sends her back to log in
    assert other.context.cookies(base) == [] or all(
        c["name"] != "wod_session" for c in other.context.cookies(base)
    )


def test_a_configured_group_gets_in_too(install_factory, backend_factory, jupyterhub, new_page):
    from tests.plugins.hub import ADMIN_GROUP

    backend, base = start(
        install_factory, backend_factory, jupyterhub, dashboard_admin_group=ADMIN_GROUP
    )
    member = new_page()
    assert hub_login(member, base, "bob").status == 200  # in the group, not a hub admin
    member.wait_for_url(base + "/")
    assert member.locator(".who").inner_text() == "bob"
    assert hub_login(new_page(), base, "alice").status == 403  # in no group


def test_create_shows_live_cleanup_frees_the_seat_and_metrics_count_it(
    install_factory, backend_factory, jupyterhub, new_page
):
    backend, base = start(install_factory, backend_factory, jupyterhub)
    page = new_page()
    hub_login(page, base, jupyterhub.hub_admin)
    page.wait_for_url(base + "/")

    page.goto(base + "/jobs")
    assert "no job matches" in page.locator("#joblist").inner_text()
    cust, stdid = backend.customer(WORKSHOP)
    backend.send(f"CREATE {stdid} {cust['id']} alice@example.com", WORKSHOP)
    row = page.locator("#joblist tr[data-job]")
    row.first.locator(".badge.done").wait_for(timeout=150_000)  # no reload: polled live
    assert page.url == base + "/jobs"
    assert "CREATE" in row.first.inner_text() and WORKSHOP in row.first.inner_text()
    shot(page, "jobs")

    page.goto(base + "/seats")
    seat = page.locator(f"#seat-{stdid}")
    assert seat.get_attribute("data-state") == "active"
    assert WORKSHOP in seat.inner_text() and f"customer {cust['id']}" in seat.inner_text()
    shot(page, "seats")

    backend.send(f"CLEANUP {stdid} {cust['id']}", WORKSHOP)
    page.wait_for_selector(f"#seat-{stdid}[data-state=free]", timeout=150_000)
    assert page.url == base + "/seats"

    page.goto(f"{base}/seats/{stdid}")
    history = page.locator("table.jobs").inner_text()
    assert "CLEANUP" in history and "CREATE" in history

    # A request the parser refuses, then the metrics of everything sent.
    backend.send(f"FROBNICATE {stdid} {cust['id']} alice@example.com", WORKSHOP)
    wait_for(lambda: backend.queue.rejections(limit=1))
    text = httpx.get(base + "/metrics", timeout=10).text
    assert (
        metric(
            text,
            "wod_intake_requests_total",
            channel="smtp",
            verb="CREATE",
            outcome="accepted",
            reason="",
        )
        == 1
    )
    assert (
        metric(
            text,
            "wod_intake_requests_total",
            channel="smtp",
            verb="CLEANUP",
            outcome="accepted",
            reason="",
        )
        == 1
    )
    rejected = [
        line
        for line in text.splitlines()
        if line.startswith("wod_intake_requests_total{") and 'outcome="rejected"' in line
    ]
    assert len(rejected) == 1 and rejected[0].endswith(" 1.0"), rejected
    assert metric(text, "wod_jobs_total", verb="CREATE", outcome="done") == 1
    assert metric(text, "wod_jobs_total", verb="CLEANUP", outcome="done") == 1
    assert metric(text, "wod_step_seconds_count", step="deploy") == 1
    assert metric(text, "wod_jobs", status="done") == 2
    assert metric(text, "wod_queue_oldest_waiting_seconds") == 0
    assert metric(text, "wod_peer_request_seconds_count", peer="apidb", outcome="ok") >= 2
    assert metric(text, "wod_peer_request_seconds_count", peer="hub", outcome="ok") >= 2
    assert metric(text, "wod_hook_failures_total", kind="create") == 0


FAILING_HOOK = """#!/bin/sh
# fails while the marker exists (the "appliance" is down)
if [ -e "{marker}" ]; then
    echo "lab appliance for student${{stdid}} is not reachable" >&2
    exit 3
fi
echo "appliance ready for student${{stdid}}"
"""


def test_failed_hook_read_and_retried_from_the_job_page(
    install_factory, backend_factory, jupyterhub, new_page, tmp_path
):
    marker = tmp_path / "appliance-down"
    marker.touch()
    private = tmp_path / "private-scripts"
    private.mkdir()
    hook = private / f"create-{WORKSHOP}.sh"
    hook.write_text(FAILING_HOOK.format(marker=marker))
    hook.chmod(0o755)
    backend, base = start(
        install_factory, backend_factory, jupyterhub, private_scripts_dir=str(private)
    )
    cust, stdid = backend.customer(WORKSHOP)
    failed = backend.run(f"CREATE {stdid} {cust['id']} alice@example.com", WORKSHOP)
    assert failed.status == "failed"

    page = new_page()
    hub_login(page, base, jupyterhub.hub_admin)
    page.wait_for_url(base + "/")
    assert page.locator("#failed24").inner_text() == "1"
    page.goto(base + "/jobs?status=failed")
    page.click(f"#joblist a[href='/jobs/{failed.id}']")
    page.wait_for_url(f"{base}/jobs/{failed.id}")
    assert "exited with status 3" in page.locator("#reason").inner_text()
    assert "create hook failed" in page.locator("#remedy").inner_text()
    outputs = page.locator("pre.output").all_inner_texts()
    assert any(f"appliance for student{stdid} is not reachable" in o for o in outputs)
    assert f"CREATE {stdid} {cust['id']}" in page.locator("#raw").text_content()  # as mailed
    shot(page, "job-failed")

    page.goto(base + "/workshops")
    row = page.locator(f"#ws-{WORKSHOP}").inner_text()
    assert "exited with status 3" in row and "all render (" in row  # last failure; templates ok
    shot(page, "workshops")
    page.goto(f"{base}/jobs/{failed.id}")

    marker.unlink()  # the admin repairs the appliance, then presses Retry
    page.click("#retry")
    page.wait_for_selector("#job-status:text('done')", timeout=150_000)
    assert backend.queue.job(failed.id).status == "done"
    page.wait_for_selector("h2:text('Attempt 2')")

    text = httpx.get(base + "/metrics", timeout=10).text
    assert metric(text, "wod_hook_failures_total", kind="create") == 1
    assert metric(text, "wod_jobs_total", verb="CREATE", outcome="failed") == 1
    assert metric(text, "wod_jobs_total", verb="CREATE", outcome="done") == 1

    page.goto(base + "/workshops")  # the failure is gone, the seat is in use
    cells = page.locator(f"#ws-{WORKSHOP} td").all_inner_texts()
    assert cells[3] == "1" and cells[5] == "none" and cells[6].startswith("all render")
