"""Host checks (SPEC 6 "check", upstream ``check_system.yml``): limits of the admin user,
kernel settings, tasks per user, ``/etc/skel``, disk space.

Fixable here: the limits file, the sysctl drop-in and the per-user tasks drop-in (our
own files under ``/etc``, never an edit of someone else's).
"""

from __future__ import annotations

import filecmp
import os
import re
import shutil
from pathlib import Path

from wod.ops.check.base import (
    CheckResult,
    Host,
    check,
    fail,
    fixed,
    listing,
    ok,
    skipped,
    warn,
)

DROPIN = "90-wod-backend.conf"

# -- limits ------------------------------------------------------------------------------
#: (item, minimum) for the admin user, soft and hard (upstream check_system.yml)
LIMITS = (("nproc", 800_000), ("nofile", 65_535))


def read_limits(host: Host, user: str) -> dict[tuple[str, str], str]:
    """Effective ``(type, item) -> value`` for ``user`` from limits.conf then limits.d
    (a user line beats ``*``; a later line of the same kind beats an earlier one)."""
    files = [host.path("/etc/security/limits.conf")]
    folder = host.path("/etc/security/limits.d")
    if folder.is_dir():
        files += sorted(p for p in folder.glob("*.conf") if p.is_file())
    found: dict[tuple[str, str], tuple[int, str]] = {}
    for path in files:
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            parts = line.split("#", 1)[0].split()
            if len(parts) != 4:
                continue
            domain, kind, item, value = parts
            rank = 2 if domain == user else 1 if domain == "*" else 0
            if not rank:
                continue
            for t in ("soft", "hard") if kind == "-" else (kind,):
                if found.get((t, item), (0, ""))[0] <= rank:
                    found[(t, item)] = (rank, value)
    return {key: value for key, (_rank, value) in found.items()}


def _limit_problems(host: Host, user: str) -> list[str]:
    current = read_limits(host, user)
    problems = []
    for item, minimum in LIMITS:
        for kind in ("soft", "hard"):
            value = current.get((kind, item))
            good = value in ("unlimited", "infinity") or (
                value is not None and value.isdigit() and int(value) >= minimum
            )
            if not good:
                problems.append(f"{kind} {item} {value or 'unset'} (want >= {minimum})")
    return problems


def not_a_seat_host(host: Host) -> CheckResult | None:
    """Skip host tuning for ``directory`` accounts (no Linux student accounts here)."""
    if host.settings.accounts == "directory":
        return skipped("directory accounts: no Linux student accounts on this host")
    return None


@check("limits", "host")
def limits(host: Host) -> CheckResult:
    if (skip := not_a_seat_host(host)) is not None:
        return skip
    user = host.settings.admin_user
    problems = _limit_problems(host, user)
    if not problems:
        return ok(f"{user}: nproc >= 800000, nofile >= 65535 (soft and hard)")
    target = host.path(f"/etc/security/limits.d/{DROPIN}")
    if host.fix:
        target.parent.mkdir(parents=True, exist_ok=True)
        lines = [f"# written by wod check --fix: limits of the WoD admin user {user}"]
        for item, minimum in LIMITS:
            lines += [f"{user} soft {item} {minimum}", f"{user} hard {item} {minimum}"]
        target.write_text("\n".join(lines) + "\n")
        os.chmod(target, 0o644)
        again = _limit_problems(host, user)
        if not again:
            return fixed(f"{user}: limits written to {target}")
        problems = again
    return fail(
        f"{user}: {listing(problems)}",
        f"wod check --fix (writes {target}), or set them in /etc/security/limits.d",
    )


# -- sysctl ------------------------------------------------------------------------------
#: key -> (wanted, how the live value compares: "min" at least, "max" at most)
SYSCTL = {
    "net.ipv4.tcp_keepalive_time": (1800, "max"),
    "kernel.threads-max": (4_096_000, "min"),
    "kernel.pid_max": (200_000, "min"),
    "vm.max_map_count": (600_000, "min"),
}


def _sysctl_path(host: Host, key: str) -> Path:
    return host.path("/proc/sys/" + key.replace(".", "/"))


def _sysctl_problems(host: Host) -> list[str]:
    problems = []
    for key, (wanted, how) in SYSCTL.items():
        try:
            live = int(_sysctl_path(host, key).read_text().split()[0])
        except (OSError, ValueError, IndexError):
            problems.append(f"{key} unreadable")
            continue
        good = live >= wanted if how == "min" else live <= wanted
        if not good:
            problems.append(f"{key}={live} (want {'>=' if how == 'min' else '<='} {wanted})")
    return problems


