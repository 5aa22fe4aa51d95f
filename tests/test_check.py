"""``wod check`` through the real CLI (and ``/api/check``) against real parts: the host
fixers on a copied ``/etc`` + ``/proc/sys`` tree, real accounts, modes and ACLs as root,
the registry as api-db, a real JupyterHub, a private check script, the outbox for the
monitor mail.  Exit status: 0 ok, 1 warnings, 2 failures."""

from __future__ import annotations

import json
import mailbox
import os
import re
import secrets
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.plugins.hub import HubBrowser, PamHub, is_jupyterlab
from tests.plugins.paths import ROOT
from wod.services.hub import Hub

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (accounts, ACLs, chown)")


def wod(install, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "wod", "-c", str(install.config), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(install.root)},
    )


def check(install, *names: str, fix: bool = False, root: Path | None = None) -> tuple[int, dict]:
    args = ["check", "--json", *(f"--only={n}" for n in names)]
    if fix:
        args.append("--fix")
    if root is not None:
        args.append(f"--root={root}")
    done = wod(install, *args)
    assert "Traceback" not in done.stderr, done.stderr
    report = json.loads(done.stdout)
    assert report["exit"] == done.returncode
    return done.returncode, {c["name"]: c for c in report["checks"]}


def host_tree(base: Path) -> Path:
    """A host root as a fresh Debian leaves it: default kernel values, no limits."""
    root = base / "host"
    for key, value in {
        "net/ipv4/tcp_keepalive_time": 7200,
        "kernel/threads-max": 192730,
        "kernel/pid_max": 32768,
        "vm/max_map_count": 65530,
    }.items():
        path = root / "proc/sys" / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{value}\n")
    (root / "etc/security").mkdir(parents=True)
    (root / "etc/security/limits.conf").write_text("# defaults\n*  soft  core  0\n")
    (root / "etc/systemd").mkdir(parents=True)
    (root / "etc/systemd/logind.conf").write_text("[Login]\n#UserTasksMax=33%\n")
    (root / "home").mkdir(mode=0o755)
    os.chmod(root / "home", 0o755)
    return root


@root_only
def test_fix_writes_limits_sysctl_tasks_and_home_mode_then_all_ok(install_factory, tmp_path):
    inst = install_factory(accounts="system")
    root = host_tree(tmp_path)
    names = ("limits", "sysctl", "tasks-max", "home-root")

    code, found = check(inst, *names, root=root)
    assert code == 2
    assert found["limits"]["status"] == "fail" and "nproc" in found["limits"]["detail"]
    assert "kernel.pid_max=32768" in found["sysctl"]["detail"]
    assert found["tasks-max"]["status"] == "warn"
    assert found["home-root"]["detail"].endswith("mode 0755, want 0711")
    assert all(found[n]["remedy"] for n in names)

    code, found = check(inst, "tasks-max", root=root)
    assert code == 1  # a warning only

    code, found = check(inst, *names, root=root, fix=True)
    assert code == 0 and {found[n]["status"] for n in names} == {"fixed"}
    admin = inst.settings.admin_user
    limits = (root / "etc/security/limits.d/90-wod-backend.conf").read_text()
    assert f"{admin} soft nproc 800000" in limits and f"{admin} hard nofile 65535" in limits
    dropin = (root / "etc/sysctl.d/90-wod-backend.conf").read_text()
    assert "kernel.pid_max = 200000" in dropin and "vm.max_map_count = 600000" in dropin
    assert (root / "proc/sys/kernel/pid_max").read_text().strip() == "200000"
    assert (root / "proc/sys/net/ipv4/tcp_keepalive_time").read_text().strip() == "1800"
    assert (
        "TasksMax=100000"
        in (root / "etc/systemd/system/user-.slice.d/90-wod-backend.conf").read_text()
    )
    assert stat.S_IMODE((root / "home").stat().st_mode) == 0o711
    assert (root / "etc/security/limits.conf").read_text() == "# defaults\n*  soft  core  0\n"

    code, found = check(inst, *names, root=root)
    assert code == 0 and {found[n]["status"] for n in names} == {"ok"}

    # Reported only, never fixed: automatic security updates.
    code, found = check(inst, "security-updates", root=root, fix=True)
    assert code == 1 and "unattended-upgrades" in found["security-updates"]["remedy"]
    (root / "etc/apt/apt.conf.d").mkdir(parents=True)
    (root / "etc/apt/apt.conf.d/20auto-upgrades").write_text(
        'APT::Periodic::Update-Package-Lists "1";\nAPT::Periodic::Unattended-Upgrade "1";\n'
    )
    code, found = check(inst, "security-updates", root=root)
    assert code == 0 and found["security-updates"]["detail"] == "unattended-upgrades enabled"


