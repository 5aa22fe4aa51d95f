"""``wod check``: is this a compliant WoD backend?  (SPEC 6 "check", upstream
``check_backend.yml`` + ``check_system.yml``, plus our own.)

:func:`run_checks` runs every named check and returns a :class:`CheckReport`: each item
``ok``, ``warn``, ``fail``, ``fixed`` or ``skipped`` (not applicable to these settings)
with a one-line remedy; its ``exit_code`` is 0 (all ok), 1 (warnings) or 2 (failures).
``fix=True`` repairs only what is safe (folders, modes, ACLs, missing accounts and hub
users, limits, sysctl) and never deletes data.  ``monitor=True`` (the daily timer) mails
the failures to ``monitor``.  A full run (no ``only``) is kept in
``<state_dir>/check-last.json`` for the dashboard (:func:`last_report`).

The checks live in one module per group: :mod:`.layout` (settings, state, folders,
vault, hooks, shc, private checks), :mod:`.system` (limits, sysctl, tasks,
skel, disk), :mod:`.security` (firewall, time sync, updates, fail2ban, services),
:mod:`.seats` (accounts, ACLs, hub users, seats
vs the api-db), :mod:`.peers` (api-db, hub, LDAP, mail intake, workshops render).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wod.ops.check import layout, peers, seats, security, system  # noqa: F401 - registers
from wod.ops.check.base import REGISTRY, CheckReport, CheckResult, Host, run_registered
from wod.ops.monitor import mail_monitor

if TYPE_CHECKING:
    from wod.queue import JobQueue
    from wod.settings import Settings

log = logging.getLogger(__name__)

LAST_REPORT = "check-last.json"

__all__ = [
    "CheckReport",
    "CheckResult",
    "check_names",
    "last_report",
    "monitor_mail",
    "run_checks",
    "unreadable_settings",
]


def check_names() -> list[str]:
    """Every check's name, in the order they run."""
    return [r.name for r in REGISTRY]


def run_checks(
    settings: Settings,
    *,
    fix: bool = False,
    only: Iterable[str] | None = None,
    root: Path = Path("/"),
    monitor: bool = False,
    queue_factory: Callable[[], JobQueue] | None = None,
) -> CheckReport:
    """Run the checks (``only`` some of them, by name) and, with ``monitor``, mail the
    failures.  ``root`` prefixes the host's own paths (``/etc``, ``/proc/sys``, ``/home``)."""
    if only is not None:
        unknown = sorted(set(only) - set(check_names()))
        if unknown:
            from wod.ops.common import OpsError

            raise OpsError(
                f"unknown check(s): {', '.join(unknown)}",
                remedy="one of: " + ", ".join(check_names()),
            )
    host = Host(settings, fix=fix, root=Path(root), queue_factory=queue_factory)
    try:
        report = run_registered(host, only)
    finally:
        if "hub" in host.__dict__:
            host.hub.close()
        if "apidb" in host.__dict__:
            host.apidb.close()
    if monitor and report.failures:
        report.mailed = monitor_mail(settings, report)
    if only is None:
        save_report(settings, report)
    return report


def save_report(settings: Settings, report: CheckReport) -> None:
    """Keep the last full run in ``<state_dir>/check-last.json`` (0600), for the dashboard."""
    path = settings.state_dir / LAST_REPORT
    try:
        settings.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(report.to_dict(), out, indent=1)
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("cannot keep the check report in %s: %s", path, exc)


def last_report(settings: Settings) -> dict[str, Any] | None:
    """The last full run's report (as ``to_dict``), or None when none was kept."""
    try:
        data = json.loads((settings.state_dir / LAST_REPORT).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def unreadable_settings(reason: str) -> CheckReport:
    """The report of a run that could not load its settings: one failed ``settings``."""
    result = CheckResult("settings", "fail", reason, "fix the settings file", "settings")
    return CheckReport([result], started=time.time())


def monitor_mail(settings: Settings, report: CheckReport) -> str | None:
    """Mail the failures of ``report`` to ``monitor`` (subject ``ERROR in wod-check``)."""
    lines = [
        f"wod check on {socket.getfqdn()}: {len(report.failures)} failure(s)",
        "",
    ]
    for r in report.failures:
        lines.append(f"FAIL {r.name}: {r.detail}")
        if r.remedy:
            lines.append(f"     remedy: {r.remedy}")
    warnings = [r for r in report.results if r.status == "warn"]
    if warnings:
        lines += ["", "Warnings:"] + [f"warn {r.name}: {r.detail}" for r in warnings]
    return mail_monitor(settings, "ERROR in wod-check", "\n".join(lines) + "\n")
