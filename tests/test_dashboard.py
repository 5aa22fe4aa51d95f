"""The dashboard over HTTP on a real port: token login and its cookie, CSRF on Retry and
Cancel, job filters and keyset pages, the OpenAPI pages off by default, every asset served
by us, and the intake counters on /metrics.  (The browser and hub login:
``test_dashboard_browser.py``.)"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.plugins.paths import SAMPLES, serve_in_thread
from wod.queue import JobQueue
from wod.requests import parse_fields
from wod.settings import Settings
from wod.web.app import create_app

TOKEN = "dash-token-5f1c"


def make_settings(tmp_path: Path, **values: Any) -> Settings:
    base: dict[str, Any] = {
        "state_dir": tmp_path / "state",
        "students_dir": tmp_path / "homes",
        "notebooks_dir": SAMPLES,
        "accounts": "directory",
        "hub_url": "",
        "http_token": TOKEN,
        "demo": True,
        "user_min": 1,
        "user_max": 20,
    }
    base.update(values)
    return Settings(**base)


class Site:
    def __init__(self, url: str, queue: JobQueue, settings: Settings) -> None:
        self.url = url
        self.queue = queue
        self.settings = settings

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10, follow_redirects=False)

    def login(self) -> tuple[httpx.Client, str]:
        """A logged-in client and its CSRF token (read from a page, as a browser does)."""
        client = self.client()
        answer = client.post("/login", data={"token": TOKEN})
        assert answer.status_code == 303, answer.text
        page = client.get("/")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf, page.text[:500]
        return client, csrf.group(1)

    def submit(self, subject: str, workshop: str = "WKSHP-Sample101", channel: str = "http"):
        request = parse_fields(subject, workshop, self.settings, channel=channel)
        return self.queue.submit(request)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    settings = make_settings(tmp_path)
    queue = JobQueue(settings.db_path)
    with serve_in_thread(create_app(settings, queue), "dashboard") as port:
        yield Site(f"http://127.0.0.1:{port}", queue, settings)


def test_pages_need_a_login_and_the_token_form_sets_a_strict_httponly_cookie(site):
    client = site.client()
    for path in ("/", "/jobs", "/seats", "/workshops", "/rejections", "/outbox", "/jobs/1"):
        answer = client.get(path)
        assert answer.status_code == 303 and answer.headers["location"] == "/login", path
    assert client.post("/login", data={"token": "wrong"}).status_code == 403
    assert "wod_session" not in client.cookies

    answer = client.post("/login", data={"token": TOKEN})
    assert answer.status_code == 303
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    for path in ("/", "/jobs", "/seats", "/workshops", "/rejections", "/outbox"):
        page = client.get(path)
        assert page.status_code == 200, path
        assert TOKEN not in page.text
        # every script and style sheet is ours: nothing loaded from another site
        for ref in re.findall(r'(?:src|href)="([^"]+)"', page.text):
            assert not re.match(r"(https?:)?//", ref), (path, ref)


def test_logout_needs_the_csrf_token_and_ends_the_session(site):
    client, csrf = site.login()
    assert client.post("/logout").status_code == 303  # no token: still logged in
    assert client.get("/jobs").status_code == 200
    out = client.post("/logout", data={"csrf": csrf})
    assert out.status_code == 200 and "logged out" in out.text
    assert client.get("/jobs").status_code == 303  # back to /login


def test_a_forged_cookie_is_not_a_session(site):
    client = site.client()
    client.cookies.set("wod_session", "eyJ1IjoiYWRtaW4ifQ.0000")
    assert client.get("/").status_code == 303


def test_cancel_and_retry_need_the_csrf_token(site):
    broken = site.submit("CREATE 3 42 a@b.c")
    waiting = site.submit("CREATE 4 43 a@b.c")
    assert site.queue.claim("t").id == broken
    site.queue.fail(broken, "stopped for the test")
    client, csrf = site.login()

    # without / with a wrong token: refused, nothing changed
    assert client.post(f"/jobs/{waiting}/cancel").status_code == 403
    assert client.post(f"/jobs/{waiting}/cancel", data={"csrf": "x" * 32}).status_code == 403
    assert site.queue.job(waiting).status == "queued"
    other, _ = site.login()  # another session's token is not this one's
    assert other.post(f"/jobs/{waiting}/cancel", data={"csrf": csrf}).status_code == 403

    answer = client.post(f"/jobs/{waiting}/cancel", data={"csrf": csrf})
    assert answer.status_code == 303 and answer.headers["location"] == f"/jobs/{waiting}"
    job = site.queue.job(waiting)
    assert job.status == "cancelled" and "admin (dashboard)" in job.reason  # kept on record
    assert site.queue.claim("t") is None  # and never runs
    page = client.get(f"/jobs/{waiting}").text
    assert "cancelled" in page and 'id="cancel"' not in page and 'id="retry"' not in page

    # a cancelled job cannot be cancelled again: a one-line reason, 409
    again = client.post(f"/jobs/{waiting}/cancel", data={"csrf": csrf})
    assert again.status_code == 409 and "only a queued job can be cancelled" in again.text

    page = client.get(f"/jobs/{broken}").text
    assert 'id="retry"' in page and "stopped for the test" in page
    assert client.post(f"/jobs/{broken}/retry", data={"csrf": csrf}).status_code == 303
    assert site.queue.job(broken).status == "queued"


def test_job_list_filters_and_keyset_pages(site):
    ids = []
    for n in range(1, 121):
        verb = "CREATE" if n % 3 else "CLEANUP"
        workshop = "WKSHP-Sample101" if n % 2 else "WKSHP-Sample201"
        email = f" user{n}@example.com" if verb == "CREATE" else ""
        ids.append(site.submit(f"{verb} {n % 20 + 1} {1000 + n}{email}", workshop))
    client, _ = site.login()

    def listed(query: str) -> list[int]:
        page = client.get("/jobs" + query)
        assert page.status_code == 200, page.text[:300]
        return [int(i) for i in re.findall(r'data-job="(\d+)"', page.text)]

    first = listed("")
    assert first == sorted(ids, reverse=True)[:50]  # newest first, one page
    second = listed(f"?before={first[-1]}")
    assert second == sorted(ids, reverse=True)[50:100]
    third = listed(f"?before={second[-1]}")
    assert third == sorted(ids, reverse=True)[100:]
    assert 'rel="next"' not in client.get(f"/jobs?before={second[-1]}").text

    cleanup = listed("?verb=cleanup&workshop=WKSHP-Sample201")
    assert cleanup and all((n % 3 == 0 and n % 2 == 0) for n in (ids.index(i) + 1 for i in cleanup))
    seat = listed("?seat=5")
    assert seat == [i for i in sorted(ids, reverse=True) if (ids.index(i) + 1) % 20 + 1 == 5]
    assert listed("?text=user77%40example") == [ids[76]]
    assert listed("?text=100%25") == []  # % is literal text, not a wildcard

    bad = client.get("/jobs?status=exploded")
    assert bad.status_code == 400 and "status must be one of" in bad.text
    bad = client.get("/jobs?seat=abc")
    assert bad.status_code == 400 and "seat must be a student number" in bad.text


def test_openapi_pages_are_off_unless_enabled(tmp_path):
    settings = make_settings(tmp_path)
    queue = JobQueue(settings.db_path)
    with serve_in_thread(create_app(settings, queue), "dash") as port:
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(base + "/docs").status_code == 404
        assert httpx.get(base + "/redoc").status_code == 404
    on = make_settings(tmp_path, api_docs=True)
    with serve_in_thread(create_app(on, JobQueue(on.db_path)), "dash") as port:
        assert httpx.get(f"http://127.0.0.1:{port}/docs").status_code == 200


def test_hub_login_refuses_a_callback_it_did_not_start(tmp_path):
    settings = make_settings(
        tmp_path, hub_url="http://127.0.0.1:9", hub_token="t" * 32, dashboard_login="hub"
    )
    with serve_in_thread(create_app(settings, JobQueue(settings.db_path)), "dash") as port:
        base = f"http://127.0.0.1:{port}"
        start = httpx.get(base + "/login")
        assert start.status_code == 303
        target = start.headers["location"]
        assert target.startswith("http://127.0.0.1:9/hub/api/oauth2/authorize?")
        assert "client_id=service-wod-backend&" in target and "state=" in target
        forged = httpx.get(base + "/oauth_callback?code=abc&state=forged")
        assert forged.status_code == 400 and "log in again" in forged.text
        assert "wod_session" not in forged.cookies


def counter(channel: str, outcome: str, reason: str, verb: str) -> str:
    """A ``wod_intake_requests_total`` sample's name and labels, as /metrics prints them."""
    labels = f'channel="{channel}",outcome="{outcome}",reason="{reason}",verb="{verb}"'
    return "wod_intake_requests_total{" + labels + "}"


