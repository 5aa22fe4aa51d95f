"""ApiDb: the backend's client of the api-db REST API (SPEC 3.6).

Thin over one ``httpx.Client`` (a transport can be injected).  Behaviour the api-db forces:

- Log in with ``POST /login`` and send the token as ``x-access-token``.  Tokens live 180 s:
  the token is cached until shortly before the expiry its JWT states (``exp``), and, on a
  401, the client logs in again once and repeats the call.  One login at a time: threads
  needing a token meanwhile wait for it.  :meth:`ApiDb.prefetch_token` starts that login
  in the background, so a job can overlap it with local work (the api-db's login checks a
  slow password hash: ~0.1 s).
- Every call has a timeout: the api-db never answers when PostgreSQL rejects a value.
  (It bounds each wait for the peer, so a server that stays silent fails after ``timeout``.)
- Error bodies may be plain text (``Workshop Not Found``) or JSON (``{"message": ...}``).
- Requests carry well-typed JSON (``Content-Type: application/json``), never ``"true"``.

Workshop lookups by notebook (every job makes one) are answered from the last
``GET /workshops`` for ``workshop_cache_ttl`` seconds (0: always fetched); a name not in
that list is fetched again at once, so a new or renamed workshop is never refused from a
stale copy.  A change to a known workshop is seen at most ``workshop_cache_ttl`` later.

Errors are translated here: connection failures, timeouts and 5xx answers raise
:class:`~wod.errors.Transient` (the job is retried); 4xx answers raise
:class:`~wod.errors.Permanent` with the api-db's message.  Tokens and passwords are never
logged or put in an error.
"""

from __future__ import annotations

import base64
import json as jsonlib
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from wod.errors import Permanent, Transient
from wod.values import truthy

if TYPE_CHECKING:
    from wod.settings import Settings

log = logging.getLogger(__name__)

TOKEN_HEADER = "x-access-token"
#: A cached token is renewed this long before its expiry (at most a tenth of its
#: lifetime), and :meth:`ApiDb.prefetch_token` renews it this long before (a fifth).
RENEW_MARGIN = 10.0
PREFETCH_MARGIN = 30.0


def parse_compile(value: Any) -> list[str]:
    """The api-db's ``compile`` field as script names.

    ``None``, ``""``, ``"false"`` and ``False`` mean nothing to compile; otherwise a
    comma-separated string (``"a.sh, b.sh"``) or a list of names.
    """
    if value is None or value is False:
        return []
    if isinstance(value, str):
        if value.strip().lower() in ("", "false", "null", "none"):
            return []
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list):
        return [str(part).strip() for part in value if str(part).strip()]
    raise ValueError(f"compile: unexpected value {value!r}")


