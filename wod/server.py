"""``wod serve`` in one process: SMTP intake, the web app (HTTP intake, job API, metrics)
and the workers, started in that order after interrupted jobs are resumed.

:class:`Server` runs on one asyncio loop (SMTP and uvicorn) plus the worker threads.
SIGTERM and SIGINT (when run in the main thread), or :meth:`Server.request_stop` from any
thread, stop it cleanly: intake closes first (nothing new is acknowledged), then HTTP,
then the workers finish their current job (up to ``stop_timeout`` seconds; a job still
running after that resumes at the next start).

One server per job database: a second one on the same database refuses to start (it would
re-run the first one's running jobs as "interrupted").

Before anything listens (:mod:`wod.ops.preflight`): the state folder is made 0700 and its
files 0600; the start is refused, with one line saying what to do, without ``http_token``
or ``senders`` outside a ``demo`` install, when the students' folder, the notebooks tree
or the admin account is missing (checked when the lifecycle runs the jobs) or a port is
taken; an api-db, hub or LDAP that does not answer is only a warning.  Under systemd
(``Type=notify``) readiness is sent once every listener (SMTP, intake socket, HTTP)
accepts, then watchdog pings; SIGHUP re-reads the settings and says which changes need a
restart.  One log line per job run (id, verb, seat, workshop, outcome, duration).

The runner defaults to the lifecycle (``wod.lifecycle.make_runner(settings, queue)``),
imported only when the server starts; tests and tools pass their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import uvicorn
from prometheus_client import CollectorRegistry

from wod import sdnotify
from wod.ops import preflight
from wod.queue import Job, JobQueue
from wod.settings import Settings
from wod.worker import Runner, Worker, WorkerMetrics, kill_leftovers

log = logging.getLogger(__name__)

RunnerFactory = Callable[[Settings, JobQueue], Runner]


def default_runner(settings: Settings, queue: JobQueue, metrics: Any = None) -> Runner:
    """The lifecycle runner (imported at call time: it builds every service)."""
    from wod.lifecycle import make_runner

    return make_runner(settings, queue, metrics)


def _build_runner(
    factory: RunnerFactory, settings: Settings, queue: JobQueue, registry: CollectorRegistry
) -> Runner:
    """Call ``factory``; one that takes a ``metrics`` keyword gets the peer-call metrics."""
    import inspect

    try:
        takes_metrics = "metrics" in inspect.signature(factory).parameters
    except (TypeError, ValueError):
        takes_metrics = False
    if not takes_metrics:
        return factory(settings, queue)
    from wod.metrics import PeerMetrics

    return factory(settings, queue, metrics=PeerMetrics(registry))  # type: ignore[call-arg]


class StartRefused(Exception):
    """The server will not start; ``str()`` is one line saying what to do."""


class LoggedWorker(Worker):
    """The worker, logging one line per job run: id, verb, seat, workshop, outcome and
    duration (also as structured fields for ``log_format: json``)."""

    def run_one(self, job: Job) -> str:
        started = time.monotonic()
        outcome = super().run_one(job)
        seconds = round(time.monotonic() - started, 3)
        request = job.request
        seat = request.stdid if request.stdid is not None else "?"
        if request.stdid_max not in (None, request.stdid):
            seat = f"{request.stdid},{request.stdid_max}"
        log.info(
            "job %s %s: %s seat %s %s (%.2f s)",
            job.id,
            outcome,
            job.verb,
            seat,
            request.workshop or "-",
            seconds,
            extra={
                "job": job.id,
                "verb": job.verb,
                "seat": seat,
                "workshop": request.workshop,
                "outcome": outcome,
                "seconds": seconds,
            },
        )
        return outcome


class _Uvicorn(uvicorn.Server):
    """uvicorn without its own signal handling (the :class:`Server` owns the signals)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(128)
    sock.setblocking(False)
    return sock