def intake_lines(text: str) -> dict[str, float]:
    return {
        ln.rsplit(" ", 1)[0]: float(ln.rsplit(" ", 1)[1])
        for ln in text.splitlines()
        if ln.startswith("wod_intake_requests_total")
    }


def test_intake_counters_on_metrics_by_channel_verb_and_reason(site):
    site.submit("CREATE 3 42 a@b.c", channel="smtp")
    site.submit("CREATE 4 43 a@b.c", channel="smtp")
    site.submit("CLEANUP 3 42", channel="pipe")
    site.queue.reject("smtp", "sender 'x@y' is not allowed")
    site.queue.reject("http", "unknown verb 'FROB'")
    text = httpx.get(site.url + "/metrics").text
    lines = intake_lines(text)
    assert lines == {
        counter("http", "rejected", "verb", "unknown"): 1,
        counter("pipe", "accepted", "", "CLEANUP"): 1,
        counter("smtp", "accepted", "", "CREATE"): 2,
        counter("smtp", "rejected", "sender", "unknown"): 1,
    }
    assert "wod_queue_oldest_waiting_seconds " in text
    # the counters survive pruning the jobs and rejections (a counter never goes down)
    while (job := site.queue.claim("t")) is not None:
        site.queue.complete(job.id)
    assert site.queue.prune(before=10**12) == (3, 2)
    assert intake_lines(httpx.get(site.url + "/metrics").text) == lines


