"""Hook scripts run for real from tmp folders, and the appliance target address."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from wod.errors import Permanent
from wod.services.hooks import Hooks, appliance_target, hook_env
from wod.settings import Settings

DUMP_ENV = """#!/bin/sh
# Write the environment, one NAME=value per line, next to the script.
env > "$(pwd)/env.$stdid.out"
echo "ran $0"
"""


def script(folder: Path, name: str, body: str, mode: int = 0o755) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(body)
    path.chmod(mode)
    return path


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "scripts", tmp_path / "private"


def settings_for(dirs: tuple[Path, Path], **overrides) -> Settings:
    public, private = dirs
    values = dict(
        scripts_dir=public,
        private_scripts_dir=private,
        hook_timeout=5.0,
        students_dir=Path("/srv/student"),
        notebooks_dir=Path("/srv/nb"),
        apidb_url="http://apidb.example:8021/api",
        apidb_password="apidb-secret",
        hub_token="hub-secret",
        ldap_password="ldap-secret",
        user_min=1,
        user_max=40,
        base_stdid=100,
        variables={"SITE": "lab", "IP-WKSHP-X": "10.0.0.1", "LIST": [1, 2]},
    )
    values.update(overrides)
    return Settings(**values)


def make_env(settings: Settings, **overrides) -> dict[str, str]:
    values = dict(
        stdid=7,
        requested="CHLG-Demo",
        folder="WKSHP-Demo",
        workshop_id=12,
        password="Pw12345678",
        target="10.0.0.9",
        access_token="tok.en",
    )
    values.update(overrides)
    return hook_env(settings, **values)


def read_env(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition("=")
        out[key] = value
    return out


def test_environment_is_exactly_the_documented_one(dirs):
    settings = settings_for(dirs)
    script(dirs[0], "create-WKSHP-Demo.sh", DUMP_ENV)
    env = make_env(settings)
    runs = Hooks(settings).run("create", "WKSHP-Demo", env)
    assert [r.script.name for r in runs] == ["create-WKSHP-Demo.sh"]
    assert "ran" in runs[0].output
    seen = read_env(dirs[0] / "env.7.out")
    seen.pop("PWD", None)  # added by the shell itself
    seen.pop("SHLVL", None)
    seen.pop("_", None)
    assert seen == env
    assert seen["stdid"] == "7"
    assert seen["w"] == "CHLG-Demo"
    assert seen["ws"] == "WKSHP-Demo"
    assert seen["wid"] == "12"
    assert seen["randompw"] == "Pw12345678"
    assert seen["WODRTARGET"] == "10.0.0.9"
    assert seen["accessToken"] == "tok.en"
    assert seen["WODAPIDBEXTURL"] == "http://apidb.example:8021/api"
    assert seen["WODSTUDDIR"] == "/srv/student"
    assert seen["WODNOBO"] == "/srv/nb"
    assert seen["WODUSER"] == "wodadmin"
    assert seen["WODUSERMIN"] == "1" and seen["WODUSERMAX"] == "40"
    assert seen["WODBASESTDID"] == "100"
    assert seen["SITE"] == "lab"
    assert seen["LANG"] == "C.UTF-8" and "/usr/bin" in seen["PATH"] and seen["HOME"]
    # Secrets of the backend itself never reach a hook; odd names and lists are skipped.
    for secret in ("apidb-secret", "hub-secret", "ldap-secret"):
        assert secret not in seen.values()
    assert "IP-WKSHP-X" not in seen and "LIST" not in seen


def test_no_target_means_no_wodrtarget(dirs):
    env = make_env(settings_for(dirs), target=None)
    assert "WODRTARGET" not in env


def test_backend_environment_is_not_inherited(dirs, monkeypatch):
    monkeypatch.setenv("WOD_LEAK_CHECK", "leaked")
    settings = settings_for(dirs)
    script(dirs[0], "cleanup-WKSHP-Demo.sh", DUMP_ENV)
    Hooks(settings).run("cleanup", "WKSHP-Demo", make_env(settings))
    assert "WOD_LEAK_CHECK" not in read_env(dirs[0] / "env.7.out")


def test_request_values_are_never_interpreted_by_a_shell(dirs, tmp_path):
    settings = settings_for(dirs)
    marker = tmp_path / "pwned"
    script(dirs[0], "create-WKSHP-Demo.sh", '#!/bin/sh\nprintf "%s" "$w"\n')
    hostile = f"WKSHP-$(touch {marker})"
    runs = Hooks(settings).run("create", "WKSHP-Demo", make_env(settings, requested=hostile))
    assert runs[0].output == hostile
    assert not marker.exists()


def test_public_runs_before_private_and_cwd_is_the_scripts_folder(dirs, tmp_path):
    settings = settings_for(dirs)
    log = tmp_path / "order.log"
    body = f'#!/bin/sh\necho "$(pwd)" >> {log}\n'
    script(dirs[1], "post-copy-WKSHP-Demo.sh", body)
    script(dirs[0], "post-copy-WKSHP-Demo.sh", body)
    runs = Hooks(settings).run("post-copy", "WKSHP-Demo", make_env(settings))
    assert [r.script.parent for r in runs] == [dirs[0], dirs[1]]
    assert log.read_text().split() == [str(dirs[0]), str(dirs[1])]


def test_non_executable_and_other_workshops_are_ignored(dirs):
    settings = settings_for(dirs)
    script(dirs[0], "create-WKSHP-Demo.sh", "#!/bin/sh\nexit 9\n", mode=0o644)
    script(dirs[1], "create-WKSHP-Other.sh", "#!/bin/sh\nexit 9\n")
    hooks = Hooks(settings)
    assert hooks.scripts("create", "WKSHP-Demo") == []
    assert hooks.run("create", "WKSHP-Demo", make_env(settings)) == []


def test_failing_hook_fails_with_its_output(dirs):
    settings = settings_for(dirs)
    script(dirs[0], "create-WKSHP-Demo.sh", "#!/bin/sh\necho 'appliance refused'\nexit 3\n")
    script(dirs[1], "create-WKSHP-Demo.sh", DUMP_ENV)
    with pytest.raises(Permanent) as err:
        Hooks(settings).run("create", "WKSHP-Demo", make_env(settings))
    assert err.value.reason == "hook create-WKSHP-Demo.sh exited with status 3"
    assert "appliance refused" in err.value.output
    assert not (dirs[1] / "env.7.out").exists()  # the private one never ran


def test_hanging_hook_is_killed_at_the_timeout(dirs, tmp_path):
    settings = settings_for(dirs, hook_timeout=1.0)
    child = tmp_path / "child.pid"
    script(
        dirs[0],
        "reset-WKSHP-Demo.sh",
        f"#!/bin/sh\necho starting\nsleep 60 &\necho $! > {child}\nwait\n",
    )
    started = time.monotonic()
    with pytest.raises(Permanent) as err:
        Hooks(settings).run("reset", "WKSHP-Demo", make_env(settings))
    assert time.monotonic() - started < 5
    assert err.value.reason == "hook reset-WKSHP-Demo.sh killed after 1 s timeout"
    assert "starting" in err.value.output
    pid = int(child.read_text())
    deadline = time.monotonic() + 3
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        stat = Path(f"/proc/{pid}/stat").read_text() if Path(f"/proc/{pid}").exists() else ""
        if ") Z " in stat:
            break
        time.sleep(0.05)
    stat = Path(f"/proc/{pid}/stat").read_text() if Path(f"/proc/{pid}").exists() else ""
    assert stat == "" or ") Z " in stat, "the hook's background child survived"


def test_required_hook_missing_fails_clearly(dirs):
    settings = settings_for(dirs)
    with pytest.raises(Permanent) as err:
        Hooks(settings).run("reset", "WKSHP-Demo", make_env(settings), required=True)
    assert err.value.reason == f"no executable reset-WKSHP-Demo.sh in {dirs[0]} or {dirs[1]}"


def test_required_hook_present_in_private_only_is_enough(dirs):
    settings = settings_for(dirs)
    script(dirs[1], "reset-WKSHP-Demo.sh", "#!/bin/sh\necho reset done\n")
    runs = Hooks(settings).run("reset", "WKSHP-Demo", make_env(settings), required=True)
    assert runs[0].output.strip() == "reset done"
    assert "reset-WKSHP-Demo.sh" in runs[0].summary()


def test_unset_scripts_folders_run_nothing():
    settings = Settings()
    assert Hooks(settings).run("create", "WKSHP-Demo", {}) == []


def test_bad_folder_name_is_refused(dirs):
    with pytest.raises(Permanent, match="invalid workshop folder name"):
        Hooks(settings_for(dirs)).scripts("create", "../etc")


# -- appliance target ---------------------------------------------------------------------
def target(variables, *, stdid=5, range_min=1, mono=False, multi=False):
    return appliance_target(
        Settings(),
        "WKSHP-X",
        stdid=stdid,
        range_min=range_min,
        mono=mono,
        multi=multi,
        variables=variables,
    )


def test_no_appliance_no_target():
    assert target({}) is None


def test_mono_appliance_is_the_base_address():
    assert target({"IP-WKSHP-X": "192.168.10.20"}, mono=True) == "192.168.10.20"


def test_multi_appliance_adds_the_seat_offset():
    assert target({"IP-WKSHP-X": "192.168.10.20"}, multi=True, stdid=5, range_min=1) == (
        "192.168.10.24"
    )
    assert target({"IP-WKSHP-X": "10.0.0.1"}, multi=True, stdid=40, range_min=40) == "10.0.0.1"
    assert target({"IP-WKSHP-X": "10.0.0.250"}, multi=True, stdid=6, range_min=1) == ("10.0.0.255")


@pytest.mark.parametrize(
    ("variables", "multi", "message"),
    [
        ({}, False, "variable IP-WKSHP-X is not set"),
        ({"IP-WKSHP-X": "x.y.z.t"}, False, "placeholder x.y.z.t"),
        ({"IP-WKSHP-X": "10.0.0"}, False, "not an IP address"),
        ({"IP-WKSHP-X": "10.0.0.251"}, True, "overflows: 10.0.0.251 + 5 is past 10.0.0.255"),
    ],
)
def test_bad_appliance_address_is_a_clear_error(variables, multi, message):
    with pytest.raises(Permanent, match=message.replace(".", r"\.").replace("+", r"\+")):
        target(variables, mono=not multi, multi=multi, stdid=6, range_min=1)


def test_every_variable_given_to_hooks_is_documented(dirs):
    docs = (Path(__file__).resolve().parents[1] / "docs" / "hooks.md").read_text()
    settings = settings_for(
        dirs,
        private_notebooks_dir=Path("/p"),
        ansible_dir=Path("/a"),
        private_ansible_dir=Path("/pa"),
        ldap_host="ldap.example",
        monitor="ops@example",
        senders=["apidb@example"],
        variables={},
    )
    env = make_env(settings)
    missing = [name for name in env if f"`{name}`" not in docs]
    assert missing == []


def test_every_hook_kind_is_documented():
    from wod.services.hooks import KINDS

    docs = (Path(__file__).resolve().parents[1] / "docs" / "hooks.md").read_text()
    missing = [kind for kind in KINDS if f"`{kind}-<WORKSHOP>.sh`" not in docs]
    assert missing == []
    assert "`WODSTAGING`" in docs


def test_a_hook_printing_its_environment_leaves_no_secret_in_its_output(dirs):
    """randompw and accessToken are the hook's to use (SPEC 5), not the job record's: a
    hook tracing itself (``set -x``, ``env``) gets them masked in the output we keep."""
    settings = settings_for(dirs)
    env = make_env(settings, password="Pw5ecretXy", access_token="eyJ.secret.tok")
    script(dirs[0], "create-WKSHP-Demo.sh", '#!/bin/sh\nset -x\nenv\necho "pw=$randompw"\n')
    (run,) = Hooks(settings).run("create", "WKSHP-Demo", env)
    assert "Pw5ecretXy" not in run.output and "eyJ.secret.tok" not in run.output
    assert "randompw=********" in run.output and "accessToken=********" in run.output
    assert "stdid=7" in run.output  # the rest of the trace is kept
    script(dirs[1], "create-WKSHP-Demo.sh", '#!/bin/sh\necho "$randompw failed"\nexit 2\n')
    with pytest.raises(Permanent) as err:
        Hooks(settings).run("create", "WKSHP-Demo", env)
    assert "Pw5ecretXy" not in err.value.output and "******** failed" in err.value.output
