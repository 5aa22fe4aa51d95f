"""Per-workshop hook scripts and the environment they get (SPEC 3.1 step 8, SPEC 5).

A hook is an admin-written executable named ``<kind>-<WORKSHOP>.sh`` in the public scripts
folder (``scripts_dir``) and/or the private one (``private_scripts_dir``); kinds are
``create``, ``post-copy``, ``cleanup`` and ``reset``.  Public runs first, then private.
A script that is absent or not executable is skipped.  Each runs through
:func:`wod.proc.run` with exactly the environment of :func:`hook_env` (nothing inherited
from the backend), its folder as working directory and ``hook_timeout``; a non-zero exit
or a timeout fails the step with the script's output attached.

Values from the request reach a hook only as environment values, never inside a shell
string.  :func:`appliance_target` computes ``WODRTARGET`` for appliance workshops.
The contract for admins is written in ``docs/hooks.md``.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import pwd
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wod import proc
from wod.errors import HookFailed, Permanent
from wod.settings import Settings

log = logging.getLogger(__name__)

KINDS = ("create", "post-copy", "cleanup", "reset", "pre-template", "post-template")
#: Kinds that only the private scripts folder may provide (SPEC 4.3 rule 5).
PRIVATE_KINDS = ("pre-template", "post-template")
FOLDER_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PLACEHOLDER_IP = "x.y.z.t"


@dataclass(frozen=True)
class HookRun:
    """One hook that ran and succeeded."""

    script: Path
    returncode: int
    output: str
    seconds: float

    def summary(self) -> str:
        text = f"hook {self.script.name} ({self.script.parent}) ok in {self.seconds:.2f} s"
        if self.output.strip():
            text += "\n" + self.output.rstrip()
        return text


class Hooks:
    """Finds and runs the hook scripts of a workshop."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @classmethod
    def from_settings(cls, settings: Settings) -> Hooks:
        return cls(settings)

    def folders(self) -> list[Path]:
        s = self.settings
        return [d for d in (s.scripts_dir, s.private_scripts_dir) if d is not None]

    def scripts(self, kind: str, folder: str) -> list[Path]:
        """The executable ``<kind>-<folder>.sh`` scripts, public first, then private."""
        name = script_name(kind, folder)
        found = []
        folders = self.folders()
        if kind in PRIVATE_KINDS:
            private = self.settings.private_scripts_dir
            folders = [private] if private is not None else []
        for directory in folders:
            path = directory / name
            if path.is_file() and os.access(path, os.X_OK):
                found.append(path)
            elif path.exists():
                log.warning("hook %s is not executable: skipped", path)
        return found

    def require(self, kind: str, folder: str) -> list[Path]:
        """The hooks of ``kind``; :class:`Permanent` when there is none."""
        scripts = self.scripts(kind, folder)
        if not scripts:
            where = " or ".join(str(d) for d in self.folders()) or "(no scripts folder set)"
            raise Permanent(f"no executable {script_name(kind, folder)} in {where}")
        return scripts

    def run(
        self, kind: str, folder: str, env: dict[str, str], *, required: bool = False
    ) -> list[HookRun]:
        """Run every hook of ``kind`` for workshop ``folder`` in order; raise
        :class:`Permanent` on the first failure, or when ``required`` and none exists."""
        scripts = self.require(kind, folder) if required else self.scripts(kind, folder)
        runs = []
        timeout = self.settings.hook_timeout
        hidden = secrets_of(env)
        for script in scripts:
            label = f"hook {script.name}"
            log.info("running %s", script)
            try:
                done = proc.run(
                    [str(script)],
                    env=env,
                    cwd=script.parent,
                    timeout=timeout,
                    check=False,
                    what=label,
                )
            except Permanent as exc:
                if exc.reason.endswith(" s timeout"):
                    raise HookFailed(
                        f"{label} killed after {timeout:g} s timeout",
                        output=redact(exc.output, hidden),
                        kind=kind,
                    ) from None
                raise
            if done.returncode != 0:
                raise HookFailed(
                    f"{label} exited with status {done.returncode}",
                    output=redact(done.output, hidden),
                    kind=kind,
                )
            runs.append(HookRun(script, done.returncode, redact(done.output, hidden), done.seconds))
        return runs


#: Environment entries of a hook that are secrets (SPEC 5 hands them to hooks): a hook
#: that prints them (``set -x``, ``env``) must not put them into the job record or a log.
SECRET_ENV = ("randompw", "accessToken")
HIDDEN = "********"


