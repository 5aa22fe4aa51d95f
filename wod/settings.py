"""Settings: one typed object, loaded once from ``wod.yml`` plus ``WOD_*`` overrides.

Every setting is declared exactly once below, with its default, its help text and, where
one exists, the upstream variable name (SPEC section 7) accepted as an alias so existing
installs migrate by copying their values.  Unknown keys are rejected; a bad value raises
:class:`SettingsError` naming the key, the file and what was expected.

Nothing here reads the environment or the disk at import time: call :func:`load_settings`.
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

ENV_PREFIX = "WOD_"
#: ``WOD_*`` variables that are not settings: the settings file, the password
#: ``wod registry add-user`` reads, the test suite's fixture workshops folder and the
#: folder ``make screenshots`` writes to.
ENV_NOT_SETTINGS = ("WOD_CONFIG", "WOD_REGISTRY_PASSWORD", "WOD_FIXTURES", "WOD_SCREENSHOTS")
DEFAULT_CONFIG_PATHS = (Path("wod.yml"), Path("/etc/wod/wod.yml"))


class SettingsError(Exception):
    """A configuration problem, with a one-line message an admin can act on (the key, the
    file and line, what is expected; never the value of a secret setting)."""


class CrossFieldError(ValueError):
    """A rule between settings broken; ``key`` is the setting to change."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def setting(
    default: Any,
    help: str,
    upstream: str | None = None,
    secret: bool = False,
    **bounds: Any,
) -> Any:
    """Declare one setting: its default, help text, upstream alias and bounds (``ge``,
    ``le``, ``gt``, ``min_length``… as pydantic's ``Field`` takes them)."""
    extra: dict[str, Any] = {"secret": secret}
    if upstream:
        extra["upstream"] = upstream
    return Field(default=default, description=help, json_schema_extra=extra, **bounds)


