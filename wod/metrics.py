"""Metrics beyond the worker's own: requests by channel, peer calls, the queue's age.

Every family has one name and one meaning (``/metrics`` lists them all; the Grafana
dashboard ``contrib/grafana-wod-backend.json`` is built on them):

=====================================  ========  ============================================
``wod_requests_total``                 counter   HTTP intake answers by outcome (this
                                                 process; includes ``unavailable``)
``wod_intake_requests_total``          counter   every request received by any channel
                                                 (smtp, pipe, http, socket), by verb and
                                                 outcome (``accepted``/``rejected``) and
                                                 rejection ``reason`` class; kept in the job
                                                 database, so ``wod intake`` processes and
                                                 restarts are counted and pruning loses none
``wod_jobs_total``                     counter   job runs by verb and outcome (worker)
``wod_job_seconds``                    histogram one job run, by verb (worker)
``wod_step_seconds``                   histogram one lifecycle step, by step (worker)
``wod_hook_failures_total``            counter   hook scripts that failed, by kind (worker)
``wod_jobs``                           gauge     jobs in the database by status (queue depth
                                                 is ``wod_jobs{status="queued"}``)
``wod_queue_oldest_waiting_seconds``   gauge     age of the oldest queued job (0 if none)
``wod_peer_request_seconds``           histogram calls to the api-db, the hub and LDAP, by
                                                 peer and outcome (ok, error, refused)
``wod_peer_errors_total``              counter   failed peer calls by peer and kind
                                                 (timeout, connect, http_5xx, http_4xx,
                                                 ldap, other)
=====================================  ========  ============================================

Peer calls are measured where the services are built (:meth:`PeerMetrics.transport`
wraps the httpx transport of :class:`~wod.services.apidb.ApiDb` and
:class:`~wod.services.hub.Hub`; :class:`MeasuredLdap` wraps :class:`~wod.services.ldap.Ldap`),
so the services themselves know nothing about metrics.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import httpx
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from wod.errors import WodError

if TYPE_CHECKING:
    from wod.queue import JobQueue
    from wod.services.ldap import Ldap
    from wod.settings import Settings

PEER_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class PeerMetrics:
    """Latency and errors of the calls to the api-db, the hub and LDAP."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.seconds = Histogram(
            "wod_peer_request_seconds",
            "Calls to a peer (apidb, hub, ldap), by peer and outcome (ok, error, refused).",
            ["peer", "outcome"],
            registry=registry,
            buckets=PEER_BUCKETS,
        )
        self.errors = Counter(
            "wod_peer_errors_total",
            "Failed calls to a peer, by peer and kind (timeout, connect, http_5xx, "
            "http_4xx, ldap, other).",
            ["peer", "kind"],
            registry=registry,
        )

    def observe(self, peer: str, seconds: float, outcome: str, kind: str = "") -> None:
        self.seconds.labels(peer, outcome).observe(seconds)
        if kind:
            self.errors.labels(peer, kind).inc()

    def transport(self, peer: str, inner: httpx.BaseTransport | None = None) -> httpx.BaseTransport:
        return MeasuredTransport(inner or httpx.HTTPTransport(), self, peer)

    @contextmanager
    def measure(self, peer: str) -> Iterator[None]:
        """Time a non-HTTP call; a raised error counts as ``error`` (kind ``ldap``)."""
        started = time.perf_counter()
        try:
            yield
        except WodError:
            self.observe(peer, time.perf_counter() - started, "error", peer)
            raise
        except Exception:
            self.observe(peer, time.perf_counter() - started, "error", "other")
            raise
        self.observe(peer, time.perf_counter() - started, "ok")


class MeasuredTransport(httpx.BaseTransport):
    """An httpx transport that times every request it passes on."""

    def __init__(self, inner: httpx.BaseTransport, metrics: PeerMetrics, peer: str) -> None:
        self.inner = inner
        self.metrics = metrics
        self.peer = peer

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        started = time.perf_counter()
        try:
            response = self.inner.handle_request(request)
        except httpx.TimeoutException:
            self.metrics.observe(self.peer, time.perf_counter() - started, "error", "timeout")
            raise
        except httpx.ConnectError:
            self.metrics.observe(self.peer, time.perf_counter() - started, "error", "connect")
            raise
        except Exception:
            self.metrics.observe(self.peer, time.perf_counter() - started, "error", "other")
            raise
        seconds = time.perf_counter() - started
        code = response.status_code
        if code >= 500:
            self.metrics.observe(self.peer, seconds, "error", "http_5xx")
        elif code >= 400:
            self.metrics.observe(self.peer, seconds, "refused", "http_4xx")
        else:
            self.metrics.observe(self.peer, seconds, "ok")
        return response

    def close(self) -> None:
        self.inner.close()


def measured_ldap(settings: Settings, metrics: PeerMetrics) -> Ldap:
    """An :class:`~wod.services.ldap.Ldap` whose calls are timed."""
    from wod.services.ldap import Ldap

    class MeasuredLdap(Ldap):
        def set_password(self, account: str, password: str) -> None:
            with metrics.measure("ldap"):
                super().set_password(account, password)

        def verify_password(self, account: str, password: str) -> bool:
            with metrics.measure("ldap"):
                return super().verify_password(account, password)

    return MeasuredLdap(settings)


class IntakeCollector(Collector):
    """``wod_intake_requests_total`` and ``wod_queue_oldest_waiting_seconds``, read from
    the job database at each scrape."""

    def __init__(self, queue: JobQueue) -> None:
        self.queue = queue

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        requests = CounterMetricFamily(
            "wod_intake_requests",
            "Requests received by any channel, by verb, outcome and rejection reason class.",
            labels=["channel", "verb", "outcome", "reason"],
        )
        oldest = GaugeMetricFamily(
            "wod_queue_oldest_waiting_seconds", "Age of the oldest queued job (0 if none)."
        )
        try:
            counts = self.queue.intake_counts()
            job = self.queue.oldest_waiting()
        except Exception:  # the scrape shows what it can; /healthz reports the database
            return
        for channel, verb, outcome, n in counts:
            kind, _, reason = outcome.partition(":")
            requests.add_metric([channel, verb or "unknown", kind, reason], n)
        oldest.add_metric([], max(time.time() - job.created, 0.0) if job else 0.0)
        yield requests
        yield oldest
