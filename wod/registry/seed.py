"""Seeding the registry: workshops from ``wod.yml`` files, their students, a login.

Each folder of a notebooks tree that holds a ``wod.yml`` is one workshop; its ``notebook``
is the folder name and the other fields come from the file (the upstream seeder's input).
When several trees hold the same folder, the first tree wins (public before private).
Every seeding step is idempotent: workshops are matched by ``notebook`` and refreshed from
their file, students and users are only added when missing.

Students: one row per seat of every workshop range, ``id = stdid + base_stdid``,
``username = student<stdid>`` (the account pattern), as the api-db expects per location.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from wod.registry.models import FieldError, Student, User, Workshop, coerce_fields
from wod.registry.security import hash_password

log = logging.getLogger(__name__)

METADATA_FILE = "wod.yml"


class SeedError(Exception):
    """A ``wod.yml`` that cannot be used, with the file named."""


@dataclass(frozen=True)
class SeedOptions:
    """How students are laid out for this registry's (single) location."""

    base_stdid: int = 0
    location: str = "local"
    account_pattern: str = "student{n}"
    #: Student URL; ``{account}`` and ``{n}`` are replaced.
    url_pattern: str = "http://127.0.0.1:8000/user/{account}/lab"
    extra: dict[str, Any] = field(default_factory=dict)


def read_metadata(folder: Path) -> dict[str, Any]:
    """The workshop fields of ``folder/wod.yml`` (``notebook`` = the folder name)."""
    path = folder / METADATA_FILE
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise SeedError(f"{path}: cannot read: {exc}") from None
    if not isinstance(data, dict):
        raise SeedError(f"{path}: expected a mapping of workshop fields")
    data = {str(k): v for k, v in data.items()}
    data["notebook"] = folder.name
    rng = data.get("range")
    if not (
        isinstance(rng, list)
        and len(rng) == 2
        and all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in rng)
        and rng[0] <= rng[1]
    ):
        raise SeedError(f"{path}: 'range' must be [min, max] student numbers, got {rng!r}")
    return data


def find_workshops(trees: Iterable[Path]) -> dict[str, Path]:
    """Folder name -> folder, for every folder with a ``wod.yml`` (first tree wins)."""
    found: dict[str, Path] = {}
    for tree in trees:
        tree = Path(tree)
        if not tree.is_dir():
            raise SeedError(f"{tree}: notebooks tree not found")
        for folder in sorted(tree.iterdir()):
            if folder.is_dir() and (folder / METADATA_FILE).is_file():
                found.setdefault(folder.name, folder)
    return found


def ensure_workshop(session: Session, data: dict[str, Any], location: str) -> Workshop:
    """Insert or refresh the workshop whose ``notebook`` is ``data['notebook']``."""
    try:
        fields = coerce_fields(Workshop, data)
    except FieldError as exc:
        raise SeedError(f"workshop {data.get('notebook')}: {exc}") from None
    fields.setdefault("location", location)
    row = session.scalars(select(Workshop).where(Workshop.notebook == fields["notebook"])).first()
    if row is None:
        row = Workshop(**fields)
        session.add(row)
    else:
        for key, value in fields.items():
            setattr(row, key, value)
    return row


def ensure_students(session: Session, stdids: Iterable[int], options: SeedOptions) -> int:
    """Add the missing student rows for ``stdids``; returns how many were added."""
    wanted = sorted(set(stdids))
    ids = [n + options.base_stdid for n in wanted]
    existing = set(session.scalars(select(Student.id).where(Student.id.in_(ids))))
    added = 0
    for n in wanted:
        if n + options.base_stdid in existing:
            continue
        account = options.account_pattern.replace("{n}", str(n))
        session.add(
            Student(
                id=n + options.base_stdid,
                username=account,
                url=options.url_pattern.replace("{account}", account).replace("{n}", str(n)),
                password=None,
                assigned=False,
                location=options.location,
            )
        )
        added += 1
    return added


def ensure_user(
    session: Session,
    username: str,
    password: str,
    *,
    email: str | None = None,
    roles: Iterable[str] = ("moderator",),
    reset_password: bool = True,
) -> User:
    """Create login ``username`` or update its password and roles."""
    if not username or not password:
        raise SeedError("a registry user needs a name and a password")
    row = session.scalars(select(User).where(User.username == username)).first()
    if row is None:
        row = User(
            username=username, email=email, password=hash_password(password), roles=list(roles)
        )
        session.add(row)
    else:
        if reset_password:
            row.password = hash_password(password)
        row.roles = list(roles)
        if email is not None:
            row.email = email
    return row


def seed_trees(session: Session, trees: Iterable[Path], options: SeedOptions) -> list[Workshop]:
    """Workshops of every ``wod.yml`` in ``trees`` plus the students of their ranges."""
    rows = []
    stdids: set[int] = set()
    for _name, folder in find_workshops(trees).items():
        data = read_metadata(folder)
        rows.append(ensure_workshop(session, data, options.location))
        low, high = data["range"]
        stdids.update(range(low, high + 1))
    added = ensure_students(session, stdids, options)
    session.flush()
    log.info("seeded %d workshops, %d new students", len(rows), added)
    return rows
