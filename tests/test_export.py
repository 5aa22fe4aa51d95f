"""``wod export`` and ``POST /api/export``: real accounts (root), real nbconvert, Chromium and
pandoc output, modes and owners; bad input changes nothing."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import zipfile
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from tests.plugins.install import Install
from tests.plugins.paths import ROOT, serve_in_thread
from wod.cli import _register, cli
from wod.ops.content import deploy
from wod.queue import JobQueue
from wod.web.app import create_app

WORKSHOP = "WKSHP-Sample101"
TOKEN = "export-test-token"
NOTEBOOKS = ("0-ReadMeFirst", "1-Sample-Notebook")

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: real student accounts"),
]


@pytest.fixture
def seats(install_factory) -> Install:
    """System accounts; students 2 and 3 hold a deployed copy of the workshop."""
    inst = install_factory(accounts="system", http_token=TOKEN)
    for n in (2, 3):
        deploy(inst.settings, WORKSHOP, n, variables={"PASSSTU": f"pw{n}"})
    return inst


def wod(inst: Install, *args: str):
    _register()
    return CliRunner().invoke(cli, ["-c", str(inst.config), *args], catch_exceptions=False)


def wod_process(inst: Install, *args: str, path: str | None = None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("WOD_")}
    if path is not None:
        env["PATH"] = path
    argv = [str(ROOT / ".venv" / "bin" / "wod"), "-c", str(inst.config), *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env)


def snapshot(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every file below ``root``: (size, mode, mtime) — to show nothing changed."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            st = os.lstat(os.path.join(dirpath, name))
            out[os.path.join(dirpath, name)] = (st.st_size, st.st_mode, st.st_mtime_ns)
    return out


def _owned_by_student(inst: Install, path: Path, n: int) -> bool:
    st = path.stat()
    return (st.st_uid, st.st_gid) == (inst.accounts.uid(n), inst.accounts.gid(n))


@pytest.mark.parametrize("fmt", ["pdf", "docx", "html"])
def test_export_next_to_the_notebooks(seats: Install, fmt: str) -> None:
    copy = seats.home(2) / WORKSHOP
    done = wod(seats, "export", WORKSHOP, "--student", "2", "--format", fmt)
    assert done.exit_code == 0, done.output
    assert f"2 notebook(s) exported to {fmt}" in done.output
    for name in NOTEBOOKS:
        out = copy / f"{name}.{fmt}"
        assert stat.S_IMODE(out.stat().st_mode) == 0o644
        assert _owned_by_student(seats, out, 2)
        data = out.read_bytes()
        if fmt == "pdf":
            assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
        elif fmt == "docx":
            with zipfile.ZipFile(out) as docx:
                xml = docx.read("word/document.xml").decode()
            if name == "1-Sample-Notebook":
                assert "Your lab credentials" in xml and "pw2" in xml
        else:
            assert data.lstrip().lower().startswith(b"<!doctype html")
            if name == "1-Sample-Notebook":
                assert b"Your lab credentials" in data and b"pw2" in data
    assert not list((seats.home(3) / WORKSHOP).glob(f"*.{fmt}"))  # other seats untouched


def test_range_into_a_folder_with_progress(seats: Install, tmp_path: Path) -> None:
    into = tmp_path / "exports"
    into.mkdir()
    done = wod(seats, "export", WORKSHOP, "--range", "1-4", "--format", "html", "--into", str(into))
    assert done.exit_code == 0, done.output
    assert "[1/2] student 2: 2 file(s)" in done.output
    assert "[2/2] student 3: 2 file(s)" in done.output
    assert "no copy of the workshop (skipped): 1, 4" in done.output
    for n in (2, 3):
        folder = into / seats.settings.account(n) / WORKSHOP
        assert sorted(p.name for p in folder.iterdir()) == [f"{nb}.html" for nb in NOTEBOOKS]
    assert not list((seats.home(2) / WORKSHOP).glob("*.html"))

    as_json = wod(seats, "export", WORKSHOP, "-s", "3", "-f", "html", "--into", str(into), "--json")
    report = json.loads(as_json.output)
    assert report["format"] == "html" and len(report["files"]) == 2 and report["skipped"] == []


@pytest.mark.parametrize(
    "args, message",
    [
        (("WKSHP-Nowhere", "-s", "2", "-f", "pdf"), "WKSHP-Nowhere"),
        (("../etc", "-s", "2", "-f", "pdf"), "workshop"),
        ((WORKSHOP, "--range", "5-3", "-f", "pdf"), "range 5-3 is reversed"),
        ((WORKSHOP, "--range", "x", "-f", "pdf"), "not a student number or range"),
        ((WORKSHOP, "-s", "9", "-f", "pdf"), "student 9 is outside this backend's range 1-8"),
        ((WORKSHOP, "-s", "1", "-f", "pdf"), "student 1: no copy of WKSHP-Sample101"),
        ((WORKSHOP, "-s", "2", "-f", "pdf", "--into", "/proc"), "--into /proc is not writable"),
        ((WORKSHOP, "-s", "2", "-f", "pdf", "--into", "/etc/hostname"), "is not a folder"),
    ],
)
def test_bad_input_is_one_line_and_changes_nothing(seats: Install, args, message) -> None:
    before = snapshot(seats.settings.students_dir)
    done = wod(seats, "export", *args)
    assert done.exit_code == 1, done.output
    assert message in done.output and done.output.startswith("Error: ")
    assert len(done.output.strip().splitlines()) == 1, done.output
    assert snapshot(seats.settings.students_dir) == before


def test_missing_converters_are_named(seats: Install, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"  # a PATH with neither pandoc nor xelatex
    bin_dir.mkdir()
    before = snapshot(seats.settings.students_dir)
    docx = wod_process(seats, "export", WORKSHOP, "-s", "2", "-f", "docx", path=str(bin_dir))
    assert docx.returncode == 1
    assert docx.stderr.strip() == (
        "Error: cannot export to docx: pandoc not found (apt-get install pandoc)"
    )
    config = seats.config.read_text() + "export_chromium: /nonexistent/chromium\n"
    seats.config.write_text(config)
    pdf = wod_process(seats, "export", WORKSHOP, "-s", "2", "-f", "pdf", path=str(bin_dir))
    assert pdf.returncode == 1
    assert "/nonexistent/chromium not found (apt-get install chromium" in pdf.stderr
    assert "xelatex not found (apt-get install texlive-xetex)" in pdf.stderr
    assert snapshot(seats.settings.students_dir) == before


def test_a_failed_conversion_leaves_no_file(seats: Install) -> None:
    copy = seats.home(2) / WORKSHOP
    (copy / "9-Broken.ipynb").write_text("{ this is not a notebook")
    shutil.chown(copy / "9-Broken.ipynb", seats.accounts.uid(2), seats.accounts.gid(2))
    before = snapshot(seats.settings.students_dir)
    done = wod(seats, "export", WORKSHOP, "-s", "2", "-f", "html")
    assert done.exit_code == 1
    assert "9-Broken.ipynb: cannot convert to html" in done.output
    assert snapshot(seats.settings.students_dir) == before  # the two good ones neither


def test_a_notebook_cannot_pull_in_files_it_may_not_read(seats: Install) -> None:
    """Chromium loads nothing; pandoc runs as the student: /etc/shadow stays out."""
    copy = seats.home(2) / WORKSHOP
    nb = {
        "cells": [
            {
                "cell_type": "markdown",
                "metadata": {},
                "source": '![x](/etc/shadow)\n<iframe src="file:///etc/shadow"></iframe>',
            }
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    (copy / "5-Sneaky.ipynb").write_text(json.dumps(nb))
    shutil.chown(copy / "5-Sneaky.ipynb", seats.accounts.uid(2), seats.accounts.gid(2))
    before = snapshot(seats.settings.students_dir)
    docx = wod(seats, "export", WORKSHOP, "-s", "2", "-f", "docx")
    assert docx.exit_code == 1  # as root, pandoc would have put /etc/shadow in the file
    assert "/etc/shadow: openBinaryFile: permission denied" in docx.output
    assert snapshot(seats.settings.students_dir) == before
    assert wod(seats, "export", WORKSHOP, "-s", "2", "-f", "pdf").exit_code == 0
    pdf = (copy / "5-Sneaky.pdf").read_bytes()
    assert pdf.startswith(b"%PDF-") and len(pdf) < 30_000  # an empty page, no embedded file


def test_export_over_the_admin_api(seats: Install) -> None:
    s = seats.settings
    with serve_in_thread(create_app(s, JobQueue(s.db_path)), "api") as port:
        url = f"http://127.0.0.1:{port}/api/export"
        body = {"workshop": WORKSHOP, "students": "2", "format": "docx"}
        assert httpx.post(url, json=body).status_code == 401
        auth = {"Authorization": f"Bearer {TOKEN}"}
        done = httpx.post(url, json=body, headers=auth, timeout=120)
        assert done.status_code == 200, done.text
        files = done.json()["files"]
        assert sorted(Path(f["output"]).name for f in files) == [f"{n}.docx" for n in NOTEBOOKS]
        bad = httpx.post(url, json={**body, "students": "9"}, headers=auth)
        assert bad.status_code == 400
        assert bad.json() == {"error": "student 9 is outside this backend's range 1-8"}
        unknown = httpx.post(url, json={**body, "workshop": "WKSHP-Nowhere"}, headers=auth)
        assert unknown.status_code == 404 and "WKSHP-Nowhere" in unknown.json()["error"]
