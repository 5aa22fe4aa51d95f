"""``wod serve`` in one process: SMTP intake, the web app (HTTP intake, job API, metrics)
and the workers, started in that order after interrupted jobs are resumed.

:class:`Server` runs on one asyncio loop (SMTP and uvicorn) plus the worker threads.
SIGTERM and SIGINT (when run in the main thread), or :meth:`Server.request_stop` from any
thread, stop it cleanly: intake closes first (nothing new is acknowledged), then HTTP,
then the workers finish their current job (up to ``stop_timeout`` seconds; a job still
running after that resumes at the next start).

One server per job database: a second one on the same database refuses to start (it would
re-run the first one's running jobs as "interrupted").

The runner defaults to the lifecycle (``wod.lifecycle.make_runner(settings, queue)``),
imported only when the server starts; tests and tools pass their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import uvicorn
from prometheus_client import CollectorRegistry

from wod.queue import JobQueue
from wod.settings import Settings
from wod.worker import Runner, Worker, WorkerMetrics

log = logging.getLogger(__name__)

RunnerFactory = Callable[[Settings, JobQueue], Runner]


def default_runner(settings: Settings, queue: JobQueue) -> Runner:
    """The lifecycle runner (imported at call time: it builds every service)."""
    from wod.lifecycle import make_runner

    return make_runner(settings, queue)


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
        self.ready = threading.Event()
        self.stopped = threading.Event()
        self.http_port: int | None = None
        self.smtp_port: int | None = None
        self.resumed = 0
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
        web: _Uvicorn | None = None
        web_task: asyncio.Task[None] | None = None
        try:
            lock = self._lock_state()
            if not self.settings.senders:
                log.warning(
                    "senders is empty: requests from any sender are accepted "
                    "(set senders to the api-db's address)"
                )
            self.resumed = self.queue.resume_interrupted()
            if self.resumed:
                log.warning("resumed %d job(s) interrupted by the last stop", self.resumed)
            runner = self.runner or self.runner_factory(self.settings, self.queue)
            metrics = WorkerMetrics(self.registry)
            worker = Worker(
                self.settings,
                self.queue,
                runner,
                workers=self.workers,
                poll_interval=self.poll_interval,
                metrics=metrics,
            )
            worker.start()
            if self.smtp:
                from wod.intake.smtp import SmtpIntake

                smtp = SmtpIntake(self.settings, self.queue)
                await smtp.start()
                self.smtp_port = smtp.port
            if self.http:
                web, web_task = await self._start_http(metrics)
            log.info(
                "wod serve ready: smtp %s, http %s, %d worker(s)",
                self.smtp_port or "off",
                self.http_port or "off",
                worker.count,
            )
            self.ready.set()
            await self._stop.wait()
            log.info("stopping")
        finally:
            if smtp is not None:
                await smtp.stop()
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
        sock = _bind(self.settings.http_host, self.settings.http_port)
        self.http_port = sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
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
        return installed


def run_server(server: Server) -> None:
    """Run ``server`` until a signal or :meth:`Server.request_stop`."""
    asyncio.run(server.serve())
