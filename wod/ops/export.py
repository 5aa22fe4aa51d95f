"""``wod export``: a student's notebooks of a workshop as PDF, Word (docx) or HTML.

Upstream's test-action ``PDF`` / ``WORD``: every notebook of the student's copy of the
workshop (``<home>/<WKSHP-…>/**/*.ipynb``, checkpoints left out) is converted and the result
put next to it (same name, new suffix, mode 0644, owned by the student) or, with ``into``,
into ``<into>/<account>/<same relative path>``.

Converters (checked before anything is converted; a missing one is a one-line error):

- ``html``: nbconvert's HTML exporter;
- ``pdf``: nbconvert's ``webpdf`` HTML printed by Debian's Chromium (``export_chromium``)
  driven by Playwright — JavaScript off and every request blocked, so a notebook cannot make
  the browser read a file or the network; else LaTeX (``xelatex``) through nbconvert when
  installed, in TeX's paranoid file mode;
- ``docx``: Debian's ``pandoc`` reading the notebook (``--sandbox``: it reads nothing else).

Nothing is changed on error: every file is converted into a staging folder first and put in
place only when all conversions of the run succeeded (each by an atomic rename).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wod import proc
from wod.content.catalog import folder_name
from wod.content.service import Content
from wod.errors import WodError
from wod.ops.common import OpsError, Unavailable
from wod.ops.content import check_seat, resolve, student_owner
from wod.settings import Settings
from wod.values import parse_students

FORMATS = ("pdf", "docx", "html")
MODE = 0o644
BROWSER_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@dataclass(frozen=True)
class Exported:
    stdid: int
    notebook: str
    output: str
    bytes: int


@dataclass
class ExportReport:
    workshop: str
    format: str
    converter: str
    files: list[Exported] = field(default_factory=list)
    #: seats of the range with no copy of the workshop (nothing to export)
    skipped: list[int] = field(default_factory=list)
    seconds: float = 0.0


@dataclass(frozen=True)
class Progress:
    """One student done: ``done`` of ``total`` seats, the files written for it."""

    stdid: int
    done: int
    total: int
    files: int


# -- converters ----------------------------------------------------------------------------


class Converter:
    """One way to turn a notebook into bytes of a format; ``open()`` for the run."""

    name = ""
    suffix = ""

    def available(self) -> str | None:
        """``None`` when usable, else why not (with what to install)."""
        return None

    @contextlib.contextmanager
    def open(self) -> Iterator[Converter]:
        yield self

    def convert(self, notebook: Path, target: Path, user: tuple[int, int] | None = None) -> None:
        """Write ``notebook`` converted to ``target``; ``user`` (uid, gid): the notebook's
        owner, for converters that run a program (it then runs as that user)."""
        raise NotImplementedError


def _nbconvert_missing() -> str | None:
    try:
        import nbconvert  # noqa: F401
    except ImportError:
        return "nbconvert is not installed (pip install 'wod-backend[export]')"
    return None


class HtmlConverter(Converter):
    name, suffix = "nbconvert html", ".html"

    def available(self) -> str | None:
        return _nbconvert_missing()

    def convert(self, notebook: Path, target: Path, user: tuple[int, int] | None = None) -> None:
        from nbconvert import HTMLExporter

        body, _ = HTMLExporter().from_filename(str(notebook))
        target.write_text(body, encoding="utf-8")


class ChromiumPdfConverter(Converter):
    """nbconvert's ``webpdf`` page printed by Chromium (one browser for the whole run)."""

    name, suffix = "nbconvert webpdf + chromium", ".pdf"

    def __init__(self, chromium: Path) -> None:
        self.chromium = chromium
        self._browser: Any = None

    def available(self) -> str | None:
        missing = _nbconvert_missing()
        if missing:
            return missing
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            return "playwright is not installed (pip install 'wod-backend[export]')"
        if not os.access(self.chromium, os.X_OK):
            return f"{self.chromium} not found (apt-get install chromium; setting export_chromium)"
        return None

    @contextlib.contextmanager
    def open(self) -> Iterator[Converter]:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as pw:
            try:
                self._browser = pw.chromium.launch(
                    executable_path=str(self.chromium), args=BROWSER_ARGS, timeout=60_000
                )
            except Exception as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
                raise Unavailable(f"cannot start {self.chromium}: {first}") from None
            try:
                yield self
            finally:
                self._browser.close()
                self._browser = None

    def convert(self, notebook: Path, target: Path, user: tuple[int, int] | None = None) -> None:
        from nbconvert import HTMLExporter

        html, _ = HTMLExporter(template_name="webpdf").from_filename(str(notebook))
        context = self._browser.new_context(java_script_enabled=False, offline=True)
        try:
            page = context.new_page()
            # A notebook is the participant's: the page may load nothing (no file, no net).
            page.route("**/*", lambda route: route.abort())
            page.set_content(html, wait_until="load")
            page.emulate_media(media="print")
            target.write_bytes(page.pdf(print_background=True))
        finally:
            context.close()


