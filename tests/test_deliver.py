"""``wod deliver`` and ``POST /api/deliver``: real templates, files, modes, owners, outbox."""

from __future__ import annotations

import json
import mailbox
import os
import stat
from email import message_from_bytes
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from tests.plugins.paths import ROOT, serve_in_thread
from wod.cli import _register, cli
from wod.ops.init import init_install
from wod.queue import JobQueue
from wod.settings import Settings, load_settings
from wod.web.app import create_app

TOKEN = "deliver-test-token"


@pytest.fixture
def install(tmp_path: Path) -> Settings:
    """A ``wod init`` install with templated scripts and Ansible files, public and private."""
    private_scripts = tmp_path / "private" / "scripts"
    private_ansible = tmp_path / "private" / "ansible"
    config = init_install(
        tmp_path / "wod",
        samples=ROOT / "wod" / "samples",
        values={
            "monitor": "ops@example.com",
            "private_scripts_dir": str(private_scripts),
            "private_ansible_dir": str(private_ansible),
            "variables": {"WODBEFQDN": "backend.example.com"},
            "http_token": TOKEN,
        },
    )
    settings = load_settings(config, environ={})
    (settings.scripts_dir / "wod-backup.sh.j2").write_text(
        "#!/bin/sh\n# {{ BRANDING }}\necho {{ WODBEFQDN }}:{{ SAMPLEPORT | int + 1 }}\n"
    )
    (settings.scripts_dir / "create-WKSHP-Sample101.sh.src.j2").write_text(
        "echo {{ BRANDINGURL }}\n"
    )
    (settings.scripts_dir / "notes.txt.j2").write_text("not delivered: not a .sh template\n")
    private_scripts.mkdir(parents=True)
    (private_scripts / "secret.sh.j2").write_text("echo {{ PRIVATEONE }}\n")
    group = settings.ansible_dir / settings.inventory_group
    (group / "hosts.yml.j2").write_text("backend: {{ WODBEFQDN }}\nbrand: {{ BRANDING }}\n")
    (private_ansible / "group_vars").mkdir(parents=True)
    (private_ansible / "group_vars" / "all.yml").write_text("PRIVATEONE: from-private\n")
    (private_ansible / settings.inventory_group).mkdir()
    (private_ansible / settings.inventory_group / "private.yml.j2").write_text(
        "one: {{ PRIVATEONE }}\n"
    )
    return settings


def wod(settings_file: Path, *args: str):
    _register()
    return CliRunner().invoke(cli, ["-c", str(settings_file), *args], catch_exceptions=False)


def _config(settings: Settings) -> Path:
    return settings.state_dir.parent / "wod.yml"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_deliver_renders_changes_then_leaves_alone(install: Settings) -> None:
    s = install
    config = _config(s)
    assert config.is_file()
    done = wod(config, "deliver", "--json")
    assert done.exit_code == 0, done.output
    report = json.loads(done.output)
    targets = {Path(f["target"]).name: f for f in report["files"]}
    assert set(targets) == {
        "wod-backup.sh",
        "create-WKSHP-Sample101.sh.src",
        "secret.sh",
        "hosts.yml",
        "private.yml",
    }
    assert {f["status"] for f in report["files"]} == {"changed"} and report["ok"]

    script = s.scripts_dir / "wod-backup.sh"
    assert script.read_text() == "#!/bin/sh\n# WoD sample\necho backend.example.com:8889\n"
    assert _mode(script) == 0o755
    assert (s.private_scripts_dir / "secret.sh").read_text() == "echo from-private\n"
    hosts = s.ansible_dir / s.inventory_group / "hosts.yml"
    assert hosts.read_text() == "backend: backend.example.com\nbrand: WoD sample\n"
    assert _mode(hosts) == 0o644
    assert not (s.scripts_dir / "notes.txt").exists()
    source = (s.scripts_dir / "wod-backup.sh.j2").stat()
    assert (script.stat().st_uid, script.stat().st_gid) == (source.st_uid, source.st_gid)

    again = wod(config, "deliver")
    assert again.exit_code == 0, again.output
    assert "0 changed, 5 unchanged, 0 failed" in again.output
    inode = script.stat().st_ino

    # A variable changes: only the files using it change; a wrong mode is put right.
    all_yml = s.ansible_dir / "group_vars" / "all.yml"
    all_yml.write_text(all_yml.read_text().replace('SAMPLEPORT: "8888"', 'SAMPLEPORT: "9000"'))
    hosts.chmod(0o600)
    third = json.loads(wod(config, "deliver", "--json").output)
    changed = sorted(Path(f["target"]).name for f in third["files"] if f["status"] == "changed")
    assert changed == ["hosts.yml", "wod-backup.sh"]
    assert script.read_text().endswith(":9001\n") and script.stat().st_ino != inode
    assert _mode(hosts) == 0o644


