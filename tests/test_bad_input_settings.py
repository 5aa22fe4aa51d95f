"""The bad-input corpus for settings files: every file of ``tests/corpus/settings.py``
stops the start with one line naming the file (and line) and the key, and never repeats
a secret; a sample through ``wod settings`` (exit 1, no traceback)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.corpus import Case, settings
from wod.settings import SettingsError, load_settings

SECRET_VALUES = ("pw-S3CRET", "tok-S3CRET", "http-S3CRET")


def assert_safe(message: str, path: Path, case: Case) -> None:
    assert case.expect in message, message
    assert "\n" not in message
    assert message.startswith(str(path)), message
    for secret in SECRET_VALUES:
        assert secret not in message


@pytest.mark.parametrize("case", settings.CASES, ids=str)
def test_settings_file(tmp_path: Path, case: Case) -> None:
    path = tmp_path / "wod.yml"
    path.write_bytes(case.data)
    with pytest.raises(SettingsError) as info:
        load_settings(path, environ={})
    assert_safe(str(info.value), path, case)
    path.write_bytes(settings.SECRETS + b"workers: 2\n")  # the next good file loads
    assert load_settings(path, environ={}).workers == 2


@pytest.mark.parametrize("name", settings.CLI_SAMPLE)
def test_wod_settings_command(tmp_path: Path, name: str) -> None:
    case = next(c for c in settings.CASES if c.name == name)
    path = tmp_path / "wod.yml"
    path.write_bytes(case.data)
    done = subprocess.run(
        [sys.executable, "-c", "from wod.cli import main; main()", "-c", str(path), "settings"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert_safe(done.stderr.strip().removeprefix("Error: "), path, case)