def secrets_of(env: dict[str, str]) -> tuple[str, ...]:
    """The secret values of a hook environment, longest first (so a secret that contains
    another is hidden whole)."""
    found = {env[name] for name in SECRET_ENV if env.get(name)}
    return tuple(sorted(found, key=len, reverse=True))


def redact(output: str, hidden: tuple[str, ...]) -> str:
    """``output`` with every occurrence of a value of ``hidden`` replaced."""
    for value in hidden:
        output = output.replace(value, HIDDEN)
    return output


def script_name(kind: str, folder: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"unknown hook kind {kind!r} (one of {', '.join(KINDS)})")
    if not FOLDER_PATTERN.fullmatch(folder):
        raise Permanent(f"invalid workshop folder name {folder!r}")
    return f"{kind}-{folder}.sh"


def _env_value(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    if isinstance(value, (str, int, float, Path)):
        return str(value)
    return None


def install_env(settings: Settings) -> dict[str, str]:
    """Install-time settings under their upstream names (``WODUSER``, ``WODSTUDDIR``…),
    on top of the scalar install-time ``variables`` whose names are valid shell names.
    Secret settings (api-db password, hub token, LDAP password) are not exported."""
    env: dict[str, str] = {}
    for key, value in settings.variables.items():
        text = _env_value(value)
        if ENV_NAME.fullmatch(str(key)) and text is not None and not isinstance(value, list):
            env[str(key)] = text
    for name, field in type(settings).model_fields.items():
        extra = field.json_schema_extra or {}
        upstream = extra.get("upstream") if isinstance(extra, dict) else None
        if not upstream or (isinstance(extra, dict) and extra.get("secret")):
            continue
        text = _env_value(getattr(settings, name))
        if text is not None:
            env[str(upstream)] = text
    return env


def _home() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_dir
    except KeyError:
        return "/"


def hook_env(
    settings: Settings,
    *,
    stdid: int,
    requested: str,
    folder: str,
    workshop_id: int,
    password: str | None,
    target: str | None,
    access_token: str | None,
) -> dict[str, str]:
    """The exact environment of a hook (SPEC 5; documented in docs/hooks.md)."""
    env = install_env(settings)
    env.update(
        PATH=PATH,
        HOME=_home(),
        LANG="C.UTF-8",
        WODAPIDBEXTURL=settings.apidb_url,
        stdid=str(stdid),
        w=requested,
        ws=folder,
        wid=str(workshop_id),
        randompw=password or "",
        accessToken=access_token or "",
    )
    if target:
        env["WODRTARGET"] = target
    return env


def appliance_target(
    settings: Settings,
    workshop: str,
    *,
    stdid: int,
    range_min: int,
    mono: bool,
    multi: bool,
    variables: dict[str, Any],
) -> str | None:
    """``WODRTARGET``: the base address from variable ``IP-<workshop>`` (mono-appliance),
    or base + (stdid - range_min) on the last octet (multi-appliance); None when the
    workshop uses no appliance.  ``variables`` are the effective ones (private overrides
    public)."""
    if not (mono or multi):
        return None
    key = f"IP-{workshop}"
    raw = variables.get(key)
    if raw is None or str(raw).strip() == "":
        raise Permanent(f"{workshop} uses an appliance but variable {key} is not set")
    text = str(raw).strip()
    if text == PLACEHOLDER_IP:
        raise Permanent(
            f"variable {key} is still the placeholder {PLACEHOLDER_IP}: set the appliance address"
        )
    try:
        base = ipaddress.ip_address(text)
    except ValueError:
        raise Permanent(f"variable {key} is not an IP address: {text!r}") from None
    if not multi:
        return str(base)
    if not isinstance(base, ipaddress.IPv4Address):
        raise Permanent(f"variable {key}: a multi-appliance base must be IPv4, got {text}")
    offset = stdid - range_min
    if offset < 0:
        raise Permanent(f"student {stdid} is below the workshop range minimum {range_min}")
    octets = str(base).split(".")
    last = int(octets[3]) + offset
    if last > 255:
        raise Permanent(
            f"appliance address for student {stdid} overflows: {base} + {offset} is past "
            f"{'.'.join(octets[:3])}.255"
        )
    return ".".join([*octets[:3], str(last)])