@root_only
def test_accounts_acls_and_modes_are_checked_and_repaired_for_real(install_factory, local_user):
    inst = install_factory(accounts="system", admin_user=local_user.name)
    s = inst.settings
    names = ("students-dir", "state", "student-accounts", "home-acl", "admin-user")
    inst.accounts.remove(4)  # a seat whose account is gone
    os.chmod(s.students_dir, 0o755)
    db = s.state_dir / "leaky.db"
    db.write_text("x")
    os.chmod(db, 0o644)

    code, found = check(inst, *names)
    assert code == 2
    assert found["admin-user"]["status"] == "ok"
    assert found["students-dir"]["status"] == "fail"
    assert "mode 0755, want 0711" in found["students-dir"]["detail"]
    assert f"owner uid 0, want {local_user.name}" in found["students-dir"]["detail"]
    assert found["state"]["status"] == "fail" and "leaky.db mode 0644" in found["state"]["detail"]
    assert found["student-accounts"]["detail"].startswith("1 of 8:")
    assert f"{s.account(4)} missing" in found["student-accounts"]["detail"]
    assert found["home-acl"]["status"] == "fail"
    assert "7 home(s)" in found["home-acl"]["detail"]

    code, found = check(inst, *names, fix=True)
    assert code == 0, found
    assert {found[n]["status"] for n in names if n != "admin-user"} == {"fixed"}
    st = s.students_dir.stat()
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (local_user.uid, 0o711)
    assert stat.S_IMODE(db.stat().st_mode) == 0o600 and db.read_text() == "x"
    assert inst.accounts.exists(4)
    assert s.home(4).stat().st_uid == inst.accounts.uid(4)
    acl = subprocess.run(
        ["getfacl", "-p", str(s.home(4))], capture_output=True, text=True, check=True
    ).stdout
    assert f"user:{local_user.name}:rwx" in acl and f"default:user:{local_user.name}:rwx" in acl
    assert "mask::rwx" in acl  # the admin's entry is effective

    code, found = check(inst, *names)
    assert code == 0 and {c["status"] for c in found.values()} == {"ok"}

    # A wiped home (every CREATE and CLEANUP) keeps a working admin ACL.
    wiped = wod(inst, "accounts", "wipe", "4")
    assert wiped.returncode == 0, wiped.stderr
    code, found = check(inst, "home-acl")
    assert code == 0, found


