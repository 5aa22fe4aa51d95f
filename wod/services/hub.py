"""JupyterHub REST client: start and stop a student's single-user server (SPEC 3.7).

The backend only ever touches a student's default server (``servers[""]``), through the
hub's REST API with a service token holding the scopes ``admin:servers`` (start, stop)
and ``admin:users`` (read, create users).  Every step is idempotent, because a job may be
retried or resumed at any point:

- starting a server that is already running is success, and a user the hub does not know
  yet is created first (upstream creates hub users at install time only);
- stopping a server that is not running, or of a user the hub does not know, is success;
- a spawn the hub reports as pending (202) is polled until ready, for at most
  ``spawn_wait`` seconds; still pending then is :class:`~wod.errors.Transient`.

Ending a participant's hub session (:meth:`Hub.end_sessions`, used by CLEANUP, RESET and
PURGE): every participant of a seat shares the seat's hub user, so stopping its server is
not enough.  The hub's login cookie (``jupyterhub-hub-login``) holds the user's
``cookie_id``, which JupyterHub never changes for an existing user, and its OAuth hand-off
lets that cookie into whatever server the user runs next: the next participant's.  So the
servers are stopped (named ones too), the hub user is deleted — the hub drops its
``cookie_id``, OAuth and API tokens with it — and created again, with a new ``cookie_id``.
An old browser then holds a hub cookie matching no user, and a single-user cookie signed
by a server that no longer runs (each server start draws a new cookie secret): it gets the
login page.  This needs ``admin:users`` (which includes ``delete:users``).
:meth:`Hub.probe_session_end` checks that a hub allows it (``wod check``).

Errors are translated here: transport failures, timeouts, 502/503/504, a busy hub (429:
its concurrent spawn or active server limit) and a spawn still pending become
``Transient`` (the job is retried); a rejected token, a failed spawn (its reason read
from the hub's progress event stream) or any other refusal become ``Permanent``.  User
names are always sent lower-case (the hub API is case-sensitive and our account names
are lower-case).  The token is sent only in the ``Authorization``
header and never logged or put in an error.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from wod.errors import Permanent, Transient
from wod.settings import Settings

log = logging.getLogger(__name__)

TOKEN_REJECTED = "hub token rejected (needs scopes admin:servers, admin:users)"
RETRYABLE_STATUS = frozenset({502, 503, 504})
PROGRESS_WAIT = 5.0
#: The hub user :meth:`Hub.probe_session_end` creates and deletes (never a seat's).
PROBE_USER = "wod-session-probe"


@dataclass(frozen=True)
class SessionsEnded:
    """What :meth:`Hub.end_sessions` did to one hub user."""

    user: str
    servers_stopped: tuple[str, ...] = ()  # "" is the default server
    recreated: bool = False  # False: the hub did not know the user; it was only created
    groups_dropped: tuple[str, ...] = ()
    was_admin: bool = False

    def summary(self) -> str:
        stopped = ", ".join(repr(n) if n else "default" for n in self.servers_stopped)
        text = (
            f"hub user {self.user} "
            + ("deleted and re-created" if self.recreated else "created")
            + ": its logins, cookies and tokens are void"
            + (f"; server(s) stopped: {stopped}" if stopped else "; no server was running")
        )
        if self.groups_dropped:
            text += "; hub groups dropped: " + ", ".join(self.groups_dropped)
        if self.was_admin:
            text += "; it was a hub admin and is re-created without admin rights"
        return text


@dataclass(frozen=True)
class SessionProbe:
    """Whether this hub lets :meth:`Hub.end_sessions` void a user's old logins."""

    ok: bool
    version: str = ""
    authenticator: str = ""
    problems: tuple[str, ...] = field(default=())
    #: What was verified: "cycle" (a user's sessions ended for real), "scopes" (the
    #: authenticator refused a throw-away user: only the token's right to delete users) or
    #: "busy" (the user named has a running server: nothing was done to it).
    checked: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "version": self.version,
            "authenticator": self.authenticator,
            "problems": list(self.problems),
            "checked": self.checked,
        }


def _hub_message(response: httpx.Response) -> str:
    """The hub's own error message (JSON ``message``, else the body's start)."""
    try:
        data = response.json()
    except ValueError:
        return response.text.strip()[:200]
    if isinstance(data, dict) and data.get("message"):
        return str(data["message"])
    return ""


