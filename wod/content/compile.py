"""Compile: secret scripts delivered as non-editable executables (SPEC 3.1 step 7).

Each listed script is looked up in the public scripts folder, else the private one, rendered
as a template with the student's variables, and compiled with ``shc`` into
``<home>/<name>.x`` (mode 0755, owned by the student).  The rendered source and ``shc``'s C
intermediate never reach the home: they live in a private temporary folder that is removed.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

from wod import proc
from wod.content.templating import Renderer, Variables
from wod.errors import Permanent

SCRIPT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def find_script(name: str, folders: list[Path | None]) -> Path:
    """The script ``name`` in the first folder holding it; ``Permanent`` if none does."""
    if not SCRIPT_NAME.match(name) or ".." in name:
        raise Permanent(f"invalid script name {name!r} to compile")
    for folder in folders:
        if folder is not None and (folder / name).is_file():
            return folder / name
    searched = ", ".join(str(f) for f in folders if f is not None) or "no scripts folder"
    raise Permanent(f"script {name} to compile not found (searched {searched})")


def hide_script(output: str, script: bytes, source: bytes) -> str:
    """``output`` with the rendered lines of ``script`` hidden: ``shc`` quotes script lines
    in its errors, and a line the templating changed may hold the student's secrets (lines
    found as such in the ``source`` template are shown)."""
    kept = {ln.strip() for ln in source.decode("utf-8", errors="replace").splitlines()}
    lines = {ln.strip() for ln in script.decode("utf-8", errors="replace").splitlines()}
    for line in sorted((ln for ln in lines - kept if ln), key=len, reverse=True):
        output = output.replace(line, "<rendered line hidden>")
    return output


def compile_scripts(
    names: list[str],
    folders: list[Path | None],
    home: Path,
    variables: Variables,
    renderer: Renderer,
    *,
    uid: int | None = None,
    gid: int | None = None,
    shc: str = "shc",
    timeout: float = 120.0,
) -> list[Path]:
    """Render and compile each script into ``home``; returns the executables written."""
    if not names:
        return []
    compiler = shutil.which(shc)
    if compiler is None:
        raise Permanent(f"cannot compile {', '.join(names)}: '{shc}' is not installed")
    sources = [find_script(n, folders) for n in names]
    outputs: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="wod-shc-") as work:
        for name, source in zip(names, sources, strict=True):
            rendered = Path(work) / name
            compiled = renderer.compile_file(source, name)
            script = renderer.render(compiled, variables)
            rendered.write_bytes(script)
            os.chmod(rendered, 0o700)
            binary = Path(work) / f"{name}.x"
            try:
                proc.run(
                    [compiler, "-r", "-f", str(rendered), "-o", str(binary)],
                    cwd=work,
                    timeout=timeout,
                    what=f"shc {name}",
                )
            except Permanent as exc:
                hidden = hide_script(exc.output, script, source.read_bytes())
                raise Permanent(exc.reason, output=hidden) from None
            target = home / f"{name}.x"
            tmp = home / f".{name}.x.tmp"
            shutil.copyfile(binary, tmp)
            os.chmod(tmp, 0o755)
            if uid is not None and os.geteuid() == 0:
                os.chown(tmp, uid, gid if gid is not None else -1)
            os.replace(tmp, target)
            outputs.append(target)
    return outputs