class Server:
    """Everything ``wod serve`` runs.  ``asyncio.run(server.serve())`` blocks until stopped;
    ``ready`` is set once every listener accepts connections (``http_port`` and
    ``smtp_port`` then hold the bound ports)."""

    def __init__(
        self,
        settings: Settings,
        *,
        queue: JobQueue | None = None,
        runner: Runner | None = None,
        runner_factory: RunnerFactory = default_runner,
        workers: int | None = None,
        smtp: bool = True,
        http: bool = True,
        stop_timeout: float = 30.0,
        poll_interval: float = 0.5,
        intake_socket: bool = True,
        reload_settings: Callable[[], Settings] | None = None,
    ) -> None:
        self.settings = settings
        self.queue = queue or JobQueue(settings.db_path)
        self.runner = runner
        self.runner_factory = runner_factory
        self.workers = workers
        self.smtp = smtp
        self.http = http
        self.stop_timeout = stop_timeout
        self.poll_interval = poll_interval
        self.intake_socket = intake_socket and settings.intake_socket is not None
        self.reload_settings = reload_settings
        self.ready = threading.Event()
        self.stopped = threading.Event()
        self.http_port: int | None = None
        self.smtp_port: int | None = None
        self.resumed = 0
        self.watcher: Any = None  # the abuse watcher, once started
        self.registry = CollectorRegistry()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None

    def request_stop(self) -> None:
        """Stop the server (safe from any thread or a signal handler)."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)

    async def serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        signals = self._install_signals()
        lock: int | None = None
        worker: Worker | None = None
        smtp: Any = None
        local: Any = None
        web: _Uvicorn | None = None
        web_task: asyncio.Task[None] | None = None
        watchdog: sdnotify.Watchdog | None = None
        watcher: Any = None
        try:
            self._preflight()
            lock = self._lock_state()
            if not self.settings.senders:
                log.warning(
                    "senders is empty: requests from any sender are accepted "
                    "(set senders to the api-db's address)"
                )
            kill_leftovers(self.queue)  # a killed server's hooks, before their jobs resume
            self.resumed = self.queue.resume_interrupted()
            if self.resumed:
                log.warning("resumed %d job(s) interrupted by the last stop", self.resumed)
            runner = self.runner or _build_runner(
                self.runner_factory, self.settings, self.queue, self.registry
            )
            metrics = WorkerMetrics(self.registry)
            worker = LoggedWorker(
                self.settings,
                self.queue,
                runner,
                workers=self.workers,
                poll_interval=self.poll_interval,
                metrics=metrics,
            )
            worker.start()
            from wod.ops.watch import start_watcher  # the abuse watcher (watch_* settings)

            watcher = self.watcher = start_watcher(self.settings, self.queue)
            if self.smtp and self.settings.smtp_listener:
                from wod.intake.smtp import SmtpIntake

                smtp = SmtpIntake(self.settings, self.queue)
                await self._listen(
                    smtp.start(), self.settings.smtp_host, self.settings.smtp_port, "smtp_port"
                )
                self.smtp_port = smtp.port
            if self.intake_socket:
                from wod.intake.socket import SocketIntake

                local = SocketIntake(self.settings, self.queue)
                await local.start()
            if self.http:
                web, web_task = await self._start_http(metrics)
            log.info(
                "wod serve ready: smtp %s, intake socket %s, http %s, %d worker(s)",
                self.smtp_port or "off",
                local.path if local is not None else "off",
                self.http_port or "off",
                worker.count,
            )
            self.ready.set()
            sdnotify.notify("READY=1\nSTATUS=serving")
            interval = sdnotify.watchdog_interval()
            if interval:
                watchdog = sdnotify.Watchdog(interval, worker_alive(worker)).start()
            threading.Thread(target=self._warn_peers, name="wod-peers", daemon=True).start()
            await self._stop.wait()
            log.info("stopping")
            sdnotify.notify("STOPPING=1")
        finally:
            if watchdog is not None:
                watchdog.stop()
            if watcher is not None:
                watcher.stop()
            if smtp is not None:
                await smtp.stop()
            if local is not None:
                await local.stop()
            if web is not None and web_task is not None:
                web.should_exit = True
                await web_task
            clean = True
            if worker is not None:
                clean = await asyncio.to_thread(worker.stop, self.stop_timeout)
                if not clean:
                    log.warning("a job was still running at stop; it resumes at next start")
            for sig in signals:
                self._loop.remove_signal_handler(sig)
            if lock is not None and clean:  # else held until this process ends
                os.close(lock)
            self.stopped.set()

    def _preflight(self) -> None:
        """Refuse an unsafe or pointless start; make the state private."""
        from wod.lifecycle import make_runner

        # The host's folders and admin account matter when the lifecycle runs the jobs.
        host = self.runner is None and self.runner_factory in (default_runner, make_runner)
        problems = preflight.refusals(self.settings, http=self.http, host=host)
        if problems:
            raise StartRefused("; ".join(str(p) for p in problems))
        for change in preflight.secure_state(self.settings):
            log.warning("state file permissions fixed: %s", change)

    def _warn_peers(self) -> None:
        for finding in preflight.warnings(self.settings):
            log.warning("%s", finding)

    async def _listen(self, start: Any, host: str, port: int, what: str) -> None:
        try:
            await start
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise StartRefused(str(preflight.port_taken(host, port, what))) from None
            raise

    def reload(self) -> list[str]:
        """SIGHUP: re-read the settings; return (and log) the changed keys.  Nothing is
        applied live: every change needs a restart, which the log line says."""
        if self.reload_settings is None:
            log.warning("SIGHUP: settings file unknown (started from code); nothing reloaded")
            return []
        try:
            fresh = self.reload_settings()
        except Exception as exc:
            log.error("SIGHUP: settings not reloaded, the file has a problem: %s", exc)
            return []
        old, new = self.settings.model_dump(), fresh.model_dump()
        changed = sorted(k for k in new if old.get(k) != new.get(k))
        if changed:
            log.warning(
                "SIGHUP: settings changed (%s); restart to apply them "
                "(systemctl restart wod-backend): running jobs resume after the restart",
                ", ".join(changed),
            )
        else:
            log.info("SIGHUP: settings file re-read, nothing changed")
        return changed

    def _lock_state(self) -> int:
        """Hold an exclusive lock on the job database for the server's life: a second
        server on the same database would "resume" the jobs this one is running and run
        them a second time, concurrently."""
        path = f"{self.queue.db_path}.serve-lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise OSError(
                f"another wod serve is running on {self.queue.db_path} (lock {path})"
            ) from None
        return fd

    async def _start_http(self, metrics: WorkerMetrics) -> tuple[_Uvicorn, asyncio.Task[None]]:
        from wod.web.app import create_app

        app = create_app(self.settings, self.queue, registry=self.registry, worker_metrics=metrics)
        try:
            sock = _bind(self.settings.http_host, self.settings.http_port)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise StartRefused(
                    str(
                        preflight.port_taken(
                            self.settings.http_host, self.settings.http_port, "http_port"
                        )
                    )
                ) from None
            raise
        self.http_port = sock.getsockname()[1]
        from wod.web.limits import HeaderLimit

        # log_config=None: uvicorn's records go through our handler (text or JSON).
        config = uvicorn.Config(
            HeaderLimit(app),
            log_level="warning",
            lifespan="off",
            access_log=False,
            log_config=None,
        )
        web = _Uvicorn(config)
        task = asyncio.create_task(web.serve(sockets=[sock]))
        while not web.started:
            if task.done():
                task.result()  # raises what stopped it
                raise OSError("HTTP server stopped during start-up")
            await asyncio.sleep(0.01)
        return web, task

    def _install_signals(self) -> list[int]:
        if threading.current_thread() is not threading.main_thread():
            return []
        assert self._loop is not None and self._stop is not None
        installed = []
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._loop.add_signal_handler(sig, self._stop.set)
            installed.append(sig)
        self._loop.add_signal_handler(signal.SIGHUP, self.reload)
        installed.append(signal.SIGHUP)
        return installed


def worker_alive(worker: Worker) -> Callable[[], bool]:
    """Health for the watchdog: the worker threads are still there."""
    return lambda: worker.running


def run_server(server: Server) -> None:
    """Run ``server`` until a signal or :meth:`Server.request_stop`."""
    asyncio.run(server.serve())