#: Bounds shared by several settings.
PORT = {"ge": 0, "le": 65535}  # 0 = any free port (tests, demos)
SECONDS = {"gt": 0, "le": 7 * 86400, "allow_inf_nan": False}
DELAY = {"ge": 0, "le": 7 * 86400, "allow_inf_nan": False}
STUDENT = {"ge": 0, "le": 999_999_999}  # the parser's ids have at most 9 digits
ACCOUNT_NAME = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")
LOCAL_PART = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}$")
HOST = re.compile(r"^(?:[A-Za-z0-9_.-]{1,253}|\[?[0-9A-Fa-f:.%]+\]?)$")


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
    user_min: int = setting(
        1, "Lowest student number served by this backend.", "WODUSERMIN", **STUDENT
    )
    user_max: int = setting(
        20, "Highest student number served by this backend.", "WODUSERMAX", **STUDENT
    )
    base_stdid: int = setting(
        0,
        "Offset from the local student number to the api-db student id.",
        "WODBASESTDID",
        **STUDENT,
    )
    uid_base: int = setting(
        2000, "uid of student N is uid_base + N.", "UIDBASE", ge=1, le=4_000_000_000
    )
    gid_base: int = setting(
        2000, "gid of student N is gid_base + N.", "GIDBASE", ge=1, le=4_000_000_000
    )
    accounts: Literal["system", "directory"] = setting(
        "system",
        "How student accounts are managed: 'system' (real Linux accounts, needs root) or "
        "'directory' (homes are plain folders, password kept as a hash in the state).",
    )
    account_pattern: str = setting(
        "student{n}", "Account name of student N ('{n}' is replaced by the number)."
    )
    password_length: int = setting(
        12, "Length of generated passwords ([A-Za-z0-9], from a CSPRNG).", ge=8, le=128
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
    apidb_timeout: float = setting(10.0, "Seconds before an api-db call is abandoned.", **SECONDS)
    apidb_workshop_cache_ttl: float = setting(
        5.0,
        "Seconds a fetched api-db workshop list answers lookups (a name not in it is "
        "fetched again at once; 0 = fetch for every job).",
        **DELAY,
    )
    cleaned_poll_timeout: float = setting(
        900.0,
        "Longest wait (s) for the api-db to report a customer cleaned before RESET/PURGE.",
        **DELAY,
    )
    cleaned_poll_interval: float = setting(20.0, "Seconds between 'cleaned' polls.", **SECONDS)

    # -- JupyterHub -------------------------------------------------------------------
    hub_url: str = setting("http://127.0.0.1:8000", "JupyterHub base URL.", "WODBEAPIURL")
    hub_token: str = setting(
        "",
        "JupyterHub API token (scopes admin:servers, admin:users).",
        "WODBETOKEN",
        secret=True,
    )
    hub_timeout: float = setting(15.0, "Seconds before a JupyterHub call is abandoned.", **SECONDS)
    hub_spawn_wait: float = setting(
        60.0, "Seconds to wait for a pending server spawn to become ready.", **DELAY
    )
    hub_start_before_active: bool = setting(
        True,
        "CREATE starts the hub server and waits until it is ready before reporting the "
        "customer active (the mailed link then opens JupyterLab at once); false = "
        "upstream's order (active reported, then the server started).",
    )
    hub_active_deadline: float = setting(
        480.0,
        "Seconds after a CREATE is received past which a hub still failing makes it give "
        "up without reporting active (the api-db's own stuck-seat handling acts at 10 min).",
        **SECONDS,
    )

    # -- mail intake ------------------------------------------------------------------
    smtp_listener: bool = setting(
        True,
        "Run the built-in SMTP listener; off when Postfix receives the mail and hands it over "
        "through intake_socket (wod install --mail postfix).",
    )
    smtp_host: str = setting("127.0.0.1", "Address the SMTP listener binds to.", min_length=1)
    smtp_port: int = setting(25, "Port of the SMTP listener.", "WODPOSTPORT", **PORT)
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
    smtp_local_users: list[str] = setting(
        [],
        "Local accounts, besides root and admin_user, whose connections from this host may "
        "send command mail to the SMTP listener (e.g. postfix when it relays to it); other "
        "local users' command mail is refused.",
    )
    smarthost: str | None = setting(
        None, "host:port to relay non-command mail to; unset = keep it in the outbox."
    )
    max_message_bytes: int = setting(
        1_048_576, "Largest accepted message (bytes).", ge=1024, le=64 * 1_048_576
    )

    # -- HTTP (requests API, dashboard, metrics) ----------------------------------------
    http_host: str = setting("127.0.0.1", "Address of the HTTP API and dashboard.", min_length=1)
    http_port: int = setting(8025, "Port of the HTTP API and dashboard.", **PORT)
    http_token: str = setting(
        "",
        "Token required on every /api route (header Authorization: Bearer); wod serve "
        "refuses to serve /api without one unless demo is set (wod install generates one).",
        secret=True,
    )

    # -- production safety (wod install / wod init) -------------------------------------
    demo: bool = setting(
        False,
        "A demo or local test install (set by wod init and wod demo): /api may run without "
        "http_token and an empty senders list is accepted. Never set it on a production host.",
    )
    allow_any_sender: bool = setting(
        False,
        "Let wod serve start with an empty senders list outside a demo (requests from any "
        "sender are then accepted).",
    )
    intake_socket: Path | None = setting(
        None,
        "Local socket through which `wod intake --socket` (Postfix's mailbox_command) hands "
        "mail to the running daemon; unset = no socket (wod install sets /run/wod/intake.sock).",
    )
    intake_group: str | None = setting(
        None,
        "Group allowed to use intake_socket (the Postfix mailbox user's group, e.g. the admin "
        "user's); unset = root only.",
    )
    log_format: Literal["text", "json"] = setting(
        "text", "wod serve's log lines: 'text' or 'json' (one object per line, for collectors)."
    )

    # -- dashboard (/) and its login --------------------------------------------------
    dashboard_login: Literal["auto", "hub", "token"] = setting(
        "auto",
        "How admins log in to the dashboard: 'hub' (JupyterHub OAuth; hub_url and hub_token "
        "needed), 'token' (a form asking for http_token), 'auto' (hub when hub_url and "
        "hub_token are set, else token).",
    )
    dashboard_url: str = setting(
        "",
        "The dashboard's address as browsers see it (e.g. https://hub.example.com/services/"
        "wod/); its path is where the dashboard is served, and <url>oauth_callback is the "
        "OAuth redirect URI; empty = http://<http_host>:<http_port>/.",
    )
    hub_public_url: str = setting(
        "",
        "JupyterHub's address as browsers see it (the OAuth authorize page); empty = hub_url.",
    )
    hub_oauth_client_id: str = setting(
        "service-wod-backend",
        "OAuth client id of the dashboard's JupyterHub service (service-<name> by default); "
        "its secret is the service's api_token, i.e. hub_token.",
    )
    dashboard_admin_group: str = setting(
        "",
        "JupyterHub group whose members may use the dashboard besides hub admins; "
        "empty = hub admins only.",
    )
    dashboard_secret: str = setting(
        "",
        "Key signing dashboard login cookies; empty = a random key per start (logins end "
        "when wod serve restarts).",
        secret=True,
    )
    api_docs: bool = setting(
        False,
        "Serve the OpenAPI documentation at /docs and /redoc (their pages load scripts from "
        "a public CDN, so they are off by default); /api/openapi.json is always served.",
    )

    # -- workers and retries ----------------------------------------------------------
    workers: int = setting(
        4, "Jobs run in parallel (never two for the same student).", ge=1, le=256
    )
    retry_max_attempts: int = setting(
        8, "Attempts for a job hitting transient faults.", ge=1, le=1000
    )
    retry_base_delay: float = setting(2.0, "First retry delay (s); doubles each attempt.", **DELAY)
    retry_max_delay: float = setting(300.0, "Longest delay between two attempts (s).", **DELAY)
    hook_timeout: float = setting(
        600.0, "Seconds a hook script may run before it is killed.", **SECONDS
    )

    # -- LDAP -------------------------------------------------------------------------
    ldap_host: str | None = setting(None, "LDAP server host.", "WODLDAPSRVNAME")
    ldap_port: int = setting(389, "LDAP server port.", "WODLDAPPORT", ge=1, le=65535)
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
    ldap_timeout: float = setting(10.0, "Seconds before an LDAP operation is abandoned.", **SECONDS)
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
        180.0, "Lifetime (s) of a registry access token (the api-db's is 180 s).", **SECONDS
    )

    # -- operations -------------------------------------------------------------------
    monitor: str | None = setting(
        None, "Address mailed when a daily check or delivery fails.", "WODMONITOR"
    )
    export_chromium: Path = setting(
        Path("/usr/bin/chromium"),
        "Chromium that prints notebooks to PDF for wod export (Debian's package).",
    )

    # -- abuse watcher (runs inside wod serve) ------------------------------------------
    watch_enabled: bool = setting(
        True, "Run the abuse watcher over the students' processes inside wod serve."
    )
    watch_interval: float = setting(
        60.0, "Seconds between two looks at the process table.", gt=0, le=3600
    )
    watch_blacklist: list[str] = setting(
        ["packetcrypt", "ethminer", "xmrig", "minerd", "cpuminer"],
        "Command names killed at once (crypto miners).",
    )
    watch_whitelist: list[str] = setting(
        [
            "jupyterhub-singleuser",
            "jupyter-labhub",
            "jupyter-lab",
            "jupyter-server",
            "jupyter-notebook",
            "configurable-http-proxy",
        ],
        "Command names never throttled or killed for CPU use (kernels are exempt too).",
    )
    watch_kernels: list[str] = setting(
        [
            "ipykernel_launcher",
            "ipykernel",
            "bash_kernel",
            "IRkernel",
            "gophernotes",
            "powershell_kernel",
            "ansible_kernel",
            "ijavascript",
            "iruby",
        ],
        "Command names that are Jupyter kernels: exempt from the CPU rule, killed past "
        "watch_kernel_max_age.",
    )
    watch_cpu_percent: float = setting(
        98.0, "CPU use (percent of one core) from which a process counts as busy.", gt=0, le=10_000
    )
    watch_throttle_after: float = setting(
        300.0,
        "Seconds busy before the process is throttled (nice 19, cgroup CPU quota).",
        ge=0,
        le=7 * 86400,
    )
    watch_notify_after: float = setting(
        600.0,
        "Seconds busy before the admin is notified (log, record, optional mail).",
        ge=0,
        le=7 * 86400,
    )
    watch_kill_after: float = setting(
        900.0, "Seconds busy before the process is killed.", ge=0, le=7 * 86400
    )
    watch_kernel_max_age: float = setting(
        4 * 3600.0, "Age (s) past which a kernel process is killed; 0 = never.", ge=0, le=30 * 86400
    )
    watch_purge_after_kills: int = setting(
        3,
        "Kills of a seat's processes (CPU or blacklist) in one session before the seat "
        "is PURGEd; 0 = never.",
        ge=0,
        le=1000,
    )
    watch_blacklist_purge: bool = setting(
        True, "PURGE the seat at once when a blacklisted command is found (upstream)."
    )
    watch_cpu_quota: float = setting(
        50.0,
        "CPU quota (percent of one core) of a throttled process when cgroup v2 has "
        "the cpu controller; 0 = renice only.",
        ge=0,
        le=10_000,
    )
    watch_mail: bool = setting(False, "Also mail each notice to monitor.")

    # -- checks -----------------------------------------------------------------------
    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, value: Any, info: Any) -> Any:
        # YAML reads `workers: yes` as True, which pydantic would take as 1.
        annotation = cls.model_fields[info.field_name].annotation
        if isinstance(value, bool) and annotation in (int, float):
            raise ValueError("expected a number, not a yes/no value")
        texts = value if isinstance(value, list) else [value]
        if any(isinstance(t, str | Path) and "\x00" in str(t) for t in texts):
            raise ValueError("must not contain a NUL character")
        if isinstance(value, str | Path) and "list[" in str(annotation):
            raise ValueError(
                "expected a list, e.g. [a, b] (one text is a list only under its upstream name)"
            )
        return value

    @field_validator("allowed_clients")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for net in value:
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError:
                raise ValueError(f"{net!r} is not a network (expected e.g. 10.0.0.0/24)") from None
        return value

    @field_validator("senders")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        from wod.requests import EMAIL_PATTERN

        for address in value:
            if not EMAIL_PATTERN.match(address):
                raise ValueError(f"{address!r} is not an e-mail address (expected user@host)")
        return value

    @field_validator("monitor")
    @classmethod
    def _monitor(cls, value: str | None) -> str | None:
        from wod.requests import EMAIL_PATTERN

        if value and not EMAIL_PATTERN.match(value):
            raise ValueError("expected an e-mail address (user@host)")
        return value or None

    @field_validator("command_mailbox", "mailbox_aliases")
    @classmethod
    def _local_parts(cls, value: str | list[str]) -> str | list[str]:
        for part in [value] if isinstance(value, str) else value:
            if not LOCAL_PART.match(part):
                raise ValueError(f"{part!r} is not the local part of an address (no '@', spaces)")
        return value

    @field_validator("admin_user", "smtp_local_users")
    @classmethod
    def _account_names(cls, value: str | list[str]) -> str | list[str]:
        for name in [value] if isinstance(value, str) else value:
            if not ACCOUNT_NAME.match(name):
                raise ValueError(f"{name!r} is not an account name (lower-case, at most 32)")
        return value

    @field_validator("apidb_url", "hub_url")
    @classmethod
    def _url(cls, value: str, info: Any) -> str:
        if info.field_name == "hub_url" and value == "":
            return value  # no hub
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises on a port out of range
        except ValueError:
            parts = None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("expected an http:// or https:// URL with a host")
        return value

    @field_validator("smtp_host", "http_host", "ldap_host")
    @classmethod
    def _host(cls, value: str | None) -> str | None:
        if value is not None and not HOST.match(value):
            raise ValueError("expected a host name or an IP address")
        return value

    @field_validator("smarthost")
    @classmethod
    def _smarthost(cls, value: str | None) -> str | None:
        if not value:
            return None
        host, sep, port = value.rpartition(":")
        if not sep or not HOST.match(host) or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("expected host:port (port 1-65535)")
        return value

    @field_validator("account_pattern")
    @classmethod
    def _pattern(cls, value: str) -> str:
        if "{n}" not in value:
            raise ValueError("must contain '{n}'")
        if not ACCOUNT_NAME.match(value.replace("{n}", "1" * 9)):
            raise ValueError("must make account names (lower-case letters, digits, '_', '-')")
        return value

    @field_validator("inventory_group")
    @classmethod
    def _group(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", value) or ".." in value:
            raise ValueError("expected a group name (letters, digits, '_', '.', '-')")
        return value

    @field_validator("registry_db_url")
    @classmethod
    def _db_url(cls, value: str | None) -> str | None:
        if value and "://" not in value:
            raise ValueError("expected an SQLAlchemy URL such as sqlite:///path or postgresql://")
        return value or None

    @field_validator("variables")
    @classmethod
    def _variables(cls, value: dict[str, Any]) -> dict[str, Any]:
        bad = [k for k in value if not isinstance(k, str) or not k]
        if bad:
            raise ValueError("variable names must be text")
        return value

    @model_validator(mode="after")
    def _together(self) -> Settings:
        if self.user_min > self.user_max:
            raise CrossFieldError(
                "user_min", f"user_min ({self.user_min}) is above user_max ({self.user_max})"
            )
        if self.retry_max_delay < self.retry_base_delay:
            raise CrossFieldError(
                "retry_max_delay",
                f"retry_max_delay ({self.retry_max_delay}) is below retry_base_delay "
                f"({self.retry_base_delay})",
            )
        for kind in ("uid", "gid"):
            if getattr(self, f"{kind}_base") + self.user_max > 4_294_967_294:
                raise CrossFieldError(
                    f"{kind}_base", f"{kind}_base + user_max is beyond the largest {kind}"
                )
        return self

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


def _env_overrides(environ: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """Settings from ``WOD_*`` variables, and where each came from."""
    out: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for key, raw in environ.items():
        if not key.startswith(ENV_PREFIX):
            continue
        if key in ENV_NOT_SETTINGS:
            continue
        name = key[len(ENV_PREFIX) :].lower()
        alias = name.upper() in UPSTREAM_ALIASES
        if alias:
            name = UPSTREAM_ALIASES[name.upper()]
        if name not in Settings.model_fields:
            raise SettingsError(f"environment variable {key}: unknown setting '{name}'")
        origins[name] = f"environment variable {key}"
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
        out[name] = _upstream_value(name, out[name], alias)
    return out, origins


def _upstream_value(name: str, value: Any, alias: bool) -> Any:
    """Upstream gives one value where a list is ours (``WODSENDER=api@host``): only under
    the upstream name is one text taken as a list of one."""
    if alias and isinstance(value, str) and "list" in str(Settings.model_fields[name].annotation):
        return [value]
    return value


def _normalise_keys(data: dict[str, Any], source: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if not isinstance(key, str):
            raise SettingsError(f"{source}: a key is not a name (expected setting: value)")
        name = UPSTREAM_ALIASES.get(key, key)
        if name in out:
            raise SettingsError(f"{source}: '{key}' given twice (also as its upstream alias)")
        out[name] = (
            _upstream_value(name, value, key != name) if name in Settings.model_fields else value
        )
    return out


def _key_lines(text: str) -> dict[str, int]:
    """Line number of each top-level key of a settings file (for error messages)."""
    try:
        node = yaml.compose(text, yaml.SafeLoader)
    except yaml.YAMLError:
        return {}
    lines: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, _value in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                key = str(key_node.value)
                lines[UPSTREAM_ALIASES.get(key, key)] = key_node.start_mark.line + 1
    return lines


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key: Any, line: int) -> None:
        super().__init__(f"'{key}' given twice (again on line {line})")
        self.line = line


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


def _yaml_problem(path: Path, exc: yaml.YAMLError) -> str:
    """A YAML syntax error as one line, without the offending text (it may be a secret)."""
    mark = getattr(exc, "problem_mark", None)
    where = f"{path}, line {mark.line + 1}, column {mark.column + 1}" if mark else str(path)
    problem = getattr(exc, "problem", None) or "syntax error"
    return f"{where}: not valid YAML ({problem}); the line is not repeated here"


def _shown(value: Any) -> str:
    text = repr(str(value) if isinstance(value, Path) else value)
    return text if len(text) <= 60 else text[:57] + "..."


def _describe(error: ValidationError, origins: dict[str, str], source: str) -> str:
    """The first problem as one line: where, which key, what is expected, the value given
    (never for a secret setting)."""
    problems = error.errors()
    err = problems[0]
    loc = [str(p) for p in err["loc"]]
    cause = (err.get("ctx") or {}).get("error")
    if not loc and isinstance(cause, CrossFieldError):
        loc = [cause.key]
    name = loc[0] if loc else ""
    where = origins.get(name, source)
    more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
    if err["type"] == "extra_forbidden":
        return f"{where}: unknown setting '{name}'{more}"
    msg = err["msg"].removeprefix("Value error, ")
    field = Settings.model_fields.get(name)
    if field is None:  # a rule of the whole: nothing to quote
        return f"{where}: {msg}{more}"
    if isinstance(cause, CrossFieldError) or (field.json_schema_extra or {}).get("secret"):
        got = ""
    else:
        got = f" (got {_shown(err.get('input'))})"
    key = ".".join(loc)
    return f"{where}: setting '{key}': {msg}{got}{more}"


def load_settings(
    path: Path | str | None = None,
    environ: dict[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Load settings from ``path`` (or ``$WOD_CONFIG``, ``./wod.yml``, ``/etc/wod/wod.yml``),
    then apply ``WOD_*`` environment overrides, then keyword ``overrides``.

    Raises :class:`SettingsError` with one line naming the file and line (or the
    environment variable), the key and what is expected."""
    environ = dict(os.environ if environ is None else environ)
    if path is None and environ.get("WOD_CONFIG"):
        path = environ["WOD_CONFIG"]
    if path is None:
        path = next((p for p in DEFAULT_CONFIG_PATHS if p.is_file()), None)
    data: dict[str, Any] = {}
    origins: dict[str, str] = {}
    source = "defaults"
    if path is not None:
        path = Path(path)
        source = str(path)
        try:
            text = path.read_text(encoding="utf-8")
            raw = yaml.load(text, _UniqueKeyLoader) or {}
        except FileNotFoundError:
            raise SettingsError(f"{path}: configuration file not found") from None
        except _DuplicateKey as exc:
            raise SettingsError(f"{path}, line {exc.line}: {exc}") from None
        except UnicodeDecodeError as exc:
            raise SettingsError(f"{path}: not UTF-8 ({exc.reason} at byte {exc.start})") from None
        except OSError as exc:
            raise SettingsError(f"{path}: cannot read: {exc.strerror or exc}") from None
        except yaml.YAMLError as exc:
            raise SettingsError(_yaml_problem(path, exc)) from None
        except RecursionError:
            raise SettingsError(f"{path}: not valid YAML (nested too deeply)") from None
        if not isinstance(raw, dict):
            raise SettingsError(f"{path}: expected a mapping of settings at the top level")
        data = _normalise_keys(raw, source)
        origins = {name: f"{path}, line {n}" for name, n in _key_lines(text).items()}
        base = path.parent.resolve()
        for name, field in Settings.model_fields.items():
            if field.annotation in _OPTIONAL and data.get(name) == "":
                data[name] = None  # an empty optional path is "none", not this folder
            # Relative paths in the file are relative to the file.
            if name in data and data[name] is not None and "Path" in str(field.annotation):
                value = data[name]
                if isinstance(value, list):
                    data[name] = [str(base / v) if isinstance(v, str) else v for v in value]
                elif isinstance(value, str):
                    data[name] = str(base / value)
    env, env_origins = _env_overrides(environ)
    if env:
        source += " + environment"
    data.update(env)
    origins.update(env_origins)
    data.update(overrides)
    for name in overrides:
        origins.pop(name, None)
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise SettingsError(_describe(exc, origins, source)) from None
    except (ValueError, TypeError) as exc:  # pragma: no cover - pydantic wraps these
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
