"""wod/proc.py: a job's command starts only once it is recorded, keeps exactly the
environment it is given, and fails clearly when it cannot run."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.plugins.paths import ROOT
from wod import proc
from wod.errors import Permanent

PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


class Recorder:
    def __init__(self, marker: Path | None = None) -> None:
        self.marker = marker
        self.seen_at_record: list[bool] = []
        self.records: list[tuple[int, str]] = []

    def started(self, pid: int, start_ticks: int, boot_id: str, what: str) -> object:
        time.sleep(0.3)  # a record that waits for the database
        if self.marker is not None:
            self.seen_at_record.append(self.marker.exists())
        self.records.append((pid, what))
        return len(self.records)

    def ended(self, token: object) -> None:
        pass


def test_a_recorded_command_starts_only_after_its_record(tmp_path):
    marker = tmp_path / "ran"
    watch = Recorder(marker)
    with proc.watching(watch):
        done = proc.run(["/usr/bin/touch", str(marker)], env={"PATH": PATH})
    assert done.returncode == 0 and marker.exists()
    assert watch.seen_at_record == [False]  # not run while its record was being written


def test_a_recorded_command_gets_exactly_its_environment(tmp_path):
    with proc.watching(Recorder()):
        done = proc.run(["/usr/bin/env"], env={"A": "1", "PATH": PATH}, cwd=tmp_path)
    assert sorted(done.output.split()) == ["A=1", f"PATH={PATH}"]


def test_a_server_killed_before_the_record_leaves_nothing_running(tmp_path):
    """The server dies (``os._exit``, as under kill -9) while the record is written: the
    command never runs and no process of it is left."""
    marker = tmp_path / "ran"
    script = textwrap.dedent(
        f"""
        import os, sys
        sys.path.insert(0, {str(ROOT)!r})
        from wod import proc

        class Dies:
            def started(self, pid, ticks, boot, what):
                print(pid, flush=True)
                os._exit(9)

            def ended(self, token):
                pass

        with proc.watching(Dies()):
            command = ["/bin/sh", "-c", "sleep 0.2; touch {marker}; sleep 30"]
            proc.run(command, env={{"PATH": "{PATH}"}})
        """
    )
    server = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30
    )
    assert server.returncode == 9, server.stderr
    pid = int(server.stdout.split()[0])
    deadline = time.monotonic() + 5
    while proc.start_ticks(pid) is not None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.start_ticks(pid) is None  # the gate's sh saw the pipe close and left
    time.sleep(0.5)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("program", "reason"),
    [("/nonexistent/hook.sh", "No such file or directory"), ("no-such-cmd", "No such file")],
)
def test_a_recorded_command_that_cannot_run_says_why(program, reason):
    with proc.watching(Recorder()), pytest.raises(Permanent, match=f"cannot run: {reason}"):
        proc.run([program], env={"PATH": PATH}, what="hook x")


def test_a_recorded_command_not_executable_says_why(tmp_path):
    hook = tmp_path / "hook.sh"
    hook.write_text("#!/bin/sh\necho hi\n")
    hook.chmod(0o644)
    with proc.watching(Recorder()), pytest.raises(Permanent, match="cannot run: Permission denied"):
        proc.run([str(hook)], env={"PATH": PATH})
