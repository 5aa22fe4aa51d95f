"""Settings: one typed object, loaded once from ``wod.yml`` plus ``WOD_*`` overrides.

Every setting is declared exactly once below, with its default, its help text and, where
one exists, the upstream variable name (SPEC section 7) accepted as an alias so existing
installs migrate by copying their values.  Unknown keys are rejected; a bad value raises
:class:`SettingsError` naming the key, the file and what was expected.

Nothing here reads the environment or the disk at import time: call :func:`load_settings`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

ENV_PREFIX = "WOD_"
#: ``WOD_*`` variables that are not settings: the settings file, and the test suite's
#: fixture workshops folder.
ENV_NOT_SETTINGS = ("WOD_CONFIG", "WOD_FIXTURES")
DEFAULT_CONFIG_PATHS = (Path("wod.yml"), Path("/etc/wod/wod.yml"))


class SettingsError(Exception):
    """A configuration problem, with a message an admin can act on."""


def setting(default: Any, help: str, upstream: str | None = None, secret: bool = False) -> Any:
    """Declare one setting: its default, help text and upstream alias."""
    extra: dict[str, Any] = {"secret": secret}
    if upstream:
        extra["upstream"] = upstream
    return Field(default=default, description=help, json_schema_extra=extra)


class Settings(BaseModel):
    """All settings of one backend (one JupyterHub host, one location)."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    # -- where things live ------------------------------------------------------------
    state_dir: Path = setting(
        Path("/var/lib/wod"),
        "Backend state: the job database (SQLite), the mail outbox, logs.",
    )
    admin_user: str = setting(
        "wodadmin", "Admin account; gets an rwx ACL on deployed workshops.", "WODUSER"
    )
    students_dir: Path = setting(
        Path("/student"), "Root of the students' home folders.", "WODSTUDDIR"
    )
    notebooks_dir: Path = setting(
        Path("/home/wodadmin/wod-notebooks"),
        "Public workshops tree (one folder per workshop).",
        "WODNOBO",
    )
    private_notebooks_dir: Path | None = setting(
        None, "Private workshops tree, used when the public one lacks a workshop.", "WODPRIVNOBO"
    )
    scripts_dir: Path | None = setting(
        None,
        "Public hook scripts folder (create-/cleanup-/reset-/post-copy-<WORKSHOP>.sh, "
        "scripts to compile).",
        "WODSCRIPTDIR",
    )
    private_scripts_dir: Path | None = setting(
        None, "Private hook scripts folder, run after the public one.", "WODSCRIPTPRIVDIR"
    )
    skel_dirs: list[Path] = setting(
        [], "Skeleton folders copied, in order, into a wiped student home."
    )
    ansible_dir: Path | None = setting(
        None,
        "Public Ansible folder holding group variables (group_vars/all.yml, "
        "<group>/variables_<WORKSHOP>.yml).",
        "ANSIBLEDIR",
    )
    private_ansible_dir: Path | None = setting(
        None,
        "Private Ansible folder (group_vars, <group>/variables_*.yml, <group>/pass/).",
        "ANSIBLEPRIVDIR",
    )
    inventory_group: str = setting(
        "production", "Inventory group whose variables apply (upstream PBKDIR).", "PBKDIR"
    )
    variables: dict[str, Any] = setting(
        {}, "Install-time variables visible to templates and hooks (lowest precedence)."
    )
    vault_password_file: Path | None = setting(
        None, "File holding the Ansible-vault password for encrypted variable files."
    )
    workspace_template: Path | None = setting(
        None,
        "Optional JupyterLab workspace template (Jinja, sees WORKSHOP) to use instead of "
        "the built-in one.",
    )

    # -- seats and accounts -----------------------------------------------------------
    user_min: int = setting(1, "Lowest student number served by this backend.", "WODUSERMIN")
    user_max: int = setting(20, "Highest student number served by this backend.", "WODUSERMAX")
    base_stdid: int = setting(
        0, "Offset from the local student number to the api-db student id.", "WODBASESTDID"
    )
    uid_base: int = setting(2000, "uid of student N is uid_base + N.", "UIDBASE")
    gid_base: int = setting(2000, "gid of student N is gid_base + N.", "GIDBASE")
    accounts: Literal["system", "directory"] = setting(
        "system",
        "How student accounts are managed: 'system' (real Linux accounts, needs root) or "
        "'directory' (homes are plain folders, password kept as a hash in the state).",
    )
    account_pattern: str = setting(
        "student{n}", "Account name of student N ('{n}' is replaced by the number)."
    )
    password_length: int = setting(
        12, "Length of generated passwords ([A-Za-z0-9], from a CSPRNG)."
    )
    ssh_key_type: Literal["ed25519", "rsa"] = setting(
        "ed25519", "Type of the ssh key pair generated in a fresh home (rsa = 2048-bit RSA)."
    )

    # -- the api-db -------------------------------------------------------------------
    apidb_url: str = setting(
        "http://127.0.0.1:8021/api", "Base URL of the api-db REST API.", "WODAPIDBEXTURL"
    )
    apidb_user: str = setting("moderator", "api-db login name.", "WODAPIDBUSER")
    apidb_password: str = setting("", "api-db login password.", "WODAPIDBUSERPWD", secret=True)
    apidb_timeout: float = setting(10.0, "Seconds before an api-db call is abandoned.")
    cleaned_poll_timeout: float = setting(
        900.0, "Longest wait (s) for the api-db to report a customer cleaned before RESET/PURGE."
    )
    cleaned_poll_interval: float = setting(20.0, "Seconds between 'cleaned' polls.")

    # -- JupyterHub -------------------------------------------------------------------
    hub_url: str = setting("http://127.0.0.1:8000", "JupyterHub base URL.", "WODBEAPIURL")
    hub_token: str = setting(
        "",
        "JupyterHub API token (scopes admin:servers, admin:users).",
        "WODBETOKEN",
        secret=True,
    )
    hub_timeout: float = setting(15.0, "Seconds before a JupyterHub call is abandoned.")
    hub_spawn_wait: float = setting(
        60.0, "Seconds to wait for a pending server spawn to become ready."
    )

    # -- mail intake ------------------------------------------------------------------
    smtp_host: str = setting("127.0.0.1", "Address the SMTP listener binds to.")
    smtp_port: int = setting(25, "Port of the SMTP listener.", "WODPOSTPORT")
    senders: list[str] = setting(
        [],
        "Envelope senders whose requests are accepted (the api-db's address).",
        "WODSENDER",
    )
    allowed_clients: list[str] = setting(
        ["127.0.0.1/32", "::1/128"],
        "Client networks (CIDR) allowed to talk to the SMTP listener.",
    )
    command_mailbox: str = setting(
        "wodadmin", "Local part of the command mailbox; other recipients are relayed."
    )
    mailbox_aliases: list[str] = setting([], "Other local parts treated as the command mailbox.")
    smarthost: str | None = setting(
        None, "host:port to relay non-command mail to; unset = keep it in the outbox."
    )
    max_message_bytes: int = setting(1_048_576, "Largest accepted message (bytes).")

    # -- HTTP (requests API, dashboard, metrics) ----------------------------------------
    http_host: str = setting("127.0.0.1", "Address of the HTTP API and dashboard.")
    http_port: int = setting(8025, "Port of the HTTP API and dashboard.")
    http_token: str = setting(
        "",
        "Token required on POST /api/requests (header Authorization: Bearer); empty = "
        "only allowed_clients are checked.",
        secret=True,
    )

    # -- workers and retries ----------------------------------------------------------
    workers: int = setting(4, "Jobs run in parallel (never two for the same student).")
    retry_max_attempts: int = setting(8, "Attempts for a job hitting transient faults.")
    retry_base_delay: float = setting(2.0, "First retry delay (s); doubles each attempt.")
    retry_max_delay: float = setting(300.0, "Longest delay between two attempts (s).")
    hook_timeout: float = setting(600.0, "Seconds a hook script may run before it is killed.")

    # -- LDAP -------------------------------------------------------------------------
    ldap_host: str | None = setting(None, "LDAP server host.", "WODLDAPSRVNAME")
    ldap_port: int = setting(389, "LDAP server port.", "WODLDAPPORT")
    ldap_domain: str = setting(
        "dc=example,dc=com",
        "LDAP base DN; students are uid=<account>,ou=People,<base>.",
        "WODLDAPDMN",
    )
    ldap_bind_dn: str | None = setting(None, "DN to bind as (default cn=Manager,<ldap_domain>).")
    ldap_password: str = setting("", "LDAP bind password.", "WODLDAPPWD", secret=True)
    ldap_tls: Literal["none", "starttls", "ldaps"] = setting(
        "none", "Transport security towards LDAP."
    )
    ldap_timeout: float = setting(10.0, "Seconds before an LDAP operation is abandoned.")
    ldap_ca_file: Path | None = setting(
        None,
        "CA certificate(s) (PEM) checking the LDAP server with starttls/ldaps; "
        "unset = the system store.",
    )

    # -- the standalone registry (wod registry) ---------------------------------------
    registry_db_url: str | None = setting(
        None,
        "SQLAlchemy URL of the registry's database; unset = SQLite file <state_dir>/registry.db.",
    )
    registry_secret: str = setting(
        "",
        "Signing secret of the registry's access tokens; empty = a random one per start.",
        secret=True,
    )
    registry_token_ttl: float = setting(
        180.0, "Lifetime (s) of a registry access token (the api-db's is 180 s)."
    )

    # -- operations -------------------------------------------------------------------
    monitor: str | None = setting(
        None, "Address mailed when a daily check or delivery fails.", "WODMONITOR"
    )

    # -- derived ----------------------------------------------------------------------
    @field_validator("allowed_clients")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        import ipaddress

        for net in value:
            ipaddress.ip_network(net, strict=False)
        return value

    @field_validator("senders", "mailbox_aliases", "skel_dirs", "allowed_clients", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        # Upstream gives one value (WODSENDER=api@host); a list is ours.
        return [value] if isinstance(value, str | Path) else value

    @field_validator("account_pattern")
    @classmethod
    def _pattern(cls, value: str) -> str:
        if "{n}" not in value:
            raise ValueError("must contain '{n}'")
        return value

    def model_post_init(self, __context: Any) -> None:
        if self.user_min > self.user_max:
            raise ValueError(f"user_min ({self.user_min}) is above user_max ({self.user_max})")

    @property
    def db_path(self) -> Path:
        return self.state_dir / "wod.db"

    @property
    def outbox_dir(self) -> Path:
        return self.state_dir / "outbox"

    @property
    def bind_dn(self) -> str:
        return self.ldap_bind_dn or f"cn=Manager,{self.ldap_domain}"

    def account(self, stdid: int) -> str:
        """Account name of student ``stdid`` (``student12``)."""
        return self.account_pattern.replace("{n}", str(stdid))

    def home(self, stdid: int) -> Path:
        return self.students_dir / self.account(stdid)

    def apidb_student_id(self, stdid: int) -> int:
        return stdid + self.base_stdid

    def public_dict(self) -> dict[str, Any]:
        """Settings as plain values with secrets masked (for display)."""
        out: dict[str, Any] = {}
        for name, field in type(self).model_fields.items():
            value = getattr(self, name)
            if (field.json_schema_extra or {}).get("secret") and value:
                value = "********"
            out[name] = str(value) if isinstance(value, Path) else value
        return out


def _aliases() -> dict[str, str]:
    """Upstream variable name -> setting name."""
    out = {}
    for name, field in Settings.model_fields.items():
        upstream = (field.json_schema_extra or {}).get("upstream")
        if upstream:
            out[str(upstream)] = name
    return out


UPSTREAM_ALIASES = _aliases()


#: Settings whose value is one piece of text: taken verbatim from the environment (a
#: password ``#x``, ``a: b`` or ``0123`` is not YAML), and from the file as given.
_TEXT = (str, str | None, Path, Path | None)
_OPTIONAL = (str | None, Path | None)


def _env_overrides(environ: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, raw in environ.items():
        if not key.startswith(ENV_PREFIX):
            continue
        if key in ENV_NOT_SETTINGS:
            continue
        name = key[len(ENV_PREFIX) :].lower()
        if name.upper() in UPSTREAM_ALIASES:
            name = UPSTREAM_ALIASES[name.upper()]
        if name not in Settings.model_fields:
            raise SettingsError(f"environment variable {key}: unknown setting '{name}'")
        annotation = Settings.model_fields[name].annotation
        if annotation in _OPTIONAL and not raw.strip():
            out[name] = None  # WODPRIVNOBO="" is "none", not the current folder
            continue
        if annotation in _TEXT:
            out[name] = raw
            continue
        # YAML parsing gives lists, numbers and booleans their natural type.
        try:
            out[name] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            out[name] = raw
    return out


def _normalise_keys(data: dict[str, Any], source: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if not isinstance(key, str):
            raise SettingsError(f"{source}: key {key!r} is not a name")
        name = UPSTREAM_ALIASES.get(key, key)
        if name in out:
            raise SettingsError(f"{source}: '{key}' given twice (also as its upstream alias)")
        out[name] = value
    return out


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key: Any, line: int) -> None:
        super().__init__(f"'{key}' given twice (again on line {line})")


class _UniqueKeyLoader(yaml.SafeLoader):
    """Safe YAML refusing a key given twice (PyYAML silently keeps the last one)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set[Any] = set()
        for key_node, _value in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, str | int | float | bool):
                continue  # PyYAML itself refuses unhashable keys
            if key in seen:
                raise _DuplicateKey(key, key_node.start_mark.line + 1)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _describe(error: ValidationError, source: str) -> str:
    lines = []
    for err in error.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(settings)"
        if err["type"] == "extra_forbidden":
            lines.append(f"{source}: unknown setting '{key}'")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            field = Settings.model_fields.get(str(err["loc"][0])) if err["loc"] else None
            secret = field is not None and (field.json_schema_extra or {}).get("secret")
            got = "a value not shown (secret)" if secret else repr(err.get("input"))
            lines.append(f"{source}: setting '{key}': {msg} (got {got})")
    return "\n".join(lines)


def load_settings(
    path: Path | str | None = None,
    environ: dict[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Load settings from ``path`` (or ``$WOD_CONFIG``, ``./wod.yml``, ``/etc/wod/wod.yml``),
    then apply ``WOD_*`` environment overrides, then keyword ``overrides``."""
    environ = dict(os.environ if environ is None else environ)
    if path is None and environ.get("WOD_CONFIG"):
        path = environ["WOD_CONFIG"]
    if path is None:
        path = next((p for p in DEFAULT_CONFIG_PATHS if p.is_file()), None)
    data: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        path = Path(path)
        source = str(path)
        try:
            raw = yaml.load(path.read_text(encoding="utf-8"), _UniqueKeyLoader) or {}
        except FileNotFoundError:
            raise SettingsError(f"{path}: configuration file not found") from None
        except _DuplicateKey as exc:
            raise SettingsError(f"{path}: {exc}") from None
        except UnicodeDecodeError as exc:
            raise SettingsError(f"{path}: not UTF-8 ({exc.reason} at byte {exc.start})") from None
        except OSError as exc:
            raise SettingsError(f"{path}: cannot read: {exc.strerror or exc}") from None
        except yaml.YAMLError as exc:
            raise SettingsError(f"{path}: not valid YAML: {exc}") from None
        if not isinstance(raw, dict):
            raise SettingsError(f"{path}: expected a mapping of settings at the top level")
        data = _normalise_keys(raw, source)
        base = path.parent.resolve()
        for name, field in Settings.model_fields.items():
            if field.annotation in _OPTIONAL and data.get(name) == "":
                data[name] = None  # an empty optional path is "none", not this folder
            # Relative paths in the file are relative to the file.
            if name in data and data[name] is not None and "Path" in str(field.annotation):
                value = data[name]
                if isinstance(value, list):
                    data[name] = [str(base / v) for v in value]
                elif isinstance(value, str):
                    data[name] = str(base / value)
    env = _env_overrides(environ)
    if env:
        source += " + environment"
    data.update(env)
    data.update(overrides)
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise SettingsError(_describe(exc, source)) from None
    except ValueError as exc:
        raise SettingsError(f"{source}: {exc}") from None


def settings_reference() -> list[tuple[str, str, str, str]]:
    """(name, default, upstream alias, help) of every setting, for docs and the CLI."""
    rows = []
    for name, field in Settings.model_fields.items():
        default = field.default
        upstream = (field.json_schema_extra or {}).get("upstream") or ""
        rows.append(
            (
                name,
                repr(default) if not isinstance(default, Path) else str(default),
                str(upstream),
                field.description or "",
            )
        )
    return rows