def test_peers_apidb_and_an_admin_private_check(install_factory, registry):
    inst = install_factory()
    code, found = check(inst, "apidb", "hub-token", "ldap", "private-checks")
    assert found["hub-token"]["status"] == "skipped"
    assert found["hub-token"]["detail"] == "no hub (hub_url empty)"
    # A sample workshop needs LDAP, and no LDAP server is set.
    assert found["ldap"]["status"] == "fail"
    assert found["ldap"]["detail"] == "ldap_host unset but workshops use LDAP: WKSHP-Sample301"
    assert found["private-checks"]["status"] == "skipped"
    # The registry also serves the shared fixture workshops, which this install lacks.
    assert found["apidb"]["status"] in ("ok", "warn")
    assert f"logged in as {registry.username}" in found["apidb"]["detail"] or (
        "logged in;" in found["apidb"]["detail"]
    )

    private = inst.root / "private" / "scripts"
    private.mkdir(parents=True)
    script = private / "check-private.sh"
    script.write_text('#!/bin/sh\necho checking\necho "disk of $WODUSER is full"\nexit 3\n')
    os.chmod(script, 0o755)
    config = inst.config.read_text() + f"\nprivate_scripts_dir: {private}\n"
    inst.config.write_text(config.replace("apidb_password:", "apidb_password: wrong #", 1))
    code, found = check(inst, "apidb", "private-checks")
    assert code == 2
    assert found["private-checks"] == {
        "name": "private-checks",
        "group": "private",
        "status": "fail",
        "detail": f"check-private.sh exited 3: disk of {inst.settings.admin_user} is full",
        "remedy": f"see the output of {script}",
    }
    assert found["apidb"]["status"] == "fail" and "Invalid Password" in found["apidb"]["detail"]
    assert "wrong" not in json.dumps(found)


def test_a_workshop_that_does_not_render_fails_the_check(install_factory):
    inst = install_factory()
    code, found = check(inst, "workshops-render")
    assert code == 0 and found["workshops-render"]["status"] == "ok"
    broken = inst.settings.notebooks_dir / "WKSHP-Sample101" / "0-ReadMeFirst.ipynb"
    broken.write_text(broken.read_text() + "{% if %}\n")
    code, found = check(inst, "workshops-render")
    assert code == 2
    assert "WKSHP-Sample101" in found["workshops-render"]["detail"]
    assert "0-ReadMeFirst.ipynb" in found["workshops-render"]["detail"]


@pytest.mark.hub
def test_hub_token_scopes_and_missing_hub_users_are_created(install_factory, jupyterhub):
    inst = install_factory(
        hub_url=jupyterhub.url,
        hub_token=jupyterhub.token,
        account_pattern=f"chk{secrets.token_hex(2)}s{{n}}",
    )
    code, found = check(inst, "hub-token", "hub-users")
    assert found["hub-token"]["status"] == "ok", found
    assert "admin:servers and admin:users" in found["hub-token"]["detail"]
    assert found["hub-users"]["status"] == "fail"
    assert found["hub-users"]["detail"].startswith("8 missing:")

    code, found = check(inst, "hub-users", fix=True)
    assert found["hub-users"]["status"] == "fixed"
    users = httpx.get(
        f"{jupyterhub.url}/hub/api/users/{inst.settings.account(5)}",
        headers={"Authorization": f"token {jupyterhub.token}"},
        timeout=10,
    )
    assert users.status_code == 200
    code, found = check(inst, "hub-users")
    assert code == 0 and found["hub-users"]["detail"] == "8 hub user(s)"

    # The session probe (a throw-away hub user deleted and re-created).
    code, found = check(inst, "hub-sessions")
    assert code == 0, found
    assert found["hub-sessions"]["detail"].endswith(
        "CLEANUP can void a participant's login (checked: cycle on a throw-away hub user)"
    )

    # With read:hub the probe sees this test hub's authenticator, which lets anyone in.
    inst.config.write_text(inst.config.read_text().replace(jupyterhub.token, jupyterhub.info_token))
    code, found = check(inst, "hub-sessions")
    assert code == 2 and "DummyAuthenticator" in found["hub-sessions"]["detail"]
    inst.config.write_text(inst.config.read_text().replace(jupyterhub.info_token, jupyterhub.token))

    # A token that may start and stop servers but not manage users.
    weak = inst.config.read_text().replace(jupyterhub.token, jupyterhub.weak_token)
    inst.config.write_text(weak)
    code, found = check(inst, "hub-token")
    assert code == 2 and found["hub-token"]["detail"].endswith("the token lacks admin:users")

    bad = inst.config.read_text().replace(jupyterhub.weak_token, "not-the-token")
    inst.config.write_text(bad)
    code, found = check(inst, "hub-token")
    assert code == 2 and "hub token rejected" in found["hub-token"]["detail"]
    assert "not-the-token" not in json.dumps(found)


