"""Who may use the dashboard: JupyterHub OAuth for hub installs, the ``http_token`` otherwise.

**Hub login** (``dashboard_login: hub``): the dashboard is a JupyterHub service and an
OAuth client of the hub (authorization-code flow, RFC 6749 §4.1):

1. ``GET /login`` redirects to ``<hub_public_url>/hub/api/oauth2/authorize`` with a random
   ``state`` kept in a short-lived signed cookie;
2. the hub sends the browser back to ``<dashboard_url>oauth_callback?code=…&state=…``;
   the state is checked, the code exchanged at ``<hub_url>/hub/api/oauth2/token``
   (client secret: the service's api token, ``hub_token``), the user identified with the
   access token at ``/hub/api/user``, and whether they are a hub admin (or in
   ``dashboard_admin_group``) read with the service's own token;
3. admins get a session cookie; anybody else gets 403.

JupyterHub's own ``HubOAuth`` class does the same, but jupyterhub is not a runtime
dependency of the backend (it runs on the hub's host, maybe another Python); the flow is
three HTTP calls with httpx.

**Token login** (no hub: demo and directory installs): a form asking for ``http_token``.

Either way the session is a signed cookie (HMAC-SHA256 over user, expiry and a CSRF
token; HttpOnly, SameSite=Strict, Secure when the dashboard is served over https).  Every
state-changing request is a POST carrying the session's CSRF token.  Tokens are never
logged or shown.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
import time
from dataclasses import dataclass
from urllib.parse import quote, urlencode, urlsplit

import httpx

from wod.settings import Settings

log = logging.getLogger(__name__)

SESSION_COOKIE = "wod_session"
STATE_COOKIE = "wod_oauth_state"
SESSION_SECONDS = 12 * 3600
STATE_SECONDS = 600


class LoginRefused(Exception):
    """A login that failed: ``status`` 403 (not allowed) or 400/502 (flow broken)."""

    def __init__(self, reason: str, status: int = 403) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


@dataclass(frozen=True)
class Session:
    user: str
    csrf: str
    expires: float


def login_mode(settings: Settings) -> str:
    """``hub`` or ``token``."""
    if settings.dashboard_login != "auto":
        return settings.dashboard_login
    return "hub" if settings.hub_url and settings.hub_token else "token"


def dashboard_base(settings: Settings) -> str:
    """The dashboard's public base URL, ending in ``/``."""
    url = settings.dashboard_url or f"http://{settings.http_host}:{settings.http_port}/"
    return url if url.endswith("/") else url + "/"


def dashboard_prefix(settings: Settings) -> str:
    """The path the dashboard is served under (``""`` or ``/services/wod``)."""
    if not settings.dashboard_url:
        return ""
    return urlsplit(dashboard_base(settings)).path.rstrip("/")


