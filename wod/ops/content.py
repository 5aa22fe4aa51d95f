"""Workshop content for admins: deploy into a home, show variables, completion ratio.

Used by ``wod deploy``, ``wod vars``, ``wod completion`` and the admin API.  Every student
number is checked like the server checks a request: a seat of this backend
(``user_min..user_max``) and of the workshop's range (its ``wod.yml`` ``range``) — a dry
run says no to what a CREATE would refuse.
"""

from __future__ import annotations

import os
import pwd
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wod.content.completion import Completion
from wod.content.deploy import DeployReport
from wod.content.service import Content
from wod.errors import WodError
from wod.ops.common import NotFound, OpsError
from wod.settings import Settings
from wod.values import seat_error

SAMPLE_PASSWORD = "SamplePassw0rd"
"""``PASSSTU`` for a dry run: a CREATE sets the real one, so every render check uses this."""


def workshop_range(content: Content, workshop: str) -> tuple[int, int] | None:
    """The ``range: [min, max]`` of the workshop's ``wod.yml``, when it has a valid one."""
    return range_of(content.catalog.metadata(workshop))


def range_of(meta: dict) -> tuple[int, int] | None:
    """The ``range: [min, max]`` of a ``wod.yml`` mapping, when it has a valid one."""
    rng = meta.get("range")
    if (
        isinstance(rng, (list, tuple))
        and len(rng) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in rng)
    ):
        return int(rng[0]), int(rng[1])
    return None


def resolve(content: Content, workshop: str) -> Path:
    """The workshop's folder; an unknown or malformed name is :class:`NotFound`."""
    try:
        return content.resolve(workshop)
    except WodError as exc:
        raise NotFound(exc.reason) from None


def check_seat(settings: Settings, content: Content, workshop: str, stdid: int) -> None:
    """Refuse a student the server would refuse for this workshop, with the same reason."""
    resolve(content, workshop)
    rng = workshop_range(content, workshop)
    problem = seat_error(stdid, settings, workshop=(workshop, *rng) if rng else None)
    if problem:
        raise OpsError(problem)


def parse_variables(pairs: list[str] | tuple[str, ...]) -> dict[str, str]:
    """``NAME=VALUE`` pairs (``--var``) as a dict."""
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise OpsError(f"expected NAME=VALUE, got {pair[:60]!r}")
        out[name] = value
    return out


def student_owner(settings: Settings, stdid: int) -> tuple[int | None, int | None]:
    """(uid, gid) of the student's account when we may give files away (root)."""
    if os.geteuid() != 0:
        return None, None
    try:
        entry = pwd.getpwnam(settings.account(stdid))
    except KeyError:
        return None, None
    return entry.pw_uid, entry.pw_gid


def deploy(
    settings: Settings,
    workshop: str,
    stdid: int,
    *,
    home: Path | None = None,
    dry_run: bool = False,
    variables: dict[str, str] | None = None,
    content: Content | None = None,
) -> DeployReport:
    """Deploy ``workshop`` into the student's home (or ``home``), as a CREATE would."""
    content = content or Content(settings)
    check_seat(settings, content, workshop, stdid)
    uid, gid = student_owner(settings, stdid)
    return content.deploy(
        workshop,
        stdid,
        home or settings.home(stdid),
        uid=uid,
        gid=gid,
        password=SAMPLE_PASSWORD if dry_run else None,
        dry_run=dry_run,
        extra=variables or {},
    )


@dataclass(frozen=True)
class Variable:
    name: str
    value: Any
    origin: str


def variables(
    settings: Settings,
    workshop: str,
    stdid: int,
    *,
    extra: dict[str, str] | None = None,
    content: Content | None = None,
) -> list[Variable]:
    """The variables the workshop's templates see for a student, with their origin
    (secrets masked)."""
    content = content or Content(settings)
    check_seat(settings, content, workshop, stdid)
    return [Variable(n, v, o) for n, v, o in content.explain(workshop, stdid, extra=extra or {})]


def completion(
    settings: Settings,
    workshop: str,
    stdid: int,
    *,
    home: Path | None = None,
    content: Content | None = None,
) -> Completion:
    """Executed / all code cells of a student's copy of the workshop."""
    content = content or Content(settings)
    check_seat(settings, content, workshop, stdid)
    return content.completion_details(workshop, home or settings.home(stdid))
