"""Student accounts: one contract suite run against real Linux accounts (as root) and
against unprivileged directory homes; plus the ``wod accounts`` commands.

System accounts use a test-only name pattern (``wodt{n}``, uids from 61000) and are
removed (user, group, home) in teardown, also when a test fails.
"""

from __future__ import annotations

import os
import pwd
import stat
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
from click.testing import CliRunner

from wod.cli import cli
from wod.cli.accounts import accounts as accounts_cmd
from wod.errors import Permanent
from wod.services.accounts import (
    DirectoryAccounts,
    SystemAccounts,
    kill_stale,
    make_accounts,
)
from wod.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
IS_ROOT = os.geteuid() == 0
TEST_PATTERN = "wodt{n}"
TEST_BASE = 61000


def _settings(tmp_path: Path, kind: str, **overrides) -> Settings:
    skel1, skel2 = tmp_path / "skel-public", tmp_path / "skel-private"
    (skel1 / ".config").mkdir(parents=True, exist_ok=True)
    (skel1 / ".bashrc").write_text("# public bashrc\n")
    (skel1 / ".config" / "app.conf").write_text("public\n")
    (skel1 / "README.txt").write_text("welcome\n")
    (skel2 / ".config").mkdir(parents=True, exist_ok=True)
    (skel2 / ".config" / "app.conf").write_text("private\n")
    values = dict(
        accounts=kind,
        account_pattern=TEST_PATTERN,
        uid_base=TEST_BASE,
        gid_base=TEST_BASE,
        students_dir=tmp_path / "student",
        state_dir=tmp_path / "state",
        skel_dirs=[skel1, skel2],
        user_min=1,
        user_max=3,
    )
    values.update(overrides)
    return Settings(**values)


def _remove_leftovers(settings: Settings) -> None:
    """Earlier interrupted runs may have left test accounts behind."""
    for n in range(settings.user_min, settings.user_max + 1):
        name = settings.account(n)
        subprocess.run(["pkill", "-KILL", "-u", name], capture_output=True)
        subprocess.run(["userdel", name], capture_output=True)
        subprocess.run(["groupdel", name], capture_output=True)


KINDS = [
    pytest.param(
        "system",
        marks=[
            pytest.mark.root,
            pytest.mark.skipif(not IS_ROOT, reason="system accounts need root"),
        ],
    ),
    "directory",
]


@pytest.fixture(params=KINDS)
def accounts(request, tmp_path):
    settings = _settings(tmp_path, request.param)
    if request.param == "system":
        _remove_leftovers(settings)
    acct = make_accounts(settings)
    try:
        yield acct
    finally:
        for n in range(settings.user_min, settings.user_max + 1):
            acct.remove(n)
        if request.param == "system":
            _remove_leftovers(settings)


def tree(folder: Path) -> dict[str, str]:
    """Relative path -> content (or '<dir>'), ssh keys excluded."""
    out = {}
    for path in sorted(folder.rglob("*")):
        rel = str(path.relative_to(folder))
        if rel.startswith(".ssh"):
            continue
        out[rel] = "<dir>" if path.is_dir() else path.read_text()
    return out


# -- the contract, for both implementations ----------------------------------------------
def test_provision_creates_account_and_home_idempotently(accounts):
    assert accounts.name(2) == "wodt2"
    assert not accounts.exists(2)
    accounts.provision(2)
    accounts.provision(2)
    home = accounts.home(2)
    assert accounts.exists(2) and home.is_dir()
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    if accounts.kind == "system":
        entry = pwd.getpwnam("wodt2")
        assert (entry.pw_uid, entry.pw_gid, entry.pw_dir) == (61002, 61002, str(home))
        assert (home.stat().st_uid, home.stat().st_gid) == (61002, 61002)


def test_password_set_verified_and_replaced(accounts):
    accounts.provision(1)
    accounts.set_password(1, "FirstPass123")
    assert accounts.verify_password(1, "FirstPass123")
    assert not accounts.verify_password(1, "firstpass123")
    accounts.set_password(1, "SecondPass45")
    assert accounts.verify_password(1, "SecondPass45")
    assert not accounts.verify_password(1, "FirstPass123")
    if accounts.kind == "system":
        # Checked independently of our code: the shadow hash with the crypt module.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import crypt
        line = next(
            x for x in Path("/etc/shadow").read_text().splitlines() if x.startswith("wodt1:")
        )
        hashed = line.split(":")[1]
        assert crypt.crypt("SecondPass45", hashed) == hashed
    else:
        stored = (accounts.settings.state_dir / "accounts.db").read_bytes()
        assert b"SecondPass45" not in stored and b"scrypt$" in stored