def test_a_refused_request_is_counted_under_the_verb_it_names(site):
    """A mail refused for its sender still said CREATE: the counters say so too."""
    site.queue.reject(
        "smtp", "sender 'x@y' is not allowed", b"Subject: create 3 42 a@b.c\r\n\r\nW\r\n"
    )
    site.queue.reject("http", "student 0 is out of range", b'{"verb": "PURGE", "stdid": 0}')
    site.queue.reject("pipe", "unknown verb 'FROB'", b"Subject: FROB 1 2\r\n\r\n")
    site.queue.reject("smtp", "no Subject", b"\xff\xfe garbage")
    lines = intake_lines(httpx.get(site.url + "/metrics").text)
    assert lines == {
        counter("http", "rejected", "student", "PURGE"): 1,
        counter("pipe", "rejected", "verb", "unknown"): 1,
        counter("smtp", "rejected", "malformed", "unknown"): 1,
        counter("smtp", "rejected", "sender", "CREATE"): 1,
    }


def test_seat_grid_folds_only_recent_jobs_yet_agrees_with_the_full_fold(site):
    """The grid reads each seat back to its last finished CREATE/RESET/PURGE; over a
    random history it must say exactly what ``wod seats`` says."""
    import random

    from wod.ops.seatmap import grid, grid_state
    from wod.ops.seats import seats
    from wod.services.accounts import make_accounts

    rng = random.Random(3)
    # seat 7: one CREATE then a long run of CLEANUPs (the grid reads back several pages)
    for subject in ["CREATE 7 900 c@d.e"] + [f"CLEANUP 7 {901 + k}" for k in range(30)]:
        job_id = site.submit(subject)
        assert site.queue.claim("t").id == job_id
        site.queue.complete(job_id)
    for n in range(300):
        stdid = rng.randint(1, 6)
        verb = rng.choice(("CREATE", "CREATE", "CLEANUP", "RESET", "PURGE"))
        subject = f"{verb} {stdid} {n + 1}" + (" a@b.c" if verb == "CREATE" else "")
        if verb == "RESET" and rng.random() < 0.3:
            subject = f"RESET {stdid},{min(stdid + 2, 20)} {n + 1}"
        job_id = site.submit(subject, rng.choice(("WKSHP-Sample101", "WKSHP-Sample201")))
        if n >= 290:
            continue  # the last ones stay queued
        claimed = site.queue.claim("t")
        assert claimed is not None and claimed.id == job_id
        if rng.random() < 0.2:
            site.queue.fail(job_id, "failed for the test")
        else:
            site.queue.complete(job_id)
    accounts = make_accounts(site.settings)
    full = {s.stdid: s for s in seats(site.settings, site.queue, accounts)}
    cells = grid(site.settings, site.queue, accounts)
    assert len(cells) == 20
    for cell in cells:
        seat = full[cell.stdid]
        assert (cell.detail, cell.workshop, cell.customer) == (
            seat.state,
            seat.workshop,
            seat.customer,
        ), cell.stdid
        assert cell.state == grid_state(seat)
        assert (cell.last_job and cell.last_job.id) == (seat.last_job and seat.last_job.id)


