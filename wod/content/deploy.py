"""Deployment: a workshop folder delivered into a student's home (SPEC 4.3).

Which files are rendered and which copied follows upstream's ``copy_folder.yml`` exactly:
everything is copied verbatim like ``rsync --archive --exclude=*.ipynb --exclude=*.py
--exclude=Variables.ps1`` (hidden files too, symlinks as symlinks), and every regular file
named ``*.ipynb *.yaml *.py *.sh *.src *.tf *.env Variables.ps1`` is rendered (0644) unless
its name starts with ``.`` or ends ``-checkpoint.ipynb`` (hidden folders are still descended).
Then the checkpoint copy of ``0-ReadMeFirst.ipynb``, the PDF helper, the JupyterLab workspace,
ownership and the admin ACL.  The workspace file, like upstream's, has no extended ACL (a
default ACL on the home would otherwise give it one: it is written in its folder).

**Better than upstream:** the new copy is built in a hidden sibling folder of the home (same
file system) and swapped in with ``rename``; a failure removes the staging folder, so the home
never holds half a workshop.  A :class:`Deployer` keeps compiled templates and the bytes of
small verbatim files keyed by path, mtime and size, so the next student's deployment neither
recompiles nor re-reads what has not changed.
"""

from __future__ import annotations

import errno
import os
import pwd
import secrets
import shutil
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path

from wod import acl
from wod.content.templating import Renderer, TemplateFailure, Variables
from wod.errors import Permanent
from wod.values import chown_tree

RENDER_PATTERNS = ("*.ipynb", "*.yaml", "*.py", "*.sh", "*.src", "*.tf", "*.env", "Variables.ps1")
COPY_EXCLUDES = ("*.ipynb", "*.py", "Variables.ps1")
README = "0-ReadMeFirst.ipynb"
CHECKPOINTS = ".ipynb_checkpoints"
PDF_HELPER = "wod-generate-pdf.sh"
WORKSPACE = Path(".jupyter/lab/workspaces/default-37a8.jupyterlab-workspace")
STAGING_PREFIX = ".wod-staging-"
OLD_PREFIX = ".wod-old-"
CACHE_FILE_LIMIT = 1 << 20
CACHE_TOTAL_LIMIT = 256 << 20
ACL_ACCESS = acl.ACCESS  # the extended attribute holding a file's access ACL

PDF_SCRIPT = """#!/bin/sh
# Export every notebook of this workshop to PDF (next to the notebooks).
cd "$(dirname "$0")" || exit 1
exec jupyter nbconvert --to pdf *.ipynb
"""


def is_rendered(name: str) -> bool:
    """A file of this name is rendered as a template (SPEC 4.3 rule 4)."""
    if name.startswith(".") or fnmatchcase(name, "*-checkpoint.ipynb"):
        return False
    return any(fnmatchcase(name, p) for p in RENDER_PATTERNS)


def is_copied(name: str) -> bool:
    """A file of this name is copied verbatim (the rsync excludes of SPEC 4.3 rule 3)."""
    return not any(fnmatchcase(name, p) for p in COPY_EXCLUDES)


@dataclass(frozen=True)
class Entry:
    rel: str
    action: str  # "dir", "copy", "render", "link"
    stat: os.stat_result


def plan(src: Path) -> list[Entry]:
    """What a deployment of ``src`` does, entry by entry (parents before children)."""
    out: list[Entry] = []

    def walk(folder: Path, prefix: str) -> None:
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
        for entry in entries:
            rel = prefix + entry.name
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                if is_copied(entry.name):
                    out.append(Entry(rel, "link", st))
            elif stat.S_ISDIR(st.st_mode):
                out.append(Entry(rel, "dir", st))
                walk(Path(entry.path), rel + "/")
            elif stat.S_ISREG(st.st_mode):
                if is_rendered(entry.name):
                    out.append(Entry(rel, "render", st))
                elif is_copied(entry.name):
                    out.append(Entry(rel, "copy", st))

    walk(src, "")
    return out


def workspace_json(workshop: str) -> str:
    """Our JupyterLab workspace: one tab and the file browser on the workshop's ReadMe."""
    import json

    path = f"{workshop}/{README}"
    data = {
        "data": {
            "layout-restorer:data": {
                "main": {
                    "dock": {
                        "type": "tab-area",
                        "currentIndex": 0,
                        "widgets": [f"notebook:{path}"],
                    },
                    "current": f"notebook:{path}",
                },
                "left": {
                    "collapsed": False,
                    "current": "filebrowser",
                    "widgets": [
                        "filebrowser",
                        "running-sessions",
                        "command-palette",
                        "tab-manager",
                    ],
                },
                "right": {"collapsed": True, "widgets": []},
            },
            f"notebook:{path}": {"data": {"path": path, "factory": "Notebook"}},
            "file-browser-filebrowser:cwd": {"path": workshop},
        },
        "metadata": {"id": "default"},
    }
    return json.dumps(data, indent=2) + "\n"


