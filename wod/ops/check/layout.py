"""Layout checks: the settings point at real things, the state is private, the students'
root and ``/home`` have upstream's modes, the vault secret is private, hook scripts are
usable and not writable by others, ``shc`` is there, and the admin's private checks pass.

Fixable: missing state and students folders, their owners and modes, database file modes,
the vault secret's mode, world-writable hook scripts (``o-w``).  A hook that is not
executable is only reported: making it run is the admin's decision.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import stat
from pathlib import Path

from wod import proc
from wod.errors import WodError
from wod.ops.check.base import (
    CheckResult,
    Host,
    check,
    fail,
    fixed,
    listing,
    ok,
    skipped,
    warn,
)
from wod.services.hooks import KINDS, PATH, install_env

PRIVATE_CHECK = "check-private.sh"
HOOK_NAME = re.compile(rf"^({'|'.join(map(re.escape, KINDS))})-.+\.sh$")


def _uid_of(name: str) -> int | None:
    try:
        return pwd.getpwnam(name).pw_uid
    except KeyError:
        return None


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- settings ----------------------------------------------------------------------------
@check("settings", "settings")
def settings_paths(host: Host) -> CheckResult:
    s = host.settings
    problems: list[str] = []
    warnings: list[str] = []
    if not s.notebooks_dir.is_dir():
        problems.append(f"notebooks_dir {s.notebooks_dir} missing")
    for name in (
        "private_notebooks_dir",
        "scripts_dir",
        "private_scripts_dir",
        "ansible_dir",
        "private_ansible_dir",
        "vault_password_file",
        "workspace_template",
    ):
        value = getattr(s, name)
        if value is not None and not value.exists():
            problems.append(f"{name} {value} missing")
    problems += [f"skel_dirs {p} missing" for p in s.skel_dirs if not p.is_dir()]
    if s.hub_url and not s.hub_token:
        problems.append("hub_url set but hub_token empty")
    if not s.apidb_password:
        warnings.append("apidb_password empty")
    if not s.senders:
        warnings.append("senders empty (requests from any sender are accepted)")
    if not s.monitor:
        warnings.append("monitor unset (failures are mailed to nobody)")
    if problems:
        return fail(listing(problems + warnings), "fix the settings file (wod settings shows it)")
    if warnings:
        return warn(listing(warnings), "set them in the settings file")
    return ok("every configured folder and file exists")


@check("admin-user", "settings")
def admin_user(host: Host) -> CheckResult:
    name = host.settings.admin_user
    if _uid_of(name) is not None:
        return ok(f"{name} exists")
    if host.settings.accounts == "directory":
        return skipped(f"{name} does not exist (directory accounts: no ACL for it)")
    return fail(f"admin user {name} missing", f"useradd -m {name} (or set admin_user)")


# -- state -------------------------------------------------------------------------------
def _state_problems(host: Host) -> list[tuple[Path, int, str]]:
    """(path, wanted mode, problem) for the state folder and everything in it that others
    could read (sockets and links aside: their access is their own business)."""
    state = host.settings.state_dir
    if not state.is_dir():
        return [(state, 0o700, "missing")]
    out = []
    if _mode(state) != 0o700:
        out.append((state, 0o700, f"mode {_mode(state):04o}"))
    for entry in sorted(state.rglob("*")):
        try:
            st = entry.lstat()
        except FileNotFoundError:
            continue  # a -journal file gone meanwhile
        if stat.S_ISLNK(st.st_mode) or stat.S_ISSOCK(st.st_mode):
            continue
        wanted = 0o700 if stat.S_ISDIR(st.st_mode) else 0o600
        if stat.S_IMODE(st.st_mode) & 0o077:
            out.append((entry, wanted, f"mode {stat.S_IMODE(st.st_mode):04o}"))
    return out


@check("state", "state")
def state_modes(host: Host) -> CheckResult:
    state = host.settings.state_dir
    problems = _state_problems(host)
    if not problems:
        return ok(f"{state} 0700, its files 0600 and folders 0700")
    if host.fix:
        for path, mode, what in problems:
            if what == "missing":
                path.mkdir(parents=True, mode=0o700, exist_ok=True)
            os.chmod(path, mode)
        if not _state_problems(host):
            return fixed(listing([f"{p} {what} -> {m:04o}" for p, m, what in problems]))
        problems = _state_problems(host)
    return fail(
        listing([f"{p} {what}" for p, _m, what in problems]),
        f"wod check --fix (chmod 0700 {state}, 0600 its files)",
    )


# -- students' root and /home --------------------------------------------------------------
def _owned_folder(
    host: Host, path: Path, mode: int, owner: int | None, owner_name: str
) -> CheckResult:
    def problems() -> list[str]:
        if not path.is_dir():
            return ["missing"]
        out = []
        st = path.stat()
        if owner is not None and st.st_uid != owner:
            out.append(f"owner uid {st.st_uid}, want {owner_name}")
        if stat.S_IMODE(st.st_mode) != mode:
            out.append(f"mode {stat.S_IMODE(st.st_mode):04o}, want {mode:04o}")
        return out

    found = problems()
    if not found:
        return ok(f"{path}: {owner_name if owner is not None else 'owner kept'}, {mode:04o}")
    if host.fix:
        path.mkdir(parents=True, exist_ok=True)
        if owner is not None:
            os.chown(path, owner, -1)
        os.chmod(path, mode)
        if not problems():
            return fixed(f"{path}: {', '.join(found)} -> repaired")
        found = problems()
    who = f"chown {owner_name} {path} && " if owner is not None else ""
    return fail(f"{path}: {', '.join(found)}", f"wod check --fix ({who}chmod {mode:04o} {path})")


@check("students-dir", "layout")
def students_dir(host: Host) -> CheckResult:
    s = host.settings
    admin = _uid_of(s.admin_user) if s.accounts == "system" else None
    return _owned_folder(host, s.students_dir, 0o711, admin, s.admin_user)


@check("home-root", "layout")
def home_root(host: Host) -> CheckResult:
    if host.settings.accounts == "directory":
        return skipped("directory accounts: no Linux student accounts on this host")
    return _owned_folder(host, host.path("/home"), 0o711, 0, "root")


# -- vault secret --------------------------------------------------------------------------
@check("vault-secret", "layout")
def vault_secret(host: Host) -> CheckResult:
    path = host.settings.vault_password_file
    if path is None:
        return skipped("no vault_password_file set")
    if not path.is_file():
        return fail(
            f"{path} missing", "create it (the Ansible-vault password) or unset the setting"
        )
    if _mode(path) == 0o600:
        return ok(f"{path} 0600")
    was = _mode(path)
    if host.fix:
        os.chmod(path, 0o600)
        return fixed(f"{path} {was:04o} -> 0600")
    return fail(f"{path} mode {was:04o}", f"wod check --fix (chmod 0600 {path})")


# -- hook scripts --------------------------------------------------------------------------
def _script_folders(host: Host) -> list[Path]:
    s = host.settings
    return [p for p in (s.scripts_dir, s.private_scripts_dir) if p is not None and p.is_dir()]


@check("hook-scripts", "layout")
def hook_scripts(host: Host) -> CheckResult:
    folders = _script_folders(host)
    if not folders:
        return skipped("no scripts_dir / private_scripts_dir")
    hooks = [p for f in folders for p in sorted(f.iterdir()) if HOOK_NAME.match(p.name)]
    idle = [str(p) for p in hooks if p.is_file() and not os.access(p, os.X_OK)]
    writable = [p for p in [*folders, *hooks] if not p.is_symlink() and _mode(p) & 0o002]
    if writable and host.fix:
        for p in writable:
            os.chmod(p, _mode(p) & ~0o002)
        repaired = [str(p) for p in writable]
        writable = [p for p in writable if _mode(p) & 0o002]
        if not writable and not idle:
            return fixed(f"no longer writable by others: {listing(repaired)}")
    if writable:
        return fail(
            f"writable by any user (they run as root): {listing([str(p) for p in writable])}",
            "wod check --fix (chmod o-w)",
        )
    if idle:
        return warn(f"not executable, so never run: {listing(idle)}", "chmod +x the ones to run")
    return ok(f"{len(hooks)} hook script(s), all executable, none writable by others")


@check("shc", "layout")
def shc(host: Host) -> CheckResult:
    found = shutil.which("shc")
    if found:
        return ok(found)
    shops = host.apidb_workshops() or []
    compiling = [str(w.get("notebook")) for w in shops if _compiles(w.get("compile"))]
    if compiling:
        return fail(
            f"shc missing; workshops compile scripts: {listing(compiling)}", "apt-get install shc"
        )
    return warn("shc missing (no workshop compiles scripts now)", "apt-get install shc")


def _compiles(value: object) -> bool:
    from wod.services.apidb import parse_compile

    try:
        return bool(parse_compile(value))
    except ValueError:
        return False


# -- the admin's private checks ------------------------------------------------------------
@check("private-checks", "private")
def private_checks(host: Host) -> CheckResult:
    folder = host.settings.private_scripts_dir
    script = folder / PRIVATE_CHECK if folder is not None else None
    if script is None or not script.exists():
        return skipped(f"no {PRIVATE_CHECK} in private_scripts_dir")
    if not os.access(script, os.X_OK):
        return warn(f"{script} is not executable", f"chmod +x {script}")
    env = install_env(host.settings)
    env.update(PATH=PATH, LANG="C.UTF-8", WODCHECKFIX="1" if host.fix else "0")
    try:
        done = proc.run(
            [script], env=env, timeout=host.settings.hook_timeout, check=False, what=PRIVATE_CHECK
        )
    except WodError as exc:
        return fail(f"{PRIVATE_CHECK}: {exc.reason}", f"see {script}")
    last = next((ln for ln in reversed(done.output.splitlines()) if ln.strip()), "")
    if done.returncode == 0:
        return ok(f"{PRIVATE_CHECK} passed{': ' + last if last else ''}")
    return fail(
        f"{PRIVATE_CHECK} exited {done.returncode}{': ' + last if last else ''}",
        f"see the output of {script}",
    )
