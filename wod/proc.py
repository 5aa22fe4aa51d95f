"""The one way the backend runs an external command.

Every subprocess (hooks, ``chpasswd``, ``ssh-keygen``, ``shc``, ``setfacl``…) goes through
:func:`run`: an argument vector (never a shell string), an explicit environment, a timeout
after which the whole process group is killed, and output captured for the job record.
A non-zero exit or a timeout raises :class:`~wod.errors.Permanent` carrying the output.
Secrets passed on stdin (``input``) are never logged.

Every command runs in its own session, so its process group is what a crash can leave
behind.  While a job runs, the worker installs a :class:`Watch` (:func:`watching`): each
command's group is recorded with the job (leader pid, its start time in clock ticks since
boot, the boot id) before it is waited for, and forgotten when it ends.  At the next start
:func:`kill_group` ends what a killed server left running, never a process that merely
reuses a recorded pid.

Such a command starts only once it is recorded (:data:`GATE`): it is spawned as a small
``sh`` that waits for a "go" on its stdin and then replaces itself with the command
(``exec``: same pid, same group).  A server killed before the record was written never says
"go": the pipe closes, ``sh`` exits and the command never runs — nothing of a job can
escape the records, however long the record's write waited for the database.
"""

from __future__ import annotations

import contextvars
import errno
import functools
import logging
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from wod.errors import Permanent

log = logging.getLogger(__name__)

MAX_OUTPUT = 64 * 1024

#: The gate of a recorded command (see the module docstring): ``exec`` keeps the pid and
#: the group; stdin is /dev/null, as for any command without input; ``{unset}`` drops the
#: ``PWD`` dash would add to an environment given without one.
GATE = 'read -r go && [ "$go" = go ] && {unset}exec "$@" </dev/null; exit 75'


@dataclass(frozen=True)
class Completed:
    argv: tuple[str, ...]
    returncode: int
    output: str
    seconds: float


class Watch(Protocol):
    """Told about every process group :func:`run` starts while it is installed."""

    def started(self, pid: int, start_ticks: int, boot_id: str, what: str) -> object: ...

    def ended(self, token: object) -> None: ...


_watch: contextvars.ContextVar[Watch | None] = contextvars.ContextVar(
    "wod_proc_watch", default=None
)


@contextmanager
def watching(watch: Watch) -> Iterator[None]:
    """Report the commands run by this thread (or task) to ``watch`` inside the block."""
    token = _watch.set(watch)
    try:
        yield
    finally:
        _watch.reset(token)


@functools.cache
def boot_id() -> str:
    """This boot's id (a process recorded under another boot is long gone)."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _stat(pid: int) -> list[str] | None:
    """Fields of ``/proc/<pid>/stat`` after the command name (state first), or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    return text[text.rfind(")") + 2 :].split()


def start_ticks(pid: int) -> int | None:
    """When process ``pid`` started, in clock ticks since boot (None if it is gone)."""
    fields = _stat(pid)
    return int(fields[19]) if fields else None


def alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    fields = _stat(pid)
    return bool(fields) and fields[0] not in ("Z", "X")


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of process group ``pgid``."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields and fields[0] not in ("Z", "X") and int(fields[2]) == pgid:
                out.append(int(entry.name))
    return out


def kill_group(pgid: int, ticks: int, boot: str, *, wait: float = 5.0) -> int:
    """Kill what is left of a process group recorded by a previous run (leader ``pgid``
    started at ``ticks`` during boot ``boot``); returns how many processes it held.

    A group outlives its leader, and Linux hands out no pid still used as a group id: so
    the group is ours if its leader is gone or is the recorded process (same start time).
    A leader with another start time means the pid was reused: nothing is killed."""
    if boot != boot_id():
        return 0
    leader = start_ticks(pgid)
    if leader is not None and leader != ticks:
        return 0
    members = group_members(pgid)
    if not members:
        return 0
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        return 0
    deadline = time.monotonic() + wait
    while group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.02)
    return len(members)


def _tail(data: bytes) -> str:
    text = data.decode("utf-8", errors="replace")
    if len(text) > MAX_OUTPUT:
        text = "[… output truncated …]\n" + text[-MAX_OUTPUT:]
    return text


def _cannot_run(program: str, env: Mapping[str, str] | None) -> str | None:
    """Why ``program`` could not be executed (what ``Popen`` would raise), checked before
    it is handed to the gate's ``sh``, whose own message would be less clear."""
    if "/" not in program:
        search = (env if env is not None else os.environ).get("PATH", os.defpath)
        found = shutil.which(program, path=search)
        return None if found else os.strerror(errno.ENOENT)
    if not os.path.exists(program):
        return os.strerror(errno.ENOENT)
    if os.path.isdir(program) or not os.access(program, os.X_OK):
        return os.strerror(errno.EACCES)
    return None


def _open_gate(proc: subprocess.Popen) -> None:
    """Let a gated command start (it is recorded)."""
    gate, proc.stdin = proc.stdin, None  # communicate() then leaves stdin alone
    assert gate is not None
    try:
        gate.write(b"go\n")
        gate.close()
    except BrokenPipeError:  # the gate's sh died: its exit status tells
        pass


def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | str | None = None,
    timeout: float | None = 60.0,
    input: bytes | None = None,
    check: bool = True,
    what: str | None = None,
) -> Completed:
    """Run ``argv``; stdout and stderr are merged into ``output``.

    ``env`` replaces the environment entirely when given (hooks get exactly the documented
    variables plus PATH).  ``what`` names the command in errors ("hook create-X.sh").
    """
    args = [os.fspath(a) for a in argv]
    label = what or Path(args[0]).name
    started = time.monotonic()
    watch = _watch.get()
    gated = watch is not None and input is None
    spawn = args
    if gated:
        problem = _cannot_run(args[0], env)
        if problem:
            raise Permanent(f"{label}: cannot run: {problem}")
        unset = "unset PWD && " if env is not None and "PWD" not in env else ""
        spawn = ["/bin/sh", "-c", GATE.format(unset=unset), "sh", *args]
    try:
        proc = subprocess.Popen(
            spawn,
            stdin=subprocess.PIPE if input is not None or gated else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )
    except OSError as exc:
        raise Permanent(f"{label}: cannot run: {exc.strerror or exc}") from None
    token = None
    try:
        if watch is not None:
            token = watch.started(proc.pid, start_ticks(proc.pid) or 0, boot_id(), label)
        if gated:
            _open_gate(proc)
        out, _ = proc.communicate(input=input, timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, _ = proc.communicate()
        raise Permanent(
            f"{label}: killed after {timeout:g} s timeout", output=_tail(out or b"")
        ) from None
    except BaseException:
        # Recording failed or the thread is being torn down: leave nothing running.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        raise
    finally:
        if watch is not None and token is not None:
            watch.ended(token)
    seconds = time.monotonic() - started
    done = Completed(tuple(args), proc.returncode, _tail(out or b""), seconds)
    log.debug("%s exited %s in %.3f s", label, proc.returncode, seconds)
    if check and proc.returncode != 0:
        raise Permanent(f"{label}: exited with status {proc.returncode}", output=done.output)
    return done
