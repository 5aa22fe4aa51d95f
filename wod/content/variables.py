"""Variables: the layers of SPEC 4.1 merged into what a template sees, with their origins.

Lowest to highest (a later layer overrides an earlier one), as upstream's playbook call
orders them:

1. inventory group variables: public ``group_vars/<group>.yml``;
2. included files: public then private ``<group>/variables_<CHALLENGE>.yml``, then the
   per-student ``<private>/<group>/pass/variables_<CHALLENGE>_<STDID>.yml``;
3. extra variables: the runtime values ``MODEWS, DIR, CHALLENGE, WORKSHOP, STDID`` (strings),
   the install-time ``variables`` setting, public then private ``group_vars/all.yml``, the
   private install's generated ``generated/<group>``, the private ``group_vars/<group>.yml``;
4. the caller's values: ``PASSSTU`` (the new password) and any extra values.

Files may be Ansible-vault encrypted, whole or per value (``!vault |``); they are opened with
the configured vault password file.  Values are templated later, on use (see templating).
"""

from __future__ import annotations

import copy
import os
import re
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from wod.content import vault
from wod.content.catalog import folder_name, mode_of
from wod.errors import Permanent
from wod.settings import Settings

SECRET_NAMES = re.compile(r"PASS|PWD|TOKEN|SECRET|KEY", re.I)


@dataclass
class Layer:
    """One source of variables: a label (``extra``, ``group``…), its file, its values."""

    kind: str
    source: str
    values: dict[str, Any] = field(default_factory=dict)
    #: names whose value was vault-encrypted (masked when shown)
    secret: set[str] = field(default_factory=set)


def _loader(password: bytes | None, source: str) -> type[yaml.SafeLoader]:
    class Loader(yaml.SafeLoader):
        pass

    def construct_vault(loader: yaml.SafeLoader, node: yaml.Node) -> str:
        if password is None:
            raise vault.VaultError(
                f"{source}: holds a !vault value but no vault_password_file is configured"
            )
        text = loader.construct_scalar(node)  # type: ignore[arg-type]
        return vault.decrypt(str(text), password, source=source).decode(
            "utf-8", errors="surrogateescape"
        )

    Loader.add_constructor("!vault", construct_vault)
    Loader.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))
    return Loader