@dataclass
class DeployReport:
    """What a deployment did (or, for a dry run, would do)."""

    workshop: str
    path: Path
    rendered: int = 0
    copied: int = 0
    links: int = 0
    folders: int = 0
    bytes: int = 0
    seconds: float = 0.0
    dry_run: bool = False
    files: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Ownership:
    uid: int
    gid: int
    admin: int | None  # uid of the admin account for the ACL, when it exists


def admin_uid(name: str | None) -> int | None:
    """The uid of account ``name``; None when there is no such account."""
    if not name:
        return None
    try:
        return pwd.getpwnam(name).pw_uid
    except KeyError:
        return None


class Deployer:
    """Deploys workshops; keeps compiled templates and small file contents between calls."""

    def __init__(self, renderer: Renderer | None = None) -> None:
        self.renderer = renderer or Renderer()
        self._blobs: dict[tuple[str, int, int], bytes] = {}
        self._blob_bytes = 0
        self._lock = threading.Lock()

    # -- reading, cached ------------------------------------------------------------
    def _content(self, path: Path, st: os.stat_result) -> bytes | None:
        if st.st_size > CACHE_FILE_LIMIT:
            return None
        key = (str(path), st.st_mtime_ns, st.st_size)
        data = self._blobs.get(key)
        if data is None:
            data = path.read_bytes()
            with self._lock:
                if self._blob_bytes + len(data) <= CACHE_TOTAL_LIMIT:
                    self._blobs[key] = data
                    self._blob_bytes += len(data)
        return data

    # -- the deployment -------------------------------------------------------------
    def deploy(
        self,
        src: Path,
        folder: str,
        home: Path,
        variables: Variables,
        *,
        owner: Ownership | None = None,
        workspace: str | None = None,
        dry_run: bool = False,
        on_stage: Callable[[str, Path], None] | None = None,
    ) -> DeployReport:
        """Deliver ``src`` as ``home/folder`` (SPEC 4.3); ``dry_run`` writes nothing.

        ``on_stage(kind, staging)`` is called with ``"pre-template"`` on the empty staging
        folder and ``"post-template"`` once it holds the whole workshop, before it is swapped
        in (the private templating hooks, SPEC 4.3 rule 5); an exception it raises fails the
        deployment like any other, leaving nothing in the home."""
        started = time.perf_counter()
        target = home / folder
        report = DeployReport(folder, target, dry_run=dry_run)
        entries = plan(src)
        if dry_run:
            self._check(src, entries, variables, report)
            report.seconds = time.perf_counter() - started
            return report
        if not home.is_dir():
            raise Permanent(f"student home {home} does not exist")
        remove_stale(home, folder)
        staging = home / f"{STAGING_PREFIX}{folder}-{secrets.token_hex(4)}"
        try:
            if on_stage is not None:
                os.mkdir(staging, 0o700)
                on_stage("pre-template", staging)
            self._build(src, staging, entries, variables, report, owner)
            if on_stage is not None:
                on_stage("post-template", staging)
            self._write_workspace(home, folder, workspace, owner)
            swap_in(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        report.seconds = time.perf_counter() - started
        return report

    def _check(
        self, src: Path, entries: list[Entry], variables: Variables, report: DeployReport
    ) -> None:
        """Render every template without writing; every failing one is reported at once."""
        failures: list[TemplateFailure] = []
        for e in entries:
            report.files.append((e.rel, e.action))
            if e.action == "render":
                try:
                    data = self.renderer.render(
                        self.renderer.compile_file(src / e.rel, e.rel, e.stat), variables
                    )
                except TemplateFailure as exc:
                    failures.append(exc)
                    continue
                report.rendered += 1
                report.bytes += len(data)
            elif e.action == "copy":
                report.copied += 1
                report.bytes += e.stat.st_size
            elif e.action == "link":
                report.links += 1
            else:
                report.folders += 1
        no_readme = not any(e.rel == README and e.action == "render" for e in entries)
        if failures:
            first = failures[0]
            lines = [f"{src.name}/{f.reason}" for f in failures]
            if no_readme:
                lines.append(f"workshop {src.name} has no {README}")
            reason = (
                lines[0]
                if len(lines) == 1
                else f"{src.name}: {len(lines)} problems:\n" + "\n".join(lines)
            )
            error = TemplateFailure(
                reason, path=first.path, line=first.line, variable=first.variable
            )
            error.failures = failures
            raise error
        if no_readme:
            raise Permanent(f"workshop {src.name} has no {README}")

    def _build(
        self,
        src: Path,
        staging: Path,
        entries: list[Entry],
        variables: Variables,
        report: DeployReport,
        owner: Ownership | None,
    ) -> None:
        root_mode = stat.S_IMODE(src.stat().st_mode)
        if not staging.is_dir():  # created early when templating hooks run
            os.mkdir(staging, 0o700)
        bits = 0o700 if owner else 0
        readme: bytes | None = None
        folders: list[tuple[Path, int]] = []
        for e in entries:
            out = staging / e.rel
            mode = stat.S_IMODE(e.stat.st_mode)
            if e.action == "dir":
                os.mkdir(out, 0o700)
                folders.append((out, mode | bits))
                report.folders += 1
            elif e.action == "link":
                os.symlink(os.readlink(src / e.rel), out)
                report.links += 1
            elif e.action == "render":
                try:
                    compiled = self.renderer.compile_file(src / e.rel, e.rel, e.stat)
                    data = self.renderer.render(compiled, variables)
                except TemplateFailure as exc:
                    raise TemplateFailure(
                        f"{src.name}/{exc.reason}",
                        path=exc.path,
                        line=exc.line,
                        variable=exc.variable,
                    ) from None
                _write(out, data, 0o644 | bits)
                if e.rel == README:
                    readme = data
                report.rendered += 1
                report.bytes += len(data)
            else:
                data = self._content(src / e.rel, e.stat)
                if data is None:
                    shutil.copyfile(src / e.rel, out)
                    os.chmod(out, mode | bits)
                else:
                    _write(out, data, mode | bits)
                os.utime(out, ns=(e.stat.st_atime_ns, e.stat.st_mtime_ns))
                report.copied += 1
                report.bytes += e.stat.st_size
        if readme is None:
            raise Permanent(f"workshop {src.name} has no {README}")
        # The generated files win over whatever the workshop holds under their names; a
        # symlink there is replaced, never written through (it may point out of the home).
        checkpoints = staging / CHECKPOINTS
        if checkpoints.is_symlink() or (checkpoints.exists() and not checkpoints.is_dir()):
            checkpoints.unlink()
        if not checkpoints.is_dir():
            os.mkdir(checkpoints, 0o700)
        _write(
            checkpoints / README.replace(".ipynb", "-checkpoint.ipynb"),
            readme,
            0o644 | bits,
            replace=True,
        )
        _write(staging / PDF_HELPER, PDF_SCRIPT.encode(), 0o755, replace=True)
        # Folders get their modes once filled (a read-only source folder stays writable
        # until then); the workshop folder gets the source's, the checkpoints folder 0751.
        for path, mode in reversed(folders):
            os.chmod(path, mode)
        os.chmod(checkpoints, 0o751)
        os.chmod(staging, root_mode | bits)
        if owner is not None:
            apply_ownership(staging, owner)

    def _write_workspace(
        self, home: Path, folder: str, template: str | None, owner: Ownership | None
    ) -> None:
        path = home / WORKSPACE
        current = home
        for part in WORKSPACE.parent.parts:
            current = current / part
            if current.is_symlink() or (current.exists() and not current.is_dir()):
                current.unlink()  # never followed: the home is the student's
            created = not current.is_dir()
            if created:
                os.mkdir(current, 0o751)
            if created or current == path.parent:  # the workspaces folder, even if present
                os.chmod(current, 0o751)
                if owner is not None:
                    os.chown(current, owner.uid, owner.gid)
        text = template if template is not None else workspace_json(folder)
        # Upstream's file has no extended ACL (Ansible writes it elsewhere and renames it
        # in); ours is written in the folder, so drop what the home's default ACL gave it.
        _write(path, text.encode("utf-8"), 0o644, replace=True, plain=True)
        if owner is not None:
            os.chown(path, owner.uid, owner.gid)


def _write(path: Path, data: bytes, mode: int, replace: bool = False, plain: bool = False) -> None:
    """Write a new file ``path`` with ``mode`` (through a temporary sibling renamed over it
    when ``replace``).  ``plain``: without the access ACL a default ACL of the folder gives
    every new file, so ``mode`` is the whole story."""
    if replace:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
        try:
            _write(tmp, data, mode, plain=plain)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if plain:
            try:
                os.removexattr(fd, ACL_ACCESS)
            except OSError as exc:  # none (ENODATA), or a file system without ACLs
                if exc.errno not in (errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP):
                    raise
        os.fchmod(fd, mode)
    finally:
        os.close(fd)


def apply_ownership(root: Path, owner: Ownership) -> None:
    """``root`` recursively owned by the student, plus the admin ACL (SPEC 4.3 rule 7)."""
    chown_tree(root, owner.uid, owner.gid)
    if owner.admin is not None:
        # setfacl -R -m user:<admin>:rwx,default:user:<admin>:rwx, without a process.
        try:
            acl.grant_tree(root, owner.admin)
        except OSError as exc:
            raise Permanent(
                f"cannot give the admin account (uid {owner.admin}) its ACL on {root}: "
                f"{exc.strerror or exc}"
            ) from None


def remove_stale(home: Path, folder: str) -> None:
    """Remove staging and old copies left by an interrupted deployment."""
    for prefix in (STAGING_PREFIX, OLD_PREFIX):
        for path in home.glob(f"{prefix}{folder}-*"):
            shutil.rmtree(path, ignore_errors=True)


def swap_in(staging: Path, target: Path) -> None:
    """Replace ``target`` by ``staging`` with renames (the old copy is removed after)."""
    old = None
    if target.exists() or target.is_symlink():
        old = target.with_name(f"{OLD_PREFIX}{target.name}-{secrets.token_hex(4)}")
        os.rename(target, old)
    try:
        os.rename(staging, target)
    except OSError:
        if old is not None:
            os.rename(old, target)
        raise
    if old is not None:
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)
