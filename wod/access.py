"""Who may call the backend's ``/api`` routes: one guard for the intake and the admin API.

A client must come from ``allowed_clients`` (else 403) and send
``Authorization: Bearer <http_token>`` (else 401).  Without an ``http_token`` only a
``demo`` install lets clients in; otherwise every ``/api`` route answers 401.
:func:`make_client_check` is the address check alone (``/metrics``).  The token is
compared in constant time and never logged.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import Callable

from fastapi import HTTPException, Request

from wod.settings import Settings

log = logging.getLogger(__name__)


def make_guard(settings: Settings) -> Callable[[Request], None]:
    """A FastAPI dependency enforcing ``allowed_clients`` and ``http_token``."""
    check_client = make_client_check(settings)
    token = settings.http_token

    def guard(request: Request) -> None:
        check_client(request)
        if not token and not settings.demo:
            # Production without a token: nobody gets in (wod serve refuses to start so,
            # this is the second line of defence for apps built otherwise).
            raise HTTPException(
                401,
                "this backend has no http_token: set one (or demo: true on a demo install)",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if token:
            given = request.headers.get("authorization", "")
            scheme, _, value = given.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                value.strip().encode(), token.encode()
            ):
                raise HTTPException(
                    401, "missing or wrong token", headers={"WWW-Authenticate": "Bearer"}
                )

    return guard


def make_client_check(settings: Settings) -> Callable[[Request], None]:
    """A FastAPI dependency enforcing ``allowed_clients`` only (403 otherwise)."""
    networks = [ipaddress.ip_network(n, strict=False) for n in settings.allowed_clients]

    def check(request: Request) -> None:
        host = request.client.host if request.client else ""
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            address = None
        if address is None or not any(address in net for net in networks):
            log.warning("HTTP client %s refused: not in allowed_clients", host or "?")
            raise HTTPException(403, "client address not allowed")

    return check
