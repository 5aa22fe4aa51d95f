"""Completion: how much of a workshop a student ran (SPEC 3.2).

The ratio is executed code cells over all code cells of the workshop's notebooks in the
student's copy (checkpoints excluded), as an integer percent (0 when there are none).  Each
notebook is read with ``nbformat``; one that cannot be read counts as 0 executed of 0 and is
reported as a warning instead of failing the CLEANUP.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass
class Completion:
    executed: int = 0
    total: int = 0
    warnings: list[str] = field(default_factory=list)
    #: False when the home holds no copy of the workshop (e.g. already wiped).
    found: bool = True

    @property
    def percent(self) -> int:
        return (self.executed * 100) // self.total if self.total else 0


def notebooks(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.rglob("*.ipynb")
        if ".ipynb_checkpoints" not in p.relative_to(folder).parts
    )


def measure(folder: Path) -> Completion:
    """Executed and total code cells of the notebooks under ``folder``."""
    result = Completion()
    if not folder.is_dir():
        result.found = False
        result.warnings.append(f"{folder}: no such workshop copy")
        return result
    import nbformat  # heavy (jsonschema): loaded on first use, not at CLI start

    for path in notebooks(folder):
        try:
            nb = nbformat.read(str(path), as_version=4)
        except Exception as exc:  # nbformat raises many kinds for bad files
            message = f"{path.name}: not a readable notebook ({type(exc).__name__}); counted as 0"
            log.warning("%s", message)
            result.warnings.append(message)
            continue
        for cell in nb.cells:
            if cell.get("cell_type") == "code":
                result.total += 1
                if cell.get("execution_count") is not None:
                    result.executed += 1
    return result
