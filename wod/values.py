"""The small rules several layers share, each written once.

- :func:`truthy` — the yes/no words the api-db, the registry and ``wod.yml`` use;
- :func:`parse_age` — ``90d``, ``12h``, ``30m``, ``45s``, ``2w`` or seconds;
- :func:`parse_students` — ``3``, ``3-5`` or ``3,5`` (inclusive);
- :func:`seat_error` — whether a student number is a seat of this backend (and of a
  workshop's range);
- :func:`local_time` — a timestamp as people read it (local ISO time);
- :func:`chown_tree` — ``chown -hR``, links themselves, never their targets.

Each raises :class:`ValueError` with a one-line reason (callers turn it into their own
error kind); nothing here knows about requests, jobs or the CLI.
"""

from __future__ import annotations

import os
import re
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wod.settings import Settings

TRUE_WORDS = frozenset({"true", "t", "1", "yes", "y", "on"})
FALSE_WORDS = frozenset({"false", "f", "0", "no", "n", "off", ""})

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_AGE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*")
_STUDENTS = re.compile(r"\s*(\d{1,9})\s*(?:[-,]\s*(\d{1,9})\s*)?")


def is_bool_word(value: str) -> bool:
    """Whether ``value`` is one of the yes/no words :func:`truthy` knows."""
    return value.strip().lower() in TRUE_WORDS | FALSE_WORDS


def truthy(value: Any) -> bool:
    """``True``/``1``/``"on"``/``"yes"``/``"t"``… -> True; other strings -> False."""
    if isinstance(value, str):
        return value.strip().lower() in TRUE_WORDS
    return bool(value)


def parse_age(text: str) -> float:
    """``30d``, ``12h``, ``90m``, ``45s``, ``2w`` or plain seconds -> seconds."""
    match = _AGE.fullmatch(text or "")
    if not match:
        raise ValueError(f"{text!r} is not an age: expected e.g. 90d, 12h, 30m, 45s or 2w")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


def parse_students(text: str) -> tuple[int, int]:
    """``"3"`` -> (3, 3); ``"3-5"`` or ``"3,5"`` -> (3, 5).  Reversed ranges are refused."""
    match = _STUDENTS.fullmatch(str(text))
    if not match:
        raise ValueError(f"{str(text)[:40]!r} is not a student number or range (3, 3-5 or 3,5)")
    low = int(match.group(1))
    high = int(match.group(2) or low)
    if low > high:
        raise ValueError(f"range {text} is reversed: {low} is above {high}")
    return low, high


def seat_error(
    stdid: int,
    settings: Settings,
    *,
    what: str = "student",
    workshop: tuple[str, int, int] | None = None,
) -> str | None:
    """Why ``stdid`` is not a seat here (``None`` when it is): outside this backend's
    ``[user_min, user_max]``, or outside ``workshop`` = (name, range_min, range_max)."""
    if not settings.user_min <= stdid <= settings.user_max:
        return (
            f"{what} {stdid} is outside this backend's range "
            f"{settings.user_min}-{settings.user_max}"
        )
    if workshop is not None:
        name, low, high = workshop
        if not low <= stdid <= high:
            return f"{what} {stdid} is outside the range {low}-{high} of {name}"
    return None


def local_time(stamp: float | None) -> str | None:
    """Seconds since the epoch -> local ISO time with its offset (``None`` stays ``None``)."""
    if stamp is None:
        return None
    return datetime.fromtimestamp(stamp).astimezone().isoformat(timespec="seconds")


def chown_tree(path: Path | str, uid: int, gid: int) -> None:
    """``chown -hR uid:gid path`` (links themselves, never their targets)."""
    os.lchown(path, uid, gid)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.lchown(os.path.join(root, name), uid, gid)
