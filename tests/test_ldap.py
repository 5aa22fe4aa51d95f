"""LDAP password changes against a real OpenLDAP slapd (fixture ``slapd``)."""

from __future__ import annotations

import logging

import pytest

from tests.plugins.paths import get_free_port
from wod.errors import Permanent, Transient
from wod.services.ldap import Ldap
from wod.settings import Settings


def make(slapd, **overrides) -> Ldap:
    return Ldap(Settings(**slapd.settings(**overrides)))


@pytest.mark.slapd
def test_password_replaced_then_student_binds_with_it(slapd, caplog):
    ldap = make(slapd)
    assert ldap.verify_password("student1", "initial-student1")
    caplog.set_level(logging.DEBUG)
    ldap.set_password("student1", "N3wPassw0rd")
    assert ldap.verify_password("student1", "N3wPassw0rd")
    assert not ldap.verify_password("student1", "initial-student1")
    assert "N3wPassw0rd" not in caplog.text


@pytest.mark.slapd
def test_password_is_stored_hashed(slapd):
    from ldap3 import Connection, Server

    make(slapd).set_password("student2", "Hidden123")
    with Connection(
        Server(slapd.host, port=slapd.port), slapd.root_dn, slapd.root_password, auto_bind=True
    ) as conn:
        conn.search(
            f"uid=student2,ou=People,{slapd.suffix}", "(objectClass=*)", attributes=["userPassword"]
        )
        stored = conn.entries[0].userPassword.value
    stored = stored.decode() if isinstance(stored, bytes) else stored
    assert stored.startswith("{SSHA}")
    assert "Hidden123" not in stored


@pytest.mark.slapd
def test_setting_twice_leaves_the_last_password(slapd):
    ldap = make(slapd)
    ldap.set_password("student3", "first111")
    ldap.set_password("student3", "second22")
    assert ldap.verify_password("student3", "second22")
    assert not ldap.verify_password("student3", "first111")


@pytest.mark.slapd
def test_wrong_bind_password_is_permanent(slapd):
    with pytest.raises(Permanent) as err:
        make(slapd, ldap_password="not-the-password").set_password("student1", "x1234567")
    assert "invalid credentials" in err.value.reason
    assert slapd.root_dn in err.value.reason


@pytest.mark.slapd
def test_missing_entry_is_permanent(slapd):
    with pytest.raises(Permanent) as err:
        make(slapd).set_password("student99", "x1234567")
    assert f"no entry uid=student99,ou=People,{slapd.suffix}" in err.value.reason


def test_server_down_is_transient():
    settings = Settings(
        ldap_host="127.0.0.1", ldap_port=get_free_port(), ldap_password="x", ldap_timeout=2.0
    )
    with pytest.raises(Transient) as err:
        Ldap(settings).set_password("student1", "x1234567")
    assert "unreachable" in err.value.reason


def test_no_host_configured_is_permanent():
    with pytest.raises(Permanent, match="ldap_host is not set"):
        Ldap(Settings()).set_password("student1", "x1234567")


@pytest.mark.slapd
def test_starttls_with_trusted_ca(slapd):
    ldap = make(slapd, ldap_tls="starttls", ldap_ca_file=slapd.ca_file)
    ldap.set_password("student1", "OverStartTls1")
    assert ldap.verify_password("student1", "OverStartTls1")


@pytest.mark.slapd
def test_ldaps_with_trusted_ca(slapd):
    ldap = make(slapd, ldap_tls="ldaps", ldap_port=slapd.ldaps_port, ldap_ca_file=slapd.ca_file)
    ldap.set_password("student1", "OverLdaps1")
    assert ldap.verify_password("student1", "OverLdaps1")


@pytest.mark.slapd
def test_ldaps_with_untrusted_certificate_is_permanent(slapd):
    ldap = make(slapd, ldap_tls="ldaps", ldap_port=slapd.ldaps_port)
    with pytest.raises(Permanent, match="certificate"):
        ldap.set_password("student1", "x1234567")


@pytest.mark.slapd
def test_starttls_with_untrusted_certificate_is_permanent(slapd):
    # The failed handshake leaves a broken socket: closing it must not hide the reason.
    ldap = make(slapd, ldap_tls="starttls")
    with pytest.raises(Permanent, match="StartTLS failed.*certificate"):
        ldap.set_password("student1", "x1234567")
