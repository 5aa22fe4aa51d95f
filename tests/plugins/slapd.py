"""Fixture plugin: ``slapd`` — one real OpenLDAP server per test session.

The Debian ``slapd`` binary is started by the tests with its own ``slapd.conf`` and mdb
database in a tmp dir, listening on free ports on 127.0.0.1: plain LDAP (also offering
StartTLS) and LDAPS, with a certificate from a throw-away CA.  Suffix ``dc=wod,dc=test``,
root DN ``cn=Manager,dc=wod,dc=test``, seeded with ``ou=People`` and
``uid=student1..student3`` (initial password ``initial-<account>``).  Stopped with SIGTERM
at the end of the session.  Tests using it carry the ``slapd`` marker.
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.plugins.paths import get_free_port

SLAPD = Path("/usr/sbin/slapd")
SLAPADD = Path("/usr/sbin/slapadd")
SCHEMAS = Path("/etc/ldap/schema")
MODULES = Path("/usr/lib/ldap")
SUFFIX = "dc=wod,dc=test"
ROOT_DN = f"cn=Manager,{SUFFIX}"
ROOT_PASSWORD = "manager-secret"
STUDENTS = ("student1", "student2", "student3")


@dataclass
class Slapd:
    host: str
    port: int
    ldaps_port: int
    ca_file: Path
    suffix: str = SUFFIX
    root_dn: str = ROOT_DN
    root_password: str = ROOT_PASSWORD
    students: tuple[str, ...] = STUDENTS
    process: subprocess.Popen | None = field(default=None, repr=False)

    def settings(self, **overrides: object) -> dict[str, object]:
        """Settings keywords pointing the backend at this server."""
        values: dict[str, object] = {
            "ldap_host": self.host,
            "ldap_port": self.port,
            "ldap_domain": self.suffix,
            "ldap_password": self.root_password,
            "ldap_timeout": 5.0,
        }
        values.update(overrides)
        return values


def _write_certificates(folder: Path) -> Path:
    """A CA and a server certificate for 127.0.0.1/localhost; returns the CA file."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "wod test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    (folder / "ca.pem").write_bytes(ca.public_bytes(pem))
    (folder / "server.pem").write_bytes(cert.public_bytes(pem))
    (folder / "server.key").write_bytes(
        key.private_bytes(
            pem, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        )
    )
    (folder / "server.key").chmod(0o600)
    return folder / "ca.pem"


def _config(folder: Path) -> str:
    schemas = "\n".join(
        f"include {SCHEMAS / name}.schema" for name in ("core", "cosine", "nis", "inetorgperson")
    )
    return f"""{schemas}
pidfile {folder}/slapd.pid
argsfile {folder}/slapd.args
modulepath {MODULES}
moduleload back_mdb
TLSCACertificateFile {folder}/ca.pem
TLSCertificateFile {folder}/server.pem
TLSCertificateKeyFile {folder}/server.key

database mdb
maxsize 10485760
suffix "{SUFFIX}"
rootdn "{ROOT_DN}"
rootpw {ROOT_PASSWORD}
directory {folder}/db
access to attrs=userPassword by self write by anonymous auth by * none
access to * by * read
"""


def _seed() -> str:
    entries = [
        f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\no: wod test\ndc: wod\n",
        f"dn: ou=People,{SUFFIX}\nobjectClass: organizationalUnit\nou: People\n",
    ]
    for account in STUDENTS:
        entries.append(
            f"dn: uid={account},ou=People,{SUFFIX}\nobjectClass: inetOrgPerson\n"
            f"uid: {account}\ncn: {account}\nsn: {account}\n"
            f"userPassword: initial-{account}\n"
        )
    return "\n".join(entries)


def _wait_ready(proc: subprocess.Popen, port: int, log: Path, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"slapd exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"slapd not listening on {port} after {timeout} s:\n{log.read_text()}")


@pytest.fixture(scope="session")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    """A running OpenLDAP server (see the module docstring)."""
    if not SLAPD.exists() or not SLAPADD.exists():
        pytest.skip("slapd not installed (scripts/install-test-deps.sh installs it)")
    folder = tmp_path_factory.mktemp("slapd")
    (folder / "db").mkdir()
    ca_file = _write_certificates(folder)
    conf = folder / "slapd.conf"
    conf.write_text(_config(folder))
    seed = folder / "seed.ldif"
    seed.write_text(_seed())
    subprocess.run([SLAPADD, "-f", conf, "-l", seed], check=True, capture_output=True, timeout=30)
    port, ldaps_port = get_free_port(), get_free_port()
    log = folder / "slapd.log"
    urls = f"ldap://127.0.0.1:{port}/ ldaps://127.0.0.1:{ldaps_port}/"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [SLAPD, "-f", conf, "-h", urls, "-d", "0"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_ready(proc, port, log)
        _wait_ready(proc, ldaps_port, log)
        yield Slapd("127.0.0.1", port, ldaps_port, ca_file, process=proc)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