@check("sysctl", "host")
def sysctl(host: Host) -> CheckResult:
    if (skip := not_a_seat_host(host)) is not None:
        return skip
    problems = _sysctl_problems(host)
    if not problems:
        return ok(", ".join(f"{k} {v[0]}" for k, v in SYSCTL.items()))
    dropin = host.path(f"/etc/sysctl.d/{DROPIN}")
    if host.fix:
        dropin.parent.mkdir(parents=True, exist_ok=True)
        body = "".join(f"{key} = {wanted}\n" for key, (wanted, _how) in SYSCTL.items())
        dropin.write_text("# written by wod check --fix (WoD backend kernel settings)\n" + body)
        os.chmod(dropin, 0o644)
        errors = []
        # Apply what the drop-in says now, as `sysctl --system` would for these keys.
        for key, (wanted, how) in SYSCTL.items():
            path = _sysctl_path(host, key)
            try:
                live = int(path.read_text().split()[0])
                if (live < wanted) if how == "min" else (live > wanted):
                    path.write_text(f"{wanted}\n")
            except (OSError, ValueError, IndexError) as exc:
                errors.append(f"{key}: {getattr(exc, 'strerror', None) or exc}")
        again = _sysctl_problems(host)
        if not again:
            return fixed(f"written to {dropin} and applied")
        problems = again + errors
        return fail(
            f"{listing(problems)} (drop-in {dropin} written; not applied here)",
            "run sysctl --system on the host (a container cannot change kernel settings)",
        )
    return fail(listing(problems), f"wod check --fix (writes {dropin} and applies it)")


# -- tasks per user (logind UserTasksMax / user-.slice TasksMax) -------------------------
TASKS_MAX = 100_000
_TASKS = re.compile(r"^\s*(?:UserTasksMax|TasksMax)\s*=\s*(\S+)", re.MULTILINE)


def _tasks_value(host: Host) -> str | None:
    files = [host.path("/etc/systemd/logind.conf")]
    for folder in ("/etc/systemd/logind.conf.d", "/etc/systemd/system/user-.slice.d"):
        d = host.path(folder)
        if d.is_dir():
            files += sorted(d.glob("*.conf"))
    value = None
    for path in files:
        try:
            for match in _TASKS.finditer(path.read_text(errors="replace")):
                value = match.group(1)
        except OSError:
            continue
    return value


def _tasks_good(value: str | None) -> bool:
    return value is not None and (
        value.lower() == "infinity" or (value.isdigit() and int(value) >= TASKS_MAX)
    )


@check("tasks-max", "host")
def tasks_max(host: Host) -> CheckResult:
    if (skip := not_a_seat_host(host)) is not None:
        return skip
    value = _tasks_value(host)
    if _tasks_good(value):
        return ok(f"tasks per user: {value}")
    # systemd >= 240 reads TasksMax of user-.slice; logind's UserTasksMax is ignored there.
    target = host.path(f"/etc/systemd/system/user-.slice.d/{DROPIN}")
    if host.fix:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(f"# written by wod check --fix\n[Slice]\nTasksMax={TASKS_MAX}\n")
        os.chmod(target, 0o644)
        if _tasks_good(_tasks_value(host)):
            return fixed(f"TasksMax={TASKS_MAX} written to {target}")
    return warn(
        f"tasks per user: {value or 'unset'} (want UserTasksMax/TasksMax >= {TASKS_MAX})",
        f"wod check --fix (writes {target}), then systemctl daemon-reload",
    )


# -- /etc/skel -----------------------------------------------------------------------------
@check("skel", "host")
def skel(host: Host) -> CheckResult:
    if (skip := not_a_seat_host(host)) is not None:
        return skip
    dirs = host.settings.skel_dirs
    if not dirs:
        return skipped("no skel_dirs set")
    source = dirs[0]
    if not source.is_dir():
        return fail(f"skeleton folder {source} missing", "create it or fix setting skel_dirs")
    target = host.path("/etc/skel")
    differ: list[str] = []
    for path in sorted(source.rglob("*")):
        if path.is_dir() and not path.is_symlink():
            continue
        rel = path.relative_to(source)
        other = target / rel
        if not other.exists() or (path.is_file() and not filecmp.cmp(path, other, shallow=False)):
            differ.append(str(rel))
    if not differ:
        return ok(f"{target} holds {source}")
    return warn(
        f"{target} differs from {source}: {listing(differ)}",
        f"cp -a {source}/. {target}/",
    )


# -- disk space ----------------------------------------------------------------------------
LOW_FREE = (0.10, 1 << 30)  # warn below 10 % or 1 GiB
CRITICAL_FREE = (0.02, 200 << 20)  # fail below 2 % or 200 MiB


@check("disk-space", "host")
def disk_space(host: Host) -> list[CheckResult]:
    out = []
    for label, folder in (
        ("homes", host.settings.students_dir),
        ("state", host.settings.state_dir),
    ):
        probe = folder
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        usage = shutil.disk_usage(probe)
        share = usage.free / usage.total if usage.total else 0.0
        text = f"{folder}: {usage.free / (1 << 30):.1f} GiB free ({share:.0%})"
        if share < CRITICAL_FREE[0] or usage.free < CRITICAL_FREE[1]:
            r = fail(text, f"free space on the file system of {folder}")
        elif share < LOW_FREE[0] or usage.free < LOW_FREE[1]:
            r = warn(text, f"free space on the file system of {folder}")
        else:
            r = ok(text)
        r.name = f"disk-space-{label}"
        out.append(r)
    return out