def hub_user(hub: PamHub, name: str) -> dict:
    answer = httpx.get(
        f"{hub.url}/hub/api/users/{name}",
        headers={"Authorization": f"token {hub.token}"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


@pytest.mark.hub
@root_only
def test_on_a_pam_hub_the_session_probe_runs_on_a_free_seat_never_on_a_busy_one(
    pam_jupyterhub: PamHub, install_factory, backend_factory
):
    install = install_factory(**pam_jupyterhub.install_values(), hub_spawn_wait=90.0)
    backend = backend_factory(install)
    cust, busy = backend.customer("WKSHP-Sample101", email="a@example.com", name="A")
    free = install.settings.user_max if busy == install.settings.user_min else busy - 1
    busy_user, free_user = install.settings.account(busy), install.settings.account(free)
    browser = HubBrowser(pam_jupyterhub.url)
    hub = Hub(pam_jupyterhub.url, pam_jupyterhub.token)
    try:
        created = backend.run(
            f"CREATE {busy} {cust['id']} {cust['email']}", "WKSHP-Sample101", timeout=120
        )
        assert created.status == "done", (created.reason, created.output)
        password = backend.student(busy)["password"]
        assert is_jupyterlab(browser.log_in(busy_user, password), busy_user), browser.history
        hub.ensure_user(free_user)
        before = {name: hub_user(pam_jupyterhub, name) for name in (busy_user, free_user)}

        code, found = check(install, "hub-sessions")

        assert code == 0, found
        assert found["hub-sessions"]["detail"].endswith(
            f"CLEANUP can void a participant's login (checked: cycle on free seat {free} "
            f"({free_user}))"
        ), found
        # The free seat's hub user was deleted and re-created (a new user, a new cookie id).
        assert hub_user(pam_jupyterhub, free_user)["created"] != before[free_user]["created"]
        # The busy seat is untouched: same hub user, its server runs, A's login still works.
        after = hub_user(pam_jupyterhub, busy_user)
        assert after["created"] == before[busy_user]["created"]
        assert after["servers"][""]["ready"] is True
        whoami = browser.get("/hub/api/user")
        assert whoami.status_code == 200 and whoami.json()["name"] == busy_user
        assert is_jupyterlab(browser.get(f"/user/{busy_user}/lab"), busy_user)

        # Only the busy seat left, its server stopped (as an idle culler does): in use per
        # the job history all the same, so no seat is free: only the token is checked.
        hub.stop_server(busy_user)
        text = install.config.read_text()
        install.config.write_text(re.sub(r"(?m)^user_(min|max): \d+$", rf"user_\1: {busy}", text))
        code, found = check(install, "hub-sessions")
        assert code == 0, found
        detail = found["hub-sessions"]["detail"]
        assert "the token may delete users (checked: scopes;" in detail, detail
        assert "PAMAuthenticator takes no throw-away hub user" in detail
        assert "no seat is free for the full cycle" in detail
        # A's hub login is still valid: the seat's hub user was not re-created.
        assert hub_user(pam_jupyterhub, busy_user)["created"] == before[busy_user]["created"]
        whoami = browser.get("/hub/api/user")
        assert whoami.status_code == 200 and whoami.json()["name"] == busy_user
    finally:
        browser.close()
        hub.stop_server(busy_user)
        hub.close()


def test_monitor_mail_of_failures_lands_in_the_outbox_and_exit_codes(install_factory):
    inst = install_factory(monitor="ops@example.com")
    code, found = check(inst, "settings", "vault-secret")
    assert code == 0 and found["settings"]["status"] == "ok"
    assert found["vault-secret"]["status"] == "skipped"

    inst.config.write_text(
        inst.config.read_text() + f"\nworkspace_template: {inst.root / 'nowhere.j2'}\n"
    )
    done = wod(inst, "check", "--only=settings", "--monitor")
    assert done.returncode == 2
    assert "FAIL  settings" in done.stdout and "workspace_template" in done.stdout
    assert "failures mailed (stored" in done.stdout
    box = mailbox.Maildir(inst.settings.outbox_dir, create=False)
    mails = [m for m in box if m["Subject"] == "ERROR in wod-check"]
    assert len(mails) == 1 and mails[0]["To"] == "ops@example.com"
    body = mails[0].get_payload()
    assert "FAIL settings: " in body and "nowhere.j2 missing" in body


def test_unknown_check_name_is_a_one_line_error(install_factory):
    inst = install_factory()
    done = wod(inst, "check", "--only=nonsense")
    assert done.returncode == 1
    assert (
        done.stderr.strip().splitlines() == [done.stderr.strip().splitlines()[0]]
        and "unknown check(s): nonsense" in done.stderr
    )


def test_check_over_http_is_the_same_report(install_factory, backend_factory, free_port):
    backend = backend_factory(install_factory(smtp_port=free_port))
    url = f"http://127.0.0.1:{backend.server.http_port}/api/check"
    answer = httpx.get(url, params={"only": ["state", "mail-reachable"]}, timeout=60)
    assert answer.status_code == 200
    report = answer.json()
    assert [c["name"] for c in report["checks"]] == ["state", "mail-reachable"]
    reach = report["checks"][1]
    assert reach["status"] == "ok" and f":{backend.server.smtp_port} greets: 220" in reach["detail"]
    leaky = backend.settings.state_dir / "notes.txt"
    leaky.write_text("kept")
    os.chmod(leaky, 0o644)
    fixed = httpx.post(url, json={"fix": True, "only": ["state"]}, timeout=60).json()
    assert fixed["exit"] == 0 and fixed["checks"][0]["status"] == "fixed"
    assert stat.S_IMODE(leaky.stat().st_mode) == 0o600 and leaky.read_text() == "kept"
    assert httpx.get(f"{url}/last", timeout=30).status_code == 404  # no full run yet
    full = httpx.get(url, timeout=120).json()
    names = [c["name"] for c in full["checks"]]
    assert {"limits", "sysctl", "student-accounts", "workshops-render", "private-checks"} <= set(
        names
    )
    last = httpx.get(f"{url}/last", timeout=30).json()
    assert last["started"] == full["started"] and last["checks"] == full["checks"]
    kept = backend.settings.state_dir / "check-last.json"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    bad = httpx.get(url, params={"only": "nonsense"}, timeout=30)
    assert bad.status_code == 400 and "unknown check(s): nonsense" in bad.json()["error"]


def test_seats_the_api_db_and_we_disagree_on(backend):
    from wod.registry.models import Customer

    a, s1 = backend.customer("WKSHP-Sample101", email="a@example.com")
    b, s2 = backend.customer("WKSHP-Sample101", email="b@example.com")
    for cust, n in ((a, s1), (b, s2)):
        job = backend.run(f"CREATE {n} {cust['id']} x@example.com", "WKSHP-Sample101")
        assert job.status == "done"
    code, found = check(backend.install, "seats-vs-apidb")
    assert code == 0 and found["seats-vs-apidb"]["detail"] == "8 seat(s) agree with the api-db"

    # The api-db ended b's session, but its CLEANUP never reached us.
    backend.install.registry.set_fields(Customer, b["id"], active=False, cleaned=True)
    code, found = check(backend.install, "seats-vs-apidb")
    assert code == 1
    assert found["seats-vs-apidb"]["detail"] == (
        f"seat {s2}: customer {b['id']} ended (cleaned) but no CLEANUP reached us"
    )


def test_postfix_in_front_must_hand_mail_to_wod_intake(install_factory, tmp_path):
    inst = install_factory()
    root = tmp_path / "host"
    (root / "etc/postfix").mkdir(parents=True)
    main_cf = root / "etc/postfix/main.cf"
    main_cf.write_text("myhostname = wod.example.com\ninet_interfaces = all\n")
    code, found = check(inst, "mail-intake", root=root)
    assert code == 2
    assert found["mail-intake"]["detail"] == (
        "Postfix: mailbox_command does not run `wod intake`, mydestination unset"
    )
    main_cf.write_text(
        "myhostname = wod.example.com\ninet_interfaces = all\n"
        "mydestination = $myhostname, localhost\n"
        "mailbox_command = /opt/wod/bin/wod -c /etc/wod/wod.yml\n    intake\n"
    )
    code, found = check(inst, "mail-intake", root=root)
    assert found["mail-intake"]["status"] == "ok", found


@pytest.mark.slapd
def test_ldap_bind_with_the_settings(install_factory, slapd):
    inst = install_factory(**slapd.settings())
    code, found = check(inst, "ldap")
    assert code == 0
    assert found["ldap"]["detail"] == (f"bound to {slapd.host}:{slapd.port} as {slapd.root_dn}")
    wrong = install_factory(**slapd.settings(ldap_password="not-the-manager-password"))
    code, found = check(wrong, "ldap")
    assert code == 2 and "invalid credentials" in found["ldap"]["detail"]
    assert "not-the-manager-password" not in json.dumps(found)


def test_ufw_status_is_read_as_ufw_prints_it():
    from wod.ops.check.security import parse_ufw

    text = (
        "Status: active\n\nTo                         Action      From\n"
        "--                         ------      ----\n"
        "OpenSSH                    ALLOW       Anywhere\n"
        "123                        ALLOW       Anywhere\n"
        "25/tcp                     ALLOW       10.0.0.0/8\n"
        "8025/tcp (v6)              ALLOW       Anywhere (v6)\n"
        "9000/tcp                   DENY        Anywhere\n"
    )
    assert parse_ufw(text) == {"22/tcp", "123", "25/tcp", "8025/tcp"}
    assert parse_ufw("Status: inactive\n") is None


def test_unreadable_settings_are_a_failed_check(install_factory):
    inst = install_factory()
    inst.config.write_text(inst.config.read_text() + "\ncolour: red\n")
    done = wod(inst, "check", "--json")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    report = json.loads(done.stdout)
    assert [(c["name"], c["status"]) for c in report["checks"]] == [("settings", "fail")]
    assert "unknown setting 'colour'" in report["checks"][0]["detail"]


def test_an_api_db_answering_1_and_0_for_yes_and_no_is_read_as_yes_and_no(backend):
    """An api-db on MySQL answers ``cleaned: 1`` (a tinyint), not ``true``: the check reads
    it with the api-db's one yes/no rule (``values.truthy``) and still sees the lost
    CLEANUP."""
    from wod.ops.check.base import Host
    from wod.ops.check.seats import seats_vs_apidb
    from wod.registry.models import Customer
    from wod.services.apidb import ApiDb

    class TinyintApiDb(ApiDb):  # the real client; only the answer's booleans become 1/0
        def customer(self, customer_id: int) -> dict:
            answer = super().customer(customer_id)
            return {k: int(v) if isinstance(v, bool) else v for k, v in answer.items()}

    b, s2 = backend.customer("WKSHP-Sample101", email="b@example.com")
    assert backend.run(f"CREATE {s2} {b['id']} x@example.com", "WKSHP-Sample101").status == "done"
    backend.install.registry.set_fields(Customer, b["id"], active=False, cleaned=True)
    host = Host(backend.settings)
    host.apidb = TinyintApiDb.from_settings(backend.settings)
    result = seats_vs_apidb(host)
    assert result.status == "warn", result
    assert (
        result.detail == f"seat {s2}: customer {b['id']} ended (cleaned) but no CLEANUP reached us"
    )
