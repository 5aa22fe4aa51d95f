"""Passwords: generated from the OS CSPRNG, stored only as salted scrypt hashes.

Used by the lifecycle (a new password per request), the ``directory`` accounts (the hash
is the only copy the backend keeps) and the registry (its login users).  A hash is
``scrypt$<n>$<r>$<p>$<salt hex>$<digest hex>``: the cost travels with it, so the cost can
change without invalidating stored hashes; verification is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string

ALPHABET = string.ascii_letters + string.digits

#: Default scrypt cost (~40 ms here), for passwords people choose.
STRONG_N = 2**14
#: Cost for generated passwords: 12+ CSPRNG characters are over 70 bits, so ~10 ms keeps
#: a CREATE fast without weakening them.
GENERATED_N = 2**12
_R, _P = 8, 1


def generate(length: int) -> str:
    """A fresh password of ``[A-Za-z0-9]`` (upstream's alphabet) from the OS CSPRNG."""
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


def hash_password(password: str, *, n: int = STRONG_N) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=_R, p=_P, dklen=32)
    return f"scrypt${n}${_R}${_P}${salt.hex()}${digest.hex()}"


def password_matches(password: str, stored: str) -> bool:
    """Whether ``password`` matches the ``stored`` hash (False for a malformed hash)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = bytes.fromhex(digest)
        computed = hashlib.scrypt(
            password.encode(),
            salt=bytes.fromhex(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected),
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(computed, expected)
