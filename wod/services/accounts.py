"""Student accounts: passwords, homes, ssh keys, processes.

One interface, :class:`Accounts`, and two implementations chosen by ``settings.accounts``
(:func:`make_accounts`):

- :class:`SystemAccounts` — real Linux accounts (``student<N>`` by ``account_pattern``, uid
  ``uid_base + N``, an own group with gid ``gid_base + N``).  Needs root.  A password is
  hashed in-process (SHA-512 crypt) and written to ``/etc/shadow`` under the password-file
  lock, as ``chpasswd -e`` would (no process per CREATE; passwords set by several
  workers at the same time share one rewrite); it never reaches a command line or a log.
- :class:`DirectoryAccounts` — unprivileged: a home is a plain folder under
  ``students_dir``; the password is kept only as a salted scrypt hash in a small SQLite
  table in ``state_dir`` (one connection per thread, kept open).  Ownership is left
  alone unless we run as root.

Accounts and homes are created at install time (:meth:`Accounts.provision`, ``wod accounts
provision``); a request never creates one.  Every step here is idempotent: a second
``reset_home`` leaves the same clean home (with a fresh key pair), a second
``set_password`` leaves one password, killing the processes of an idle account does nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import grp
import hmac
import logging
import os
import pwd
import secrets
import shutil
import signal
import sqlite3
import stat
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wod import acl, proc
from wod.errors import Permanent, Transient
from wod.passwords import GENERATED_N, hash_password, password_matches
from wod.settings import Settings
from wod.values import chown_tree

log = logging.getLogger(__name__)

SSH_KEY_FILES = {"ed25519": "id_ed25519", "rsa": "id_rsa"}


@dataclass(frozen=True)
class Process:
    """One running process of an account (from ``/proc``)."""

    pid: int
    uid: int
    age: float  # seconds since it started
    cmdline: str


class Accounts:
    """What the lifecycle needs from a student account; see the module docstring."""

    kind = "base"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @classmethod
    def from_settings(cls, settings: Settings) -> Accounts:
        return cls(settings)

    # -- naming ------------------------------------------------------------------------
    def name(self, n: int) -> str:
        return self.settings.account(n)

    def home(self, n: int) -> Path:
        return self.settings.home(n)

    def uid(self, n: int) -> int:
        return self.settings.uid_base + n

    def gid(self, n: int) -> int:
        return self.settings.gid_base + n

    def owner(self, n: int) -> tuple[int | None, int | None]:
        """(uid, gid) files of student ``n`` get, or ``(None, None)`` when ownership is
        not managed (unprivileged directory accounts)."""
        return self.uid(n), self.gid(n)

    # -- to implement ------------------------------------------------------------------
    def exists(self, n: int) -> bool:
        raise NotImplementedError

    def provision(self, n: int) -> None:
        """Create the account and its (empty) home; install time only."""
        raise NotImplementedError

    def remove(self, n: int) -> None:
        """Delete the account and its home (uninstall; tests)."""
        raise NotImplementedError

    def set_password(self, n: int, password: str) -> None:
        raise NotImplementedError

    def verify_password(self, n: int, password: str) -> bool:
        raise NotImplementedError

    def processes(self, n: int) -> list[Process]:
        return []

    def kill_processes(self, n: int) -> int:
        """Kill every process of student ``n``; returns how many were killed."""
        return 0

    def chown_tree(self, path: Path, n: int) -> None:
        raise NotImplementedError

    # -- shared behaviour --------------------------------------------------------------
    def require_home(self, n: int) -> Path:
        home = self.home(n)
        if not home.is_dir():
            raise Permanent(
                f"home of {self.name(n)} missing: {home} "
                "(accounts are created at install: wod accounts provision)"
            )
        return home

    def reset_home(self, n: int) -> Path:
        """Empty the home (dot-files too, the folder itself stays), re-seed it from
        ``skel_dirs`` in order, give it a fresh ssh key pair, fix ownership."""
        home = self.require_home(n)
        for skel in self.settings.skel_dirs:
            if not skel.is_dir():
                raise Permanent(f"skeleton folder missing: {skel} (setting skel_dirs)")
        try:
            empty_folder(home)
            for skel in self.settings.skel_dirs:
                shutil.copytree(skel, home, symlinks=True, dirs_exist_ok=True)
        except OSError as exc:
            raise Permanent(f"cannot reset home {home}: {exc}") from None
        self.ensure_ssh_keys(n)
        self.chown_tree(home, n)
        os.chmod(home, 0o700)
        keep_acl_mask(home)
        return home

    def ensure_ssh_keys(self, n: int) -> Path:
        """A new key pair in ``~/.ssh`` (type per ``ssh_key_type``, no passphrase) and an
        ``authorized_keys`` holding its public key.  Returns the private key path."""
        home = self.require_home(n)
        ssh = home / ".ssh"
        if ssh.is_symlink() or (ssh.exists() and not ssh.is_dir()):
            ssh.unlink()
        ssh.mkdir(mode=0o700, exist_ok=True)
        os.chmod(ssh, 0o700)
        key = ssh / SSH_KEY_FILES[self.settings.ssh_key_type]
        public = key.with_name(key.name + ".pub")
        for old in (key, public):
            if old.exists() or old.is_symlink():
                old.unlink()
        private_text, public_text = new_key_pair(self.settings.ssh_key_type, self.name(n))
        _write_new(key, private_text, 0o600)
        _write_new(public, public_text, 0o644)
        authorized = ssh / "authorized_keys"
        if authorized.is_symlink():
            authorized.unlink()
        authorized.write_bytes(public_text)
        os.chmod(key, 0o600)
        os.chmod(authorized, 0o600)
        os.chmod(public, 0o644)
        return key


def new_key_pair(kind: str, comment: str) -> tuple[bytes, bytes]:
    """A fresh ssh key pair without passphrase, as ``ssh-keygen -t kind [-b 2048] -N ''``
    writes it (OpenSSH private key format; ``<type> <base64> <comment>`` public line),
    generated in-process: no ``ssh-keygen`` process per CREATE."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    if kind == "rsa":
        key: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif kind == "ed25519":
        key = ed25519.Ed25519PrivateKey.generate()
    else:
        raise Permanent(f"unsupported ssh key type {kind!r}")
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return private, public + b" " + comment.encode() + b"\n"


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` with ``mode`` from the start (never briefly readable by others)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def keep_acl_mask(path: Path) -> None:
    """Give back the ACL mask a ``chmod`` took: with an access ACL (the admin's
    ``u:<admin>:rwx`` that ``wod check --fix`` sets on homes), ``chmod 0700`` sets the
    mask to ``---`` and so voids every named entry.  No ACL: nothing to do."""
    try:
        entries = acl.read(path, acl.ACCESS)
    except (OSError, ValueError):
        return
    mask = (acl.MASK, acl.UNDEFINED_ID)
    if mask in entries:
        entries[mask] = 7
        os.setxattr(path, acl.ACCESS, acl.encode(entries), follow_symlinks=False)


def empty_folder(folder: Path) -> None:
    """Remove everything inside ``folder`` (dot-files included) but not ``folder`` itself.
    Symbolic links are removed, never followed."""
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)


# -- processes ---------------------------------------------------------------------------
def _boot_clock() -> tuple[float, int]:
    uptime = float(Path("/proc/uptime").read_text().split()[0])
    return uptime, os.sysconf("SC_CLK_TCK")


def _read_proc(path: str, limit: int = 1 << 20) -> bytes | None:
    """The bytes of a small ``/proc`` file (None when the process is gone)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        chunks = []
        size = 0
        while size < limit:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)
    except OSError:
        return None
    finally:
        os.close(fd)


def _status_uids(status: bytes) -> tuple[int, int] | None:
    """(real, effective) uid from a ``/proc/<pid>/status`` text."""
    start = status.find(b"\nUid:")
    if start < 0:
        return None
    end = status.find(b"\n", start + 5)
    fields = status[start + 5 : end if end > 0 else None].split()
    return (int(fields[0]), int(fields[1])) if len(fields) >= 2 else None


def list_processes(uid: int) -> list[Process]:
    """Live (non-zombie) processes whose real or effective uid is ``uid``.

    One read of ``/proc/<pid>/status`` per process decides; ``stat`` and ``cmdline`` are
    read only for the matches (the scan runs at every CREATE and CLEANUP)."""
    clock: tuple[float, int] | None = None
    found = []
    with os.scandir("/proc") as entries:
        for entry in entries:
            pid = entry.name
            if not pid.isdigit():
                continue
            status = _read_proc(f"/proc/{pid}/status", 8192)
            uids = _status_uids(status) if status else None
            if uids is None or uid not in uids:
                continue
            line = _read_proc(f"/proc/{pid}/stat", 8192)
            cmdline = _read_proc(f"/proc/{pid}/cmdline")
            if not line or cmdline is None:
                continue
            # stat: "pid (comm) state ppid ..." — comm may contain spaces and parentheses.
            rest = line[line.rfind(b")") + 2 :].split()
            if rest[0] == b"Z":
                continue
            if clock is None:
                clock = _boot_clock()
            uptime, ticks = clock
            started = int(rest[19]) / ticks
            text = cmdline.replace(b"\0", b" ").decode("utf-8", "replace").strip()
            found.append(Process(int(pid), uid, max(0.0, uptime - started), text))
    return found


def kill_and_wait(processes: list[Process], uid: int, timeout: float = 5.0) -> int:
    """SIGKILL ``processes`` and wait until none of them is alive."""
    pids = set()
    for p in processes:
        try:
            os.kill(p.pid, signal.SIGKILL)
            pids.add(p.pid)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while pids:
        pids &= {p.pid for p in list_processes(uid)}
        if not pids:
            break
        if time.monotonic() > deadline:
            raise Permanent(f"processes {sorted(pids)} of uid {uid} survived SIGKILL")
        time.sleep(0.02)
    return len(processes)


# -- real Linux accounts -----------------------------------------------------------------
_libcrypt: ctypes.CDLL | None = None
_crypt_buffers = threading.local()  # one ``struct crypt_data`` per thread, for crypt_r
_shadow_lock = threading.Lock()  # lckpwdf(3) is per process: threads queue here first
SHADOW = Path("/etc/shadow")
SALT_CHARS = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
#: ``sizeof(struct crypt_data)`` in libxcrypt's crypt.h (its fields add up to 32768 bytes).
CRYPT_DATA_SIZE = 32768


def _crypt(password: str, setting: str) -> bytes | None:
    """crypt_r(3) with this thread's own ``struct crypt_data``: no shared static buffer,
    so workers hash on several CPUs at once (ctypes lets go of the GIL during the call)."""
    global _libcrypt
    if _libcrypt is None:
        found = ctypes.util.find_library("crypt")
        if not found:
            raise Permanent("libcrypt not found: cannot hash or verify system passwords")
        lib = ctypes.CDLL(found)
        lib.crypt_r.restype = ctypes.c_char_p
        lib.crypt_r.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p]
        _libcrypt = lib
    data = getattr(_crypt_buffers, "data", None)
    if data is None:
        data = _crypt_buffers.data = ctypes.create_string_buffer(CRYPT_DATA_SIZE)  # zeroed
    return _libcrypt.crypt_r(password.encode(), setting.encode(), data)


def crypt_matches(password: str, hashed: str) -> bool:
    """Check ``password`` against a crypt(3) hash from /etc/shadow (yescrypt, sha512…)."""
    if not hashed or hashed[0] in "!*":
        return False
    result = _crypt(password, hashed)
    return result is not None and hmac.compare_digest(result, hashed.encode())


def sha512_crypt(password: str) -> str:
    """``$6$`` (SHA-512 crypt, 5000 rounds, 16-character random salt) hash of ``password``.

    Why not the host's default (yescrypt, ~50 ms of CPU each): a slow hash protects
    passwords people choose; these are ``password_length`` characters from a CSPRNG (71 bits
    at the default 12), and the api-db keeps the same password to mail it.  SHA-512 crypt
    (what ``chpasswd -c SHA512`` writes) costs ~3 ms."""
    salt = "".join(secrets.choice(SALT_CHARS) for _ in range(16))
    result = _crypt(password, f"$6${salt}$")
    if result is None or not result.startswith(b"$6$"):
        raise Permanent("crypt(3) could not hash a password with SHA-512")
    return result.decode()


@contextlib.contextmanager
def _shadow_locked() -> Iterator[None]:
    """The lock every shadow tool takes (``lckpwdf``: useradd, chpasswd, passwd…).  The
    caller holds ``_shadow_lock``."""
    libc = ctypes.CDLL(None)
    if libc.lckpwdf() != 0:
        raise Transient("the password files are locked by another tool (lckpwdf)")
    try:
        yield
    finally:
        libc.ulckpwdf()


@dataclass
class _HashChange:
    """One caller's new hash, waiting for a rewrite of its shadow file."""

    name: bytes
    hashed: bytes
    written: bool = False
    error: BaseException | None = None


_waiting: dict[Path, list[_HashChange]] = {}  # changes no rewrite has taken yet, by file
_waiting_lock = threading.Lock()


def set_shadow_hash(name: str, hashed: str, shadow: Path = SHADOW) -> None:
    """Put ``hashed`` as ``name``'s password in ``shadow`` (and today as the date of the
    last change), as ``chpasswd -e`` does: under the password-file lock, a new file with the
    same owner and mode, flushed to disk, renamed over the old one.  Returns once the
    file on disk has it.

    Group commit: workers setting passwords at the same time queue for the lock; the one
    that gets it rewrites the file once with every change waiting by then, and the others
    find theirs written (or get the error of the rewrite that failed it)."""
    if ":" in hashed or "\n" in hashed:
        raise Permanent("not a crypt(3) hash")
    change = _HashChange(name.encode(), hashed.encode())
    with _waiting_lock:
        _waiting.setdefault(shadow, []).append(change)
    with _shadow_lock:
        if not change.written:
            _rewrite_shadow(shadow)
    if change.error is not None:
        raise change.error


def _rewrite_shadow(shadow: Path) -> None:
    """Write every change waiting for ``shadow`` (in order) in one rewrite, taken once the
    password-file lock is held (changes made while another tool held it join in); each
    change ends ``written``, with the error that kept it out if any."""
    batch: list[_HashChange] = []
    try:
        with _shadow_locked():
            with _waiting_lock:
                batch = _waiting.pop(shadow)
            lines = shadow.read_bytes().split(b"\n")
            index = {}
            for i, line in enumerate(lines):
                fields = line.split(b":")
                if len(fields) >= 3:
                    index.setdefault(fields[0], i)
            today = str(int(time.time() // 86400)).encode()
            for change in batch:
                i = index.get(change.name)
                if i is None:
                    change.error = Permanent(
                        f"account {change.name.decode()} has no entry in {shadow}"
                    )
                    continue
                fields = lines[i].split(b":")
                fields[1] = change.hashed
                fields[2] = today
                lines[i] = b":".join(fields)
            if any(change.error is None for change in batch):
                _replace_file(shadow, b"\n".join(lines))
    except BaseException as exc:
        if not batch:  # the lock was not had: every waiting change fails with it
            with _waiting_lock:
                batch = _waiting.pop(shadow)
        for change in batch:
            change.error = change.error or exc
    finally:
        for change in batch:
            change.written = True


def _replace_file(path: Path, data: bytes) -> None:
    """``path`` replaced by ``data``: a ``path+`` file with the same owner and mode,
    flushed to disk, renamed over it."""
    info = path.stat()
    new = path.with_name(path.name + "+")
    fd = os.open(new, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        os.fchown(fd, info.st_uid, info.st_gid)
        os.fchmod(fd, stat.S_IMODE(info.st_mode))
        while data:
            data = data[os.write(fd, data) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        new.unlink(missing_ok=True)
        raise
    os.close(fd)
    os.replace(new, path)


class SystemAccounts(Accounts):
    """Real Linux accounts managed with useradd/groupadd (root only); passwords set in
    ``/etc/shadow`` by :func:`set_shadow_hash`."""

    kind = "system"

    def __init__(self, settings: Settings) -> None:
        if os.geteuid() != 0:
            raise Permanent(
                "system accounts need root (run the backend as root, or set "
                "'accounts: directory' for unprivileged homes)"
            )
        super().__init__(settings)

    def _entry(self, n: int) -> pwd.struct_passwd | None:
        try:
            return pwd.getpwnam(self.name(n))
        except KeyError:
            return None

    def exists(self, n: int) -> bool:
        return self._entry(n) is not None and self.home(n).is_dir()

    def _check_ids(self, n: int) -> int:
        """``uid(n)``, once it is sure that this uid (and gid) is student ``n``'s: killing
        the processes of, or giving files to, ``uid_base + n`` must never hit another
        user's account when the ids on this host do not follow ``uid_base``/``gid_base``."""
        name, uid, gid = self.name(n), self.uid(n), self.gid(n)
        entry = self._entry(n)
        if entry is not None:
            if (entry.pw_uid, entry.pw_gid) != (uid, gid):
                raise Permanent(
                    f"account {name} has uid {entry.pw_uid} gid {entry.pw_gid}, expected "
                    f"{uid} {gid} (uid_base + {n}, gid_base + {n}): not touching it"
                )
            return uid
        try:
            other = pwd.getpwuid(uid).pw_name
        except KeyError:
            return uid
        raise Permanent(f"uid {uid} of {name} belongs to account {other}: not touching it")

    def provision(self, n: int) -> None:
        name, uid, gid, home = self.name(n), self.uid(n), self.gid(n), self.home(n)
        if self._entry(n) is None:
            self._check_ids(n)  # the uid is not another account's (before groupadd)
        try:
            group = grp.getgrnam(name)
            if group.gr_gid != gid:
                raise Permanent(f"group {name} exists with gid {group.gr_gid}, expected {gid}")
        except KeyError:
            proc.run(["groupadd", "--gid", str(gid), name], what="groupadd")
        entry = self._entry(n)
        if entry is None:
            home.parent.mkdir(parents=True, exist_ok=True)
            proc.run(
                [
                    "useradd",
                    "--uid",
                    str(uid),
                    "--gid",
                    str(gid),
                    "--home-dir",
                    str(home),
                    "--no-create-home",
                    "--shell",
                    "/bin/bash",
                    name,
                ],
                what="useradd",
            )
        elif entry.pw_uid != uid:
            raise Permanent(f"account {name} exists with uid {entry.pw_uid}, expected {uid}")
        elif Path(entry.pw_dir) != home:
            raise Permanent(f"account {name} has home {entry.pw_dir}, expected {home}")
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chown(home, uid, gid)

    def remove(self, n: int) -> None:
        self.kill_processes(n)
        name = self.name(n)
        if self._entry(n) is not None:
            proc.run(["userdel", name], what="userdel")
        try:
            grp.getgrnam(name)
            proc.run(["groupdel", name], what="groupdel")
        except KeyError:
            pass
        shutil.rmtree(self.home(n), ignore_errors=True)

    def set_password(self, n: int, password: str) -> None:
        if "\n" in password or "\r" in password or not password:
            raise Permanent("a password must be one non-empty line")
        name = self.name(n)
        if self._entry(n) is None:
            raise Permanent(
                f"account {name} missing (accounts are created at install: wod accounts provision)"
            )
        try:
            set_shadow_hash(name, sha512_crypt(password))
        except OSError as exc:
            raise Permanent(f"cannot set the password of {name}: {exc}") from None

    def verify_password(self, n: int, password: str) -> bool:
        name = self.name(n)
        for line in Path("/etc/shadow").read_text().splitlines():
            parts = line.split(":")
            if parts[0] == name and len(parts) > 1:
                return crypt_matches(password, parts[1])
        return False

    def processes(self, n: int) -> list[Process]:
        return list_processes(self._check_ids(n))

    def kill_processes(self, n: int) -> int:
        # Repeat: a process may fork while its siblings are being killed.
        self._check_ids(n)
        total = 0
        for _ in range(10):
            found = self.processes(n)
            if not found:
                return total
            log.info("killing %d process(es) of %s", len(found), self.name(n))
            total += kill_and_wait(found, self.uid(n))
        raise Permanent(f"processes of {self.name(n)} keep appearing while being killed")

    def chown_tree(self, path: Path, n: int) -> None:
        chown_tree(path, self._check_ids(n), self.gid(n))


# -- unprivileged homes ------------------------------------------------------------------
class DirectoryAccounts(Accounts):
    """Homes as plain folders; passwords as scrypt hashes in ``<state_dir>/accounts.db``."""

    kind = "directory"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self._local = threading.local()  # one open connection per thread, reused

    @property
    def db_path(self) -> Path:
        return self.settings.state_dir / "accounts.db"

    def _connect(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is not None and self.db_path.exists():
            return conn
        if conn is not None:  # the file was removed under us: start afresh
            conn.close()
        self.settings.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Created 0600 whatever the umask (SQLite gives its -wal/-shm the same mode).
        os.close(os.open(self.db_path, os.O_CREAT | os.O_WRONLY, 0o600))
        conn = sqlite3.connect(self.db_path, timeout=30, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS passwords ("
            " account TEXT PRIMARY KEY, hash TEXT NOT NULL, updated REAL NOT NULL)"
        )
        self._local.conn = conn
        return conn

    def owner(self, n: int) -> tuple[int | None, int | None]:
        return (self.uid(n), self.gid(n)) if os.geteuid() == 0 else (None, None)

    def exists(self, n: int) -> bool:
        return self.home(n).is_dir()

    def provision(self, n: int) -> None:
        home = self.home(n)
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.chown_tree(home, n)

    def remove(self, n: int) -> None:
        shutil.rmtree(self.home(n), ignore_errors=True)
        self._connect().execute("DELETE FROM passwords WHERE account = ?", (self.name(n),))

    def set_password(self, n: int, password: str) -> None:
        if not password:
            raise Permanent("a password must not be empty")
        hashed = hash_password(password, n=GENERATED_N)
        try:
            self._connect().execute(
                "INSERT OR REPLACE INTO passwords (account, hash, updated) VALUES (?, ?, ?)",
                (self.name(n), hashed, time.time()),
            )
            # Into the main file at once (as a closed connection would leave it).
            self._connect().execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error as exc:
            raise Permanent(f"cannot store the password of {self.name(n)}: {exc}") from None

    def verify_password(self, n: int, password: str) -> bool:
        row = (
            self._connect()
            .execute("SELECT hash FROM passwords WHERE account = ?", (self.name(n),))
            .fetchone()
        )
        return row is not None and password_matches(password, row[0])

    def chown_tree(self, path: Path, n: int) -> None:
        if os.geteuid() == 0:
            chown_tree(path, self.uid(n), self.gid(n))


def make_accounts(settings: Settings) -> Accounts:
    """The implementation chosen by ``settings.accounts``."""
    if settings.accounts == "system":
        return SystemAccounts(settings)
    return DirectoryAccounts(settings)


def kill_stale(
    accounts: Accounts, stdids: Iterable[int], older_than: float, match: str = "jupyter"
) -> list[tuple[int, Process]]:
    """Kill processes of students whose command line contains ``match`` and that have run
    longer than ``older_than`` seconds (upstream's weekly cleanup).  Returns what was
    killed, as (stdid, process)."""
    killed: list[tuple[int, Process]] = []
    for n in stdids:
        stale = [p for p in accounts.processes(n) if p.age >= older_than and match in p.cmdline]
        if stale:
            kill_and_wait(stale, accounts.uid(n))
            killed.extend((n, p) for p in stale)
    return killed