class Signer:
    """Signs and checks small JSON values (the cookies)."""

    def __init__(self, key: str) -> None:
        self.key = (key or secrets.token_hex(32)).encode()

    def sign(self, value: dict) -> str:
        body = base64.urlsafe_b64encode(json.dumps(value, separators=(",", ":")).encode())
        mac = hmac.new(self.key, body, hashlib.sha256).hexdigest()
        return f"{body.decode()}.{mac}"

    def unsign(self, text: str | None) -> dict | None:
        if not text or "." not in text:
            return None
        body, _, mac = text.rpartition(".")
        good = hmac.new(self.key, body.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(mac, good):
            return None
        try:
            value = json.loads(base64.urlsafe_b64decode(body.encode()))
        except ValueError:
            return None
        return value if isinstance(value, dict) else None


class Auth:
    """Sessions and the two login flows of one dashboard."""

    def __init__(self, settings: Settings, *, transport: httpx.BaseTransport | None = None):
        self.settings = settings
        self.mode = login_mode(settings)
        self.signer = Signer(settings.dashboard_secret)
        self.secure = dashboard_base(settings).startswith("https:")
        self.transport = transport

    # -- sessions -----------------------------------------------------------------------
    def new_session(self, user: str) -> tuple[Session, str]:
        session = Session(user, secrets.token_urlsafe(24), time.time() + SESSION_SECONDS)
        value = self.signer.sign({"u": user, "c": session.csrf, "e": session.expires})
        return session, value

    def session(self, cookie: str | None) -> Session | None:
        data = self.signer.unsign(cookie)
        if not data:
            return None
        try:
            session = Session(str(data["u"]), str(data["c"]), float(data["e"]))
        except (KeyError, TypeError, ValueError):
            return None
        return session if session.expires > time.time() else None

    def csrf_ok(self, session: Session, given: str | None) -> bool:
        return bool(given) and hmac.compare_digest(session.csrf.encode(), str(given).encode())

    # -- token login --------------------------------------------------------------------
    def token_ok(self, given: str) -> bool:
        token = self.settings.http_token
        return bool(token) and hmac.compare_digest(given.strip().encode(), token.encode())

    # -- hub login ----------------------------------------------------------------------
    @property
    def redirect_uri(self) -> str:
        return dashboard_base(self.settings) + "oauth_callback"

    def authorize_url(self) -> tuple[str, str]:
        """Where to send the browser, and the signed state cookie value."""
        state = secrets.token_urlsafe(24)
        hub = (self.settings.hub_public_url or self.settings.hub_url).rstrip("/")
        query = urlencode(
            {
                "client_id": self.settings.hub_oauth_client_id,
                "redirect_uri": self.redirect_uri,
                "response_type": "code",
                "state": state,
            }
        )
        cookie = self.signer.sign({"s": state, "e": time.time() + STATE_SECONDS})
        return f"{hub}/hub/api/oauth2/authorize?{query}", cookie

    def check_state(self, cookie: str | None, state: str | None) -> None:
        data = self.signer.unsign(cookie)
        if (
            not data
            or not state
            or float(data.get("e", 0)) < time.time()
            or not hmac.compare_digest(str(data.get("s", "")).encode(), state.encode())
        ):
            raise LoginRefused("the login expired or was not started here; log in again", 400)

    def hub_user(self, code: str) -> str:
        """Exchange ``code``, identify the user; the user's name if they may use the
        dashboard, else :class:`LoginRefused`."""
        s = self.settings
        hub = s.hub_url.rstrip("/")
        try:
            with httpx.Client(timeout=s.hub_timeout, transport=self.transport) as client:
                answer = client.post(
                    f"{hub}/hub/api/oauth2/token",
                    data={
                        "client_id": s.hub_oauth_client_id,
                        "client_secret": s.hub_token,
                        "grant_type": "authorization_code",
                        "code": code,
                        "redirect_uri": self.redirect_uri,
                    },
                )
                if answer.status_code != 200:
                    log.warning("hub refused the OAuth code: HTTP %s", answer.status_code)
                    raise LoginRefused("JupyterHub refused the login code; log in again", 400)
                access = answer.json().get("access_token", "")
                who = client.get(
                    f"{hub}/hub/api/user", headers={"Authorization": f"token {access}"}
                )
                if who.status_code != 200:
                    raise LoginRefused("JupyterHub did not say who you are", 502)
                name = str(who.json().get("name", ""))
                model = client.get(
                    f"{hub}/hub/api/users/{quote(name, safe='')}",
                    headers={"Authorization": f"token {s.hub_token}"},
                )
        except httpx.HTTPError as exc:
            log.warning("hub login: %s", type(exc).__name__)
            raise LoginRefused("JupyterHub cannot be reached; try again", 502) from None
        if model.status_code != 200:
            log.warning("hub login: reading user %r: HTTP %s", name, model.status_code)
            raise LoginRefused("JupyterHub did not say whether you are an admin", 502)
        data = model.json()
        groups = data.get("groups") or []
        if data.get("admin") or (s.dashboard_admin_group and s.dashboard_admin_group in groups):
            return name
        log.info("dashboard login refused for hub user %r: not an admin", name)
        who_is = f"you are signed in to JupyterHub as {name}"
        raise LoginRefused(f"{who_is}, who is not a hub admin", 403)
