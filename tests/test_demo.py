"""``wod demo`` (what ``make demo`` runs): a fresh install does a real CREATE then CLEANUP,
with the registry and the backend as separate processes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_demo_deploys_a_student_then_cleans_the_seat(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "wod", "demo", "--dir", str(tmp_path / "demo")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "job #1 done" in out
    assert "WKSHP-Sample101/0-ReadMeFirst.ipynb" in out
    assert "WKSHP-Sample101/.ipynb_checkpoints/0-ReadMeFirst-checkpoint.ipynb" in out
    # The password the registry holds is the one rendered into the participant's notebook.
    password = out.split("password=")[1].split()[0]
    assert f"* password: `{password}`" in out
    assert "active=True" in out
    assert "CLEANUP job #2 done" in out
    assert "cleaned=True" in out and "assigned=False, password changed=True" in out
    home = tmp_path / "demo" / "students" / "student1"
    assert not (home / "WKSHP-Sample101").exists()  # wiped by CLEANUP
    assert (home / ".bashrc").is_file()
    assert (tmp_path / "demo" / ".wod-demo").is_file()  # the next demo may recreate it


def test_demo_never_deletes_a_folder_it_did_not_make(tmp_path: Path) -> None:
    """`wod demo --dir X` recreates X only when X is empty or an earlier demo."""
    mine = tmp_path / "work"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work\n")
    (mine / "wod.yml").write_text("workers: 2\n")
    proc = subprocess.run(
        [sys.executable, "-m", "wod", "demo", "--dir", str(mine)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and str(mine) in proc.stderr
    assert (mine / "thesis.tex").read_text() == "years of work\n"
    assert sorted(p.name for p in mine.iterdir()) == ["thesis.tex", "wod.yml"]
