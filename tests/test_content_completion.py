"""Completion ratio (SPEC 3.2) over a student's copy, from the notebook format (nbformat as the
oracle); bad notebooks count 0."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
from click.testing import CliRunner

from wod.cli import _register, cli
from wod.content.service import Content
from wod.settings import load_settings


def notebook(path: Path, executed: int, pending: int) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_markdown_cell("# title"))
    for i in range(executed):
        nb.cells.append(nbformat.v4.new_code_cell("1", execution_count=i + 1))
    for _ in range(pending):
        nb.cells.append(nbformat.v4.new_code_cell("2"))
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))


def test_ratio_over_the_students_copy(tmp_path: Path, samples_dir: Path) -> None:
    content = Content(
        load_settings(None, environ={}, notebooks_dir=samples_dir, state_dir=tmp_path / "s")
    )
    home = tmp_path / "home"
    ws = home / "WKSHP-Sample101"
    notebook(ws / "0-ReadMeFirst.ipynb", 1, 1)
    notebook(ws / "1-Lab.ipynb", 2, 3)
    notebook(ws / ".ipynb_checkpoints" / "1-Lab-checkpoint.ipynb", 9, 0)  # not counted
    (ws / "broken.ipynb").write_text("{ not json")
    details = content.completion_details("WKSHP-Sample101", home)
    assert (details.executed, details.total) == (3, 7)
    assert content.completion("WKSHP-Sample101", home) == 42
    assert any("broken.ipynb" in w for w in details.warnings)
    assert content.completion("CHLG-Sample101", home) == 42


def test_no_copy_or_no_code_is_zero(tmp_path: Path, samples_dir: Path) -> None:
    content = Content(
        load_settings(None, environ={}, notebooks_dir=samples_dir, state_dir=tmp_path / "s")
    )
    assert content.completion("WKSHP-Sample101", tmp_path) == 0
    notebook(tmp_path / "WKSHP-Sample101" / "0-ReadMeFirst.ipynb", 0, 0)
    assert content.completion("WKSHP-Sample101", tmp_path) == 0


def test_cli_deploy_vars_completion(tmp_path: Path, samples_dir: Path) -> None:
    root = samples_dir.parent
    config = tmp_path / "wod.yml"
    config.write_text(
        json.dumps(
            {
                "notebooks_dir": str(samples_dir),
                "ansible_dir": str(root / "ansible"),
                "students_dir": str(tmp_path / "students"),
                "state_dir": str(tmp_path / "state"),
                "accounts": "directory",
            }
        )
    )
    (tmp_path / "students" / "student2").mkdir(parents=True)
    _register()
    runner = CliRunner()

    def wod(*args: str):
        return runner.invoke(cli, ["-c", str(config), *args], catch_exceptions=False)

    dry = wod("deploy", "WKSHP-Sample101", "--student", "2", "--dry-run", "--var", "PASSSTU=x")
    assert dry.exit_code == 0 and "render  1-Sample-Notebook.ipynb" in dry.output
    assert not (tmp_path / "students" / "student2" / "WKSHP-Sample101").exists()
    # a dry run checks the templates render without a password set yet (as wod check does)
    plain = wod("deploy", "WKSHP-Sample101", "--student", "2", "--dry-run")
    assert plain.exit_code == 0 and "every template renders" in plain.output, plain.output
    failed = wod("deploy", "WKSHP-Sample101", "--student", "2")
    assert failed.exit_code == 1 and "undefined variable 'PASSSTU'" in failed.output
    done = wod("deploy", "WKSHP-Sample101", "-s", "2", "--var", "PASSSTU=pw")
    assert done.exit_code == 0 and "2 rendered, 3 copied" in done.output
    shown = wod("vars", "WKSHP-Sample101", "-s", "2", "--var", "PASSSTU=pw", "--json")
    data = json.loads(shown.output)
    assert data["PASSSTU"]["value"] == "********" and data["STDID"]["value"] == "2"
    assert data["SAMPLEURL"]["value"] == "http://192.0.2.11:8888/"
    ratio = wod("completion", "WKSHP-Sample101", "-s", "2")
    assert ratio.exit_code == 0 and ratio.output.startswith("0% (0 of 4 code cells")
    bad = wod("deploy", "WKSHP-../x", "-s", "2")
    assert bad.exit_code == 1 and "invalid workshop name" in bad.output


def test_counts_agree_with_nbformat_on_real_notebooks(tmp_path: Path, samples_dir: Path) -> None:
    """The notebook JSON is read directly; nbformat (the oracle) counts the same code cells
    and executed ones on every bundled and fixture notebook, also once cells have run."""
    from tests.plugins.paths import _fixtures_path
    from wod.content.completion import code_cells

    paths = sorted(samples_dir.rglob("*.ipynb")) + sorted(_fixtures_path().rglob("*.ipynb"))
    assert paths
    compared = 0
    for i, path in enumerate(paths):
        try:
            nb = nbformat.read(str(path), as_version=4)
        except Exception:  # noqa: BLE001 - a template (Jinja in the JSON) until rendered:
            # the direct reading must refuse it as well.
            try:
                code_cells(json.loads(path.read_bytes()))
            except ValueError:
                continue
            raise AssertionError(f"{path}: nbformat refuses it, completion reads it") from None
        for n, cell in enumerate(nb.cells):  # some cells run, some not
            if cell.cell_type == "code":
                cell.execution_count = n + 1 if (n + i) % 3 else None
        copy = tmp_path / f"{i}.ipynb"
        nbformat.write(nb, str(copy))
        expected = [c.execution_count is not None for c in nb.cells if c.cell_type == "code"]
        assert code_cells(json.loads(copy.read_text())) == expected, path
        compared += 1
    assert compared >= 10


def test_format_3_counted_and_bad_shapes_are_warnings(tmp_path: Path) -> None:
    from wod.content.completion import measure

    folder = tmp_path / "WKSHP-X"
    folder.mkdir()
    v3 = {
        "nbformat": 3,
        "nbformat_minor": 0,
        "metadata": {},
        "worksheets": [
            {
                "cells": [
                    {"cell_type": "code", "input": "1", "prompt_number": 1, "outputs": []},
                    {"cell_type": "code", "input": "2", "outputs": []},
                    {"cell_type": "markdown", "source": "x"},
                ]
            }
        ],
    }
    (folder / "old.ipynb").write_text(json.dumps(v3))
    (folder / "list.ipynb").write_text("[1, 2]")
    (folder / "cells.ipynb").write_text('{"nbformat": 4, "cells": "no"}')
    (folder / "latin1.ipynb").write_bytes(b'{"nbformat": 4, "cells": [], "x": "\xe9"}')
    result = measure(folder)
    assert (result.executed, result.total) == (1, 2)
    assert sorted(w.split(":")[0] for w in result.warnings) == [
        "cells.ipynb",
        "latin1.ipynb",
        "list.ipynb",
    ]
