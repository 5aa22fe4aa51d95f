"""The shape of ``wod check``: typed results, the host a check looks at, the registry.

A check is a function ``(host) -> CheckResult`` (or a list of them) registered with
:func:`check` under a name and a group.  It looks, and when ``host.fix`` is set repairs
what is safe to repair (folders, modes, ACLs, missing accounts and hub users, limits,
sysctl), then looks again: a repaired item is ``fixed``, one still wrong ``fail``.
Nothing here deletes data.

Host paths (``/etc``, ``/proc/sys``, ``/home``, ``/run``) are read under ``host.root``
(``/`` in production) so the fixers can be exercised on a copied tree; paths named by the
settings (students, state, scripts) are used as they are.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from wod.errors import WodError

if TYPE_CHECKING:
    from wod.content.service import Content
    from wod.queue import JobQueue
    from wod.services.accounts import Accounts
    from wod.services.apidb import ApiDb
    from wod.services.hub import Hub
    from wod.settings import Settings

log = logging.getLogger(__name__)

Status = Literal["ok", "warn", "fail", "fixed", "skipped"]
#: exit status of ``wod check`` per worst status
EXIT = {"ok": 0, "skipped": 0, "fixed": 0, "warn": 1, "fail": 2}


@dataclass
class CheckResult:
    """One named item: its status, what was seen, and the one line that repairs it."""

    name: str
    status: Status
    detail: str
    remedy: str = ""
    group: str = ""

    def to_dict(self) -> dict[str, str]:
        return {
            "name": self.name,
            "group": self.group,
            "status": self.status,
            "detail": self.detail,
            "remedy": self.remedy,
        }


def ok(detail: str) -> CheckResult:
    return CheckResult("", "ok", detail)


def warn(detail: str, remedy: str) -> CheckResult:
    return CheckResult("", "warn", detail, remedy)


def fail(detail: str, remedy: str) -> CheckResult:
    return CheckResult("", "fail", detail, remedy)


def fixed(detail: str) -> CheckResult:
    return CheckResult("", "fixed", detail)


def skipped(reason: str) -> CheckResult:
    return CheckResult("", "skipped", reason)


@dataclass
class CheckReport:
    """Every result of one run, in order, and the exit status it deserves."""

    results: list[CheckResult]
    fix: bool = False
    started: float = 0.0
    seconds: float = 0.0
    #: how the failures were mailed to ``monitor`` (``--monitor``), None if they were not
    mailed: str | None = None

    @property
    def exit_code(self) -> int:
        return max((EXIT[r.status] for r in self.results), default=0)

    @property
    def counts(self) -> dict[str, int]:
        out = {s: 0 for s in EXIT}
        for r in self.results:
            out[r.status] += 1
        return out

    @property
    def failures(self) -> list[CheckResult]:
        return [r for r in self.results if r.status == "fail"]

    def result(self, name: str) -> CheckResult:
        for r in self.results:
            if r.name == name:
                return r
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "exit": self.exit_code,
            "fix": self.fix,
            "started": self.started,
            "seconds": round(self.seconds, 3),
            "counts": self.counts,
            "mailed": self.mailed,
            "checks": [r.to_dict() for r in self.results],
        }


CheckFn = Callable[["Host"], "CheckResult | list[CheckResult]"]


@dataclass(frozen=True)
class Registered:
    name: str
    group: str
    fn: CheckFn


REGISTRY: list[Registered] = []


def check(name: str, group: str) -> Callable[[CheckFn], CheckFn]:
    """Register a check under ``name`` in ``group`` (run in registration order)."""

    def decorate(fn: CheckFn) -> CheckFn:
        REGISTRY.append(Registered(name, group, fn))
        return fn

    return decorate


@dataclass
class Host:
    """What the checks look at: settings, the host root, the fix flag and the services
    (built on first use, each at most once per run)."""

    settings: Settings
    fix: bool = False
    root: Path = Path("/")
    queue_factory: Callable[[], JobQueue] | None = None
    cache: dict[str, Any] = field(default_factory=dict)

    def path(self, absolute: str) -> Path:
        """A host path under ``root`` (``/etc/x`` -> ``<root>/etc/x``)."""
        return self.root / absolute.lstrip("/")

    @cached_property
    def accounts(self) -> Accounts:
        from wod.services.accounts import make_accounts

        return make_accounts(self.settings)

    @cached_property
    def content(self) -> Content:
        from wod.content.service import Content

        return Content(self.settings)

    @cached_property
    def queue(self) -> JobQueue:
        from wod.queue import JobQueue

        if self.queue_factory is not None:
            return self.queue_factory()
        return JobQueue(self.settings.db_path)

    @cached_property
    def apidb(self) -> ApiDb:
        from wod.services.apidb import ApiDb

        return ApiDb.from_settings(self.settings)

    @cached_property
    def hub(self) -> Hub:
        from wod.services.hub import Hub

        return Hub.from_settings(self.settings)

    def apidb_workshops(self) -> list[dict[str, Any]] | None:
        """The api-db's workshops (fetched once per run), None when it cannot be read."""
        if "apidb_workshops" not in self.cache:
            try:
                self.cache["apidb_workshops"] = self.apidb.workshops()
            except WodError as exc:
                log.info("check: api-db workshops unreadable: %s", exc.reason)
                self.cache["apidb_workshops"] = None
        return self.cache["apidb_workshops"]


def run_registered(host: Host, names: Iterable[str] | None = None) -> CheckReport:
    """Run every registered check (or only ``names``) against ``host``."""
    wanted = set(names) if names is not None else None
    started = time.time()
    results: list[CheckResult] = []
    for reg in REGISTRY:
        if wanted is not None and reg.name not in wanted:
            continue
        try:
            out = reg.fn(host)
        except WodError as exc:
            out = fail(exc.reason, "see the log (wod -v check) for details")
        except Exception as exc:  # a broken check must not hide the others
            log.exception("check %s crashed", reg.name)
            out = fail(f"the check itself failed: {type(exc).__name__}: {exc}", "report a bug")
        for r in out if isinstance(out, list) else [out]:
            r.name = r.name or reg.name
            r.group = reg.group
            results.append(r)
    return CheckReport(results, fix=host.fix, started=started, seconds=time.time() - started)


def listing(items: list[str], limit: int = 6) -> str:
    """``a, b, c`` — at most ``limit`` items, then ``(+N more)``."""
    shown = ", ".join(items[:limit])
    if len(items) > limit:
        shown += f" (+{len(items) - limit} more)"
    return shown
