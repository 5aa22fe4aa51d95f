"""Reliability and scale of a whole install under load and faults; figures in
docs/reliability.md (``make reliability``).

Everything real, as in ``tests/test_reliability.py`` (same rig: ``tests/plugins/
reliability.py``): ``wod registry`` (the api-db peer) and ``wod serve`` as processes on free
ports, real Linux accounts (root; test-only names and uids, removed afterwards), smtplib
clients over concurrent connections.  Traffic is sessions: per seat, participant after
participant, each a ``CREATE`` then the ``CLEANUP`` the api-db sends when the session ends
(the seat is handed on only after it).  Scenarios (``--only``, comma-separated):

- ``burst``   ``--creates`` CREATEs for ``--seats`` seats over ``--connections`` connections:
              all done, none lost or duplicated, per-seat order; drain rate, latencies,
              RSS idle and at the peak, per-step medians, optional py-spy profile.
- ``rush``    ``--rush`` CREATEs for as many seats, one participant each (a registration
              rush: the CLEANUPs come when the sessions end, hours later), same figures.
- ``kill``    ``--kills`` times ``kill -9`` of ``wod serve`` at a random moment of a burst
              (create hooks of some seats sleep), restart: orphans of the killed run,
              exactly-once in effect, seats vs the api-db.
- ``apidb``, ``ldap``, ``hub``  the peer down ``--outage`` seconds during a burst, then
              back: everything completes.  LDAP is a real slapd, the hub a real JupyterHub.
- ``disk``    the state folder on a small tmpfs filled up: 451, log line, recovery,
              ``PRAGMA integrity_check``.
- ``leak``    ``--leak-jobs`` jobs (notebook-only workshop, directory accounts): RSS after
              2,000 and after all.
- ``idle``    ``250`` -> customer active, one CREATE at a time (each participant's
              CLEANUP in between), system accounts.

    .venv/bin/python bench/reliability.py [--only burst,kill] [--outage 60] [--py-spy]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))

from run import machine_facts, replace_marked  # noqa: E402

from tests.plugins.reliability import (  # noqa: E402
    HOOKED,
    LDAP_WS,
    NOTEBOOK,
    LdapServer,
    Mail,
    Rig,
    check_burst,
    cpu_seconds,
    drain_figures,
    fill,
    integrity_check,
    memory_kib,
    pct,
    rig,
    send_burst,
    session_plan,
    started_at,
    tmpfs,
    wait_for,
)
from wod.queue import Job  # noqa: E402

DOC = ROOT / "docs" / "reliability.md"
SCENARIOS = ("burst", "rush", "kill", "apidb", "ldap", "hub", "disk", "leak", "idle")
TARGET_CREATES_PER_S = 50.0
TARGET_IDLE_ACTIVE_MS = 30.0
TARGET_RSS_IDLE_MB = 80.0
TARGET_RSS_BURST_MB = 150.0


def mb(kib: int) -> float:
    return kib / 1024


def ms_row(label: str, samples: list[float]) -> str:
    if not samples:
        return f"| {label} | 0 | | | |"
    return (
        f"| {label} | {len(samples)} | {statistics.median(samples):.1f} | "
        f"{pct(samples, 95):.1f} | {max(samples):.1f} |"
    )


def verdict_rows(v: Any) -> list[str]:
    refused = ", ".join(f"{n} x {code}" for code, n in sorted(v.refused.items())) or "none"
    return [
        "| check | value |",
        "|---|---|",
        f"| mails sent / acknowledged (`250`) / unanswered (connection cut) / refused | "
        f"{v.mails} / {v.accepted} / {v.unacknowledged} / {refused} |",
        f"| mails sent again after their connection died unanswered (a copy may have been "
        f"persisted: at least once, as SMTP is) | {v.resent} |",
        f"| jobs recorded / done | {v.jobs} / {v.done} |",
        f"| jobs run more than once (resumed or retried) | {v.reruns} |",
        f"| same-seat pairs in `250` order checked / concurrent (overlapping) | "
        f"{v.order_pairs} / {v.concurrent_pairs} |",
        f"| problems (lost, duplicated, out of order, seat != api-db) | {len(v.problems)} |",
        f"| verdict | {'**all done once, in order, seats = api-db**' if v.ok else '**FAILED**'} |",
    ]


def problems_list(v: Any, limit: int = 8) -> list[str]:
    if v.ok:
        return []
    return ["", "Problems found (first ones):", ""] + [f"- {p}" for p in v.problems[:limit]]


def step_table(jobs: list[Job]) -> list[str]:
    by: dict[tuple[str, str], list[float]] = defaultdict(list)
    order: list[tuple[str, str]] = []
    for job in jobs:
        verb = job.request.verb.value
        if job.started is not None:
            key = (verb, "(queued: persisted -> claimed)")
            by[key].append((job.started - job.created) * 1000)
        for s in job.steps:
            key = (verb, s.name)
            if key not in by:
                order.append(key)
            by[key].append((s.seconds or 0.0) * 1000)
    rows = ["| verb | step | n | median ms | p95 ms |", "|---|---|---|---|---|"]
    for verb in sorted({k[0] for k in by}):
        keys = [(verb, "(queued: persisted -> claimed)")] + [k for k in order if k[0] == verb]
        for key in keys:
            if by.get(key):
                samples = by[key]
                rows.append(
                    f"| {verb} | {key[1]} | {len(samples)} | {statistics.median(samples):.1f} | "
                    f"{pct(samples, 95):.1f} |"
                )
    return rows


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# -- profile (py-spy) --------------------------------------------------------------------
@contextlib.contextmanager
def py_spy(pid: int, out: Path, enabled: bool) -> Iterator[None]:
    """Sample every thread of ``pid`` (non-idle) with py-spy into collapsed stacks."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not enabled or not Path(spy).exists():
        yield
        return
    proc = subprocess.Popen(
        [
            spy,
            "record",
            "--pid",
            str(pid),
            "--rate",
            "100",
            "--nonblocking",  # never pause wod serve (its figures stay its own)
            "--format",
            "raw",
            "-o",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)  # py-spy attaches
    try:
        yield
    finally:
        proc.send_signal(2)  # SIGINT: py-spy writes the file and exits
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(60)


def profile_tables(raw: Path, top: int = 15) -> list[str]:
    """Top frames of a py-spy collapsed-stack file: self time (leaf) and inclusive time
    of the project's own functions, as a share of the samples."""
    if not raw.exists():
        return ["(no profile: py-spy not available)"]
    selfs: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = waiting = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        frames = [f for f in stack.split(";") if f]
        names = [_frame(f) for f in frames]
        if not names or names[-1] in WAITS:
            waiting += n  # a thread blocked in C (py-spy cannot always tell it is idle)
            continue
        total += n
        selfs[names[-1]] += n
        for name in set(names):
            if name.startswith("wod/"):
                incl[name] += n
    if not total:
        return ["(empty profile)"]
    rows = [
        f"{total} samples of threads at work ({waiting} more of threads blocked waiting: "
        "a lock, a queue, a socket poll — left out).",
        "",
        "| self (leaf) frame | share |",
    ]
    rows.append("|---|---|")
    rows += [f"| `{name}` | {n / total:.1%} |" for name, n in selfs.most_common(top)]
    rows += ["", "| project function, inclusive | share |", "|---|---|"]
    rows += [f"| `{name}` | {n / total:.1%} |" for name, n in incl.most_common(top)]
    return rows


#: Leaf frames that are a thread blocked in C: waiting, not working.
WAITS = {
    "threading.py:Condition.wait",
    "threading.py:Event.wait",
    "selectors.py:EpollSelector.select",
    "selectors.py:_PollLikeSelector.select",
    "wod/intake/smtp.py:OrderedWriter._main",
    "queue.py:Queue.get",
}


def _frame(frame: str) -> str:
    """``func (path/file.py:12)`` -> ``file:func`` with the path from the package or
    stdlib root (``wod/services/accounts.py:chown_tree``)."""
    func, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("/wod/", "/site-packages/", "/lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            if marker == "/wod/":
                path = "wod/" + path
            break
    return f"{path}:{func}"


# -- scenarios ---------------------------------------------------------------------------
def scenario_burst(args: argparse.Namespace, tmp: Path) -> str:
    """Sessions: each seat's participants one after another, each CREATE followed by the
    CLEANUP that ends its session before the seat's next CREATE."""
    seats = list(range(1, args.seats + 1))
    sessions = max(args.creates // args.seats, 1)
    about = f"{sessions} participants per seat, each session ended by its CLEANUP before the next"
    return measure_drain(args, tmp / "burst", seats, sessions, about)


def scenario_rush(args: argparse.Namespace, tmp: Path) -> str:
    """A registration rush: ``--rush`` participants register at once, one seat each (the
    CLEANUPs come hours later, when their sessions end): CREATEs only."""
    seats = list(range(1, args.rush + 1))
    return measure_drain(args, tmp / "rush", seats, 1, "one participant per seat, no CLEANUP")


def measure_drain(
    args: argparse.Namespace, base: Path, seats: list[int], sessions: int, about: str
) -> str:
    """Send the plan over ``--connections`` connections, wait until every job settled,
    check it (:func:`check_burst`) and report drain, CPU, latencies, memory and steps."""
    prof = base / "serve.pyspy"
    values = {"workers": args.workers} if args.workers else {}
    with rig(base, seats=len(seats), accounts=args.accounts, **values) as r:
        assert r.serve is not None
        assert r.registry is not None
        idle_kib, _ = memory_kib(r.serve.pid)
        mails = session_plan(r, seats, sessions)
        load = [loadavg()]
        cpu = [cpu_seconds(r.serve.pid), cpu_seconds(r.registry.pid), process_cpu()]
        with py_spy(r.serve.pid, prof, args.py_spy):
            send_burst(r, mails, args.connections, timeout=600)
            jobs = r.wait_settled(sum(m.accepted for m in mails), timeout=3600)
        cpu = [
            cpu_seconds(r.serve.pid) - cpu[0],
            cpu_seconds(r.registry.pid) - cpu[1],
            process_cpu() - cpu[2],
        ]
        after_kib, peak_kib = memory_kib(r.serve.pid)
        load.append(loadavg())
        verdict = check_burst(r, mails, jobs)
    d = drain_figures(mails, jobs)
    met = d.creates_per_s >= TARGET_CREATES_PER_S
    per_job = [c / len(jobs) * 1000 for c in cpu]
    lines = [
        f"{d.creates} CREATEs for {len(seats)} seats ({about}: {len(mails)} mails) over "
        f"{args.connections} concurrent SMTP connections, notebook-only workshop "
        f"`{NOTEBOOK}`, `accounts: {args.accounts}`, {r.settings.workers} workers. "
        f"Load average before / after: {load[0]} / {load[1]}.",
        "",
        *verdict_rows(verdict),
        *problems_list(verdict),
        "",
        "| drain | value |",
        "|---|---|",
        f"| first `.` sent -> last job finished | {d.seconds:.1f} s |",
        f"| CREATE/s (target >= {TARGET_CREATES_PER_S:.0f}) | {d.creates_per_s:.1f} "
        f"({'met' if met else 'MISSED'}) |",
        f"| jobs/s (CREATE + CLEANUP) | {d.jobs_per_s:.1f} |",
        f"| CPU of `wod serve` per job (user + system, hooks included) | {per_job[0]:.1f} ms |",
        f"| CPU of the registry (api-db peer) per job | {per_job[1]:.1f} ms |",
        f"| CPU of this bench's SMTP clients per job | {per_job[2]:.1f} ms |",
        f"| jobs/s the {os.cpu_count()} CPUs would allow with nothing else running "
        f"(CPU bound, all three) | {os.cpu_count() / (sum(cpu) / len(jobs)):.0f} |",
        f"| jobs/s `wod serve` alone would allow on {os.cpu_count()} CPUs (api-db "
        f"elsewhere, as in production) | {os.cpu_count() / (cpu[0] / len(jobs)):.0f} |",
        "",
        "| latency | n | median ms | p95 ms | max ms |",
        "|---|---|---|---|---|",
        ms_row("final `.` -> `250` (persisted)", d.ack_ms),
        ms_row("CREATE: `250` -> job finished (includes the queue wait)", d.done_ms),
        "",
        "| memory of `wod serve` | MB | target |",
        "|---|---|---|",
        f"| RSS idle, after start | {mb(idle_kib):.1f} | < {TARGET_RSS_IDLE_MB:.0f} "
        f"({'met' if mb(idle_kib) < TARGET_RSS_IDLE_MB else 'MISSED'}) |",
        f"| RSS peak during the burst (VmHWM) | {mb(peak_kib):.1f} | < {TARGET_RSS_BURST_MB:.0f} "
        f"({'met' if mb(peak_kib) < TARGET_RSS_BURST_MB else 'MISSED'}) |",
        f"| RSS idle after the burst | {mb(after_kib):.1f} | |",
        "",
        "Per step (from the job records):",
        "",
        *step_table(jobs),
    ]
    if args.py_spy:
        lines += ["", "Profile of `wod serve` during the burst (py-spy, 100 Hz, non-blocking):", ""]
        lines += profile_tables(prof)
    return "\n".join(lines) + "\n"


def process_cpu() -> float:
    """CPU seconds of this process (the bench's SMTP client threads, the load generator)."""
    t = os.times()
    return t.user + t.system


def scenario_kill(args: argparse.Namespace, tmp: Path) -> str:
    seats = list(range(1, args.kill_seats + 1))
    rnd = random.Random(args.seed)
    rows = [
        "| round | mails | killed after | hooks running at the kill | of them alive after "
        "the restart | unanswered | jobs resumed |",
        "|---|---|---|---|---|---|---|",
    ]
    all_mails: list[Mail] = []
    orphans_total = 0
    with rig(tmp / "kill", seats=args.kill_seats, accounts=args.accounts, slow_hook=2.0) as r:
        for round_ in range(1, args.kills + 1):
            mails = session_plan(r, seats, 2, workshop=HOOKED, final_cleanup=True)
            all_mails += mails
            sender = threading.Thread(target=send_burst, args=(r, mails, 10), daemon=True)
            before = {j.id for j in r.jobs() if j.attempts > 1}
            sender.start()
            delay = rnd.uniform(0.2, 4.0)
            time.sleep(delay)  # a random moment of the burst
            r.kill_serve()
            killed = r.kills[-1]
            running = [p for p in r.orphans() if started_at(p) <= killed]
            r.start_serve()
            alive = [p for p in running if p in r.orphans()]
            orphans_total += len(alive)
            sender.join(600)
            jobs = r.wait_settled(sum(m.accepted for m in all_mails), timeout=900)
            resumed = len({j.id for j in jobs if j.attempts > 1} - before)
            unanswered = sum(1 for m in mails if m.code is None)
            rows.append(
                f"| {round_} | {len(mails)} | {delay:.2f} s | {len(running)} | {len(alive)} | "
                f"{unanswered} | {resumed} |"
            )
            # What the killed run left dies with its hook; nothing of it may linger.
            wait_for(lambda: not r.orphans(), "hooks finished", timeout=120)
        verdict = check_burst(r, all_mails, r.jobs())
    lines = [
        f"{args.kills} rounds on {args.kill_seats} seats (`{HOOKED}`, whose create hook "
        "sleeps 2 s for seats ending in 0 or 5; two sessions per seat per round, "
        "10 connections); in each round `wod serve` is killed with SIGKILL at a random "
        "moment, then started again while the clients reconnect.",
        "",
        *rows,
        "",
        f"Processes of a killed run still running after the restart, all rounds: "
        f"**{orphans_total}** (must be 0).",
        "",
        *verdict_rows(verdict),
        *problems_list(verdict),
    ]
    return "\n".join(lines) + "\n"


def _outage(
    r: Rig,
    mails: list[Mail],
    seconds: float,
    down: Callable[[], None],
    up: Callable[[], None],
    connections: int,
) -> tuple[Any, list[str]]:
    sender = threading.Thread(target=send_burst, args=(r, mails, connections), daemon=True)
    sender.start()
    time.sleep(0.5)  # the burst is under way
    down()
    downed = time.monotonic()
    done_at_down = sum(j.status == "done" for j in r.jobs())
    time.sleep(seconds)  # the outage
    during = sum(j.status == "done" for j in r.jobs()) - done_at_down
    retried = sum(j.attempts > 1 for j in r.jobs())
    up()
    back = time.monotonic()
    sender.join(600)
    jobs = r.wait_settled(sum(m.accepted for m in mails), timeout=1800)
    settled = time.monotonic()
    verdict = check_burst(r, mails, jobs)
    rows = [
        "| measure | value |",
        "|---|---|",
        f"| outage | {back - downed:.1f} s |",
        f"| jobs done before the outage / during it | {done_at_down} / {during} |",
        f"| jobs that met the outage (retried) | {retried} |",
        f"| peer back -> all settled | {settled - back:.1f} s |",
    ]
    return verdict, rows


def _outage_rig_values(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "retry_max_delay": args.retry_max_delay,
        "retry_max_attempts": int(args.outage / args.retry_max_delay) + 20,
    }


def scenario_apidb(args: argparse.Namespace, tmp: Path) -> str:
    seats = list(range(1, args.outage_seats + 1))
    with rig(
        tmp / "apidb", seats=args.outage_seats, accounts=args.accounts, **_outage_rig_values(args)
    ) as r:
        mails = session_plan(r, seats, 3)
        verdict, rows = _outage(r, mails, args.outage, r.stop_registry, r.start_registry, 20)
    return _outage_text(
        "The api-db (`wod registry` process) stopped (SIGTERM)",
        args,
        mails,
        verdict,
        rows,
        NOTEBOOK,
    )


def scenario_ldap(args: argparse.Namespace, tmp: Path) -> str:
    seats = list(range(1, args.outage_seats + 1))
    ldap = LdapServer(tmp / "slapd")
    made = Rig(
        tmp / "ldap",
        seats=args.outage_seats,
        accounts=args.accounts,
        ldap=ldap.settings(),
        **_outage_rig_values(args),
    )
    try:
        ldap.seed([made.settings.account(n) for n in seats])
        ldap.start()
        made.provision()
        made.start_registry()
        made.start_serve()
        mails = session_plan(made, seats, 3, workshop=LDAP_WS)
        verdict, rows = _outage(made, mails, args.outage, ldap.stop, ldap.start, 20)
    finally:
        made.close()
        ldap.stop()
    return _outage_text(
        "The LDAP server (a real slapd) stopped", args, mails, verdict, rows, LDAP_WS
    )


def scenario_hub(args: argparse.Namespace, tmp: Path) -> str:
    from tests.plugins.reliability import Hub

    seats = list(range(1, args.hub_seats + 1))
    hub = Hub(tmp / "hub")
    made = Rig(
        tmp / "hubrig",
        seats=args.hub_seats,
        accounts=args.accounts,
        hub_url=hub.url,
        hub_token=hub.token,
        **_outage_rig_values(args),
    )
    try:
        hub.start()
        made.provision()
        made.start_registry()
        made.start_serve()
        mails = session_plan(made, seats, 2)
        verdict, rows = _outage(made, mails, args.outage, hub.stop, hub.start, 10)
    finally:
        made.close()
        hub.stop()
    return _outage_text(
        "A real JupyterHub (SimpleLocalProcessSpawner, configurable-http-proxy) stopped "
        "(SIGTERM: it stops its proxy and the user servers; it comes back on the same "
        "database)",
        args,
        mails,
        verdict,
        rows,
        NOTEBOOK,
    )


def _outage_text(
    what: str, args: argparse.Namespace, mails: list[Mail], verdict: Any, rows: list[str], ws: str
) -> str:
    creates = sum(m.verb == "CREATE" for m in mails)
    lines = [
        f"{what} for {args.outage:g} s, 0.5 s into a burst of {creates} CREATEs and "
        f"{len(mails) - creates} CLEANUPs (`{ws}`), then started again. Retry settings: "
        f"`retry_base_delay` 0.2 s doubling up to `retry_max_delay` {args.retry_max_delay:g} s, "
        f"`retry_max_attempts` {int(args.outage / args.retry_max_delay) + 20}.",
        "",
        *rows,
        "",
        *verdict_rows(verdict),
        *problems_list(verdict),
    ]
    return "\n".join(lines) + "\n"


def scenario_disk(args: argparse.Namespace, tmp: Path) -> str:
    with rig(tmp / "disk", seats=4, accounts=args.accounts, start=False) as r:
        with tmpfs(r.settings.state_dir, "4m"):
            r.start_registry()
            r.start_serve()
            first = session_plan(r, [1], sessions=1)
            send_burst(r, first, connections=1)
            r.wait_settled(1, timeout=60)
            filler = r.settings.state_dir / "filler"
            filled = fill(filler)
            tried = session_plan(r, [2, 3, 4], sessions=40)[:200]
            for mail in tried:
                send_burst(r, [mail], connections=1)
                if mail.code == 451:
                    break
            accepted_full = sum(m.accepted for m in tried)
            refused = [m for m in tried if m.code == 451]
            log_lines = [line for line in r.log_text().splitlines() if "not persisted" in line]
            filler.unlink()
            again = [Mail(0, "CLEANUP", 1, first[0].customer, NOTEBOOK)]
            send_burst(r, again, connections=1)
            mails = first + [m for m in tried if m.code not in (None, 451)] + again
            jobs = r.wait_settled(sum(m.accepted for m in mails), timeout=300)
            verdict = check_burst(r, mails, jobs)
            r.stop_serve()
            integrity = integrity_check(r.settings.db_path)
            r.stop_registry()
    lines = [
        "The state folder (job database) on a 4 MiB tmpfs; one CREATE done, then the "
        f"file system filled ({filled / 1024:.0f} KiB of filler), then mails one at a time "
        "until one is refused, then the filler removed and the next mail sent.",
        "",
        "| check | value |",
        "|---|---|",
        f"| mails still accepted on the full disk (room left in SQLite's WAL) | {accepted_full} |",
        f"| refused with `451` | {'yes: ' + repr(refused[0].reply) if refused else 'NO'} |",
        f"| log line | `{log_lines[0].strip()[:160] if log_lines else 'NONE'}` |",
        f"| next mail after freeing space | {again[0].code} {again[0].reply} |",
        f"| `PRAGMA integrity_check` of the job database | {integrity} |",
        "",
        *verdict_rows(verdict),
        *problems_list(verdict),
    ]
    return "\n".join(lines) + "\n"


def scenario_leak(args: argparse.Namespace, tmp: Path) -> str:
    """``--leak-jobs`` jobs in chunks; after each, the RSS of ``wod serve`` and what could
    make it grow: live Python objects and the SQLite heap (``bench/memsampler.py``)."""
    seats = list(range(1, 101))
    rows = [
        "| jobs done | RSS MB | peak MB | Python objects | SQLite heap MB | chunk jobs/s |",
        "|---|---|---|---|---|---|",
    ]
    marks: dict[int, tuple[float, int, float]] = {}
    samples = tmp / "leak-memory.json"
    with rig(tmp / "leak", seats=len(seats), accounts="directory", start=False) as r:
        r.start_registry()
        r.start_serve(launcher=(str(BENCH / "memsampler.py"), str(samples)))
        assert r.serve is not None
        total = 0
        problems = 0
        while total < args.leak_jobs:
            mails = session_plan(r, seats, 5, final_cleanup=True)
            start = time.monotonic()
            send_burst(r, mails, 20)
            total += len(mails)
            jobs = r.wait_settled(total, timeout=1800)
            rate = len(mails) / (time.monotonic() - start)
            problems += sum(j.status != "done" for j in jobs[-len(mails) :])
            time.sleep(2.5)  # a sample taken after the chunk settled
            figures = json.loads(samples.read_text())
            rss, peak = memory_kib(r.serve.pid)
            objects, heap = figures["python_objects"], (figures["sqlite_heap_bytes"] or 0) / 2**20
            marks[total] = (mb(rss), objects, heap)
            rows.append(
                f"| {total} | {mb(rss):.1f} | {mb(peak):.1f} | {objects} | {heap:.2f} | "
                f"{rate:.1f} |"
            )
            print(rows[-1], file=sys.stderr, flush=True)
    at_2k = next((v for k, v in sorted(marks.items()) if k >= 2000), marks[min(marks)])
    last = marks[max(marks)]
    growth = last[0] - at_2k[0]
    lines = [
        f"{total} jobs in chunks of 1,000 (100 seats x 5 sessions, CREATE + CLEANUP, "
        f"`{NOTEBOOK}`, `accounts: directory`), `wod serve` started as its systemd unit "
        "does (`MALLOC_ARENA_MAX=2`) through `bench/memsampler.py`; figures read 2.5 s "
        f"after each chunk settled. Jobs not done: {problems}.",
        "",
        *rows,
        "",
        f"From ~2,000 to {total} jobs: RSS {growth:+.1f} MB "
        f"({'no growth beyond noise' if growth < 5 else 'GROWING'}), Python objects "
        f"{last[1] - at_2k[1]:+d}, SQLite heap {last[2] - at_2k[2]:+.2f} MB.",
    ]
    return "\n".join(lines) + "\n"


def scenario_idle(args: argparse.Namespace, tmp: Path) -> str:
    """One CREATE at a time on an idle server: ``250`` -> the customer marked active (the
    end of the step that sent ``PUT /customer/:id {"active": true}``, from the job record);
    each participant's CLEANUP is sent after it (not measured), as the api-db would."""
    seats = list(range(1, 7))
    actives: list[float] = []
    acks: list[float] = []
    creates: list[Job] = []
    with rig(tmp / "idle", seats=len(seats), accounts=args.accounts) as r:
        plan = session_plan(r, seats, max(args.idle_runs // len(seats), 1) + 1, final_cleanup=True)
        for mail in plan:
            send_burst(r, [mail], connections=1)
            if not mail.accepted:
                raise RuntimeError(f"{mail.subject}: {mail.code} {mail.reply}")
            job = r.wait_settled(mail.job or 0, timeout=60)[-1]
            if job.status != "done":
                raise RuntimeError(f"job {job.id} {job.status}: {job.reason}")
            if mail.verb != "CREATE" or mail.n < len(seats):
                continue  # the first CREATE of each seat warms up
            # "active" where the CREATE has that step, else "report" (both send the PUT).
            names = {s.name: s for s in job.steps}
            step = names.get("active") or names["report"]
            actives.append((step.started + (step.seconds or 0.0) - mail.acked_wall) * 1000)  # type: ignore[operator]
            acks.append((mail.acked - mail.dot) * 1000)  # type: ignore[operator]
            creates.append(job)
    med = statistics.median(actives)
    lines = [
        f"{len(actives)} CREATEs one at a time (each after the previous job finished, "
        f"every participant's CLEANUP in between; the first CREATE of each seat left out "
        f"as warm-up), notebook-only `{NOTEBOOK}`, `accounts: {args.accounts}`. `250` -> "
        "active is read from the job record: the end of the step that sent the api-db "
        '`PUT /customer/:id {"active": true}` and got its answer. Load average: '
        f"{loadavg()}.",
        "",
        "| measure | n | median ms | p95 ms | max ms |",
        "|---|---|---|---|---|",
        ms_row("`250` -> customer active", actives),
        ms_row("final `.` -> `250`", acks),
        "",
        f"Target median < {TARGET_IDLE_ACTIVE_MS:.0f} ms: "
        f"**{'met' if med < TARGET_IDLE_ACTIVE_MS else 'MISSED'}** ({med:.1f} ms).",
        "",
        "Per step:",
        "",
        *step_table(creates),
    ]
    return "\n".join(lines) + "\n"


HEADINGS = {
    "burst": "## Burst",
    "rush": "## Registration rush",
    "kill": "## kill -9 during bursts",
    "apidb": "## api-db down during a burst",
    "ldap": "## LDAP down during a burst",
    "hub": "## JupyterHub down during a burst",
    "disk": "## Full disk on the state folder",
    "leak": "## Memory over many jobs (leak check)",
    "idle": "## Idle latency: `250` -> active",
}
RUNNERS: dict[str, Callable[[argparse.Namespace, Path], str]] = {
    "burst": scenario_burst,
    "rush": scenario_rush,
    "kill": scenario_kill,
    "apidb": scenario_apidb,
    "ldap": scenario_ldap,
    "hub": scenario_hub,
    "disk": scenario_disk,
    "leak": scenario_leak,
    "idle": scenario_idle,
}


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default=",".join(SCENARIOS), help="scenarios, comma-separated")
    parser.add_argument("--seats", type=int, default=200)
    parser.add_argument("--creates", type=int, default=1000)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--rush", type=int, default=1000, help="seats (CREATEs) of the rush")
    parser.add_argument("--workers", type=int, default=0, help="wod serve workers (0: default)")
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--kill-seats", type=int, default=20)
    parser.add_argument("--outage", type=float, default=60.0, help="seconds a peer is down")
    parser.add_argument("--outage-seats", type=int, default=50)
    parser.add_argument("--hub-seats", type=int, default=10)
    parser.add_argument("--retry-max-delay", type=float, default=5.0)
    parser.add_argument("--leak-jobs", type=int, default=10_000)
    parser.add_argument("--idle-runs", type=int, default=50)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--py-spy", action="store_true", help="profile the burst with py-spy")
    parser.add_argument("--no-doc", action="store_true", help="print only, leave the doc")
    parser.add_argument("--keep", action="store_true", help="keep the tmp folder")
    args = parser.parse_args(argv)
    args.accounts = "system" if os.geteuid() == 0 else "directory"
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(only) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    if "disk" in only and os.geteuid() != 0:
        print("disk: needs root (tmpfs mount); skipped", file=sys.stderr)
        only.remove("disk")
    # SIGTERM (and SIGINT, even when a background shell ignores it) end the run through the
    # rigs' cleanup: processes stopped, test accounts removed.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    tmp = Path(tempfile.mkdtemp(prefix="wod-reliability-"))
    failed = []
    try:
        for name in only:
            print(f"== {name}", file=sys.stderr, flush=True)
            started = time.monotonic()
            try:
                body = RUNNERS[name](args, tmp)
            except Exception as exc:  # noqa: BLE001 - reported, the other scenarios go on
                failed.append(name)
                body = f"Scenario did not complete: `{type(exc).__name__}: {exc}`\n"
            stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
            body = f"Measured {stamp} ({time.monotonic() - started:.0f} s).\n\n{body}"
            print(body, flush=True)
            if not args.no_doc:
                text = DOC.read_text() if DOC.exists() else "# Reliability\n"
                text = replace_marked(text, name, HEADINGS[name], body, first=False)
                text = replace_marked(text, "machine", "## Machine", machine_facts(), first=True)
                DOC.write_text(text)
    finally:
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    if failed:
        print("did not complete: " + ", ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
