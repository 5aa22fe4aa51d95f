"""Helpers for the lifecycle tests (not a fixture plugin): hook scripts that record what
they were given, "a participant ran some cells", and a seat's observable state."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat

from tests.plugins.install import Backend, Install


def write_hook(folder: Path, kind: str, workshop: str, body: str) -> Path:
    """An executable ``<kind>-<workshop>.sh`` in ``folder`` running ``body`` (sh)."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / f"{kind}-{workshop}.sh"
    script.write_text("#!/bin/sh\n" + body + "\n")
    script.chmod(0o755)
    return script


def record_hook(
    install: Install,
    kind: str,
    workshop: str,
    log_dir: Path,
    folder: Path | None = None,
    label: str = "public",
) -> Path:
    """A hook that writes its environment to ``log_dir/[<label>-]<kind>-<stdid>.env`` (no
    prefix for the public one) and appends
    ``<label> <kind> <stdid>`` to ``log_dir/order`` (outside the homes, which get wiped)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    folder = folder or install.settings.scripts_dir
    assert folder is not None
    prefix = "" if label == "public" else f"{label}-"
    return write_hook(
        folder,
        kind,
        workshop,
        f'env > "{log_dir}/{prefix}{kind}-$stdid.env"\n'
        f'echo "{label} {kind} $stdid" >> "{log_dir}/order"\n'
        f'echo "{label} {kind} hook ran for $stdid"',
    )


def read_env(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        if "=" in line:
            key, _, value = line.partition("=")
            out[key] = value
    return out


def run_cells(home: Path, workshop: str, count: int) -> tuple[int, int]:
    """Mark the first ``count`` code cells of the student's copy as executed (as Jupyter
    does when a participant runs them); returns (executed, total code cells)."""
    total = 0
    ran = 0
    for path in sorted((home / workshop).glob("*.ipynb")):
        nb = nbformat.read(str(path), as_version=4)
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            total += 1
            if ran < count:
                ran += 1
                cell.execution_count = ran
        nbformat.write(nb, str(path))
    return ran, total


def listing(home: Path) -> list[str]:
    """Every path under ``home`` (relative, sorted)."""
    return sorted(str(p.relative_to(home)) for p in home.rglob("*"))


def participant_leaves_traces(home: Path) -> None:
    """What a participant typically leaves behind in a session."""
    (home / "notes.txt").write_text("my notes")
    (home / ".secret-history").write_text("history")
    (home / "scratch").mkdir(exist_ok=True)
    (home / "scratch" / "data.csv").write_text("1,2,3\n")


TRACES = ("notes.txt", ".secret-history", "scratch")


def state(backend: Backend, stdid: int, customer: int) -> dict[str, Any]:
    """What a user of the seat would notice: registry rows, files, whether the password the
    registry holds opens the account."""
    reg = backend.install.registry
    student = backend.student(stdid)
    cust = reg.customer(customer)
    home = backend.install.home(stdid)
    files = [p for p in listing(home) if not p.startswith(".ssh/")]
    return {
        "assigned": student["assigned"],
        "password_works": backend.install.accounts.verify_password(stdid, student["password"])
        if student["password"]
        else None,
        "active": cust["active"],
        "cleaned": cust["cleaned"],
        "completion": cust["completionPercentage"],
        "files": files,
        "ssh_key": any((home / ".ssh").glob("id_*.pub")),
    }