def test_password_is_never_logged(accounts, caplog):
    caplog.set_level("DEBUG")
    accounts.provision(1)
    accounts.set_password(1, "NeverLogged9")
    assert "NeverLogged9" not in caplog.text


def test_reset_home_empties_and_reseeds_with_fresh_keys(accounts, tmp_path):
    accounts.provision(3)
    home = accounts.home(3)
    inode = home.stat().st_ino
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me")
    (home / ".hidden").write_text("old")
    (home / "work" / "deep").mkdir(parents=True)
    (home / "work" / "deep" / "notebook.ipynb").write_text("{}")
    (home / "link-out").symlink_to(outside)
    (home / "dir-link").symlink_to(tmp_path)

    key = accounts.reset_home(3) / ".ssh" / "id_ed25519"
    assert home.stat().st_ino == inode  # the folder itself stays
    assert outside.read_text() == "keep me"  # links are removed, never followed
    assert tree(home) == {
        ".bashrc": "# public bashrc\n",
        ".config": "<dir>",
        ".config/app.conf": "private\n",  # later skeleton wins
        "README.txt": "welcome\n",
    }
    ssh = home / ".ssh"
    assert stat.S_IMODE(ssh.stat().st_mode) == 0o700
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE((ssh / "authorized_keys").stat().st_mode) == 0o600
    public = (ssh / "id_ed25519.pub").read_text()
    assert public.startswith("ssh-ed25519 ") and public.strip().endswith("wodt3")
    assert (ssh / "authorized_keys").read_text() == public
    derived = subprocess.run(
        ["ssh-keygen", "-y", "-f", key], capture_output=True, text=True, check=True
    ).stdout
    assert derived.split()[:2] == public.split()[:2]  # a usable pair without passphrase
    uid, gid = accounts.owner(3)
    if uid is not None:
        for path in [home, *home.rglob("*")]:
            assert (path.lstat().st_uid, path.lstat().st_gid) == (uid, gid), path

    first, files = public, tree(home)
    (home / ".hidden").write_text("new junk")
    accounts.reset_home(3)
    assert tree(home) == files and ".hidden" not in os.listdir(home)
    assert (ssh / "id_ed25519.pub").read_text() != first  # a fresh key each time


def test_rsa_keys_when_configured(tmp_path):
    acct = DirectoryAccounts(_settings(tmp_path, "directory", ssh_key_type="rsa", skel_dirs=[]))
    acct.provision(1)
    key = acct.reset_home(1) / ".ssh" / "id_rsa"
    info = subprocess.run(
        ["ssh-keygen", "-l", "-f", key], capture_output=True, text=True, check=True
    ).stdout
    assert info.startswith("2048 ") and "(RSA)" in info
    assert (key.parent / "authorized_keys").read_text().startswith("ssh-rsa ")


def test_missing_home_is_a_clear_error(accounts):
    with pytest.raises(Permanent) as err:
        accounts.reset_home(2)
    assert err.value.reason == (
        f"home of wodt2 missing: {accounts.home(2)} "
        "(accounts are created at install: wod accounts provision)"
    )


def test_missing_skeleton_is_a_clear_error(accounts, tmp_path):
    accounts.provision(1)
    (accounts.home(1) / "keep.txt").write_text("x")
    bad = type(accounts)(accounts.settings.model_copy(update={"skel_dirs": [tmp_path / "nope"]}))
    with pytest.raises(Permanent, match="skeleton folder missing"):
        bad.reset_home(1)
    assert (accounts.home(1) / "keep.txt").exists()  # nothing wiped


