"""What ``wod serve`` checks and enforces before it starts.

- :func:`secure_state`: the state folder 0700, its files 0600 (the job database holds
  e-mails, the registry database passwords, the outbox participants' mail) — whatever
  umask or copy made them, also when started by hand.
- :func:`secure_settings_file`: the settings file 0600 (it holds tokens and passwords).
- :func:`refusals`: one line each, with what to do, for what makes a start pointless or
  unsafe: no ``http_token`` or no ``senders`` outside a demo, the students' folder, the
  notebooks tree or the admin account missing (checked when the lifecycle runs the jobs).
- :func:`warnings`: peers that do not answer (api-db, JupyterHub, LDAP): the daemon
  starts anyway (jobs are retried) but says so.
"""

from __future__ import annotations

import os
import pwd
import socket
import stat
from dataclasses import dataclass
from pathlib import Path

import httpx

from wod.settings import Settings

#: Seconds each peer gets to answer the start-time probe.
PROBE_TIMEOUT = 3.0


@dataclass(frozen=True)
class Finding:
    """One problem: what is wrong and what to do (one line together)."""

    what: str
    remedy: str

    def __str__(self) -> str:
        return f"{self.what}: {self.remedy}"


def secure_state(settings: Settings) -> list[str]:
    """Create the state folder 0700; make the files directly in it 0600 and the outbox
    (folders 0700, files 0600).  Only what the backend itself keeps there is touched, so a
    ``state_dir`` pointed at a shared folder by mistake is not rewritten wholesale.
    Returns what was changed, for the log."""
    changed: list[str] = []
    root = settings.state_dir
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    paths = [root, *(p for p in sorted(root.iterdir()) if not p.is_dir() or p.is_symlink())]
    if settings.outbox_dir.is_dir() and not settings.outbox_dir.is_symlink():
        paths += [settings.outbox_dir, *sorted(settings.outbox_dir.rglob("*"))]
    for path in paths:
        try:
            st = path.lstat()
        except FileNotFoundError:
            continue  # removed meanwhile (a -journal file)
        if stat.S_ISLNK(st.st_mode) or stat.S_ISSOCK(st.st_mode):
            continue
        want = 0o700 if stat.S_ISDIR(st.st_mode) else 0o600
        if stat.S_IMODE(st.st_mode) != want:
            os.chmod(path, want)
            changed.append(f"{path} {stat.S_IMODE(st.st_mode):04o} -> {want:04o}")
    return changed


def secure_settings_file(path: Path) -> list[str]:
    """Make the settings file 0600; report (not change) an owner other than us."""
    notes: list[str] = []
    st = path.stat()
    if stat.S_IMODE(st.st_mode) & 0o077:
        if st.st_uid == os.geteuid() or os.geteuid() == 0:
            os.chmod(path, 0o600)
            notes.append(f"{path} was readable by others: now 0600")
        else:
            notes.append(f"{path} is readable by others: chmod 600 {path}")
    if os.geteuid() == 0 and st.st_uid != 0:
        notes.append(f"{path} is not owned by root: chown root:root {path}")
    return notes


def refusals(settings: Settings, *, http: bool = True, host: bool = True) -> list[Finding]:
    """Reasons not to start.  ``host``: check what the lifecycle needs on this host."""
    out: list[Finding] = []
    if not settings.demo:
        if http and not settings.http_token:
            out.append(
                Finding(
                    "http_token is empty, so the /api routes would be open to every local user",
                    "set http_token (wod install generates one), or demo: true on a demo install",
                )
            )
        if not settings.senders and not settings.allow_any_sender:
            out.append(
                Finding(
                    "senders is empty, so requests from any sender would be accepted",
                    "set senders to the api-db's address, or allow_any_sender: true",
                )
            )
    if host:
        if not settings.students_dir.is_dir():
            out.append(
                Finding(
                    f"the students' folder {settings.students_dir} does not exist",
                    "run wod install, or create it, or set students_dir",
                )
            )
        if not settings.notebooks_dir.is_dir():
            out.append(
                Finding(
                    f"the notebooks tree {settings.notebooks_dir} does not exist",
                    "clone the workshops there (git clone …), or set notebooks_dir",
                )
            )
        if settings.accounts == "system":
            try:
                pwd.getpwnam(settings.admin_user)
            except KeyError:
                out.append(
                    Finding(
                        f"the admin account {settings.admin_user!r} does not exist",
                        "run wod install (it creates it), or set admin_user",
                    )
                )
    return out


def warnings(settings: Settings) -> list[Finding]:
    """Peers that do not answer now; each is retried by the jobs that need it."""
    out: list[Finding] = []
    if settings.apidb_url and not _http_answers(settings.apidb_url):
        out.append(
            Finding(
                f"the api-db at {settings.apidb_url} does not answer",
                "jobs wait and retry; check apidb_url and that the api-db runs",
            )
        )
    if settings.hub_url and not _http_answers(settings.hub_url.rstrip("/") + "/hub/api"):
        out.append(
            Finding(
                f"JupyterHub at {settings.hub_url} does not answer",
                "jobs wait and retry; check hub_url and that JupyterHub runs",
            )
        )
    if settings.ldap_host and not _tcp_answers(settings.ldap_host, settings.ldap_port):
        out.append(
            Finding(
                f"LDAP at {settings.ldap_host}:{settings.ldap_port} does not answer",
                "ldap workshops wait and retry; check ldap_host and ldap_port",
            )
        )
    return out


def _http_answers(url: str) -> bool:
    """Any HTTP answer (even 401 or 404) means the peer is up."""
    try:
        httpx.get(url, timeout=PROBE_TIMEOUT)
    except httpx.HTTPError:
        return False
    return True


def _tcp_answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=PROBE_TIMEOUT):
            return True
    except OSError:
        return False


def port_taken(host: str, port: int, what: str) -> Finding:
    """The one line for a port another process holds."""
    return Finding(
        f"{what} port {host}:{port} is taken",
        f"stop what listens there (ss -ltnp 'sport = :{port}') or change {what}",
    )


__all__ = [
    "Finding",
    "port_taken",
    "refusals",
    "secure_settings_file",
    "secure_state",
    "warnings",
]
