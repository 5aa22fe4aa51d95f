"""``wod install`` as root into a temporary root prefix: settings, folders, real accounts
(test-only names and ids), systemd units, the Postfix intake, the hub snippet, ``wod
check``; a second run changes nothing; ``--dry-run`` changes nothing either."""

from __future__ import annotations

import grp
import os
import pwd
import secrets
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.plugins.paths import ROOT
from wod.settings import load_settings

WOD = [sys.executable, "-c", "from wod.cli import main; main()"]
SENDER = "wod-api@apidb.example.com"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: creates accounts")


class Names:
    """Test-only account names and ids, removed afterwards."""

    def __init__(self) -> None:
        tag = secrets.token_hex(2)
        self.admin = f"wia{tag}"
        self.pattern = f"wi{tag}s{{n}}"
        self.base = 65000 + 10 * secrets.randbelow(40)  # apart from the install fixture's ids

    def flags(self) -> list[str]:
        return [
            "--admin-user",
            self.admin,
            "--account-pattern",
            self.pattern,
            "--uid-base",
            str(self.base),
            "--gid-base",
            str(self.base),
            "--user-min",
            "1",
            "--user-max",
            "2",
            "--sender",
            SENDER,
            "--hub-url",
            "http://127.0.0.1:9",
        ]

    def remove(self) -> None:
        for n in (1, 2):
            name = self.pattern.replace("{n}", str(n))
            subprocess.run(["userdel", name], capture_output=True, check=False)
            subprocess.run(["groupdel", name], capture_output=True, check=False)
        subprocess.run(["userdel", self.admin], capture_output=True, check=False)
        subprocess.run(["groupdel", self.admin], capture_output=True, check=False)


@pytest.fixture
def names() -> Iterator[Names]:
    made = Names()
    try:
        yield made
    finally:
        made.remove()