# -- processes (real accounts only) ------------------------------------------------------
def _start_as(uid: int, *argv: str) -> subprocess.Popen:
    proc = subprocess.Popen(
        ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            if os.stat(f"/proc/{proc.pid}").st_uid == uid:
                return proc
        except FileNotFoundError:
            break
        time.sleep(0.01)
    raise RuntimeError("process did not start as the student")


@pytest.mark.root
@pytest.mark.skipif(not IS_ROOT, reason="needs root")
def test_leftover_processes_are_killed(accounts):
    if accounts.kind != "system":
        assert accounts.kill_processes(1) == 0  # nothing to kill without real accounts
        return
    accounts.provision(1)
    leftover = _start_as(accounts.uid(1), "sleep", "300")
    other = subprocess.Popen(["sleep", "300"])
    try:
        assert accounts.kill_processes(1) == 1
        assert leftover.wait(timeout=5) == -9
        assert other.poll() is None  # nobody else's process is touched
        assert accounts.kill_processes(1) == 0
        # A whole tree (a shell with background children, as a kernel leaves behind).
        tree_root = _start_as(accounts.uid(1), "bash", "-c", "sleep 300 & sleep 300 & wait")
        deadline = time.monotonic() + 5
        while len(accounts.processes(1)) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert accounts.kill_processes(1) == 3
        assert accounts.processes(1) == []
        assert tree_root.wait(timeout=5) == -9
    finally:
        other.kill()
        other.wait()
        leftover.kill()
        leftover.wait()


@pytest.mark.root
@pytest.mark.skipif(not IS_ROOT, reason="needs root")
def test_kill_stale_kills_only_old_jupyter_processes(tmp_path):
    settings = _settings(tmp_path, "system")
    _remove_leftovers(settings)
    acct = SystemAccounts(settings)
    try:
        acct.provision(2)
        uid = acct.uid(2)
        jupyter = _start_as(uid, "bash", "-c", "exec -a jupyter-singleuser sleep 300")
        plain = _start_as(uid, "sleep", "301")
        time.sleep(0.1)  # let exec -a rename it
        assert kill_stale(acct, [1, 2, 3], older_than=3600) == []
        killed = kill_stale(acct, [1, 2, 3], older_than=0)
        assert [(n, p.pid) for n, p in killed] == [(2, jupyter.pid)]
        assert "jupyter-singleuser" in killed[0][1].cmdline
        assert jupyter.wait(timeout=5) == -9
        assert plain.poll() is None
        plain.kill()
        plain.wait()
    finally:
        acct.remove(2)
        _remove_leftovers(settings)


def test_system_accounts_refuse_to_run_unprivileged():
    code = (
        "from wod.services.accounts import SystemAccounts\n"
        "from wod.errors import Permanent\n"
        "from wod.settings import Settings\n"
        "try:\n    SystemAccounts(Settings())\n"
        "except Permanent as e:\n    print(e.reason)\n"
    )
    argv = [sys.executable, "-c", code]
    if IS_ROOT:
        argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *argv]
    out = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert "system accounts need root" in out.stdout, out.stderr


# -- the wod accounts commands -----------------------------------------------------------
@pytest.fixture
def run_cli(tmp_path):
    settings = _settings(tmp_path, "directory")
    config = tmp_path / "wod.yml"
    config.write_text(
        "accounts: directory\n"
        f"account_pattern: '{TEST_PATTERN}'\n"
        f"students_dir: {settings.students_dir}\n"
        f"state_dir: {settings.state_dir}\n"
        f"skel_dirs: [{settings.skel_dirs[0]}, {settings.skel_dirs[1]}]\n"
        "user_min: 1\nuser_max: 3\n"
    )
    if "accounts" not in cli.commands:
        cli.add_command(accounts_cmd)

    def run(*args: str):
        return CliRunner().invoke(cli, ["-c", str(config), "accounts", *args])

    return run, settings


def test_cli_provision_then_wipe(run_cli):
    run, settings = run_cli
    result = run("provision", "--min", "1", "--max", "2")
    assert result.exit_code == 0, result.output
    assert "wodt1: created" in result.output and "wodt2: created" in result.output
    home = settings.home(1)
    assert (home / "README.txt").read_text() == "welcome\n"
    assert (home / ".ssh" / "id_ed25519").exists()
    (home / "work.ipynb").write_text("{}")
    again = run("provision")
    assert "wodt1: present" in again.output and "wodt3: created" in again.output
    assert (home / "work.ipynb").exists()  # provisioning never wipes an existing home

    result = run("wipe", "1-2")
    assert result.exit_code == 0, result.output
    assert "wodt2: home wiped" in result.output
    assert not (home / "work.ipynb").exists()


def test_cli_reports_bad_ranges_and_missing_homes(run_cli):
    run, _ = run_cli
    result = run("wipe", "2-9")
    assert result.exit_code == 1
    assert "student 9 is outside this backend's range 1-3" in result.output
    result = run("wipe", "2")
    assert result.exit_code == 1
    assert "home of wodt2 missing" in result.output
    assert "Traceback" not in result.output


def test_cli_kill_stale_directory_mode(run_cli):
    run, _ = run_cli
    result = run("kill-stale", "--older-than", "7d")
    assert result.exit_code == 0, result.output
    assert "0 process(es) killed" in result.output
    bad = run("kill-stale", "--older-than", "soon")
    assert bad.exit_code == 2 and "expected e.g. 90d" in bad.output


