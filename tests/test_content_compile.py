"""Compile (SPEC 3.1 step 7) with the real ``shc``: a personalised, non-editable executable."""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest

from wod.content.service import Content
from wod.errors import Permanent
from wod.settings import load_settings

pytestmark = pytest.mark.skipif(shutil.which("shc") is None, reason="shc is not installed")


@pytest.fixture
def setup(tmp_path: Path, samples_dir: Path) -> tuple[Content, Path]:
    public, private = tmp_path / "scripts", tmp_path / "private-scripts"
    public.mkdir()
    private.mkdir()
    (public / "check.sh").write_text(
        '#!/bin/sh\necho "student{{ STDID }} pass={{ PASSSTU }} ws={{ WORKSHOP }}"\n'
    )
    (private / "secret.sh").write_text("#!/bin/sh\necho private-{{ STDID }}\n")
    home = tmp_path / "home"
    home.mkdir()
    settings = load_settings(
        None,
        environ={},
        notebooks_dir=samples_dir,
        scripts_dir=public,
        private_scripts_dir=private,
        state_dir=tmp_path / "state",
    )
    return Content(settings), home


def test_scripts_are_rendered_compiled_and_sources_removed(setup) -> None:
    content, home = setup
    out = content.compile(
        ["check.sh", "secret.sh"], "WKSHP-Sample101", 4, home, uid=None, gid=None, password="pw4"
    )
    assert out == [home / "check.sh.x", home / "secret.sh.x"]
    assert sorted(p.name for p in home.iterdir()) == ["check.sh.x", "secret.sh.x"]
    for path in out:
        assert path.stat().st_mode & 0o777 == 0o755
        assert b"{{ STDID }}" not in path.read_bytes()
    run = subprocess.run([str(home / "check.sh.x")], capture_output=True, text=True, timeout=20)
    assert run.stdout == "student4 pass=pw4 ws=WKSHP-Sample101\n"
    run = subprocess.run([str(home / "secret.sh.x")], capture_output=True, text=True, timeout=20)
    assert run.stdout == "private-4\n"


def test_missing_script_is_a_clear_error(setup) -> None:
    content, home = setup
    with pytest.raises(Permanent, match="nope.sh.*not found"):
        content.compile(["nope.sh"], "WKSHP-Sample101", 4, home, uid=None, gid=None)
    with pytest.raises(Permanent, match="invalid script name"):
        content.compile(["../x.sh"], "WKSHP-Sample101", 4, home, uid=None, gid=None)
    assert list(home.iterdir()) == []


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_executable_owned_by_student(setup) -> None:
    content, home = setup
    name = f"wodt{secrets.token_hex(3)}c"
    subprocess.run(["useradd", "--no-create-home", name], check=True, capture_output=True)
    try:
        st = pwd.getpwnam(name)
        (out,) = content.compile(
            ["secret.sh"], "WKSHP-Sample101", 4, home, uid=st.pw_uid, gid=st.pw_gid
        )
        assert (out.stat().st_uid, out.stat().st_gid) == (st.pw_uid, st.pw_gid)
    finally:
        subprocess.run(["userdel", name], capture_output=True)


def test_failing_compile_is_clear_and_keeps_secrets_out_of_the_output(setup) -> None:
    """``shc`` refusing a script (here: no ``#!`` line) fails the step naming the script; its
    output, kept for the job record, never shows the rendered lines (the password)."""
    content, home = setup
    scripts = content.settings.scripts_dir
    (scripts / "noshebang.sh").write_text("echo token={{ PASSSTU }}\n")
    with pytest.raises(Permanent, match="shc noshebang.sh: exited with status") as info:
        content.compile(
            ["noshebang.sh"], "WKSHP-Sample101", 4, home, uid=None, gid=None, password="Secret-pw-4"
        )
    assert "invalid first line in script: <rendered line hidden>" in info.value.output
    assert "Secret-pw-4" not in info.value.output and "Secret-pw-4" not in str(info.value)
    assert list(home.iterdir()) == []


def test_missing_compiler_is_a_clear_error(setup, tmp_path: Path) -> None:
    content, home = setup
    from wod.content.compile import compile_scripts

    with pytest.raises(Permanent, match="'no-such-shc' is not installed"):
        compile_scripts(
            ["check.sh"],
            [content.settings.scripts_dir],
            home,
            content.template_variables("WKSHP-Sample101", 4, password="p"),
            content.renderer,
            shc="no-such-shc",
        )
    assert list(home.iterdir()) == []