def test_grafana_dashboard_uses_only_metrics_the_backend_exposes(tmp_path):
    """Every series the contrib/ Grafana dashboard queries is a family /metrics has."""
    import json

    from prometheus_client import CollectorRegistry

    from wod.metrics import PeerMetrics
    from wod.worker import WorkerMetrics

    settings = make_settings(tmp_path)
    registry = CollectorRegistry()
    WorkerMetrics(registry)
    PeerMetrics(registry)
    app = create_app(settings, JobQueue(settings.db_path), registry=registry)
    exposed = set()
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}
    for family in app.state.registry.collect():  # series names, with or without samples yet
        exposed.add(family.name)
        exposed.update(family.name + end for end in suffixes.get(family.type, ()))
    board = json.loads((Path(__file__).parents[1] / "contrib/grafana-wod-backend.json").read_text())
    used = {
        name
        for panel in board["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\b(wod_[a-z_]+)", target["expr"])
    }
    assert used and used <= exposed, sorted(used - exposed)


def test_a_text_search_reads_a_window_of_jobs_per_page_and_goes_on_below_it(site):
    from wod.ops.joblist import JobFilter, search_jobs

    ids = [site.submit(f"CREATE {n % 20 + 1} {n} user{n}@example.com") for n in range(1, 121)]
    where = JobFilter(text="user3@example")  # only the third job matches
    pages, before = [], None
    while True:
        page = search_jobs(site.queue, where, before=before, window=50)
        pages.append(page)
        if page.next_before is None:
            break
        before = page.next_before
    assert [p.searched for p in pages] == [(71, 120), (21, 70), (1, 20)]
    assert [[j.id for j in p.jobs] for p in pages] == [[], [], [ids[2]]]
    # without text the pages are plain keyset pages over everything
    assert search_jobs(site.queue, JobFilter(verb="CREATE"), window=50).searched is None


def test_dashboard_served_under_the_path_of_dashboard_url(tmp_path):
    settings = make_settings(
        tmp_path, dashboard_url="https://hub.example.com/services/wod-backend/"
    )
    with serve_in_thread(create_app(settings, JobQueue(settings.db_path)), "dash") as port:
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", follow_redirects=False)
        prefix = "/services/wod-backend"
        assert client.get(prefix + "/").headers["location"] == prefix + "/login"
        login = client.post(prefix + "/login", data={"token": TOKEN})
        cookie = login.headers["set-cookie"].lower()
        assert f"path={prefix}" in cookie and "secure" in cookie  # https dashboard_url
        assert client.get(prefix + "/static/htmx.min.js").status_code == 200
        assert client.get("/").status_code == 404  # nothing of it at the root
        assert client.get("/healthz").status_code == 200  # the API stays where it was


