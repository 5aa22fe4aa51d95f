"""The workshop catalog as an admin sees it: each workshop of the notebooks trees with its
seat range (its ``wod.yml``), how many seats it holds now, when it was last deployed, its
last failure, and whether every one of its templates renders.

The render check is a dry-run deployment (nothing written) for the first seat; it is
cached per workshop until a file of its folder (or the variables it reads) changes, so
the catalog page stays fast.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from wod.content.catalog import Catalog
from wod.errors import WodError
from wod.ops.content import SAMPLE_PASSWORD, range_of
from wod.ops.seats import Seat
from wod.queue import Job, JobQueue
from wod.settings import Settings


@dataclass(frozen=True)
class RenderCheck:
    ok: bool
    detail: str


@dataclass(frozen=True)
class WorkshopRow:
    name: str
    title: str
    range_min: int | None
    range_max: int | None
    active: int
    last_deployed: Job | None
    last_failure: Job | None
    renders: RenderCheck


def _stamp(paths: Iterable[Path]) -> tuple[float, int]:
    """The newest mtime and the file count under ``paths`` (the cache key)."""
    newest, count = 0.0, 0
    for root in paths:
        if root is None or not Path(root).exists():
            continue
        for folder, _dirs, files in os.walk(root):
            for name in files:
                try:
                    newest = max(newest, os.stat(os.path.join(folder, name)).st_mtime)
                except OSError:
                    continue
                count += 1
    return newest, count


class RenderChecks:
    """Dry-run results per workshop, recomputed only when its sources change."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._cache: dict[str, tuple[tuple[float, int], RenderCheck]] = {}
        self._lock = threading.Lock()

    def _sources(self, folder: Path) -> list[Path]:
        s = self.settings
        return [
            folder,
            *(p for p in (s.ansible_dir, s.private_ansible_dir) if p is not None),
        ]

    def check(self, name: str, folder: Path) -> RenderCheck:
        key = _stamp(self._sources(folder))
        with self._lock:
            cached = self._cache.get(name)
        if cached is not None and cached[0] == key:
            return cached[1]
        result = self._dry_run(name)
        with self._lock:
            self._cache[name] = (key, result)
        return result

    def _dry_run(self, name: str) -> RenderCheck:
        from wod.content.service import Content

        content = Content(self.settings)
        stdid = self.settings.user_min
        with tempfile.TemporaryDirectory(prefix="wod-dry-run-") as home:
            try:
                report = content.deploy(
                    name,
                    stdid,
                    Path(home),
                    uid=None,
                    gid=None,
                    password=SAMPLE_PASSWORD,
                    dry_run=True,
                )
            except WodError as exc:
                return RenderCheck(False, exc.reason)
            except Exception as exc:  # a template bug must not break the catalog page
                return RenderCheck(False, f"{type(exc).__name__}: {exc}"[:300])
        return RenderCheck(True, f"{report.rendered} templates, {report.copied} files")


def catalog(
    settings: Settings,
    queue: JobQueue,
    seats: list[Seat],
    checks: RenderChecks,
) -> list[WorkshopRow]:
    """One row per workshop of the notebooks trees."""
    cat = Catalog(settings.notebooks_dir, settings.private_notebooks_dir)
    active: dict[str, int] = {}
    for seat in seats:
        if seat.state == "in use" and seat.workshop:
            active[seat.workshop] = active.get(seat.workshop, 0) + 1
    rows = []
    for name in cat.names():
        try:
            meta = cat.metadata(name)
        except Exception:  # an unreadable wod.yml shows as a workshop without metadata
            meta = {}
        low, high = range_of(meta) or (None, None)
        deployed = queue.search(verb="CREATE", workshop=name, status="done", limit=1)
        failed = queue.search(workshop=name, status="failed", limit=1)
        rows.append(
            WorkshopRow(
                name=name,
                title=str(meta.get("name") or ""),
                range_min=low,
                range_max=high,
                active=active.get(name, 0),
                last_deployed=deployed[0] if deployed else None,
                last_failure=failed[0] if failed else None,
                renders=checks.check(name, cat.resolve(name)),
            )
        )
    return rows


def workshop_rows(settings: Settings, queue: JobQueue, checks: RenderChecks) -> list[WorkshopRow]:
    """:func:`catalog` with the seats of the install."""
    from wod.ops.seats import seats
    from wod.services.accounts import make_accounts

    return catalog(settings, queue, seats(settings, queue, make_accounts(settings)), checks)