def test_failed_render_keeps_the_old_file_and_mails_monitor(install: Settings) -> None:
    s = install
    config = _config(s)
    assert wod(config, "deliver").exit_code == 0
    good = s.scripts_dir / "wod-backup.sh"
    before = good.read_bytes()
    (s.scripts_dir / "wod-backup.sh.j2").write_text("echo {{ NOT_DEFINED_ANYWHERE }}\n")
    (s.scripts_dir / "broken.sh.j2").write_text("{% if %}\n")

    done = wod(config, "deliver")
    assert done.exit_code == 1
    assert good.read_bytes() == before  # the old file stays
    assert not (s.scripts_dir / "broken.sh").exists()
    assert not [p for p in s.scripts_dir.iterdir() if p.name.endswith(".tmp")]
    assert "undefined variable 'NOT_DEFINED_ANYWHERE'" in done.output
    assert "broken.sh.j2, line 1: template syntax error" in done.output
    assert "failure mailed to monitor (stored" in done.output

    box = mailbox.Maildir(s.outbox_dir, create=False)
    (key,) = box.keys()
    mail = message_from_bytes(box.get_bytes(key))
    assert mail["Subject"] == "ERROR in wod-deliver" and mail["To"] == "ops@example.com"
    assert mail["X-Original-To"] == "ops@example.com"
    body = mail.get_payload(decode=True).decode()
    assert "NOT_DEFINED_ANYWHERE" in body and "2 failed" in body and "unchanged" in body

    dry = wod(config, "deliver", "--dry-run", "--json")
    assert dry.exit_code == 1 and json.loads(dry.output)["mailed"] is None
    assert len(box.keys()) == 1  # a dry run mails nothing


def test_unreadable_variables_fail_clearly(install: Settings) -> None:
    s = install
    (s.ansible_dir / "group_vars" / "all.yml").write_text("BRANDING: [unclosed\n")
    done = wod(_config(s), "deliver", "--no-mail")
    assert done.exit_code == 1
    assert "error: variables:" in done.output and "all.yml" in done.output
    assert "Traceback" not in done.output
    assert not (s.scripts_dir / "wod-backup.sh").exists()


def test_deliver_over_the_admin_api(install: Settings) -> None:
    s = install
    app = create_app(s, JobQueue(s.db_path))
    with serve_in_thread(app, "api") as port:
        url = f"http://127.0.0.1:{port}/api/deliver"
        assert httpx.post(url, json={}).status_code == 401
        auth = {"Authorization": f"Bearer {TOKEN}"}
        dry = httpx.post(url, json={"dry_run": True}, headers=auth).json()
        assert dry["dry_run"] and dry["changed"] == 5
        assert not (s.scripts_dir / "wod-backup.sh").exists()
        done = httpx.post(url, json={}, headers=auth)
        assert done.status_code == 200
        assert done.json()["changed"] == 5 and done.json()["ok"]
        assert os.access(s.scripts_dir / "wod-backup.sh", os.X_OK)
        again = httpx.post(url, json={}, headers=auth).json()
        assert again["unchanged"] == 5 and again["changed"] == 0
