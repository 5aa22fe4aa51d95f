"""The abuse watcher's record: one JSON line per action in ``<state_dir>/watch.jsonl``
(0600, appended under ``flock``), read back newest first by ``wod watch`` and
``GET /api/watch``."""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wod.settings import Settings

LOG_NAME = "watch.jsonl"
CMDLINE_LIMIT = 300
#: kills that count towards a seat's PURGE
STRIKE_RULES = ("blacklist", "cpu")
#: actions that put a seat in quarantine until its next job (a PURGE or a new CREATE)
QUARANTINE_ACTIONS = ("throttle", "kill", "purge", "purge-skipped")


@dataclass(frozen=True)
class Action:
    """One thing the watcher did (or could not do) to a process or a seat."""

    time: float
    action: str  # throttle, notify, kill, purge, purge-skipped, error
    rule: str  # blacklist, cpu, kernel-age
    account: str
    stdid: int
    pid: int = 0
    process: str = ""
    cmdline: str = ""
    cpu: float | None = None
    age: float | None = None
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Action:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


class ActionLog:
    """The watcher's record: JSON lines in ``<state_dir>/watch.jsonl``, mode 0600."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @classmethod
    def from_settings(cls, settings: Settings) -> ActionLog:
        return cls(settings.state_dir / LOG_NAME)

    def append(self, action: Action) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, (json.dumps(action.to_dict(), sort_keys=True) + "\n").encode())
        finally:
            os.close(fd)

    def _read(self) -> Iterator[Action]:
        try:
            with open(self.path, encoding="utf-8") as f:
                for line in f:
                    try:
                        yield Action.from_dict(json.loads(line))
                    except (ValueError, TypeError):
                        continue  # a torn last line after a crash
        except FileNotFoundError:
            return

    def actions(
        self, *, limit: int = 100, since: float | None = None, stdid: int | None = None
    ) -> list[Action]:
        """Newest first."""
        found = [
            a
            for a in self._read()
            if (since is None or a.time >= since) and (stdid is None or a.stdid == stdid)
        ]
        return list(reversed(found))[:limit]

    def strikes(self, stdid: int, since: float) -> int:
        return sum(
            1
            for a in self._read()
            if a.stdid == stdid
            and a.time >= since
            and a.action == "kill"
            and a.rule in STRIKE_RULES
        )


def list_actions(
    settings: Settings, *, limit: int = 100, since: float | None = None, stdid: int | None = None
) -> list[Action]:
    """The watcher's recorded actions, newest first (``wod watch --list``, ``/api/watch``);
    :class:`~wod.ops.common.OpsError` for a ``stdid`` that is not a seat of this backend."""
    if stdid is not None:
        from wod.ops.common import OpsError
        from wod.values import seat_error

        problem = seat_error(stdid, settings)
        if problem:
            raise OpsError(problem)
    return ActionLog.from_settings(settings).actions(limit=limit, since=since, stdid=stdid)


def quarantined(settings: Settings) -> dict[int, Action]:
    """Each seat's latest quarantining action (throttle, kill, PURGE): the seat is held
    until a job of the seat finishes after it (the dashboard's seat grid compares)."""
    latest: dict[int, Action] = {}
    for action in ActionLog.from_settings(settings)._read():
        if action.action in QUARANTINE_ACTIONS:
            latest[action.stdid] = action  # the file is in time order
    return latest
