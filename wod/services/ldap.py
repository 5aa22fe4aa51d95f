"""LDAP: the student's password for workshops with ``ldap: true`` (SPEC 3.1 step 5).

:meth:`Ldap.set_password` replaces ``userPassword`` of ``uid=<account>,ou=People,<domain>``
binding as ``settings.bind_dn``.  The value stored is a salted SHA-1 (``{SSHA}``) hash,
which OpenLDAP verifies on bind; the clear password is never logged.  Transport security
follows ``ldap_tls`` (``none``, ``starttls``, ``ldaps``; the server certificate is checked
against ``ldap_ca_file`` or the system store).

Errors are translated here: a server that cannot be reached, drops the connection or is
busy is :class:`Transient` (the job is retried); refused credentials, a missing entry,
missing rights or a TLS certificate problem are :class:`Permanent` with a clear reason.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import math
import secrets
import ssl
from typing import Any

from ldap3 import MODIFY_REPLACE, NONE, Connection, Server, Tls
from ldap3.core import exceptions as ldap_exc
from ldap3.utils.dn import escape_rdn

from wod.errors import Permanent, Transient
from wod.settings import Settings

log = logging.getLogger(__name__)

# LDAP result codes (RFC 4511) and how we treat them.
NO_SUCH_OBJECT = 32
INVALID_CREDENTIALS = 49
TRANSIENT_CODES = {51, 52, 80}  # busy, unavailable, other (server-side fault)


def ssha(password: str) -> str:
    """``{SSHA}`` hash of ``password`` (salted SHA-1, as ``slappasswd`` makes by default)."""
    salt = secrets.token_bytes(8)
    digest = hashlib.sha1(password.encode() + salt).digest()
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


class Ldap:
    """Password changes of student entries on one LDAP server."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @classmethod
    def from_settings(cls, settings: Settings) -> Ldap:
        return cls(settings)

    def user_dn(self, account: str) -> str:
        return f"uid={escape_rdn(account)},ou=People,{self.settings.ldap_domain}"

    def _server(self) -> Server:
        s = self.settings
        if not s.ldap_host:
            raise Permanent("the workshop uses LDAP but ldap_host is not set")
        tls = None
        if s.ldap_tls != "none":
            ca = s.ldap_ca_file
            tls = Tls(
                validate=ssl.CERT_REQUIRED,
                ca_certs_file=str(ca) if ca else None,
                version=ssl.PROTOCOL_TLS_CLIENT,
            )
        return Server(
            s.ldap_host,
            port=s.ldap_port,
            use_ssl=s.ldap_tls == "ldaps",
            tls=tls,
            get_info=NONE,
            connect_timeout=s.ldap_timeout,
        )

    def _where(self) -> str:
        s = self.settings
        return f"LDAP server {s.ldap_host}:{s.ldap_port}"

    def _bind(self, dn: str, password: str) -> Connection:
        """An open connection bound as ``dn``, or Transient/Permanent."""
        conn = Connection(
            self._server(),
            user=dn,
            password=password,
            receive_timeout=max(1, math.ceil(self.settings.ldap_timeout)),
            raise_exceptions=False,
        )
        try:
            conn.open()
            if self.settings.ldap_tls == "starttls" and not conn.start_tls():
                raise Permanent(f"{self._where()}: StartTLS refused: {_describe(conn.result)}")
            if not conn.bind():
                code = (conn.result or {}).get("result")
                if code == INVALID_CREDENTIALS:
                    raise Permanent(f"{self._where()}: bind as {dn} refused: invalid credentials")
                self._raise(conn.result, f"bind as {dn}")
        except ldap_exc.LDAPStartTLSError as exc:
            _close(conn)
            raise Permanent(f"{self._where()}: StartTLS failed: {exc}") from None
        except ldap_exc.LDAPCommunicationError as exc:
            _close(conn)
            if "certificate" in str(exc).lower():
                raise Permanent(f"{self._where()}: TLS certificate rejected: {exc}") from None
            raise Transient(f"{self._where()} unreachable: {exc}") from None
        except ldap_exc.LDAPException as exc:
            _close(conn)
            raise Transient(f"{self._where()}: {exc}") from None
        except (Permanent, Transient):
            _close(conn)
            raise
        return conn

    def _raise(self, result: dict[str, Any] | None, action: str) -> None:
        code = (result or {}).get("result")
        message = f"{self._where()}: {action} failed: {_describe(result)}"
        if code in TRANSIENT_CODES:
            raise Transient(message)
        raise Permanent(message)

    def set_password(self, account: str, password: str) -> None:
        """Replace ``userPassword`` of the student entry of ``account``."""
        dn = self.user_dn(account)
        conn = self._bind(self.settings.bind_dn, self.settings.ldap_password)
        try:
            ok = conn.modify(dn, {"userPassword": [(MODIFY_REPLACE, [ssha(password)])]})
            if not ok:
                code = (conn.result or {}).get("result")
                if code == NO_SUCH_OBJECT:
                    raise Permanent(f"{self._where()}: no entry {dn}")
                self._raise(conn.result, f"password change of {dn}")
        except ldap_exc.LDAPCommunicationError as exc:
            raise Transient(f"{self._where()} lost during password change: {exc}") from None
        finally:
            _close(conn)
        log.info("LDAP password of %s replaced", dn)

    def check_bind(self) -> None:
        """Bind as ``bind_dn`` and unbind (``wod check``); Transient/Permanent on failure."""
        _close(self._bind(self.settings.bind_dn, self.settings.ldap_password))

    def verify_password(self, account: str, password: str) -> bool:
        """Whether ``account`` can bind with ``password`` (for checks and tests)."""
        try:
            conn = self._bind(self.user_dn(account), password)
        except Permanent as exc:
            if "invalid credentials" in exc.reason:
                return False
            raise
        _close(conn)
        return True


def _close(conn: Connection) -> None:
    """Unbind and close; a connection the server or a failed TLS handshake already broke
    raises on unbind, which must not hide the error being reported."""
    try:
        conn.unbind()
    except ldap_exc.LDAPException:
        pass


def _describe(result: dict[str, Any] | None) -> str:
    if not result:
        return "no answer"
    text = str(result.get("description") or result.get("result"))
    if result.get("message"):
        text += f" ({result['message']})"
    return text
