"""``wod seats`` for a non-root admin: read-only, says what it cannot see."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.plugins.paths import ROOT
from wod.queue import JobQueue
from wod.requests import Request, Verb
from wod.settings import Settings

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run as another user"),
]
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


@pytest.fixture
def install() -> Iterator[Path]:
    """A world-readable config; a state folder 0700 root holding a job database."""
    base = Path(tempfile.mkdtemp(prefix="wod-seats-"))
    base.chmod(0o755)
    try:
        state, students = base / "state", base / "students"
        for n in (1, 2):
            (students / f"student{n}").mkdir(parents=True)
        students.chmod(0o711)
        config = base / "wod.yml"
        config.write_text(
            f"state_dir: {state}\nstudents_dir: {students}\naccounts: directory\n"
            "user_min: 1\nuser_max: 3\n"
        )
        config.chmod(0o644)
        queue = JobQueue(Settings(state_dir=state).db_path)
        job = queue.submit(Request(Verb.CREATE, 2, 7, "WKSHP-API101", "a@example.com"))
        queue.claim("w")
        queue.complete(job)
        state.chmod(0o700)
        yield config
    finally:
        shutil.rmtree(base)


def wod(config: Path, *args: str, user: list[str] | None = None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("WOD_")}
    argv = [*(user or []), str(ROOT / ".venv" / "bin" / "wod"), "-c", str(config), *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env, cwd="/")


def test_root_sees_the_states(install: Path) -> None:
    done = wod(install, "seats", "--json")
    assert done.returncode == 0, done.stderr
    rows = {r["stdid"]: r for r in json.loads(done.stdout)}
    assert rows[2]["state"] == "in use" and rows[2]["customer"] == 7
    assert rows[2]["last_job"]["finished_local"]  # local ISO time for people
    assert done.stderr == ""


def test_non_root_admin_sees_accounts_and_is_told_what_not(install: Path) -> None:
    done = wod(install, "seats", user=NOBODY)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    note = done.stderr.strip()
    assert note.startswith("note: job history ") and "cannot be read by nobody" in note
    assert "sudo wod seats" in note and len(note.splitlines()) == 1
    lines = done.stdout.splitlines()
    assert lines[0].split()[:4] == ["SEAT", "ACCOUNT", "HOME", "STATE"]
    assert [line.split()[:4] for line in lines[1:]] == [
        ["1", "student1", "yes", "unknown"],
        ["2", "student2", "yes", "unknown"],
        ["3", "student3", "NO", "unknown"],
    ]


def test_a_range_outside_this_backend_is_refused(install: Path) -> None:
    """Seats outside ``[user_min, user_max]`` are not this backend's: no made-up "free" rows."""
    outside = wod(install, "seats", "--min", "2", "--max", "40")
    assert outside.returncode == 1 and outside.stdout == ""
    assert outside.stderr.strip() == "Error: seat 40 is outside this backend's range 1-3"
    reversed_ = wod(install, "seats", "--min", "3", "--max", "2")
    assert reversed_.returncode == 1
    assert reversed_.stderr.strip() == "Error: range 3-2 is reversed: 3 is above 2"