@pytest.mark.root
@pytest.mark.skipif(not IS_ROOT, reason="needs root")
def test_ids_of_another_account_are_never_touched(tmp_path):
    """On a host where student1's uid does not follow uid_base, uid_base + 1 may be another
    person's account: its processes and files must be left alone, with a clear reason."""
    settings = _settings(tmp_path, "system")
    _remove_leftovers(settings)
    acct = SystemAccounts(settings)
    other_name = "wodtother"
    home1 = settings.home(1)
    home1.mkdir(parents=True)
    made = [["userdel", "wodt1"], ["userdel", other_name], ["groupdel", other_name]]
    try:
        # student1 made by hand with uid 61050; uid 61001 (= uid_base + 1) is someone else.
        subprocess.run(["groupadd", "--gid", str(TEST_BASE + 1), other_name], check=True)
        subprocess.run(
            [
                "useradd",
                "--uid",
                str(TEST_BASE + 1),
                "--gid",
                str(TEST_BASE + 1),
                "--no-create-home",
                other_name,
            ],
            check=True,
        )
        subprocess.run(
            [
                "useradd",
                "--uid",
                str(TEST_BASE + 50),
                "--no-create-home",
                "--no-user-group",
                "--home-dir",
                str(home1),
                "wodt1",
            ],
            check=True,
        )
        someone = _start_as(TEST_BASE + 1, "sleep", "300")
        try:
            with pytest.raises(Permanent, match="wodt1 has uid 61050"):
                acct.kill_processes(1)
            with pytest.raises(Permanent, match="wodt1 has uid 61050"):
                acct.reset_home(1)
            assert someone.poll() is None  # the other person's process still runs
            assert home1.stat().st_uid != TEST_BASE + 1  # and was not given student1's home
        finally:
            someone.kill()
            someone.wait()
        # Creating student2 whose uid is taken: refused before anything is created.
        subprocess.run(["usermod", "--uid", str(TEST_BASE + 2), other_name], check=True)
        with pytest.raises(Permanent, match=f"belongs to account {other_name}"):
            acct.provision(2)
        with pytest.raises(KeyError):
            pwd.getpwnam("wodt2")
        assert subprocess.run(["getent", "group", "wodt2"], capture_output=True).returncode == 2
    finally:
        for argv in made:
            subprocess.run(argv, capture_output=True)
        _remove_leftovers(settings)


@pytest.mark.root
@pytest.mark.skipif(not IS_ROOT, reason="needs root")
def test_passwords_set_concurrently_beside_useradd_all_hold(tmp_path):
    """Passwords are written to /etc/shadow in-process (SHA-512 crypt, under the
    password-file lock): three threads setting passwords while ``useradd``/``userdel``
    change the same files leave every password working, the file's owner and mode as they
    were, and nothing for ``pwck`` to complain about."""
    import threading

    settings = _settings(tmp_path, "system")
    _remove_leftovers(settings)
    acct = make_accounts(settings)
    shadow = Path("/etc/shadow")
    before = shadow.stat()
    other = "wodtx" + str(os.getpid() % 1000)
    last: dict[int, str] = {}
    errors: list[BaseException] = []

    def churn(n: int) -> None:
        try:
            for i in range(15):
                last[n] = f"Pass{n}x{i}Abc"
                acct.set_password(n, last[n])
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    try:
        for n in (1, 2, 3):
            acct.provision(n)
        threads = [threading.Thread(target=churn, args=(n,)) for n in (1, 2, 3)]
        for t in threads:
            t.start()
        for _ in range(3):
            subprocess.run(["useradd", "-M", other], check=True, capture_output=True)
            subprocess.run(["userdel", other], check=True, capture_output=True)
        for t in threads:
            t.join(60)
        assert not errors
        for n in (1, 2, 3):
            assert acct.verify_password(n, last[n])
        line = next(x for x in shadow.read_text().splitlines() if x.startswith("wodt1:"))
        assert line.split(":")[1].startswith("$6$")
        after = shadow.stat()
        assert (after.st_uid, after.st_gid, stat.S_IMODE(after.st_mode)) == (
            before.st_uid,
            before.st_gid,
            stat.S_IMODE(before.st_mode),
        )
        assert not Path("/etc/shadow+").exists()
        check = subprocess.run(["pwck", "-r", "-q"], capture_output=True, text=True)
        assert "wodt" not in check.stdout + check.stderr
    finally:
        subprocess.run(["userdel", other], capture_output=True)
        for n in (1, 2, 3):
            acct.remove(n)
        _remove_leftovers(settings)
