"""systemd readiness and watchdog: ``sd_notify`` over ``$NOTIFY_SOCKET`` in a few lines.

A ``Type=notify`` unit gives the service a datagram socket in ``$NOTIFY_SOCKET`` (a path,
or ``@name`` for the abstract namespace).  :func:`notify` sends ``READY=1``,
``STOPPING=1``, ``STATUS=…`` or ``WATCHDOG=1`` there and is a no-op without the variable
(started by hand, tests).  :class:`Watchdog` pings at half of ``$WATCHDOG_USEC`` while the
daemon is healthy (``WatchdogSec=`` in the unit); systemd restarts a daemon that stops
pinging.  No dependency: the protocol is one datagram per message.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)


def notify(message: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send ``message`` to systemd; False when not run under ``Type=notify``."""
    env = os.environ if environ is None else environ
    address = env.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(message.encode("utf-8"), address)
    except OSError as exc:
        log.warning("cannot notify systemd (%s): %s", env.get("NOTIFY_SOCKET"), exc)
        return False
    return True


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """Seconds between pings (half of ``$WATCHDOG_USEC``), or None without a watchdog."""
    env = os.environ if environ is None else environ
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and pid != str(os.getpid()):
        return None  # meant for another process
    return int(usec) / 2_000_000


class Watchdog:
    """Pings ``WATCHDOG=1`` every ``interval`` s while ``healthy()`` holds."""

    def __init__(self, interval: float, healthy: Callable[[], bool] = lambda: True) -> None:
        self.interval = interval
        self.healthy = healthy
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wod-watchdog", daemon=True)

    def start(self) -> Watchdog:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            if self.healthy():
                notify("WATCHDOG=1")
            else:
                log.error("watchdog: the daemon is not healthy; not pinging systemd")
