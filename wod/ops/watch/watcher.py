"""The watcher itself: one look at the process table (:meth:`Watcher.scan`) and the
graduated response; :func:`start_watcher` runs it in a thread of ``wod serve``."""

from __future__ import annotations

import logging
import os
import pwd
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

from wod.ops.watch.record import CMDLINE_LIMIT, Action, ActionLog
from wod.ops.watch.rules import Policy, command_names

if TYPE_CHECKING:
    from wod.queue import JobQueue
    from wod.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Tracked:
    """What the watcher remembers of one process between looks."""

    process: psutil.Process
    busy_since: float | None = None
    throttled: bool = False
    quota: bool = False
    notified: bool = False


@dataclass
class Seen:
    """One student process at one look."""

    pid: int
    stdid: int
    account: str
    name: str
    cmdline: list[str]
    names: set[str]
    cpu: float
    age: float
    running: bool
    tracked: Tracked = field(repr=False)


class Watcher:
    """Looks at the process table and acts; :meth:`scan` is one look, :meth:`start` runs
    it every ``watch_interval`` seconds in a thread until :meth:`stop`."""

    def __init__(
        self,
        settings: Settings,
        queue: JobQueue | None = None,
        *,
        clock: Callable[[], float] = time.time,
        actions: ActionLog | None = None,
        cgroup_root: Path = Path("/sys/fs/cgroup"),
    ) -> None:
        self.settings = settings
        self.policy = Policy.from_settings(settings)
        self.queue = queue
        self.clock = clock
        self.log = actions or ActionLog.from_settings(settings)
        self.cgroup_root = cgroup_root
        self._tracked: dict[tuple[int, float], Tracked] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- running in wod serve ---------------------------------------------------------------
    def start(self) -> Watcher:
        self._thread = threading.Thread(target=self._loop, name="wod-watch", daemon=True)
        self._thread.start()
        log.info("abuse watcher started (every %g s)", self.settings.watch_interval)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.scan()
            except Exception:  # the watcher must outlive a bad look
                log.exception("abuse watcher: look failed")
            self._stop.wait(self.settings.watch_interval)

    # -- one look ---------------------------------------------------------------------------
    def seats_by_uid(self) -> dict[int, tuple[int, str]]:
        """uid -> (seat, account) for every seat whose account has uid ``uid_base + n``."""
        s = self.settings
        out = {}
        for n in range(s.user_min, s.user_max + 1):
            name = s.account(n)
            try:
                entry = pwd.getpwnam(name)
            except KeyError:
                continue
            if entry.pw_uid == s.uid_base + n:
                out[entry.pw_uid] = (n, name)
        return out

    def look(self) -> list[Seen]:
        """The seats' live processes, with CPU use since the last look."""
        seats = self.seats_by_uid()
        now = self.clock()
        seen: list[Seen] = []
        alive: set[tuple[int, float]] = set()
        for p in psutil.process_iter(["pid", "uids", "name", "cmdline", "create_time", "status"]):
            info = p.info
            uids = info.get("uids")
            if uids is None or uids.real not in seats or info.get("status") == "zombie":
                continue
            key = (info["pid"], info["create_time"])
            alive.add(key)
            tracked = self._tracked.get(key)
            if tracked is None:
                tracked = self._tracked[key] = Tracked(p)
            try:
                cpu = tracked.process.cpu_percent(None)
            except psutil.Error:
                continue
            n, account = seats[uids.real]
            cmdline = info.get("cmdline") or []
            seen.append(
                Seen(
                    info["pid"],
                    n,
                    account,
                    info.get("name") or "",
                    cmdline,
                    command_names(info.get("name") or "", cmdline),
                    cpu,
                    max(0.0, now - info["create_time"]),
                    info.get("status") == psutil.STATUS_RUNNING,
                    tracked,
                )
            )
        for key in set(self._tracked) - alive:
            del self._tracked[key]
        return seen

    def scan(self) -> list[Action]:
        """One look at the process table, acting on what the rules say; returns the
        actions taken."""
        done: list[Action] = []
        pol = self.policy
        now = self.clock()
        for p in self.look():
            if p.names & pol.blacklist:
                bad = sorted(p.names & pol.blacklist)[0]
                done += self._kill(p, "blacklist", f"blacklisted command {bad}")
                if pol.blacklist_purge:
                    done += self._purge(p, "blacklist", f"blacklisted command {bad}")
                else:
                    done += self._maybe_purge(p)
                continue
            kernel = bool(p.names & pol.kernels)
            if kernel and pol.kernel_max_age and p.age > pol.kernel_max_age:
                hours = p.age / 3600
                done += self._kill(p, "kernel-age", f"kernel running for {hours:.1f} h")
                continue
            if kernel or p.names & pol.whitelist:
                continue
            done += self._cpu_rule(p, now)
        return done

    def _cpu_rule(self, p: Seen, now: float) -> list[Action]:
        pol, t = self.policy, p.tracked
        limit = pol.cpu_percent
        if t.quota and pol.cpu_quota:
            limit = min(limit, pol.cpu_quota * 0.9)
        busy = p.cpu >= limit or (t.throttled and p.running)
        if not busy:
            t.busy_since = None
            return []
        if t.busy_since is None:
            t.busy_since = now
        busy_for = now - t.busy_since
        how = "runnable while throttled" if p.cpu < limit else f"{p.cpu:.0f}% CPU"
        evidence = f"busy ({how}) for {busy_for:.0f} s"
        done: list[Action] = []
        if busy_for >= pol.throttle_after and not t.throttled:
            done.append(self._throttle(p, evidence))
        if busy_for >= pol.notify_after and not t.notified:
            done.append(self._notify(p, "cpu", evidence))
        if busy_for >= pol.kill_after:
            done += self._kill(p, "cpu", evidence, notify=False)
            done += self._maybe_purge(p)
        return done

    # -- responses ----------------------------------------------------------------------------
    def _record(self, p: Seen, action: str, rule: str, detail: str) -> Action:
        a = Action(
            time=self.clock(),
            action=action,
            rule=rule,
            account=p.account,
            stdid=p.stdid,
            pid=p.pid,
            process=p.name,
            cmdline=" ".join(p.cmdline)[:CMDLINE_LIMIT],
            cpu=round(p.cpu, 1),
            age=round(p.age, 1),
            detail=detail,
        )
        self.log.append(a)
        level = logging.INFO if action == "throttle" else logging.WARNING
        log.log(
            level,
            "watch: %s %s pid %s of %s (%s): %s",
            action,
            p.name,
            p.pid,
            p.account,
            rule,
            detail,
        )
        return a

    def _throttle(self, p: Seen, evidence: str) -> Action:
        t = p.tracked
        t.throttled = True
        niced = 0
        try:
            for thread in t.process.threads():
                try:
                    os.setpriority(os.PRIO_PROCESS, thread.id, 19)
                    niced += 1
                except ProcessLookupError:
                    continue
        except (psutil.Error, OSError) as exc:
            return self._record(p, "error", "cpu", f"throttle failed: {exc}; {evidence}")
        how = [f"nice 19 on {niced} thread(s)"]
        quota = self._cgroup_quota(p.pid) if self.policy.cpu_quota else None
        if quota:
            t.quota = True
            how.append(quota)
        return self._record(p, "throttle", "cpu", f"{evidence}; {', '.join(how)}")

    def _cgroup_quota(self, pid: int) -> str | None:
        """Move ``pid`` into ``<cgroup>/wod-throttle`` with a ``cpu.max`` quota, when cgroup
        v2 offers the cpu controller; None (renice only) otherwise."""
        root = self.cgroup_root
        try:
            if "cpu" not in (root / "cgroup.controllers").read_text().split():
                return None
            group = root / "wod-throttle"
            if "cpu" not in (root / "cgroup.subtree_control").read_text().split():
                (root / "cgroup.subtree_control").write_text("+cpu")
            group.mkdir(exist_ok=True)
            period = 100_000
            quota = max(1000, int(period * self.policy.cpu_quota / 100))
            (group / "cpu.max").write_text(f"{quota} {period}")
            (group / "cgroup.procs").write_text(str(pid))
        except OSError as exc:
            log.info("watch: no cgroup CPU quota for pid %s: %s", pid, exc)
            return None
        return f"cgroup cpu.max {self.policy.cpu_quota:g}%"

    def _notify(self, p: Seen, rule: str, evidence: str) -> Action:
        p.tracked.notified = True
        action = self._record(p, "notify", rule, evidence)
        if self.policy.mail:
            from wod.ops.monitor import mail_monitor

            mail_monitor(
                self.settings,
                f"wod watch: {p.account} {p.name} ({rule})",
                f"Process {p.pid} of {p.account} (seat {p.stdid}): {' '.join(p.cmdline)}\n"
                f"Rule: {rule}\nEvidence: {evidence}\n",
            )
        return action

    def _kill(self, p: Seen, rule: str, evidence: str, *, notify: bool = True) -> list[Action]:
        done = []
        if notify and not p.tracked.notified:
            done.append(self._notify(p, rule, evidence))
        try:
            proc = p.tracked.process
            uid = self.settings.uid_base + p.stdid  # never another account's process
            victims = [*_own(proc.children(recursive=True), uid), proc]
            for v in victims:
                try:
                    v.send_signal(signal.SIGKILL)
                except psutil.NoSuchProcess:
                    pass
            _gone, alive = psutil.wait_procs(victims, timeout=5)
        except psutil.NoSuchProcess:
            alive = []
        except (psutil.Error, OSError) as exc:
            done.append(self._record(p, "error", rule, f"kill failed: {exc}; {evidence}"))
            return done
        if alive:
            done.append(self._record(p, "error", rule, f"survived SIGKILL; {evidence}"))
            return done
        extra = f" (+{len(victims) - 1} child process(es))" if len(victims) > 1 else ""
        done.append(self._record(p, "kill", rule, evidence + extra))
        return done

    def _maybe_purge(self, p: Seen) -> list[Action]:
        limit = self.policy.purge_after_kills
        if not limit:
            return []
        session = self._session(p.stdid)
        since = session[2] if session else 0.0
        kills = self.log.strikes(p.stdid, since)
        if kills < limit:
            return []
        return self._purge(p, "cpu", f"{kills} kill(s) this session")

    def _session(self, stdid: int) -> tuple[int, str, float, str] | None:
        """(customer, workshop, session start, state) of the seat's current session, from
        the job history (its last CREATE not undone by a CLEANUP, RESET or PURGE)."""
        if self.queue is None:
            return None
        from wod.ops.seats import seats as seat_table
        from wod.services.accounts import make_accounts

        seat = seat_table(self.settings, self.queue, make_accounts(self.settings), stdid, stdid)[0]
        if seat.customer is None or not seat.workshop:
            return None
        start = 0.0
        for job in self.queue.history(stdid, stdid):
            if job.verb == "CREATE":
                start = job.created
        return seat.customer, seat.workshop, start, seat.state

    def _purge(self, p: Seen, rule: str, why: str) -> list[Action]:
        session = self._session(p.stdid)
        if session is None:
            return [self._record(p, "purge-skipped", rule, f"{why}; no customer on record")]
        customer, workshop, _start, state = session
        if state in ("purge pending", "free"):
            return []
        from wod.requests import Request, Verb

        request = Request(
            verb=Verb.PURGE,
            stdid=p.stdid,
            stdid_max=p.stdid,
            customer=customer,
            workshop=workshop,
            channel="watch",
            notes=(f"abuse watcher: {rule}: {why}",),
        )
        job = self.queue.submit(request)  # type: ignore[union-attr]
        return [self._record(p, "purge", rule, f"{why}; PURGE job {job} for customer {customer}")]


def _own(processes: list[psutil.Process], uid: int) -> list[psutil.Process]:
    """Those of ``processes`` whose real uid is ``uid`` (a setuid child is left alone)."""
    out = []
    for proc in processes:
        try:
            if proc.uids().real == uid:
                out.append(proc)
        except psutil.Error:
            continue
    return out


def start_watcher(settings: Settings, queue: JobQueue) -> Watcher | None:
    """The watcher ``wod serve`` runs, or None when it is off or cannot apply (directory
    accounts have no per-student processes)."""
    if not settings.watch_enabled:
        log.info("abuse watcher off (watch_enabled: false)")
        return None
    if settings.accounts != "system":
        log.info("abuse watcher off: directory accounts have no per-student processes")
        return None
    return Watcher(settings, queue).start()
