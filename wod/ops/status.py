"""The backend "now": queue depth, running jobs, oldest waiting job, recent failures, whether
the api-db, the hub and LDAP answer, and the free disk space — what the dashboard's first
panel shows.

Reachability is probed in the background (:class:`Probes`): a page asking for it gets the
last result at once and, when that result is older than ``ttl``, starts a new probe, so a
peer that times out never slows a page.  A probe only asks whether the peer answers (an
HTTP answer, a TCP connection); it never logs in, so no credential is used or shown.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from wod.queue import Job, JobQueue
from wod.settings import Settings

DAY = 86400.0


@dataclass(frozen=True)
class Probe:
    """One peer: ``ok`` None when it is not configured."""

    name: str
    ok: bool | None
    detail: str
    seconds: float = 0.0
    at: float = 0.0


@dataclass(frozen=True)
class Disk:
    label: str
    path: str
    free: int
    total: int

    @property
    def percent_free(self) -> float:
        return 100.0 * self.free / self.total if self.total else 0.0


@dataclass(frozen=True)
class Now:
    at: float
    counts: dict[str, int]
    queued: int
    running: int
    oldest_waiting: Job | None
    failed_24h: int
    probes: tuple[Probe, ...]
    disks: tuple[Disk, ...]

    @property
    def oldest_age(self) -> float | None:
        if self.oldest_waiting is None:
            return None
        return max(self.at - self.oldest_waiting.created, 0.0)


def _probe_http(name: str, url: str, timeout: float, *, ok_below: int = 500) -> Probe:
    started = time.monotonic()
    try:
        with httpx.Client(timeout=timeout) as client:
            answer = client.get(url)
    except httpx.HTTPError as exc:
        return Probe(name, False, f"{type(exc).__name__}", time.monotonic() - started)
    seconds = time.monotonic() - started
    return Probe(name, answer.status_code < ok_below, f"HTTP {answer.status_code}", seconds)


def _probe_tcp(name: str, host: str, port: int, timeout: float) -> Probe:
    started = time.monotonic()
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        return Probe(name, False, exc.strerror or type(exc).__name__, time.monotonic() - started)
    return Probe(name, True, f"{host}:{port} accepts", time.monotonic() - started)


def probe_all(settings: Settings, timeout: float = 2.0) -> tuple[Probe, ...]:
    """Ask each configured peer whether it answers (serially; a few seconds at worst)."""
    now = time.time()
    out = []
    if settings.apidb_url:
        out.append(_probe_http("api-db", settings.apidb_url, timeout))
    else:
        out.append(Probe("api-db", None, "apidb_url not set"))
    if settings.hub_url:
        out.append(
            _probe_http("hub", settings.hub_url.rstrip("/") + "/hub/api/", timeout, ok_below=300)
        )
    else:
        out.append(Probe("hub", None, "no hub (hub_url empty)"))
    if settings.ldap_host:
        out.append(_probe_tcp("LDAP", settings.ldap_host, settings.ldap_port, timeout))
    else:
        out.append(Probe("LDAP", None, "ldap_host not set"))
    return tuple(Probe(p.name, p.ok, p.detail, p.seconds, now) for p in out)


@dataclass
class Probes:
    """The latest reachability results, refreshed in a background thread when older than
    ``ttl`` seconds."""

    settings: Settings
    ttl: float = 10.0
    prober: Callable[[Settings], tuple[Probe, ...]] = probe_all
    _last: tuple[Probe, ...] = field(default=(), repr=False)
    _at: float = field(default=0.0, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _busy: bool = field(default=False, repr=False)
    _done: threading.Event = field(default_factory=threading.Event, repr=False)

    def results(self, wait: float = 0.0) -> tuple[Probe, ...]:
        """The last results (waiting up to ``wait`` s for the first ones)."""
        with self._lock:
            stale = time.monotonic() - self._at > self.ttl
            if stale and not self._busy:
                self._busy = True
                self._done.clear()
                threading.Thread(target=self._refresh, name="wod-probes", daemon=True).start()
        if wait and not self._last:
            self._done.wait(wait)
        return self._last or tuple(Probe(n, None, "checking…") for n in ("api-db", "hub", "LDAP"))

    def _refresh(self) -> None:
        try:
            results = self.prober(self.settings)
        finally:
            with self._lock:
                self._busy = False
                self._at = time.monotonic()
        self._last = results
        self._done.set()


def disks(settings: Settings) -> tuple[Disk, ...]:
    """Free space where the state and the students' homes live (one row per file system)."""
    out: list[Disk] = []
    seen: set[int] = set()
    for label, path in (("state", settings.state_dir), ("homes", settings.students_dir)):
        where = Path(path)
        while not where.exists() and where != where.parent:
            where = where.parent
        try:
            dev = where.stat().st_dev
            usage = shutil.disk_usage(where)
        except OSError:
            continue
        if dev in seen:
            continue
        seen.add(dev)
        out.append(Disk(label, str(path), usage.free, usage.total))
    return tuple(out)


def now(
    settings: Settings,
    queue: JobQueue,
    probes: Probes | None = None,
    *,
    clock: Callable[[], float] = time.time,
) -> Now:
    """The "Now" summary of the backend."""
    at = clock()
    counts = queue.counts()
    return Now(
        at=at,
        counts=counts,
        queued=counts.get("queued", 0),
        running=counts.get("running", 0),
        oldest_waiting=queue.oldest_waiting(),
        failed_24h=queue.failed_since(at - DAY),
        probes=probes.results() if probes is not None else probe_all(settings),
        disks=disks(settings),
    )
