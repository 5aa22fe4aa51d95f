"""Migration from an upstream install: read ``/etc/wod.sh`` (or ``/etc/wod.yml``) and the
wod-private layout, and turn them into our settings.

Upstream's ``wod.sh`` is a shell file of ``export NAME=value`` lines, values possibly
quoted and referring to earlier ones (``$WODPRIVDIR/ansible``).  It is never executed:
:func:`read_wod_sh` understands assignments, quotes and ``$NAME`` / ``${NAME}``
references, and ignores everything else (reported).  Upstream names map to settings
through the aliases declared in :mod:`wod.settings` (SPEC section 7); the wod-private
folder (``WODPRIVDIR``) gives the private trees when they exist.  Every value taken is
reported with where it came from (file and line, or the layout), secrets masked.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from wod.settings import UPSTREAM_ALIASES, Settings

ASSIGNMENT = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$")
REFERENCE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")

#: Upstream names that are not settings aliases but still mean one (older wod.sh files).
EXTRA_NAMES = {
    "SCRIPTDIR": "scripts_dir",
    "SCRIPTPRIVDIR": "private_scripts_dir",
    "WODAPIDBURL": "apidb_url",
    "WODGROUP": "inventory_group",
}
#: In the wod-private layout (``WODPRIVDIR``): folder -> setting.
PRIVATE_LAYOUT = {
    "notebooks": "private_notebooks_dir",
    "scripts": "private_scripts_dir",
    "ansible": "private_ansible_dir",
}


class MigrateError(Exception):
    """The upstream configuration cannot be read; the message says why."""


@dataclass(frozen=True)
class Taken:
    """One setting taken from upstream: its value, how it is shown, and where from."""

    setting: str
    value: Any
    origin: str

    @property
    def shown(self) -> str:
        field = Settings.model_fields.get(self.setting)
        secret = field is not None and (field.json_schema_extra or {}).get("secret")
        return "********" if secret and self.value else repr(self.value)


def read_wod_sh(path: Path) -> tuple[dict[str, tuple[str, int]], list[str]]:
    """``NAME -> (value, line)`` of the assignments in ``path``, and the lines ignored."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise MigrateError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise MigrateError(f"{path}: not UTF-8 text") from None
    found: dict[str, tuple[str, int]] = {}
    ignored: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = ASSIGNMENT.match(line)
        if not match:
            ignored.append(f"{path}:{number}: {stripped[:60]}")
            continue
        name, raw = match.groups()
        try:
            words = shlex.split(raw, comments=True, posix=True)
        except ValueError:
            ignored.append(f"{path}:{number}: unbalanced quotes")
            continue
        value = " ".join(words)
        if not raw.lstrip().startswith("'"):  # single quotes: no expansion, as in sh
            value = REFERENCE.sub(lambda m: found.get(m.group(1) or m.group(2), ("", 0))[0], value)
        found[name] = (value, number)
    return found, ignored


def read_upstream(path: Path) -> list[Taken]:
    """Every setting an upstream ``wod.sh`` / ``wod.yml`` gives, with its origin."""
    if path.suffix in (".yml", ".yaml"):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise MigrateError(f"{path}: cannot read: {exc}") from None
        if not isinstance(data, dict):
            raise MigrateError(f"{path}: expected a mapping of upstream names")
        variables = {str(k): (str(v), 0) for k, v in data.items() if v is not None}
    else:
        variables, _ignored = read_wod_sh(path)
    taken: list[Taken] = []
    for name, (value, line) in variables.items():
        setting = UPSTREAM_ALIASES.get(name) or EXTRA_NAMES.get(name)
        if setting is None or value == "":
            continue
        where = f"{path}:{line} {name}" if line else f"{path} {name}"
        taken.append(Taken(setting, _typed(setting, value), where))
    private = variables.get("WODPRIVDIR")
    have = {t.setting for t in taken}
    if private:
        for folder, setting in PRIVATE_LAYOUT.items():
            candidate = Path(private[0]) / folder
            if setting not in have and candidate.is_dir():
                taken.append(Taken(setting, str(candidate), f"wod-private layout: {candidate}"))
        vault = Path(private[0]) / "ansible" / "vault_secret"
        if vault.is_file():
            taken.append(Taken("vault_password_file", str(vault), f"wod-private layout: {vault}"))
    return taken


def _typed(setting: str, value: str) -> Any:
    annotation = Settings.model_fields[setting].annotation
    if annotation is int:
        try:
            return int(value)
        except ValueError:
            raise MigrateError(f"{setting}: {value!r} is not a number") from None
    if setting in ("senders",):
        return [v for v in re.split(r"[,\s]+", value) if v]
    return value


def apply_upstream(opts: Any, path: Path) -> list[Taken]:
    """Fold an upstream configuration into :class:`wod.ops.install.InstallOptions`
    (values the install would otherwise default); returns what was taken."""
    taken = read_upstream(path)
    for item in taken:
        if item.setting == "admin_user":
            opts.admin_user = item.value
        elif item.setting == "user_min":
            opts.user_min = item.value
        elif item.setting == "user_max":
            opts.user_max = item.value
        elif item.setting == "uid_base":
            opts.uid_base = item.value
        elif item.setting == "gid_base":
            opts.gid_base = item.value
        elif item.setting == "students_dir":
            opts.students_dir = Path(item.value)
        elif item.setting == "senders":
            opts.senders = opts.senders or item.value
        elif item.setting == "hub_url":
            opts.hub_url = item.value
        elif item.setting == "smtp_port":
            opts.smtp_port = item.value
        else:
            opts.values[item.setting] = item.value
    return taken
