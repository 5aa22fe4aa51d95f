"""Appliances (SPEC 3.1 step 8) and LDAP (SPEC 3.1 step 5) end to end through the api-db's
raw SMTP block: ``WODRTARGET`` in every hook's environment, the appliance address errors,
and student passwords on a real OpenLDAP ``slapd``."""

from __future__ import annotations

import pytest

from tests.plugins.lifecycle import read_env, record_hook
from tests.plugins.paths import get_free_port
from wod.registry.models import Workshop
from wod.services.ldap import Ldap

S101 = "WKSHP-Sample101"  # IP-WKSHP-Sample101: 192.0.2.11 (public variables)
S301 = "WKSHP-Sample301"  # ldap, multiappliance; IP-WKSHP-Sample301: 192.0.2.30


def set_flags(registry, notebook, **flags):
    registry.set_fields(Workshop, registry.workshop_by_notebook(notebook)["id"], **flags)


def private_variables(install, workshop, text):
    folder = install.root / "private" / "ansible" / install.settings.inventory_group
    (folder / f"variables_{workshop}.yml").write_text(text)


def third_seat(backend, workshop):
    """Register three participants; return the third's (customer, stdid)."""
    seats = [backend.customer(workshop, email=f"p{n}@example.com") for n in range(3)]
    return seats[-1]


def test_mono_appliance_target_reaches_every_hook(install_factory, backend_factory, tmp_path):
    install = install_factory()
    hooks = tmp_path / "hooks"
    for kind in ("create", "post-copy", "cleanup"):
        record_hook(install, kind, S101, hooks)
    set_flags(install.registry, S101, monoappliance=True)
    backend = backend_factory(install)
    cust, stdid = third_seat(backend, S101)

    assert backend.run(f"CREATE {stdid} {cust['id']} {cust['email']}", S101).status == "done"
    assert backend.run(f"CLEANUP {stdid} {cust['id']}", S101).status == "done"

    for kind in ("create", "post-copy", "cleanup"):
        env = read_env(hooks / f"{kind}-{stdid}.env")
        assert env["WODRTARGET"] == "192.0.2.11", kind  # the same for every student
        assert env["stdid"] == str(stdid)
    # The api-db password and the hub token are never in a hook's environment.
    env = read_env(hooks / f"create-{stdid}.env")
    assert install.settings.apidb_password not in env.values()


def test_multi_appliance_target_is_per_student_and_private_variables_win(
    install_factory, backend_factory, tmp_path
):
    install = install_factory()
    hooks = tmp_path / "hooks"
    record_hook(install, "create", S101, hooks)
    private_variables(install, S101, 'IP-WKSHP-Sample101: "198.51.100.10"\n')
    set_flags(install.registry, S101, multiappliance=True)
    backend = backend_factory(install)
    cust, stdid = third_seat(backend, S101)
    assert stdid == 3

    job = backend.run(f"CREATE {stdid} {cust['id']} {cust['email']}", S101)

    assert job.status == "done", (job.reason, job.output)
    # base + (stdid - range min) = 198.51.100.10 + (3 - 1)
    assert read_env(hooks / "create-3.env")["WODRTARGET"] == "198.51.100.12"


def test_appliance_address_is_templated_like_every_variable(
    install_factory, backend_factory, tmp_path
):
    install = install_factory()
    hooks = tmp_path / "hooks"
    record_hook(install, "create", S101, hooks)
    private_variables(
        install, S101, 'APPLIANCE_NET: "198.51.100"\nIP-WKSHP-Sample101: "{{ APPLIANCE_NET }}.10"\n'
    )
    set_flags(install.registry, S101, multiappliance=True)
    backend = backend_factory(install)
    cust, stdid = third_seat(backend, S101)

    job = backend.run(f"CREATE {stdid} {cust['id']} {cust['email']}", S101)

    assert job.status == "done", (job.reason, job.output)
    assert read_env(hooks / f"create-{stdid}.env")["WODRTARGET"] == "198.51.100.12"