def load_file(path: Path, password: bytes | None) -> dict[str, Any]:
    """The variables of one YAML file (vault-encrypted or not); ``{}`` if it is absent."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise Permanent(f"{path}: cannot read: {exc.strerror or exc}") from None
    if vault.is_encrypted(data):
        if password is None:
            raise vault.VaultError(
                f"{path}: is vault-encrypted but no vault_password_file is configured"
            )
        data = vault.decrypt(data, password, source=str(path))
    try:
        values = yaml.load(
            data.decode("utf-8", errors="surrogateescape"), Loader=_loader(password, str(path))
        )
    except yaml.YAMLError as exc:
        raise Permanent(f"{path}: not valid YAML: {exc}") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise Permanent(f"{path}: expected a mapping of variables")
    return {str(k): v for k, v in values.items()}


def vaulted_names(path: Path, values: dict[str, Any]) -> set[str]:
    """Names of ``path``'s variables that were vault-encrypted: all of them for a vaulted
    file, else those holding an inline ``!vault`` value."""
    try:
        data = path.read_bytes()
    except OSError:
        return set()
    if vault.is_encrypted(data):
        return set(values)
    if b"!vault" not in data:
        return set()

    def has_vault(node: yaml.Node) -> bool:
        if node.tag == "!vault":
            return True
        if isinstance(node, yaml.MappingNode):
            return any(has_vault(k) or has_vault(v) for k, v in node.value)
        if isinstance(node, yaml.SequenceNode):
            return any(has_vault(v) for v in node.value)
        return False

    try:
        root = yaml.compose(data.decode("utf-8", errors="surrogateescape"), Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return set(values)
    if not isinstance(root, yaml.MappingNode):
        return set()
    return {str(k.value) for k, v in root.value if has_vault(v)}


#: Parsed variables files, keyed by path, vault password and the file's identity (inode,
#: size, mtime and ctime in ns): a file changed or replaced is parsed again.
_PARSED: OrderedDict[tuple, tuple[dict[str, Any], set[str]]] = OrderedDict()
_PARSED_MAX = 512
_PARSED_LOCK = threading.Lock()


def _identity(path: Path) -> tuple[int, int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def load_layer(path: Path, password: bytes | None) -> tuple[dict[str, Any], set[str]]:
    """(values, vaulted names) of one variables file, as :func:`load_file` and
    :func:`vaulted_names` give them; a file unchanged since it was last read is not parsed
    (nor decrypted) again.  The caller gets its own copy of the values."""
    before = _identity(path)
    key = (str(path), password, before)
    with _PARSED_LOCK:
        hit = _PARSED.get(key) if before is not None else None
        if hit is not None:
            _PARSED.move_to_end(key)
    if hit is None:
        values = load_file(path, password)
        names = vaulted_names(path, values)
        hit = (values, names)
        if before is not None and _identity(path) == before:  # unchanged while read
            with _PARSED_LOCK:
                _PARSED[key] = hit
                while len(_PARSED) > _PARSED_MAX:
                    _PARSED.popitem(last=False)
    return copy.deepcopy(hit[0]), set(hit[1])


def _group_file(base: Path, group: str, folder: str = "group_vars") -> Path:
    for name in (f"{group}.yml", f"{group}.yaml", group):
        candidate = base / folder / name
        if candidate.is_file():
            return candidate
    return base / folder / f"{group}.yml"


def student_file(settings: Settings, workshop: str, stdid: int) -> Path:
    """``<private ansible>/<group>/pass/variables_<CHALLENGE>_<STDID>.yml``."""
    if settings.private_ansible_dir is None:
        raise Permanent("private_ansible_dir is not configured: nowhere to keep student secrets")
    return (
        settings.private_ansible_dir
        / settings.inventory_group
        / "pass"
        / f"variables_{workshop}_{stdid}.yml"
    )


def vault_password(settings: Settings) -> bytes | None:
    if settings.vault_password_file is None:
        return None
    return vault.read_password_file(settings.vault_password_file)


def runtime_values(workshop: str, stdid: int) -> dict[str, str]:
    """The runtime values upstream passes on the command line (all strings)."""
    return {
        "MODEWS": mode_of(workshop),
        "DIR": "",
        "CHALLENGE": workshop,
        "WORKSHOP": folder_name(workshop),
        "STDID": str(stdid),
    }


def layers(
    settings: Settings,
    workshop: str | None,
    stdid: int | None,
    *,
    password: str | None = None,
    extra: dict[str, Any] | None = None,
) -> list[Layer]:
    """Every layer, lowest precedence first.  Without a workshop (``None``): the layers of
    the install alone (no workshop, student or runtime values), as ``wod deliver`` renders
    the scripts and Ansible files with."""
    secret = vault_password(settings)
    group = settings.inventory_group
    pub, priv = settings.ansible_dir, settings.private_ansible_dir
    out: list[Layer] = []

    def add(kind: str, path: Path | None) -> None:
        if path is not None and path.is_file():
            values, names = load_layer(path, secret)
            out.append(Layer(kind, str(path), values, names))

    add("group", _group_file(pub, group) if pub else None)
    if workshop is not None and stdid is not None:
        for base in (pub, priv):
            add("workshop", base / group / f"variables_{workshop}.yml" if base else None)
        if priv is not None:
            add("student", student_file(settings, workshop, stdid))
        out.append(Layer("runtime", "runtime", dict(runtime_values(workshop, stdid))))
    if settings.variables:
        out.append(Layer("settings", "settings: variables", dict(settings.variables)))
    for base in (pub, priv):
        add("all", base / "group_vars" / "all.yml" if base else None)
    add("generated", _group_file(priv, group, "generated") if priv else None)
    add("group", _group_file(priv, group) if priv else None)
    caller: dict[str, Any] = {}
    if password is not None:
        caller["PASSSTU"] = password
    caller.update(extra or {})
    if caller:
        out.append(Layer("request", "request", caller))
    return out


def merge(stack: list[Layer]) -> tuple[dict[str, Any], dict[str, str]]:
    """(values, origin of each value) of a layer stack."""
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for layer in stack:
        for key, value in layer.values.items():
            values[key] = value
            origins[key] = layer.source
    return values, origins


def secret_names(stack: list[Layer]) -> set[str]:
    """Names whose effective value came from a vault-encrypted value."""
    names: set[str] = set()
    for layer in stack:
        for key in layer.values:
            if key in layer.secret:
                names.add(key)
            else:
                names.discard(key)
    return names


def masked(name: str, value: Any, secret: bool = False) -> Any:
    """``value``, or stars when it was vaulted or ``name`` looks like a secret (for display)."""
    if (secret or SECRET_NAMES.search(name)) and value not in (None, ""):
        return "********"
    return value


def write_student_file(
    settings: Settings, workshop: str, stdid: int, values: dict[str, Any]
) -> Path:
    """Merge ``values`` into the per-student secret file (vault-encrypted when configured)."""
    path = student_file(settings, workshop, stdid)
    secret = vault_password(settings)
    current = load_file(path, secret)
    current.update(values)
    text = yaml.safe_dump(current, default_flow_style=False, allow_unicode=True, sort_keys=True)
    payload = vault.encrypt(text, secret) if secret is not None else text
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".yml")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
