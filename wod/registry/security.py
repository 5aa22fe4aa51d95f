"""Passwords and access tokens of the registry.

Passwords are stored as ``scrypt$<n>$<r>$<p>$<salt hex>$<hash hex>`` (hashlib.scrypt, a
random 16-byte salt); verification is constant-time.  Access tokens are HS256 JWTs carrying
the user id, like the api-db's, and expire after ``ttl`` seconds (180 s upstream).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

import jwt

_N, _R, _P = 2**14, 8, 1


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return f"scrypt${_N}${_R}${_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        computed = hashlib.scrypt(
            password.encode(),
            salt=bytes.fromhex(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(bytes.fromhex(digest)),
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(computed.hex(), digest)


def new_secret() -> str:
    """A random signing secret (used when none is configured)."""
    return secrets.token_urlsafe(32)


def issue_token(user_id: int, secret: str, ttl: float) -> str:
    now = time.time()
    return jwt.encode({"id": user_id, "iat": int(now), "exp": now + ttl}, secret, "HS256")


def token_user(token: str, secret: str) -> int | None:
    """The user id of a valid, unexpired token; ``None`` otherwise."""
    try:
        claims = jwt.decode(token, secret, algorithms=["HS256"])
    except jwt.PyJWTError:
        return None
    user_id = claims.get("id")
    return user_id if isinstance(user_id, int) else None
