"""Catalog: the workshops available to this backend, found by name in the notebook trees.

A requested name is checked against a strict pattern (no path separators, no dots, no
traversal) before it touches the file system, mapped from ``CHLG-X`` to its content folder
``WKSHP-X``, and looked up in the public tree first, then the private one (SPEC 3.1 step 2).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from wod.errors import Rejected

NAME_PATTERN = re.compile(r"^(WKSHP|CHLG)-[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")


def folder_name(workshop: str) -> str:
    """Content folder of a requested name: ``CHLG-X`` -> ``WKSHP-X``."""
    check_name(workshop)
    if workshop.startswith("CHLG-"):
        return "WKSHP-" + workshop[len("CHLG-") :]
    return workshop


def mode_of(workshop: str) -> str:
    """``MODEWS``: ``CHLG`` for a challenge, else ``WKSHP``."""
    return "CHLG" if workshop.startswith("CHLG-") else "WKSHP"


def check_name(workshop: str) -> str:
    if not isinstance(workshop, str) or not NAME_PATTERN.match(workshop):
        raise Rejected(f"invalid workshop name {workshop!r}")
    return workshop


class Catalog:
    """Workshops of a public and an optional private notebooks tree."""

    def __init__(self, public: Path | None, private: Path | None = None) -> None:
        self.trees = [t for t in (public, private) if t is not None]

    def resolve(self, workshop: str) -> Path:
        """Folder of ``workshop`` (public if present, else private); ``Rejected`` if none."""
        name = folder_name(workshop)
        for tree in self.trees:
            candidate = tree / name
            if candidate.is_dir():
                return candidate
        raise Rejected(f"unknown workshop {workshop!r}: no folder {name} in the notebooks trees")

    def names(self) -> list[str]:
        found: set[str] = set()
        for tree in self.trees:
            if tree.is_dir():
                found.update(
                    p.name for p in tree.iterdir() if p.is_dir() and NAME_PATTERN.match(p.name)
                )
        return sorted(found)

    def metadata(self, workshop: str) -> dict[str, Any]:
        """The workshop's ``wod.yml`` (empty when absent)."""
        path = self.resolve(workshop) / "wod.yml"
        if not path.is_file():
            return {}
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return data if isinstance(data, dict) else {}
