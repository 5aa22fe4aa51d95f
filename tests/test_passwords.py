"""Passwords: CSPRNG generation and salted scrypt hashes (the only copy kept)."""

from __future__ import annotations

import string

from wod.passwords import GENERATED_N, generate, hash_password, password_matches


def test_generated_passwords_are_long_random_and_alphanumeric():
    seen = {generate(12) for _ in range(200)}
    assert len(seen) == 200
    assert all(len(p) == 12 and set(p) <= set(string.ascii_letters + string.digits) for p in seen)


def test_hash_verifies_only_the_right_password_and_never_holds_it():
    stored = hash_password("s3cret-Pass", n=GENERATED_N)
    assert "s3cret" not in stored
    assert password_matches("s3cret-Pass", stored)
    assert not password_matches("s3cret-pass", stored)
    assert hash_password("s3cret-Pass") != hash_password("s3cret-Pass")  # salted


def test_malformed_hashes_never_match():
    for stored in ("", "plain", "scrypt$x$8$1$00$00", "bcrypt$1$2$3$4$5", "scrypt$16$8$1$zz$zz"):
        assert not password_matches("anything", stored)
