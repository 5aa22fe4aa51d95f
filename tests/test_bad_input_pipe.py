"""The bad-input corpus on the pipe channel (``wod intake``): every message of
``tests/corpus/pipe.py`` through the channel's function over one real job database, and a
sample through the real command (exit status 65, the reason on stderr).

Each case must be refused with its stated reason and recorded, create no job, and the
next good message must be accepted.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.corpus import Case, pipe
from wod.errors import Rejected
from wod.intake.pipe import intake_message
from wod.queue import JobQueue
from wod.settings import Settings, load_settings

SAMPLE = ("pipe/envelope-wrong", "pipe/subject-twice-create-purge", "pipe/too-large")


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pipe")
    path = root / "wod.yml"
    path.write_text(
        f"state_dir: {root / 'state'}\nsenders: [{pipe.API_DB}]\nuser_max: 40\n"
        "max_message_bytes: 65536\n"
    )
    return path


@pytest.fixture(scope="module")
def settings(config: Path) -> Settings:
    return load_settings(config, environ={})


@pytest.fixture(scope="module")
def queue(settings: Settings) -> JobQueue:
    return JobQueue(settings.db_path)


def counts(queue: JobQueue) -> tuple[int, int]:
    return len(queue.jobs(limit=100_000)), len(queue.rejections(limit=100_000))


@pytest.mark.parametrize("case", pipe.CASES, ids=str)
def test_pipe_message(settings: Settings, queue: JobQueue, case: Case) -> None:
    jobs, rejections = counts(queue)
    with pytest.raises(Rejected) as info:
        intake_message(case.data, settings, lambda: queue, sender=pipe.SENDERS.get(case.name))
    assert case.expect and case.expect in info.value.reason
    assert "\n" not in info.value.reason
    assert counts(queue) == (jobs, rejections + 1)
    assert case.expect in queue.rejections(limit=1)[0].reason
    job = intake_message(pipe.GOOD, settings, lambda: queue)
    assert queue.job(job).status == "queued" and counts(queue)[0] == jobs + 1


@pytest.mark.parametrize("name", SAMPLE)
def test_wod_intake_command(config: Path, queue: JobQueue, name: str) -> None:
    case = next(c for c in pipe.CASES if c.name == name)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WOD_", "SENDER"))}
    if name in pipe.SENDERS:
        env["SENDER"] = pipe.SENDERS[name]
    done = subprocess.run(
        [sys.executable, "-c", "from wod.cli import main; main()", "-c", str(config), "intake"],
        input=case.data,
        capture_output=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 65, done.stderr
    assert case.expect in done.stderr.decode()
    assert "Traceback" not in done.stderr.decode()