def test_workshops_page_shows_a_template_that_does_not_render(tmp_path):
    import shutil

    tree = tmp_path / "notebooks"
    for name in ("WKSHP-Sample101", "WKSHP-Sample201"):
        shutil.copytree(SAMPLES / name, tree / name)
    notebook = tree / "WKSHP-Sample101" / "1-Sample-Notebook.ipynb"
    good = notebook.read_text()
    notebook.write_text(good.replace("{{", "{{ no_such_variable }} {{", 1))
    settings = make_settings(tmp_path, notebooks_dir=tree, ansible_dir=SAMPLES.parent / "ansible")

    def rows(client: httpx.Client) -> dict[str, str]:
        page = client.get("/workshops").text
        return dict(re.findall(r'<tr id="ws-([\w-]+)">(.*?)</tr>', page, re.S))

    with serve_in_thread(create_app(settings, JobQueue(settings.db_path)), "dash") as port:
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", follow_redirects=False)
        assert client.post("/login", data={"token": TOKEN}).status_code == 303
        found = rows(client)
        assert "BROKEN" in found["WKSHP-Sample101"]
        assert "no_such_variable" in found["WKSHP-Sample101"]
        assert "all render (" in found["WKSHP-Sample201"]
        # repaired: the cached result is dropped because the file changed
        notebook.write_text(good)
        later = notebook.stat().st_mtime + 5
        os.utime(notebook, (later, later))
        assert "all render (" in rows(client)["WKSHP-Sample101"]


def test_a_seat_the_watcher_acted_on_is_quarantined_until_its_next_job(site):
    """The grid and the seat page read the watcher's record: a seat killed in shows as
    quarantined (on the page too) until a job of the seat, here its PURGE, finishes."""
    import time

    from wod.ops.watch import Action, ActionLog

    job_id = site.submit("CREATE 4 70 p@q.r")
    site.queue.claim("t")
    site.queue.complete(job_id)
    client, _ = site.login()
    assert 'data-state="quarantined"' not in client.get("/seats").text
    ActionLog.from_settings(site.settings).append(
        Action(time.time(), "kill", "blacklist", site.settings.account(4), 4, 4242, "ethminer")
    )
    grid = client.get("/seats").text
    assert grid.count('data-state="quarantined"') == 1, grid
    page = client.get("/seats/4").text
    assert "kill by the abuse watcher (blacklist): ethminer" in page
    purge = site.submit("PURGE 4 70")
    site.queue.claim("t")
    site.queue.complete(purge)
    assert 'data-state="quarantined"' not in client.get("/seats").text


def test_workshops_page_shows_the_range_deploy_checks(tmp_path):
    """The catalog's range is the one ``wod deploy`` enforces: ``[true, 3]`` is no range for
    either (YAML's true is no student number), ``[1, 3]`` is one for both."""
    import shutil

    from wod.content.service import Content
    from wod.ops.content import check_seat
    from wod.ops.workshops import RenderChecks, catalog

    tree = tmp_path / "notebooks"
    for name, rng in (("WKSHP-Sample101", "[true, 3]"), ("WKSHP-Sample201", "[1, 3]")):
        shutil.copytree(SAMPLES / name, tree / name)
        meta = tree / name / "wod.yml"
        meta.write_text(re.sub(r"(?m)^range: .*$", f"range: {rng}", meta.read_text()))
    settings = make_settings(tmp_path, notebooks_dir=tree, ansible_dir=SAMPLES.parent / "ansible")
    rows = {
        r.name: r for r in catalog(settings, JobQueue(settings.db_path), [], RenderChecks(settings))
    }
    assert (rows["WKSHP-Sample101"].range_min, rows["WKSHP-Sample101"].range_max) == (None, None)
    assert (rows["WKSHP-Sample201"].range_min, rows["WKSHP-Sample201"].range_max) == (1, 3)
    content = Content(settings)
    check_seat(settings, content, "WKSHP-Sample101", 5)  # no range: seat 5 is fine
    with pytest.raises(Exception, match="outside the range 1-3 of WKSHP-Sample201"):
        check_seat(settings, content, "WKSHP-Sample201", 5)
