"""The admin dashboard at ``/``: server-rendered pages over the operations layer.

Pages: Now (queue, failures, peers, disks), Jobs (filters, keyset pages, a job page with
its attempts, steps, hook output and remedy; Retry and Cancel), Seats (a grid coloured by
state, a seat's history), Workshops (catalog, activity, render check), Rejections and the
Outbox.  Live parts are fragments the vendored htmx (``static/htmx.min.js``) re-fetches
every second (``hx-trigger="every 1s"``), so a change shows within a second; every asset
is served from ``static/``, nothing from outside.

Each handler parses its input, calls one ``wod.ops`` function and renders the result; it
holds no query or work of its own.  Login and sessions: :mod:`wod.web.auth`.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

from wod.ops import joblist, outbox, seatmap, status, workshops
from wod.ops import jobs as jobops
from wod.ops.common import OpsError
from wod.settings import Settings
from wod.web.auth import (
    SESSION_COOKIE,
    SESSION_SECONDS,
    STATE_COOKIE,
    STATE_SECONDS,
    Auth,
    LoginRefused,
    Session,
    dashboard_prefix,
)

if TYPE_CHECKING:
    from wod.queue import JobQueue

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
LIVE = 1  # seconds between refreshes of a live fragment
MAX_FORM = 8192


async def form_fields(request: Request) -> dict[str, str]:
    """The fields of a small url-encoded form (the dashboard posts nothing else)."""
    body = await request.body()
    if len(body) > MAX_FORM:
        return {}
    try:
        pairs = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=20)
    except (UnicodeDecodeError, ValueError):
        return {}
    return {k: v[0] for k, v in pairs.items()}


# -- formatting helpers (template filters) ------------------------------------------------
def when(ts: float | None) -> str:
    if not ts:
        return "—"
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def size(n: int | float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def make_environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(when=when, duration=duration, size=size)
    env.globals.update(students=jobops.students)
    return env


class Dashboard:
    """The dashboard's state: settings, queue, login, cached checks."""

    def __init__(self, settings: Settings, queue: JobQueue, auth: Auth | None = None) -> None:
        self.settings = settings
        self.queue = queue
        self.auth = auth or Auth(settings)
        self.prefix = dashboard_prefix(settings)
        self.env = make_environment()
        self.probes = status.Probes(settings)
        self.checks = workshops.RenderChecks(settings)

    # -- rendering ----------------------------------------------------------------------
    def page(
        self,
        name: str,
        request: Request,
        session: Session | None = None,
        status_code: int = 200,
        **values: Any,
    ) -> HTMLResponse:
        started = time.perf_counter()
        html = self.env.get_template(name).render(
            base=self.prefix,
            session=session,
            live=LIVE,
            path=request.url.path,
            settings=self.settings,
            **values,
        )
        response = HTMLResponse(html, status_code=status_code)
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; style-src 'self'; script-src 'self'; "
            "img-src 'self' data:; frame-ancestors 'none'; form-action 'self'"
        )
        response.headers["Server-Timing"] = (
            f"render;dur={(time.perf_counter() - started) * 1000:.1f}"
        )
        return response

    def cookie(self, response: Response, name: str, value: str, max_age: int) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path=self.prefix or "/",
            httponly=True,
            samesite="strict" if name == SESSION_COOKIE else "lax",
            secure=self.auth.secure,
        )

    def session(self, request: Request) -> Session | None:
        return self.auth.session(request.cookies.get(SESSION_COOKIE))

    def to_login(self, request: Request) -> Response:
        if request.headers.get("hx-request"):
            return Response(status_code=401, headers={"HX-Redirect": f"{self.prefix}/login"})
        return RedirectResponse(f"{self.prefix}/login", status_code=303)


