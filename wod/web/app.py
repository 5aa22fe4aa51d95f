"""The backend's web app: the intake, the admin API, ``/healthz`` and ``/metrics``.

``create_app(settings, queue)`` builds a FastAPI app over an existing queue; ``wod serve``
runs it with uvicorn next to the SMTP intake and the workers.  Metrics live in one
:class:`prometheus_client.CollectorRegistry` per app (``app.state.registry``), shared with
the workers when the server passes the same registry to both:

- ``wod_requests_total{channel,outcome}`` — requests received (HTTP intake);
- ``wod_jobs_total{verb,outcome}``, ``wod_job_seconds{verb}``, ``wod_step_seconds{step}``
  — job runs (recorded by the worker);
- ``wod_jobs{status}`` — jobs per status in the database, read at scrape time.
- ``wod_intake_requests_total{channel,verb,outcome,reason}``,
  ``wod_queue_oldest_waiting_seconds`` — from the job database at scrape time; the full
  list, with the peer-call and hook metrics, is in :mod:`wod.metrics`.

The dashboard (:mod:`wod.web.dashboard`) is served at the path of ``dashboard_url``
(``/`` by default), its assets under ``static/``.  The OpenAPI pages ``/docs`` and
``/redoc`` exist only with ``api_docs`` (they load scripts from a public CDN).

Every error answer is ``{"error": reason}``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.exceptions import HTTPException

from wod.access import make_client_check
from wod.intake.http import IntakeMetrics, make_router
from wod.metrics import IntakeCollector
from wod.queue import JobQueue
from wod.settings import Settings
from wod.web.api import install_error_handler, make_api_router
from wod.web.dashboard import make_dashboard, mount_static
from wod.worker import WorkerMetrics

log = logging.getLogger(__name__)


class QueueCollector(Collector):
    """``wod_jobs{status}`` read from the queue at each scrape."""

    def __init__(self, queue: JobQueue) -> None:
        self.queue = queue

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "wod_jobs", "Jobs in the database, by status.", labels=["status"]
        )
        try:
            counts = self.queue.counts()
        except Exception:
            log.exception("cannot read job counts for /metrics")
            counts = {}
        for status, n in counts.items():
            family.add_metric([status], n)
        yield family


def create_app(
    settings: Settings,
    queue: JobQueue,
    *,
    registry: CollectorRegistry | None = None,
    worker_metrics: WorkerMetrics | None = None,
) -> FastAPI:
    """The web app.  Pass the ``registry`` the workers' :class:`WorkerMetrics` use to
    expose their metrics too (without one, a fresh registry is made with both)."""
    if registry is None:
        registry = CollectorRegistry()
        worker_metrics = worker_metrics or WorkerMetrics(registry)
    registry.register(QueueCollector(queue))
    registry.register(IntakeCollector(queue))
    intake_metrics = IntakeMetrics(registry)

    app = FastAPI(
        title="wod-backend",
        version="0.1.0",
        # The docs pages load their scripts from a public CDN: off unless api_docs is set.
        docs_url="/docs" if settings.api_docs else None,
        redoc_url="/redoc" if settings.api_docs else None,
        openapi_url="/api/openapi.json",
    )
    app.state.settings = settings
    app.state.queue = queue
    app.state.registry = registry
    app.state.worker_metrics = worker_metrics
    app.include_router(make_router(settings, queue, intake_metrics))
    app.include_router(make_api_router(settings, queue))
    install_error_handler(app)
    app.include_router(make_dashboard(settings, queue))
    mount_static(app, settings)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse(
            {"error": exc.detail},
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return JSONResponse({"error": f"{where}: {first.get('msg', 'invalid')}"}, status_code=400)

    @app.get("/healthz")
    def healthz() -> Any:
        """200 with job counts when the job database answers, else 503."""
        try:
            counts = queue.counts()
        except Exception as exc:
            log.error("health check: job database: %s", exc)
            return JSONResponse(
                {"status": "error", "error": "job database unavailable"}, status_code=503
            )
        return {"status": "ok", "jobs": counts}

    @app.get("/metrics", dependencies=[Depends(make_client_check(settings))])
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app