def wod_install(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*WOD, "install", *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_install_into_a_root_prefix_then_again_changes_nothing(tmp_path: Path, names: Names):
    root = tmp_path / "root"
    smtp = ("--mail", "smtp", "--smtp-host", "0.0.0.0", "--allowed-client", "192.0.2.0/24")
    first = wod_install("--root", str(root), *smtp, *names.flags())
    assert first.returncode == 0, first.stderr + first.stdout
    out = first.stdout
    assert "done: write " + str(root / "etc/wod/wod.yml") in out
    assert f"done: create the admin account {names.admin}" in out
    assert "wod check:" in out and "next:" in out

    config = root / "etc/wod/wod.yml"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600 and config.stat().st_uid == 0
    settings = load_settings(config, environ={})
    assert settings.demo is False and settings.accounts == "system"
    assert len(settings.http_token) >= 32 and len(settings.hub_token) == 64
    assert settings.senders == [SENDER]
    assert settings.students_dir == root / "student"
    assert settings.state_dir == root / "var/lib/wod"
    assert stat.S_IMODE(settings.state_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(settings.students_dir.stat().st_mode) == 0o711
    assert settings.smtp_listener is True and settings.smtp_host == "0.0.0.0"
    assert settings.allowed_clients == ["127.0.0.1/32", "::1/128", "192.0.2.0/24"]

    admin = pwd.getpwnam(names.admin)
    assert settings.students_dir.stat().st_uid == admin.pw_uid
    for n in (1, 2):
        entry = pwd.getpwnam(settings.account(n))
        assert entry.pw_uid == names.base + n
        assert grp.getgrgid(entry.pw_gid).gr_gid == names.base + n
        assert Path(entry.pw_dir) == settings.home(n) and settings.home(n).is_dir()

    units = root / "etc/systemd/system"
    backend = (units / "wod-backend.service").read_text()
    assert "Type=notify" in backend and "UMask=0077" in backend
    assert f"Environment=WOD_CONFIG={config}" in backend
    assert f"ExecStart={Path(sys.executable).parent / 'wod'} serve" in backend
    for timer in ("wod-check", "wod-deliver", "wod-prune", "wod-kill-stale"):
        assert (units / f"{timer}.timer").is_file() and (units / f"{timer}.service").is_file()

    snippet = root / "etc/wod/jupyterhub_service.py"
    # Loaded as JupyterHub loads jupyterhub_config.py, with and without services before it.
    from jupyterhub.app import JupyterHub
    from traitlets.config import PyFileConfigLoader

    for before in ("", 'c.JupyterHub.services = [{"name": "other"}]\n'):
        hub_config = tmp_path / "jupyterhub_config.py"
        hub_config.write_text(before + snippet.read_text())
        hub = JupyterHub(config=PyFileConfigLoader(hub_config.name, str(tmp_path)).load_config())
        services = {svc["name"]: svc for svc in hub.services}
        assert set(services) == {"wod-backend"} | ({"other"} if before else set())
        assert services["wod-backend"]["api_token"] == settings.hub_token
        role = next(r for r in hub.load_roles if r["name"] == "wod-backend")
        assert role["scopes"] == ["admin:servers", "admin:users", "read:hub"]
        assert role["services"] == ["wod-backend"]
    assert stat.S_IMODE(snippet.stat().st_mode) == 0o600
    assert settings.http_token not in out and settings.hub_token not in out

    second = wod_install("--root", str(root), *smtp, *names.flags())
    assert second.returncode == 0, second.stderr
    assert "no changes" in second.stdout
    assert "done:" not in second.stdout
    again = load_settings(config, environ={})
    assert again.http_token == settings.http_token  # secrets kept


def test_dry_run_shows_each_change_and_makes_none(tmp_path: Path, names: Names):
    root = tmp_path / "root"
    done = wod_install("--root", str(root), "--mail", "smtp", "--dry-run", *names.flags())
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith("would: ")]
    assert any("etc/wod/wod.yml" in line for line in lines)
    assert any(names.admin in line for line in lines)
    assert any("seat account(s)" in line for line in lines)
    assert sum("install " in line and "/etc/systemd/system/" in line for line in lines) == 9
    assert not root.exists()  # nothing written
    with pytest.raises(KeyError):
        pwd.getpwnam(names.admin)


def test_install_refuses_without_a_sender(tmp_path: Path):
    done = wod_install("--root", str(tmp_path / "r"), "--mail", "smtp", "--no-check")
    assert done.returncode == 1
    assert "--sender" in done.stderr and not (tmp_path / "r").exists()


@pytest.mark.skipif(not shutil.which("postconf"), reason="Postfix not installed")
def test_install_connects_postfix_to_the_intake_socket(tmp_path: Path, names: Names):
    root = tmp_path / "root"
    postfix = root / "etc/postfix"
    postfix.mkdir(parents=True)
    (postfix / "main.cf").write_text("myhostname = backend.example.com\n")
    shutil.copy("/etc/postfix/master.cf", postfix / "master.cf")
    first = wod_install("--root", str(root), "--no-check", *names.flags())
    assert first.returncode == 0, first.stderr + first.stdout
    assert "mail intake: postfix" in first.stdout
    settings = load_settings(root / "etc/wod/wod.yml", environ={})
    assert settings.smtp_listener is False
    assert settings.intake_socket == root / "run/wod/intake.sock"
    assert settings.intake_group == names.admin  # the mailbox user's group
    maps = subprocess.run(
        ["postconf", "-c", str(postfix), "-h", "mailbox_command_maps"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    table = postfix / "wod-mailbox-command"
    assert maps == f"texthash:{table}"
    command = f"{Path(sys.executable).parent / 'wod'} intake --socket {settings.intake_socket}"
    # Only the command mailbox's user is piped into wod; others keep normal delivery.
    looked_up = subprocess.run(
        ["postmap", "-c", str(postfix), "-q", names.admin, maps],
        capture_output=True,
        text=True,
    )
    assert looked_up.stdout.strip() == command
    other = subprocess.run(["postmap", "-c", str(postfix), "-q", "root", maps], capture_output=True)
    assert other.returncode == 1 and not other.stdout  # not found: normal delivery
    assert "myhostname = backend.example.com" in (postfix / "main.cf").read_text()
    second = wod_install("--root", str(root), "--no-check", *names.flags())
    assert "no changes" in second.stdout, second.stdout


def test_install_refuses_a_demo_configuration_in_place(tmp_path: Path):
    root = tmp_path / "root"
    init = subprocess.run(
        [*WOD, "init", str(root / "etc/wod")], cwd=ROOT, capture_output=True, timeout=60
    )
    assert init.returncode == 0
    done = wod_install("--root", str(root), "--mail", "smtp", "--sender", SENDER, "--no-check")
    assert done.returncode == 1
    assert "is a local/demo configuration (demo: true" in done.stderr
    assert "mv " in done.stderr  # what to do


def test_a_rerun_keeps_the_admins_edits(tmp_path: Path, names: Names):
    root = tmp_path / "root"
    first = wod_install("--root", str(root), "--mail", "smtp", "--no-check", *names.flags())
    assert first.returncode == 0, first.stderr
    config = root / "etc/wod/wod.yml"
    config.write_text(
        config.read_text().replace("# apidb_url: ", "apidb_url: https://apidb.example.com/api #")
    )
    second = wod_install("--root", str(root), "--mail", "smtp", "--no-check", *names.flags())
    assert second.returncode == 0, second.stderr
    assert f"done: update {config}" in second.stdout  # rewritten, the edit kept
    assert load_settings(config, environ={}).apidb_url == "https://apidb.example.com/api"
    third = wod_install("--root", str(root), "--mail", "smtp", "--no-check", *names.flags())
    assert "no changes" in third.stdout
