"""The abuse watcher's rules from the settings, and the names a process goes by."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from wod.settings import Settings


@dataclass(frozen=True)
class Policy:
    """The watcher's rules, from the settings."""

    blacklist: frozenset[str]
    whitelist: frozenset[str]
    kernels: frozenset[str]
    cpu_percent: float
    throttle_after: float
    notify_after: float
    kill_after: float
    kernel_max_age: float
    purge_after_kills: int
    blacklist_purge: bool
    cpu_quota: float
    mail: bool

    @classmethod
    def from_settings(cls, s: Settings) -> Policy:
        return cls(
            frozenset(s.watch_blacklist),
            frozenset(s.watch_whitelist),
            frozenset(s.watch_kernels),
            s.watch_cpu_percent,
            s.watch_throttle_after,
            s.watch_notify_after,
            s.watch_kill_after,
            s.watch_kernel_max_age,
            s.watch_purge_after_kills,
            s.watch_blacklist_purge,
            s.watch_cpu_quota,
            s.watch_mail,
        )


def _base(word: str) -> str:
    name = word.rsplit("/", 1)[-1]
    for suffix in (".py", ".sh", ".pl", ".js"):
        name = name.removesuffix(suffix)
    return name


def command_names(name: str, cmdline: list[str]) -> set[str]:
    """Names a process goes by: its name, its program and its script (``python3
    /x/packetcrypt.py`` -> python3, packetcrypt), and a ``-m module``."""
    names = {name, _base(name)}
    if cmdline:
        names.add(_base(cmdline[0]))
        rest = [a for a in cmdline[1:] if a]
        if rest:
            if rest[0] == "-m" and len(rest) > 1:
                names.add(rest[1])
            elif not rest[0].startswith("-"):
                names.add(_base(rest[0]))
    names.discard("")
    return names
