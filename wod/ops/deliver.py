"""``wod deliver``: render the install's templated scripts and Ansible files (SPEC 6).

Every ``*.sh*.j2`` of the public and private scripts folders becomes the same name without
``.j2`` (mode 0755), every ``<group>/*.yml.j2`` of the public and private Ansible folders
likewise (mode 0644), ``<group>`` being ``inventory_group``.  The variables are the
deployment's (:mod:`wod.content.variables`, SPEC 4.1) without a workshop or a student: the
install's group variables, ``variables`` setting, ``all.yml`` files and generated values.

Each file is written atomically (a temporary file in the same folder, renamed over the old
one): a template that fails to render leaves the old file as it was.  A file whose content
and mode are already right is left alone (``unchanged``).  When anything fails, the log is
mailed to ``monitor`` (subject ``ERROR in wod-deliver``) through the mail service.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wod.content import variables as variables_mod
from wod.content.templating import Renderer, Variables, decode
from wod.errors import WodError
from wod.ops.monitor import mail_monitor
from wod.settings import Settings

log = logging.getLogger(__name__)

SUBJECT = "ERROR in wod-deliver"
SCRIPT_MODE = 0o755
ANSIBLE_MODE = 0o644


@dataclass(frozen=True)
class Delivered:
    """One templated file: ``changed`` (written), ``unchanged`` (already right) or
    ``failed`` (old file kept; ``error`` says why)."""

    source: str
    target: str
    mode: str
    status: str
    error: str = ""


@dataclass
class DeliverReport:
    files: list[Delivered] = field(default_factory=list)
    #: problems not tied to one file (variables that cannot be read)
    problems: list[str] = field(default_factory=list)
    dry_run: bool = False
    #: how the failure mail went ("stored …", "relayed …"), when one was sent
    mailed: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems and all(f.status != "failed" for f in self.files)

    def count(self, status: str) -> int:
        return sum(1 for f in self.files if f.status == status)

    def log_text(self) -> str:
        lines = [*(f"error: {p}" for p in self.problems)]
        for f in self.files:
            line = f"{f.status:<9} {f.target} ({f.mode})"
            lines.append(line + (f": {f.error}" if f.error else ""))
        lines.append(
            f"{self.count('changed')} changed, {self.count('unchanged')} unchanged, "
            f"{self.count('failed') + len(self.problems)} failed"
        )
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "dry_run": self.dry_run,
            "changed": self.count("changed"),
            "unchanged": self.count("unchanged"),
            "failed": self.count("failed") + len(self.problems),
            "files": [vars(f) for f in self.files],
            "problems": list(self.problems),
            "mailed": self.mailed,
        }


def templates(settings: Settings) -> list[tuple[Path, int]]:
    """(template, mode of its output) of every file ``deliver`` renders, in order."""
    found: list[tuple[Path, int]] = []
    for folder in (settings.scripts_dir, settings.private_scripts_dir):
        if folder is not None and folder.is_dir():
            found += [(p, SCRIPT_MODE) for p in sorted(folder.glob("*.sh*.j2")) if p.is_file()]
    for base in (settings.ansible_dir, settings.private_ansible_dir):
        folder = base / settings.inventory_group if base is not None else None
        if folder is not None and folder.is_dir():
            found += [(p, ANSIBLE_MODE) for p in sorted(folder.glob("*.yml.j2")) if p.is_file()]
    return found


def _same(target: Path, data: bytes, mode: int) -> bool:
    try:
        st = target.lstat()
    except FileNotFoundError:
        return False
    if not target.is_file() or target.is_symlink() or (st.st_mode & 0o7777) != mode:
        return False
    return st.st_size == len(data) and target.read_bytes() == data


def write_atomically(target: Path, data: bytes, mode: int, owner: tuple[int, int] | None) -> None:
    """``data`` as ``target`` (mode, owner) via a temporary file renamed over it."""
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fchmod(out.fileno(), mode)
            if owner is not None:
                os.fchown(out.fileno(), *owner)
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _variables(settings: Settings, renderer: Renderer) -> Variables:
    stack = variables_mod.layers(settings, None, None)
    values, _ = variables_mod.merge(stack)
    return renderer.variables(values)


def deliver(settings: Settings, *, dry_run: bool = False, mail: bool = True) -> DeliverReport:
    """Render every template of :func:`templates`; mail ``monitor`` when one fails."""
    report = DeliverReport(dry_run=dry_run)
    renderer = Renderer()
    try:
        variables = _variables(settings, renderer)
    except WodError as exc:
        report.problems.append(f"variables: {exc.reason}")
        variables = None
    if variables is not None:
        for source, mode in templates(settings):
            report.files.append(_deliver_one(source, mode, renderer, variables, dry_run))
    for f in report.files:
        log.info("deliver: %s %s", f.status, f.target)
    if not report.ok:
        log.error("wod deliver failed:\n%s", report.log_text())
        if mail and not dry_run:
            report.mailed = mail_monitor(settings, SUBJECT, report.log_text() + "\n")
    return report


def _deliver_one(
    source: Path, mode: int, renderer: Renderer, variables: Variables, dry_run: bool
) -> Delivered:
    target = source.with_name(source.name[: -len(".j2")])
    shown = f"{mode:04o}"
    try:
        compiled = renderer.compile_source(decode(source.read_bytes()), str(source))
        data = renderer.render(compiled, variables)
    except WodError as exc:
        return Delivered(str(source), str(target), shown, "failed", exc.reason)
    except OSError as exc:
        return Delivered(str(source), str(target), shown, "failed", exc.strerror or str(exc))
    if _same(target, data, mode):
        return Delivered(str(source), str(target), shown, "unchanged")
    if not dry_run:
        st = source.stat()
        owner = (st.st_uid, st.st_gid) if os.geteuid() == 0 else None
        try:
            write_atomically(target, data, mode, owner)
        except OSError as exc:
            error = f"cannot write: {exc.strerror or exc}"
            return Delivered(str(source), str(target), shown, "failed", error)
    return Delivered(str(source), str(target), shown, "changed")
