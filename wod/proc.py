"""The one way the backend runs an external command.

Every subprocess (hooks, ``chpasswd``, ``ssh-keygen``, ``shc``, ``setfacl``…) goes through
:func:`run`: an argument vector (never a shell string), an explicit environment, a timeout
after which the whole process group is killed, and output captured for the job record.
A non-zero exit or a timeout raises :class:`~wod.errors.Permanent` carrying the output.
Secrets passed on stdin (``input``) are never logged.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from wod.errors import Permanent

log = logging.getLogger(__name__)

MAX_OUTPUT = 64 * 1024


@dataclass(frozen=True)
class Completed:
    argv: tuple[str, ...]
    returncode: int
    output: str
    seconds: float


def _tail(data: bytes) -> str:
    text = data.decode("utf-8", errors="replace")
    if len(text) > MAX_OUTPUT:
        text = "[… output truncated …]\n" + text[-MAX_OUTPUT:]
    return text


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
    import time

    args = [os.fspath(a) for a in argv]
    label = what or Path(args[0]).name
    started = time.monotonic()
    try:
        proc = subprocess.Popen(
            args,
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )
    except OSError as exc:
        raise Permanent(f"{label}: cannot run: {exc.strerror or exc}") from None
    try:
        out, _ = proc.communicate(input=input, timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, _ = proc.communicate()
        seconds = time.monotonic() - started
        raise Permanent(
            f"{label}: killed after {timeout:g} s timeout", output=_tail(out or b"")
        ) from None
    seconds = time.monotonic() - started
    done = Completed(tuple(args), proc.returncode, _tail(out or b""), seconds)
    log.debug("%s exited %s in %.3f s", label, proc.returncode, seconds)
    if check and proc.returncode != 0:
        raise Permanent(f"{label}: exited with status {proc.returncode}", output=done.output)
    return done
