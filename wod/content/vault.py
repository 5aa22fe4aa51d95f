"""Ansible-vault files (format 1.1 and 1.2, AES256), read and written with ``cryptography``.

Layout: a header ``$ANSIBLE_VAULT;1.1;AES256`` (1.2 adds a vault id label), then the hex of
``hex(salt) \\n hex(hmac) \\n hex(ciphertext)`` wrapped at 80 columns.  Keys come from
PBKDF2-HMAC-SHA256 (10000 iterations, 32-byte salt) giving 32 bytes of AES key, 32 bytes of
HMAC key and a 16-byte counter IV; the plaintext is PKCS7-padded and encrypted with AES-CTR;
the HMAC-SHA256 of the ciphertext is checked (in constant time) before decrypting.  Both whole
files and inline ``!vault |`` values in YAML use this format.
"""

from __future__ import annotations

import hmac
import os
from binascii import hexlify, unhexlify
from pathlib import Path

from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from wod.errors import Permanent

HEADER = "$ANSIBLE_VAULT"
ITERATIONS = 10000


class VaultError(Permanent):
    """A vault that cannot be opened (wrong password, damaged data, unknown format)."""


def is_encrypted(data: bytes | str) -> bool:
    text = data.decode("ascii", errors="ignore") if isinstance(data, bytes) else data
    return text.lstrip().startswith(HEADER + ";")


def _keys(password: bytes, salt: bytes) -> tuple[bytes, bytes, bytes]:
    kdf = PBKDF2HMAC(algorithm=hashes.SHA256(), length=80, salt=salt, iterations=ITERATIONS)
    derived = kdf.derive(password)
    return derived[:32], derived[32:64], derived[64:]


def _password(password: str | bytes) -> bytes:
    raw = password.encode("utf-8") if isinstance(password, str) else password
    return raw.strip()


def decrypt(data: bytes | str, password: str | bytes, *, source: str = "vault") -> bytes:
    """Plaintext of vault ``data``; :class:`VaultError` naming ``source`` on any failure."""
    try:
        text = data.decode("ascii", errors="strict") if isinstance(data, bytes) else data
    except UnicodeDecodeError:
        raise VaultError(f"{source}: damaged vault data (bytes that are not ASCII)") from None
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    if not lines or not lines[0].startswith(HEADER + ";"):
        raise VaultError(f"{source}: not an Ansible-vault file")
    header = lines[0].split(";")
    if len(header) < 3 or header[1] not in ("1.1", "1.2") or header[2].strip() != "AES256":
        raise VaultError(f"{source}: unsupported vault format {lines[0]!r}")
    try:
        body = unhexlify("".join(lines[1:])).decode("ascii")
        salt_hex, mac_hex, cipher_hex = body.split("\n", 2)
        salt, mac, ciphertext = (
            unhexlify(salt_hex),
            unhexlify(mac_hex),
            unhexlify(cipher_hex.strip()),
        )
    except (ValueError, UnicodeDecodeError):
        raise VaultError(f"{source}: damaged vault data") from None
    key, hmac_key, iv = _keys(_password(password), salt)
    check = hmac.new(hmac_key, ciphertext, "sha256").digest()
    if not hmac.compare_digest(check, mac):
        raise VaultError(f"{source}: wrong vault password (or the file was altered)")
    decryptor = Cipher(algorithms.AES(key), modes.CTR(iv)).decryptor()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        raise VaultError(f"{source}: damaged vault data (padding)") from None


def encrypt(
    plaintext: bytes | str,
    password: str | bytes,
    *,
    vault_id: str | None = None,
    salt: bytes | None = None,
) -> str:
    """Vault text (1.1, or 1.2 with ``vault_id``) of ``plaintext``, ending with a newline."""
    data = plaintext.encode("utf-8") if isinstance(plaintext, str) else plaintext
    salt = salt or os.urandom(32)
    key, hmac_key, iv = _keys(_password(password), salt)
    padder = padding.PKCS7(128).padder()
    padded = padder.update(data) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor()
    ciphertext = encryptor.update(padded) + encryptor.finalize()
    mac = hmac.new(hmac_key, ciphertext, "sha256").digest()
    body = hexlify(b"\n".join([hexlify(salt), hexlify(mac), hexlify(ciphertext)])).decode()
    header = f"{HEADER};1.2;AES256;{vault_id}" if vault_id else f"{HEADER};1.1;AES256"
    rows = [body[i : i + 80] for i in range(0, len(body), 80)]
    return "\n".join([header, *rows]) + "\n"


def read_password_file(path: Path) -> bytes:
    """The vault password from ``path`` (surrounding whitespace removed)."""
    try:
        return path.read_bytes().strip()
    except OSError as exc:
        raise VaultError(f"vault password file {path}: {exc.strerror or exc}") from None
