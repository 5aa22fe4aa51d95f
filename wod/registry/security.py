"""Passwords and access tokens of the registry.

Passwords are stored as salted scrypt hashes (:mod:`wod.passwords`).  Access tokens are
HS256 JWTs carrying the user id, like the api-db's, and expire after ``ttl`` seconds (180 s
upstream).
"""

from __future__ import annotations

import secrets
import time

import jwt

from wod.passwords import hash_password, password_matches

__all__ = ["hash_password", "verify_password", "new_secret", "issue_token", "token_user"]


def verify_password(password: str, stored: str) -> bool:
    return password_matches(password, stored)


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