class LatexPdfConverter(Converter):
    name, suffix = "nbconvert pdf (xelatex)", ".pdf"

    def available(self) -> str | None:
        missing = _nbconvert_missing()
        if missing:
            return missing
        if not shutil.which("xelatex"):
            return "xelatex not found (apt-get install texlive-xetex)"
        return None

    def convert(self, notebook: Path, target: Path, user: tuple[int, int] | None = None) -> None:
        from nbconvert import PDFExporter

        # TeX may then open no absolute path nor a parent folder (a notebook is untrusted).
        os.environ["openin_any"] = "p"
        os.environ["openout_any"] = "p"
        body, _ = PDFExporter().from_filename(str(notebook))
        target.write_bytes(body)


class PandocDocxConverter(Converter):
    """pandoc, run as the notebook's owner when we are root: a notebook naming a file
    (an image path) can then pull in only what its owner may read anyway."""

    name, suffix = "pandoc docx", ".docx"

    def available(self) -> str | None:
        if not shutil.which("pandoc"):
            return "pandoc not found (apt-get install pandoc)"
        return None

    def convert(self, notebook: Path, target: Path, user: tuple[int, int] | None = None) -> None:
        work = target.parent / f"{target.name}.d"
        work.mkdir(mode=0o700)
        argv = ["pandoc", "-f", "ipynb", "-t", "docx", "-o", str(work / "out.docx")]
        if user is not None and os.geteuid() == 0:
            os.chown(work, *user)
            argv = ["setpriv", f"--reuid={user[0]}", f"--regid={user[1]}", "--clear-groups", *argv]
        env = {"PATH": "/usr/bin:/bin", "HOME": str(work), "LANG": "C.UTF-8"}
        # The notebook on stdin, read by us: its owner need not reach its path, only its
        # folder (the working directory) for the pictures it names.
        proc.run(argv, cwd=str(notebook.parent), env=env, input=notebook.read_bytes(), timeout=300)
        shutil.move(work / "out.docx", target)
        shutil.rmtree(work)


def converter(settings: Settings, fmt: str) -> Converter:
    """The converter for ``fmt``, or :class:`Unavailable` naming what to install."""
    if fmt not in FORMATS:
        raise OpsError(f"unknown format {fmt!r}: expected one of {', '.join(FORMATS)}")
    choices: list[Converter]
    if fmt == "html":
        choices = [HtmlConverter()]
    elif fmt == "docx":
        choices = [PandocDocxConverter()]
    else:
        choices = [ChromiumPdfConverter(settings.export_chromium), LatexPdfConverter()]
    reasons = []
    for choice in choices:
        reason = choice.available()
        if reason is None:
            return choice
        reasons.append(reason)
    raise Unavailable(f"cannot export to {fmt}: " + "; or ".join(reasons))


# -- the operation -------------------------------------------------------------------------


def notebooks(folder: Path) -> list[Path]:
    """The notebooks of a student's copy, checkpoints and hidden folders left out."""
    found = []
    for path in sorted(folder.rglob("*.ipynb")):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts) or path.is_symlink():
            continue
        if path.is_file():
            found.append(path)
    return found


def _students(settings: Settings, content: Content, workshop: str, text: str) -> list[int]:
    try:
        low, high = parse_students(text)
    except ValueError as exc:
        raise OpsError(str(exc)) from None
    for n in (low, high):
        check_seat(settings, content, workshop, n)
    return list(range(low, high + 1))


