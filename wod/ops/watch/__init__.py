"""The abuse watcher: a look at the students' processes every ``watch_interval`` seconds,
inside ``wod serve`` (upstream ``wod-kill-processes``), with a graduated response.

Rules, for processes whose real uid is a seat's account (``uid_base + n``, checked against
the account database so another user's process is never touched):

- **blacklist** — a command named in ``watch_blacklist`` (crypto miners) is killed at
  once and, with ``watch_blacklist_purge``, its seat PURGEd;
- **cpu** — a process using ``watch_cpu_percent`` or more (of one core) is *busy*; busy
  for ``watch_throttle_after`` s it is throttled (nice 19 on every thread, plus a cgroup
  v2 ``cpu.max`` quota of ``watch_cpu_quota`` % when the cpu controller is available),
  for ``watch_notify_after`` s the admin is notified (log, a record the dashboard lists,
  a mail to ``monitor`` with ``watch_mail``), for ``watch_kill_after`` s it is killed.
  A throttled process stays busy while it is still runnable at each look (being starved
  by our own throttle does not clear it).  Commands in ``watch_whitelist`` and kernels
  (``watch_kernels``) are exempt;
- **kernel-age** — a kernel older than ``watch_kernel_max_age`` is killed;
- **purge** — after ``watch_purge_after_kills`` kills (cpu or blacklist) of one seat in the
  current session (since its last CREATE), a PURGE request for the seat's current customer
  (from the job history) is put into the job queue, as the intake would.

Upstream's weekly cleanup of month-old jupyter processes stays what it was: ``wod accounts
kill-stale`` (:func:`wod.ops.accounts.kill_stale`), run by ``wod-kill-stale.timer``.

Every action is recorded as one JSON line in ``<state_dir>/watch.jsonl`` (0600): time,
action, rule, pid, account, seat, process name, command line, CPU %, age, detail.
``wod watch --list`` and ``GET /api/watch`` read it back.  The clock is injected (tests
advance it instead of waiting minutes); CPU use is measured between two real looks.
"""

from wod.ops.watch.record import Action, ActionLog, list_actions, quarantined
from wod.ops.watch.rules import Policy, command_names
from wod.ops.watch.watcher import Watcher, start_watcher

__all__ = [
    "Action",
    "ActionLog",
    "Policy",
    "Watcher",
    "command_names",
    "list_actions",
    "quarantined",
    "start_watcher",
]