def make_dashboard(settings: Settings, queue: JobQueue, *, auth: Auth | None = None) -> APIRouter:
    """The dashboard's routes (mounted at the path of ``dashboard_url``)."""
    dash = Dashboard(settings, queue, auth)
    router = APIRouter(prefix=dash.prefix, include_in_schema=False)

    # -- login --------------------------------------------------------------------------
    @router.get("/login")
    def login(request: Request) -> Response:
        if dash.auth.mode == "hub":
            url, state = dash.auth.authorize_url()
            response = RedirectResponse(url, status_code=303)
            dash.cookie(response, STATE_COOKIE, state, STATE_SECONDS)
            return response
        return dash.page("login.html", request, error="", configured=bool(settings.http_token))

    @router.post("/login")
    async def login_token(request: Request) -> Response:
        token = (await form_fields(request)).get("token", "")
        if dash.auth.mode != "token":
            return RedirectResponse(f"{dash.prefix}/login", status_code=303)
        if not dash.auth.token_ok(token):
            log.warning("dashboard login with a wrong token")
            return dash.page(
                "login.html",
                request,
                status_code=403,
                error="wrong token",
                configured=bool(settings.http_token),
            )
        _, value = dash.auth.new_session("admin")
        response = RedirectResponse(f"{dash.prefix}/", status_code=303)
        dash.cookie(response, SESSION_COOKIE, value, SESSION_SECONDS)
        return response

    @router.get("/oauth_callback")
    async def oauth_callback(
        request: Request, code: str = "", state: str = "", error: str = ""
    ) -> Response:
        try:
            if error or not code:
                raise LoginRefused("JupyterHub did not grant the login", 400)
            dash.auth.check_state(request.cookies.get(STATE_COOKIE), state)
            user = await run_in_threadpool(dash.auth.hub_user, code)
        except LoginRefused as exc:
            return dash.page("refused.html", request, status_code=exc.status, reason=exc.reason)
        _, value = dash.auth.new_session(user)
        # A page, not a redirect: the SameSite=Strict cookie set on a navigation that began
        # on the hub is sent from the next, same-site navigation.
        response = dash.page("welcome.html", request, user=user)
        dash.cookie(response, SESSION_COOKIE, value, SESSION_SECONDS)
        response.delete_cookie(STATE_COOKIE, path=dash.prefix or "/")
        return response

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        csrf = (await form_fields(request)).get("csrf", "")
        session = dash.session(request)
        if session is None or not dash.auth.csrf_ok(session, csrf):
            return RedirectResponse(f"{dash.prefix}/", status_code=303)
        # A page, not a redirect to /login: with the hub, that would go on to the hub's
        # authorize page, which the form-action policy forbids after a form.
        response = dash.page("logged_out.html", request)
        response.delete_cookie(SESSION_COOKIE, path=dash.prefix or "/")
        return response

    # -- Now ----------------------------------------------------------------------------
    @router.get("/")
    def now_page(request: Request) -> Response:
        session = dash.session(request)
        if session is None:
            return dash.to_login(request)
        now = status.now(settings, queue, dash.probes)
        fragment = "_now.html" if request.headers.get("hx-request") else "now.html"
        return dash.page(fragment, request, session, now=now)

    # -- jobs ---------------------------------------------------------------------------
    @router.get("/jobs")
    def jobs_page(
        request: Request,
        status: str = "",
        verb: str = "",
        seat: str = "",
        workshop: str = "",
        text: str = "",
        before: int | None = None,
    ) -> Response:
        session = dash.session(request)
        if session is None:
            return dash.to_login(request)
        where = joblist.JobFilter(status, verb, seat, workshop, text)
        error = ""
        try:
            page = joblist.search_jobs(queue, where, before=before)
        except OpsError as exc:
            error, page = exc.reason, joblist.JobPage([], None)
        query = {k: v for k, v in vars(where).items() if v}
        fragment = "_jobs.html" if request.headers.get("hx-request") else "jobs.html"
        return dash.page(
            fragment,
            request,
            session,
            status_code=400 if error else 200,
            page=page,
            where=where,
            error=error,
            before=before,
            query=urlencode(query),
            next_query=urlencode({**query, "before": page.next_before}),
            statuses=joblist.STATUSES,
            verbs=joblist.VERBS,
        )

    @router.get("/jobs/{job_id}")
    def job_page(request: Request, job_id: int) -> Response:
        session = dash.session(request)
        if session is None:
            return dash.to_login(request)
        try:
            detail = joblist.job_detail(queue, job_id)
        except OpsError as exc:
            return dash.page("error.html", request, session, status_code=exc.status, reason=exc)
        fragment = "_job.html" if request.headers.get("hx-request") else "job.html"
        return dash.page(
            fragment,
            request,
            session,
            job=detail.job,
            attempts=detail.attempts,
            raw=detail.raw,
            remedy_text=detail.remedy,
        )

    async def act(request: Request, job_id: int, action: str) -> Response:
        session = dash.session(request)
        if session is None:
            return Response("not logged in", status_code=403)
        form = await form_fields(request)
        if not dash.auth.csrf_ok(session, form.get("csrf", "")):
            log.warning("dashboard %s of job %s refused: bad CSRF token", action, job_id)
            return Response("bad or missing CSRF token; reload the page", status_code=403)
        try:
            if action == "retry":
                await run_in_threadpool(jobops.retry_job, queue, job_id)
            else:
                await run_in_threadpool(
                    joblist.cancel_job, queue, job_id, by=f"{session.user} (dashboard)"
                )
        except OpsError as exc:
            return dash.page("error.html", request, session, status_code=exc.status, reason=exc)
        log.info("job %s: %s by %s from the dashboard", job_id, action, session.user)
        return RedirectResponse(f"{dash.prefix}/jobs/{job_id}", status_code=303)

    @router.post("/jobs/{job_id}/retry")
    async def retry(request: Request, job_id: int) -> Response:
        return await act(request, job_id, "retry")

    @router.post("/jobs/{job_id}/cancel")
    async def cancel(request: Request, job_id: int) -> Response:
        return await act(request, job_id, "cancel")

    # -- seats --------------------------------------------------------------------------
    @router.get("/seats")
    def seats_page(request: Request) -> Response:
        session = dash.session(request)
        if session is None:
            return dash.to_login(request)
        cells = seatmap.seat_grid(settings, queue)
        fragment = "_grid.html" if request.headers.get("hx-request") else "seats.html"
        return dash.page(fragment, request, session, cells=cells, states=seatmap.STATES)

    @router.get("/seats/{stdid}")
    def seat_page(request: Request, stdid: int) -> Response:
        session = dash.session(request)
        if session is None:
            return dash.to_login(request)
        try:
            seat = seatmap.seat_page(settings, queue, stdid)
        except OpsError as exc:
            return dash.page("error.html", request, session, status_code=exc.status, reason=exc)
        return dash.page("seat.html", request, session, seat=seat)

    # -- workshops, rejections, outbox --------------------------------------------------
    @router.get("/workshops")
    def workshops_page(request: Request) -> Response:
        session = dash.session(request)
        if session is None:
            return dash.to_login(request)
        rows = workshops.workshop_rows(settings, queue, dash.checks)
        return dash.page("workshops.html", request, session, rows=rows)

    @router.get("/rejections")
    def rejections_page(request: Request) -> Response:
        session = dash.session(request)
        if session is None:
            return dash.to_login(request)
        rows = jobops.list_rejections(queue, limit=200)
        return dash.page("rejections.html", request, session, rows=rows)

    @router.get("/outbox")
    def outbox_page(request: Request) -> Response:
        session = dash.session(request)
        if session is None:
            return dash.to_login(request)
        rows = outbox.kept_mail(settings)
        return dash.page("outbox.html", request, session, rows=rows, smarthost=settings.smarthost)

    return router


def mount_static(app: Any, settings: Settings) -> None:
    """Serve ``static/`` (htmx, the style sheet) under ``<dashboard path>/static``."""
    app.mount(
        f"{dashboard_prefix(settings)}/static",
        StaticFiles(directory=str(STATIC)),
        name="dashboard-static",
    )
