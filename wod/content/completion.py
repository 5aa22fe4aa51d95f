"""Completion: how much of a workshop a student ran (SPEC 3.2).

The ratio is executed code cells over all code cells of the workshop's notebooks in the
student's copy (checkpoints excluded), as an integer percent (0 when there are none).  Each
notebook is read as the notebook format defines it (JSON; format 4: ``cells``, a code cell's
``execution_count``; format 3: ``worksheets[].cells``, ``prompt_number``) with the standard
``json`` module: ``nbformat`` would bring jsonschema and its format checkers into ``wod
serve`` (~22 MB of its resident memory) for two fields.  A notebook that cannot be read
counts as 0 executed of 0 and is reported as a warning instead of failing the CLEANUP.
"""

from __future__ import annotations

import json
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
    for path in notebooks(folder):
        try:
            cells = code_cells(json.loads(path.read_bytes()))
        except (OSError, ValueError) as exc:
            message = f"{path.name}: not a readable notebook ({type(exc).__name__}); counted as 0"
            log.warning("%s", message)
            result.warnings.append(message)
            continue
        result.total += len(cells)
        result.executed += sum(1 for ran in cells if ran)
    return result


def code_cells(nb: object) -> list[bool]:
    """For each code cell of a notebook (format 3 or 4), whether it was executed;
    ValueError when ``nb`` is not such a notebook."""
    if not isinstance(nb, dict) or not isinstance(nb.get("nbformat"), int):
        raise ValueError("no nbformat version")
    if nb["nbformat"] >= 4:
        cells, counter = nb.get("cells"), "execution_count"
    elif nb["nbformat"] == 3:
        sheets = nb.get("worksheets")
        if not isinstance(sheets, list):
            raise ValueError("format 3 without worksheets")
        cells = [c for sheet in sheets if isinstance(sheet, dict) for c in sheet.get("cells", [])]
        counter = "prompt_number"
    else:
        raise ValueError(f"notebook format {nb['nbformat']} is not supported")
    if not isinstance(cells, list) or not all(isinstance(c, dict) for c in cells):
        raise ValueError("cells are not a list of cells")
    return [c.get(counter) is not None for c in cells if c.get("cell_type") == "code"]