def _file_owner(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_uid, st.st_gid


def _inside(path: Path, root: Path) -> bool:
    return path.resolve().is_relative_to(root.resolve())


def _writable_folder(path: Path, what: str) -> None:
    if not path.is_dir():
        raise OpsError(f"{what} {path} is not a folder")
    if not os.access(path, os.W_OK | os.X_OK):
        raise OpsError(f"{what} {path} is not writable")
    try:  # root passes os.access: try for real (read-only file systems)
        fd, probe = tempfile.mkstemp(prefix=".wod-export-", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OpsError(f"{what} {path} is not writable ({exc.strerror or exc})") from None


def export(
    settings: Settings,
    workshop: str,
    fmt: str,
    *,
    students: str,
    into: Path | None = None,
    progress: Callable[[Progress], None] | None = None,
    content: Content | None = None,
) -> ExportReport:
    """Export the notebooks of ``workshop`` of each student of ``students`` (``3``,
    ``3-5``, ``3,5``) to ``fmt``; see the module docstring."""
    started = time.monotonic()
    content = content or Content(settings)
    resolve(content, workshop)
    stdids = _students(settings, content, workshop, students)
    conv = converter(settings, fmt)
    folder = folder_name(workshop)
    plan: list[tuple[int, Path, Path]] = []  # (stdid, notebook, final target)
    skipped = []
    for n in stdids:
        home = settings.home(n)
        copy = home / folder
        if copy.is_symlink() or (copy.is_dir() and not _inside(copy, home)):
            raise OpsError(f"{copy} is a link: not exported")
        found = notebooks(copy) if copy.is_dir() else []
        if not found:
            skipped.append(n)
            continue
        for nb in found:
            rel = nb.relative_to(copy).with_suffix(conv.suffix)
            if into is None:
                target = copy / rel
            else:
                target = into / settings.account(n) / folder / rel
            if target.is_symlink() or target.is_dir():
                raise OpsError(f"{target} is a link or a folder: not replaced")
            plan.append((n, nb, target))
    if not plan:
        shown = f"student {stdids[0]}" if len(stdids) == 1 else f"students {students}"
        raise OpsError(f"{shown}: no copy of {folder} with notebooks to export")
    if into is not None:
        _writable_folder(into, "--into")
    else:
        for parent in sorted({t.parent for _, _, t in plan}):
            _writable_folder(parent, "folder")
    report = ExportReport(workshop=folder, format=fmt, converter=conv.name, skipped=skipped)
    with tempfile.TemporaryDirectory(prefix="wod-export-") as staging:
        os.chmod(staging, 0o711)  # a converter run as the student writes in its own subfolder
        staged: list[tuple[int, Path, Path, Path]] = []
        with conv.open():
            done_seats: list[int] = []
            for i, (n, nb, target) in enumerate(plan):
                tmp = Path(staging) / f"{i}{conv.suffix}"
                try:
                    conv.convert(nb, tmp, _file_owner(nb))
                except WodError as exc:
                    detail = (exc.output.strip().splitlines() or [""])[0][:200]
                    raise OpsError(
                        f"{nb}: {exc.reason}" + (f": {detail}" if detail else "")
                    ) from None
                except Exception as exc:  # a converter's own error: one line, nothing changed
                    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                    raise OpsError(f"{nb}: cannot convert to {fmt}: {first[:200]}") from None
                staged.append((n, nb, target, tmp))
                last_of_seat = i + 1 == len(plan) or plan[i + 1][0] != n
                if last_of_seat:
                    done_seats.append(n)
                    if progress:
                        count = sum(1 for s in staged if s[0] == n)
                        progress(Progress(n, len(done_seats), len(stdids) - len(skipped), count))
        for n, nb, target, tmp in staged:
            report.files.append(_install(settings, n, nb, target, tmp, own=into is None))
    report.seconds = time.monotonic() - started
    return report


def _install(settings: Settings, n: int, nb: Path, target: Path, tmp: Path, own: bool) -> Exported:
    """Move the staged ``tmp`` to ``target`` (0644; the student's when next to the copy).

    The folder is opened once and everything after is relative to that handle: a link
    swapped in meanwhile cannot redirect the write; the new file is made with ``O_EXCL``
    and renamed over the old name."""
    owner = student_owner(settings, n) if own else (None, None)
    target.parent.mkdir(parents=True, exist_ok=True)
    dfd = os.open(target.parent.resolve(), os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        name = f".{target.name}.{os.getpid()}.wod-export"
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=dfd)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(tmp.read_bytes())
                os.fchmod(out.fileno(), MODE)
                if owner[0] is not None and owner[1] is not None:
                    os.fchown(out.fileno(), owner[0], owner[1])
            os.replace(name, target.name, src_dir_fd=dfd, dst_dir_fd=dfd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(name, dir_fd=dfd)
            raise
        size = os.stat(target.name, dir_fd=dfd, follow_symlinks=False).st_size
    finally:
        os.close(dfd)
    return Exported(n, str(nb), str(target), size)