def _flag(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0
    if isinstance(value, str):
        return truthy(value)
    raise ValueError(f"not a boolean: {value!r}")


class Workshop(BaseModel):
    """The workshop fields the backend acts on."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: int
    notebook: str
    name: str = ""
    range_min: int
    range_max: int
    capacity: int = 0
    reset: bool = False
    ldap: bool = False
    varpass: bool = False
    compile: list[str] = []
    monoappliance: bool = False
    multiappliance: bool = False
    active: bool = False

    @field_validator(
        "reset", "ldap", "varpass", "monoappliance", "multiappliance", "active", mode="before"
    )
    @classmethod
    def _flags(cls, value: Any) -> bool:
        return _flag(value)

    @field_validator("compile", mode="before")
    @classmethod
    def _compile(cls, value: Any) -> list[str]:
        return parse_compile(value)

    @field_validator("name", mode="before")
    @classmethod
    def _name(cls, value: Any) -> str:
        return "" if value is None else value

    @field_validator("capacity", mode="before")
    @classmethod
    def _capacity(cls, value: Any) -> int:
        return 0 if value is None else value

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Workshop:
        """Build from an api-db workshop object; :class:`Permanent` if it is unusable."""
        try:
            rng = data.get("range")
            if not (isinstance(rng, list) and len(rng) == 2):
                raise ValueError(f"range must be [min, max], got {rng!r}")
            return cls(**{**data, "range_min": rng[0], "range_max": rng[1]})
        except (ValueError, ValidationError, TypeError) as exc:
            wid = data.get("id") if isinstance(data, dict) else None
            raise Permanent(f"api-db workshop {wid}: unusable: {exc}") from None


def token_expiry(token: str) -> float | None:
    """The ``exp`` claim of a JWT (not verified: only used to renew in time), if any."""
    try:
        payload = token.split(".")[1]
        claims = jsonlib.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        exp = claims.get("exp") if isinstance(claims, dict) else None
        return float(exp) if isinstance(exp, (int, float)) else None
    except (IndexError, ValueError, TypeError):
        return None


def _message(response: httpx.Response) -> str:
    """The api-db's error message: JSON ``message``/``error``, else the text."""
    text = response.text.strip()
    try:
        body = response.json()
    except ValueError:
        return text[:200] or response.reason_phrase
    if isinstance(body, dict):
        if body.get("message"):
            return str(body["message"])
        if "error" in body:
            err = body["error"]
            if isinstance(err, dict) and err.get("message"):
                return str(err["message"])
            return f"error {err}" if err else "error (no detail)"
    return text[:200]


class ApiDb:
    """Client of one api-db (``base_url`` ends with ``/api``)."""

    def __init__(
        self,
        base_url: str,
        username: str,
        password: str,
        *,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
        workshop_cache_ttl: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.username = username
        self._password = password
        self.timeout = timeout
        self._client = httpx.Client(
            base_url=self.base_url + "/",
            timeout=httpx.Timeout(timeout),
            transport=transport,
            headers={"Accept": "application/json"},
        )
        self._token: str | None = None
        # time.time() after which the token is renewed / prefetched (from its exp claim)
        self._renew_at: float | None = None
        self._prefetch_at: float | None = None
        self._lock = threading.Lock()
        self._login_lock = threading.Lock()
        self.workshop_cache_ttl = workshop_cache_ttl
        self._clock = clock
        # the last GET /workshops answer and the clock() reading it is valid until
        self._workshops: list[dict[str, Any]] | None = None
        self._workshops_until = 0.0
        self._workshops_fetches = 0
        self._workshops_lock = threading.Lock()

    @classmethod
    def from_settings(
        cls, settings: Settings, transport: httpx.BaseTransport | None = None
    ) -> ApiDb:
        return cls(
            settings.apidb_url,
            settings.apidb_user,
            settings.apidb_password,
            timeout=settings.apidb_timeout,
            transport=transport,
            workshop_cache_ttl=settings.apidb_workshop_cache_ttl,
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> ApiDb:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- transport ------------------------------------------------------------------
    def _send(
        self, method: str, path: str, *, json: Any = None, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        what = f"api-db {method} /{path}"
        try:
            response = self._client.request(method, path, json=json, headers=headers)
        except httpx.TimeoutException:
            raise Transient(f"{what}: no answer within {self.timeout:g} s") from None
        except httpx.TransportError as exc:
            raise Transient(f"{what}: {type(exc).__name__}: {exc or 'connection failed'}") from None
        if response.status_code >= 500:
            raise Transient(f"{what}: HTTP {response.status_code}: {_message(response)}")
        return response

    def _fail(self, method: str, path: str, response: httpx.Response) -> Permanent:
        return Permanent(
            f"api-db {method} /{path}: HTTP {response.status_code}: {_message(response)}"
        )

    def _json(self, method: str, path: str, response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            raise Permanent(f"api-db {method} /{path}: answer is not JSON") from None

    def login(self) -> str:
        """Log in and cache a fresh token; returns it."""
        response = self._send(
            "POST", "login", json={"username": self.username, "password": self._password}
        )
        if response.status_code != 200:
            raise Permanent(
                f"api-db login as {self.username!r} refused: HTTP {response.status_code}: "
                f"{_message(response)}"
            )
        token = self._json("POST", "login", response).get("accessToken")
        if not isinstance(token, str) or not token:
            raise Permanent("api-db login answered without an accessToken")
        now = time.time()
        expires = token_expiry(token)
        with self._lock:
            self._token = token
            if expires is None:
                self._renew_at = self._prefetch_at = None
            else:
                life = max(expires - now, 0.0)
                self._renew_at = expires - min(RENEW_MARGIN, life / 10)
                self._prefetch_at = expires - min(PREFETCH_MARGIN, life / 5)
        log.debug("logged in to the api-db as %s", self.username)
        return token

    @property
    def token(self) -> str:
        """A current access token (logging in if needed), for hooks that call the api-db
        themselves (SPEC 5 ``accessToken``)."""
        return self._current_token()

    def _cached_token(self, prefetch: bool = False) -> str | None:
        with self._lock:
            limit = self._prefetch_at if prefetch else self._renew_at
            if limit is not None and time.time() >= limit:
                return None
            return self._token

    def _current_token(self) -> str:
        token = self._cached_token()
        if token:
            return token
        with self._login_lock:  # one login at a time; the others take its token
            return self._cached_token() or self.login()

    def prefetch_token(self) -> None:
        """Make sure a token will be ready: if none is cached (or it is about to expire),
        log in on a background thread now.  Errors are left to the call that needs the
        token (it logs in again and reports them)."""
        if self._cached_token(prefetch=True) or self._login_lock.locked():
            return

        def fetch() -> None:
            try:
                with self._login_lock:
                    if not self._cached_token(prefetch=True):
                        self.login()
            except Exception as exc:  # noqa: BLE001 - the caller's own login reports it
                log.debug("api-db token prefetch failed: %s", exc)

        threading.Thread(target=fetch, name="apidb-login", daemon=True).start()

    def _call(self, method: str, path: str, *, json: Any = None, auth: bool = False) -> Any:
        if not auth:
            response = self._send(method, path, json=json)
        else:
            token = self._current_token()
            response = self._send(method, path, json=json, headers={TOKEN_HEADER: token})
            if response.status_code == 401:
                log.debug("api-db token refused (expired?): logging in again")
                with self._lock:
                    if self._token == token:
                        self._token = None
                token = self._current_token()
                response = self._send(method, path, json=json, headers={TOKEN_HEADER: token})
        if response.status_code >= 400:
            raise self._fail(method, path, response)
        return self._json(method, path, response)

    # -- api ------------------------------------------------------------------------
    def workshops(self) -> list[dict[str, Any]]:
        """Every workshop object, sorted by priority (as the api-db sends them)."""
        data = self._call("GET", "workshops")
        if not isinstance(data, list):
            raise Permanent("api-db GET /workshops: expected an array")
        return data

    def workshop(self, workshop_id: int) -> Workshop:
        data = self._call("GET", f"workshops/{int(workshop_id)}")
        if not isinstance(data, dict):
            raise Permanent(f"api-db GET /workshops/{workshop_id}: expected an object")
        return Workshop.from_api(data)

    def _workshop_list(self, fresh: bool) -> tuple[list[dict[str, Any]], bool]:
        """The workshop list: the cached one while it is valid, unless ``fresh``.  One
        fetch at a time: threads that need the list meanwhile take its answer.  With it,
        whether it was fetched by this call."""
        if self.workshop_cache_ttl <= 0:
            return self.workshops(), True
        seen = self._workshops_fetches
        with self._workshops_lock:
            valid = self._workshops is not None and self._clock() < self._workshops_until
            # fresh: a list fetched by another thread since this call began will do
            if valid and (not fresh or self._workshops_fetches != seen):
                return self._workshops, False  # type: ignore[return-value]
            data = self.workshops()
            self._workshops = data
            self._workshops_until = self._clock() + self.workshop_cache_ttl
            self._workshops_fetches += 1
            return data, True

    def workshop_by_notebook(self, notebook: str) -> Workshop:
        """The workshop whose ``notebook`` is ``notebook`` (an active one first).  From
        the cached list (``workshop_cache_ttl``); a name missing there is fetched again."""

        def matching(fresh: bool) -> tuple[list[dict[str, Any]], bool]:
            data, fetched = self._workshop_list(fresh)
            rows = [w for w in data if isinstance(w, dict) and w.get("notebook") == notebook]
            return rows, fetched

        rows, fetched = matching(fresh=False)
        if not rows and not fetched:
            rows, _ = matching(fresh=True)
        if not rows:
            raise Permanent(f"no workshop with notebook {notebook!r} in the api-db")
        rows.sort(key=lambda w: (not _flag(w.get("active")), w.get("id") or 0))
        return Workshop.from_api(rows[0])

    def customer(self, customer_id: int) -> dict[str, Any]:
        data = self._call("GET", f"customers/{int(customer_id)}", auth=True)
        if not isinstance(data, dict):
            raise Permanent(f"api-db GET /customers/{customer_id}: expected an object")
        return data

    def update_student(self, student_id: int, **fields: Any) -> dict[str, Any]:
        """``PUT /student/:id`` (the api-db id: stdid + base_stdid); the updated row."""
        return self._call("PUT", f"student/{int(student_id)}", json=fields, auth=True)

    def update_customer(self, customer_id: int, **fields: Any) -> dict[str, Any]:
        return self._call("PUT", f"customer/{int(customer_id)}", json=fields, auth=True)

    def update_workshop(self, workshop_id: int, **fields: Any) -> dict[str, Any]:
        return self._call("PUT", f"workshop/{int(workshop_id)}", json=fields, auth=True)

    def wait_cleaned(
        self,
        customer_id: int,
        timeout: float,
        interval: float,
        stop_event: threading.Event | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> bool:
        """Poll ``GET /customers/:id`` until ``cleaned``; False at ``timeout`` or when
        ``stop_event`` is set.  Transient faults are polled through; Permanent raised."""
        deadline = clock() + timeout
        while True:
            try:
                if _flag(self.customer(customer_id).get("cleaned")):
                    return True
            except Transient as exc:
                log.info("waiting for customer %s to be cleaned: %s", customer_id, exc)
            remaining = deadline - clock()
            if remaining <= 0:
                return False
            pause = min(interval, remaining)
            if stop_event is not None:
                if stop_event.wait(pause):
                    return False
            else:
                time.sleep(pause)