@pytest.mark.parametrize(
    "base, reason",
    [
        (
            "x.y.z.t",
            "variable IP-WKSHP-Sample101 is still the placeholder x.y.z.t: set the "
            "appliance address",
        ),
        (
            "192.0.2.254",
            "appliance address for student 3 overflows: 192.0.2.254 + 2 is past 192.0.2.255",
        ),
    ],
)
def test_bad_appliance_address_fails_the_create_clearly(
    install_factory, backend_factory, base, reason
):
    install = install_factory()
    private_variables(install, S101, f'IP-WKSHP-Sample101: "{base}"\n')
    set_flags(install.registry, S101, multiappliance=True)
    backend = backend_factory(install)
    cust, stdid = third_seat(backend, S101)

    job = backend.run(f"CREATE {stdid} {cust['id']} {cust['email']}", S101)

    assert job.status == "failed"
    assert job.reason == reason
    assert job.attempts == 1
    assert not (install.home(stdid) / S101).exists()
    assert install.registry.customer(cust["id"])["active"] is False


# -- LDAP against a real slapd -------------------------------------------------------------
@pytest.mark.slapd
def test_ldap_workshop_student_binds_with_the_password_the_registry_holds(
    install_factory, backend_factory, slapd, tmp_path
):
    install = install_factory(**slapd.settings())
    hooks = tmp_path / "hooks"
    record_hook(install, "create", S301, hooks)
    backend = backend_factory(install)
    ldap = Ldap(install.settings)
    cust, stdid = third_seat(backend, S301)
    account = install.settings.account(stdid)
    assert account in slapd.students

    job = backend.run(f"CREATE {stdid} {cust['id']} {cust['email']}", S301)

    assert job.status == "done", (job.reason, job.output)
    password = backend.student(stdid)["password"]
    assert ldap.verify_password(account, password)
    assert install.accounts.verify_password(stdid, password)
    # ldap: true exposes the password to templates as PASSSTU.
    assert password in (install.home(stdid) / S301 / "0-ReadMeFirst.ipynb").read_text()
    # multi-appliance: 192.0.2.30 + (3 - 1)
    assert read_env(hooks / f"create-{stdid}.env")["WODRTARGET"] == "192.0.2.32"

    cleanup = backend.run(f"CLEANUP {stdid} {cust['id']}", S301)
    assert cleanup.status == "done", (cleanup.reason, cleanup.output)
    new_password = backend.student(stdid)["password"]
    assert ldap.verify_password(account, new_password)
    assert not ldap.verify_password(account, password)


@pytest.mark.slapd
def test_wrong_ldap_bind_password_fails_the_job_at_once(install_factory, backend_factory, slapd):
    install = install_factory(**slapd.settings(ldap_password="not-the-manager-password"))
    backend = backend_factory(install)
    cust, stdid = backend.customer(S301)

    job = backend.run(f"CREATE {stdid} {cust['id']} {cust['email']}", S301)

    assert job.status == "failed"
    assert job.attempts == 1  # not retried: retrying cannot fix a wrong password
    assert job.reason == (
        f"LDAP server {slapd.host}:{slapd.port}: bind as {slapd.root_dn} refused: "
        "invalid credentials"
    )
    assert "not-the-manager-password" not in job.reason + job.output
    assert install.registry.customer(cust["id"])["active"] is False


def test_ldap_down_is_retried_then_fails_after_the_attempts(install_factory, backend_factory):
    port = get_free_port()  # nothing listens there
    install = install_factory(
        ldap_host="127.0.0.1",
        ldap_port=port,
        ldap_password="x",
        ldap_domain="dc=wod,dc=test",
        ldap_timeout=2.0,
        retry_max_attempts=3,
    )
    backend = backend_factory(install)
    cust, stdid = backend.customer(S301)

    job = backend.run(f"CREATE {stdid} {cust['id']} {cust['email']}", S301, timeout=30)

    assert job.status == "failed"
    assert job.attempts == 3
    assert job.reason.startswith(
        f"gave up after 3 attempts: LDAP server 127.0.0.1:{port} unreachable"
    )
    retried = [s for s in job.steps if s.name == "password"]
    assert [s.status for s in retried] == ["retry", "retry", "retry"]
    assert install.registry.customer(cust["id"])["active"] is False