def _json_body(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _retry_after(response: httpx.Response) -> float | None:
    """The ``Retry-After`` seconds a busy hub asks for, if it states them."""
    try:
        return max(0.0, float(response.headers.get("Retry-After", "")))
    except ValueError:
        return None


class Hub:
    """A thin client over an ``httpx.Client`` for one JupyterHub.

    ``url`` is the hub's public base URL (``http://host:8000``; the API is under
    ``/hub/api``).  ``timeout`` bounds every call; ``spawn_wait`` bounds how long a pending
    spawn is polled.  ``transport`` is passed to httpx (tests, retries, proxies).
    """

    def __init__(
        self,
        url: str,
        token: str,
        *,
        timeout: float = 15.0,
        spawn_wait: float = 60.0,
        poll_interval: float = 0.5,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.spawn_wait = spawn_wait
        self.poll_interval = poll_interval
        self._client = httpx.Client(
            base_url=f"{self.url}/hub/api",
            headers={"Authorization": f"token {token}", "Accept": "application/json"},
            timeout=timeout,
            transport=transport,
        )

    @classmethod
    def from_settings(cls, settings: Settings, transport: httpx.BaseTransport | None = None) -> Hub:
        return cls(
            settings.hub_url,
            settings.hub_token,
            timeout=settings.hub_timeout,
            spawn_wait=settings.hub_spawn_wait,
            transport=transport,
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Hub:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- public steps ------------------------------------------------------------------

    def ensure_user(self, user: str) -> bool:
        """Make sure the hub knows ``user``; True if it was created now."""
        name = user.lower()
        response = self._call("POST", self._user_path(name), what=f"create hub user {name}")
        if response.status_code == 201:
            log.info("hub user %s created", name)
            return True
        if response.status_code == 409:
            return False
        raise self._unexpected(response, f"create hub user {name}")

    def server_status(self, user: str) -> dict[str, Any] | None:
        """The hub's model of ``user``'s default server (``ready``, ``pending``, ``url``…),
        or None when it has none running or starting, or the user is unknown."""
        name = user.lower()
        response = self._call("GET", self._user_path(name), what=f"read hub user {name}")
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._unexpected(response, f"read hub user {name}")
        try:
            model = response.json()
        except ValueError:
            raise Transient(f"read hub user {name}: the hub answered no JSON") from None
        server = (model.get("servers") or {}).get("") if isinstance(model, dict) else None
        return server if isinstance(server, dict) else None

    def start_server(self, user: str) -> str:
        """Start ``user``'s server and wait until it is ready.

        Returns ``"started"`` or ``"already running"``.  Creates the hub user when the hub
        does not know it.
        """
        name = user.lower()
        what = f"start hub server of {name}"
        started = time.monotonic()
        response = self._call("POST", self._server_path(name), what=what)
        if response.status_code == 404:
            self.ensure_user(name)
            response = self._call("POST", self._server_path(name), what=what)
        status = response.status_code
        if status == 201:
            log.info("hub server of %s started in %.2f s", name, time.monotonic() - started)
            return "started"
        if status == 202:
            self._wait_ready(name, started)
            log.info("hub server of %s ready in %.2f s", name, time.monotonic() - started)
            return "started"
        message = _hub_message(response)
        if status == 400 and "already running" in message:
            log.info("hub server of %s already running", name)
            return "already running"
        if status == 400 and "pending" in message:
            raise Transient(f"{what}: {message}")
        if status == 500:
            raise Permanent(f"{what}: {self._spawn_failure(name)}")
        raise self._unexpected(response, what)

    def stop_server(self, user: str) -> str:
        """Stop ``user``'s server.  Returns ``"stopped"``, ``"stopping"`` (the hub finishes
        the stop itself) or ``"not running"`` (also for a user the hub does not know)."""
        name = user.lower()
        what = f"stop hub server of {name}"
        response = self._call("DELETE", self._server_path(name), what=what)
        if response.status_code == 204:
            log.info("hub server of %s stopped", name)
            return "stopped"
        if response.status_code == 202:
            log.info("hub server of %s stopping", name)
            return "stopping"
        if response.status_code == 404:
            log.info("hub user %s unknown: no server to stop", name)
            return "not running"
        raise self._unexpected(response, what)

    def end_sessions(self, user: str) -> SessionsEnded:
        """End everything ``user``'s past sessions hold on the hub: stop its servers, then
        delete the hub user (its cookie id, OAuth and API tokens go with it) and create it
        again.  Idempotent: a user the hub does not know is only created."""
        name = user.lower()
        what = f"end hub sessions of {name}"
        model = self._user_model(name)
        if model is None:
            self.ensure_user(name)
            return SessionsEnded(name)
        servers = tuple(sorted((model.get("servers") or {}).keys()))
        for server in servers:
            self._stop_and_wait(name, server)
        response = self._call("DELETE", self._user_path(name), what=what)
        if response.status_code == 400 and "stopping" in _hub_message(response):
            raise Transient(f"{what}: {_hub_message(response)}")
        if response.status_code not in (204, 404):
            raise self._unexpected(response, what)
        self.ensure_user(name)
        ended = SessionsEnded(
            name,
            servers_stopped=servers,
            recreated=True,
            groups_dropped=tuple(model.get("groups") or ()),
            was_admin=bool(model.get("admin")),
        )
        if ended.groups_dropped or ended.was_admin:
            log.warning("%s", ended.summary())
        else:
            log.info("%s", ended.summary())
        return ended

    def info(self) -> dict[str, Any]:
        """The hub's version and, with the ``read:hub`` scope, its authenticator and
        spawner classes (``GET /hub/api/info``; else only the version)."""
        response = self._call("GET", "/", what="read hub version")
        if response.status_code != 200:
            raise self._unexpected(response, "read hub version")
        data: dict[str, Any] = {"version": str(_json_body(response).get("version", ""))}
        try:
            details = self._client.request("GET", "/info")
        except httpx.HTTPError:
            return data
        if details.status_code == 200:
            body = _json_body(details)
            for key in ("authenticator", "spawner"):
                part = body.get(key)
                if isinstance(part, dict):
                    data[key] = str(part.get("class", ""))
        return data

    def probe_session_end(self, user: str = PROBE_USER) -> SessionProbe:
        """Check that :meth:`end_sessions` works on this hub, on ``user``: a throw-away
        hub user by default (created, its sessions ended, checked to come back as a new
        user — a new ``created`` time, hence a new cookie id — then deleted).  A hub whose
        authenticator only takes users with a system account (``PAMAuthenticator``,
        any ``LocalAuthenticator``) refuses the throw-away user: then only the token's
        right to delete users is checked, unless ``user`` names an account that may be
        used (a free seat; a user with a running server is never touched).  Also flags an
        authenticator that lets anyone in whatever the password."""
        problems: list[str] = []
        try:
            info = self.info()
        except (Permanent, Transient) as exc:
            return SessionProbe(False, problems=(exc.reason,))
        version, authenticator = info.get("version", ""), info.get("authenticator", "")
        if authenticator.rsplit(".", 1)[-1] in {"DummyAuthenticator", "NullAuthenticator"}:
            problems.append(
                f"the hub's authenticator is {authenticator}: anyone can log in as any seat "
                "whatever its password (use PAMAuthenticator or LDAPAuthenticator)"
            )
        name = user.lower()
        need = (
            "the hub token needs admin:users (with delete:users) so CLEANUP can void a "
            "participant's login cookie"
        )
        checked, existed = "cycle", True
        try:
            before = self._user_model(name)
            if before is not None and before.get("servers"):
                # In use: nothing is done to it (checked "busy"; the caller picks another).
                return SessionProbe(
                    False,
                    version,
                    authenticator,
                    (*problems, f"hub user {name} has a running server: not probed"),
                    "busy",
                )
            if before is None:
                existed = False
                response = self._call("POST", self._user_path(name), what=f"create {name}")
                if response.status_code == 400:
                    checked = "scopes"  # the authenticator wants a system account
                elif response.status_code not in (201, 409):
                    raise self._unexpected(response, f"create hub user {name}")
            if checked == "scopes":
                scopes = set(self.token_scopes())
                if not scopes & {"admin:users", "delete:users"}:
                    problems.append(need)
            else:
                before = self._user_model(name) or {}
                ended = self.end_sessions(name)
                after = self._user_model(name) or {}
                if not ended.recreated or after.get("created") == before.get("created"):
                    problems.append(
                        f"deleting and re-creating hub user {name} did not give a new user: "
                        "an old login cookie could outlive a CLEANUP"
                    )
        except (Permanent, Transient) as exc:
            problems.append(f"{exc.reason} — {need}")
        finally:
            if not existed and checked == "cycle":
                try:
                    self._call("DELETE", self._user_path(name), what=f"delete hub user {name}")
                except (Permanent, Transient):
                    pass
        return SessionProbe(not problems, version, authenticator, tuple(problems), checked)

    def user_exists(self, user: str) -> bool:
        """Whether the hub knows ``user`` (for ``wod check``)."""
        return self._user_model(user.lower()) is not None

    def token_scopes(self) -> list[str]:
        """The scopes of our own token (``GET /hub/api/user``: JupyterHub >= 3 lists
        them for the token's owner, a user or a service)."""
        response = self._call("GET", "/user", what="read the hub token's owner")
        if response.status_code != 200:
            raise self._unexpected(response, "read the hub token's owner")
        scopes = _json_body(response).get("scopes")
        return [str(s) for s in scopes] if isinstance(scopes, list) else []

    # -- internals ---------------------------------------------------------------------

    def _user_model(self, name: str) -> dict[str, Any] | None:
        response = self._call("GET", self._user_path(name), what=f"read hub user {name}")
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._unexpected(response, f"read hub user {name}")
        model = _json_body(response)
        if not model:
            raise Transient(f"read hub user {name}: the hub answered no JSON")
        return model

    def _stop_and_wait(self, name: str, server: str) -> None:
        """Stop one server (``""``: the default one) and wait until the hub has."""
        what = f"stop hub server {server!r} of {name}" if server else f"stop hub server of {name}"
        path = (
            f"{self._user_path(name)}/servers/{quote(server, safe='')}"
            if server
            else self._server_path(name)
        )
        response = self._call("DELETE", path, what=what)
        if response.status_code not in (202, 204, 404):
            raise self._unexpected(response, what)
        deadline = time.monotonic() + self.spawn_wait
        while True:
            model = self._user_model(name) or {}
            if server not in (model.get("servers") or {}):
                return
            if time.monotonic() >= deadline:
                raise Transient(f"{what}: still stopping after {self.spawn_wait:g} s")
            time.sleep(self.poll_interval)

    @staticmethod
    def _user_path(name: str) -> str:
        return f"/users/{quote(name, safe='')}"

    def _server_path(self, name: str) -> str:
        return f"{self._user_path(name)}/server"

    def _call(self, method: str, path: str, *, what: str) -> httpx.Response:
        """One request; transport faults and gateway errors become Transient, a rejected
        token Permanent."""
        try:
            response = self._client.request(method, path)
        except httpx.TimeoutException:
            raise Transient(f"{what}: no answer from the hub within {self.timeout:g} s") from None
        except httpx.HTTPError as exc:
            raise Transient(
                f"{what}: hub unreachable at {self.url} ({type(exc).__name__}: {exc})"
            ) from None
        if response.status_code in (401, 403):
            raise Permanent(f"{what}: {TOKEN_REJECTED}")
        if response.status_code in RETRYABLE_STATUS:
            raise Transient(f"{what}: hub answered {response.status_code}")
        if response.status_code == 404 and "status" not in _json_body(response):
            # Not the hub's own JSON 404 (unknown user): its proxy, not routing to the hub
            # yet (a hub starting up) or configured elsewhere.
            raise Transient(f"{what}: no JupyterHub API behind {self.url} (answered 404)")
        if response.status_code == 429:
            # The hub's concurrent_spawn_limit / active_server_limit: "try again in ...".
            raise Transient(
                f"{what}: hub busy: {_hub_message(response) or 'too many requests'}",
                delay=_retry_after(response),
            )
        return response

    def _unexpected(self, response: httpx.Response, what: str) -> Exception:
        message = _hub_message(response) or response.reason_phrase
        if response.status_code >= 500:
            return Transient(f"{what}: hub answered {response.status_code} {message}")
        return Permanent(f"{what}: hub answered {response.status_code} {message}")

    def _wait_ready(self, name: str, started: float) -> None:
        """Poll a pending spawn until ready, failed or ``spawn_wait`` has passed."""
        deadline = started + self.spawn_wait
        what = f"start hub server of {name}"
        while True:
            server = self.server_status(name)
            if server is not None and server.get("ready"):
                return
            if server is None or not server.get("pending"):
                # Neither ready nor starting: the spawn ended in failure.
                raise Permanent(f"{what}: {self._spawn_failure(name)}")
            if time.monotonic() >= deadline:
                raise Transient(
                    f"{what}: still starting after {self.spawn_wait:g} s",
                    delay=self.spawn_wait,
                )
            time.sleep(min(self.poll_interval, max(0.0, deadline - time.monotonic())))

    def _spawn_failure(self, name: str) -> str:
        """The reason of a failed spawn, read from the hub's progress event stream (the
        only place the hub gives it); a generic reason when it cannot be read."""
        generic = "the hub could not start the server (spawn failed, reason unknown)"
        wait = min(self.timeout, PROGRESS_WAIT)
        deadline = time.monotonic() + wait
        reason = ""
        try:
            with self._client.stream(
                "GET",
                f"{self._server_path(name)}/progress",
                headers={"Accept": "text/event-stream"},
                timeout=httpx.Timeout(wait),
            ) as response:
                if response.status_code != 200:
                    return generic
                for line in response.iter_lines():
                    if line.startswith("data:"):
                        try:
                            event = json.loads(line[5:].strip())
                        except ValueError:
                            event = {}
                        if isinstance(event, dict) and event.get("failed"):
                            reason = str(event.get("message") or "")
                            break
                        if isinstance(event, dict) and event.get("ready"):
                            break
                    if time.monotonic() >= deadline:
                        break
        except httpx.HTTPError:
            return generic
        return reason or generic
