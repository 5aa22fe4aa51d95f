"""Peer checks: the api-db (login, workshops here and there), JupyterHub (token and its
scopes, session revocation), LDAP (bind), the mail intake (configured, answering), and the
workshops of the catalog (each renders for a sample seat, as ``wod deploy --dry-run``).

Nothing here is fixed: a peer's configuration is the admin's.  A peer the settings do not
use (no hub, no LDAP) is skipped with the reason.
"""

from __future__ import annotations

import re
import socket

from wod.content.templating import TemplateFailure
from wod.errors import WodError
from wod.ops.check.base import (
    CheckResult,
    Host,
    check,
    fail,
    listing,
    ok,
    skipped,
    warn,
)
from wod.ops.content import SAMPLE_PASSWORD

#: scopes the hub token needs (SPEC 3.7); a scope also counts when the token holds one
#: that implies it
HUB_SCOPES = {
    "admin:servers": {"admin:servers"},
    "admin:users": {"admin:users"},
}
MAIL_TIMEOUT = 5.0


# -- api-db ------------------------------------------------------------------------------
@check("apidb", "peers")
def apidb(host: Host) -> CheckResult:
    s = host.settings
    try:
        host.apidb.login()
    except WodError as exc:
        return fail(
            f"login to {s.apidb_url} as {s.apidb_user}: {exc.reason}",
            "check apidb_url, apidb_user, apidb_password",
        )
    shops = host.apidb_workshops()
    if shops is None:
        return fail(f"GET {s.apidb_url}/workshops failed", "is the api-db up?")
    theirs = {str(w.get("notebook")) for w in shops if w.get("active") and w.get("notebook")}
    ours = set(host.content.catalog.names())
    # A challenge (CHLG-X) is served from the WKSHP-X folder.
    missing_here = sorted(n for n in theirs if "WKSHP-" + n.split("-", 1)[-1] not in ours)
    unknown_there = sorted(
        n for n in ours if n not in theirs and "CHLG-" + n.split("-", 1)[-1] not in theirs
    )
    if missing_here:
        return warn(
            f"logged in; active api-db workshops without a folder here: {listing(missing_here)}"
            + (
                f"; local workshops unknown to the api-db: {listing(unknown_there)}"
                if unknown_there
                else ""
            ),
            "add them to the notebooks trees (or they are served by another location)",
        )
    if unknown_there:
        return warn(
            f"logged in; local workshops unknown to the api-db: {listing(unknown_there)}",
            "register them in the api-db, or remove the folders",
        )
    return ok(f"logged in as {s.apidb_user}; {len(theirs)} active workshop(s), all present here")


# -- JupyterHub --------------------------------------------------------------------------
@check("hub-token", "peers")
def hub_token(host: Host) -> CheckResult:
    s = host.settings
    if not s.hub_url:
        return skipped("no hub (hub_url empty)")
    try:
        version = host.hub.info().get("version", "?")
        scopes = set(host.hub.token_scopes())
    except WodError as exc:
        return fail(f"{s.hub_url}: {exc.reason}", "check hub_url and hub_token")
    missing = [need for need, give in HUB_SCOPES.items() if not scopes & give]
    if missing:
        return fail(
            f"hub {version}: the token lacks {', '.join(missing)}",
            "give the service the scopes admin:servers and admin:users (load_roles)",
        )
    return ok(f"hub {version}; token has admin:servers and admin:users")


@check("hub-sessions", "peers")
def hub_sessions(host: Host) -> CheckResult:
    """A throw-away hub user's sessions are ended as a CLEANUP would.  A hub that takes no
    user without a system account (PAM) refuses it: the cycle then runs on a free seat
    (no job pending, not in use per the job history, no hub server); with none free only
    the token's right to delete users is checked, and the detail says so."""
    if not host.settings.hub_url:
        return skipped("no hub (hub_url empty)")
    probe = host.hub.probe_session_end()
    on = "a throw-away hub user"
    why_not = ""
    if probe.ok and probe.checked == "scopes":
        for n, account in _free_seats(host)[:SEAT_TRIES]:
            seat_probe = host.hub.probe_session_end(account)
            if seat_probe.checked == "busy":
                continue  # a server started since the history was read: not this one
            probe, on = seat_probe, f"free seat {n} ({account})"
            break
        else:
            why_not = "no seat is free for the full cycle (each has a job pending, is in use "
            why_not += "or runs a hub server)"
    if not probe.ok:
        return fail(listing(list(probe.problems), 2), "see docs/jupyterhub.md")
    if probe.checked == "cycle":
        return ok(
            f"hub {probe.version}: CLEANUP can void a participant's login (checked: cycle on {on})"
        )
    taker = probe.authenticator.rsplit(".", 1)[-1] or "the authenticator"
    return ok(
        f"hub {probe.version}: the token may delete users (checked: scopes; {taker} takes no "
        f"throw-away hub user and {why_not})"
    )


#: free seats tried at most (each found running a hub server is skipped)
SEAT_TRIES = 5
#: seat states (wod/ops/seats.py) whose participant is gone: a probe there ends nobody's work
FREE_STATES = ("free", "cleaned")


def _free_seats(host: Host) -> list[tuple[int, str]]:
    """Seats whose hub user a probe may delete and re-create: account present, no job
    queued or running, not in use per the job history; never-used seats first, the
    highest numbers first (the api-db hands out the lowest free seat).  The probe itself
    leaves a hub user with a running server alone."""
    from wod.ops.seats import Seat, seats

    s = host.settings
    if s.db_path.exists():
        table = seats(s, host.queue, host.accounts)
    else:  # no job has ever run: every seat is free
        table = [
            Seat(n, s.account(n), host.accounts.exists(n))
            for n in range(s.user_min, s.user_max + 1)
        ]
    free = [seat for seat in table if seat.home and seat.state in FREE_STATES]
    free.sort(key=lambda seat: (FREE_STATES.index(seat.state), -seat.stdid))
    # A seat whose hub user runs a server anyway is left alone by the probe ("busy").
    return [(seat.stdid, seat.account.lower()) for seat in free]


# -- LDAP --------------------------------------------------------------------------------
@check("ldap", "peers")
def ldap(host: Host) -> CheckResult:
    s = host.settings
    if not s.ldap_host:
        ldap_shops = [str(w.get("notebook")) for w in host.apidb_workshops() or [] if w.get("ldap")]
        if ldap_shops:
            return fail(
                f"ldap_host unset but workshops use LDAP: {listing(ldap_shops)}",
                "set ldap_host, ldap_domain, ldap_password",
            )
        return skipped("no LDAP server (ldap_host unset)")
    from wod.services.ldap import Ldap

    try:
        Ldap.from_settings(s).check_bind()
    except WodError as exc:
        return fail(exc.reason, "check ldap_host, ldap_port, ldap_bind_dn, ldap_password")
    return ok(f"bound to {s.ldap_host}:{s.ldap_port} as {s.bind_dn}")


# -- mail intake -------------------------------------------------------------------------
def postconf(text: str) -> dict[str, str]:
    """``name = value`` settings of a Postfix ``main.cf`` (continuation lines joined)."""
    values: dict[str, str] = {}
    name = None
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line[0].isspace() and name:
            values[name] += " " + line.strip()
            continue
        key, sep, value = line.partition("=")
        if sep:
            name = key.strip()
            values[name] = value.strip()
    return values


@check("mail-intake", "mail")
def mail_intake(host: Host) -> CheckResult:
    s = host.settings
    main_cf = host.path("/etc/postfix/main.cf")
    if not main_cf.is_file():
        return ok(f"built-in SMTP listener on {s.smtp_host}:{s.smtp_port} (no Postfix)")
    values = postconf(main_cf.read_text(errors="replace"))
    problems = []
    command = values.get("mailbox_command", "")
    if not re.search(r"\bwod\b.*\bintake\b", command):
        problems.append("mailbox_command does not run `wod intake`")
    for key in ("myhostname", "inet_interfaces", "mydestination"):
        if not values.get(key):
            problems.append(f"{key} unset")
    master = host.path("/etc/postfix/master.cf")
    port = str(s.smtp_port)
    if master.is_file() and s.smtp_port != 25:
        listens = any(
            line.split()[0].endswith(port)
            for line in master.read_text(errors="replace").splitlines()
            if line.strip() and not line[0].isspace() and not line.startswith("#")
        )
        if not listens:
            problems.append(f"master.cf has no smtpd on port {port}")
    if problems:
        return fail(f"Postfix: {listing(problems)}", "see contrib/postfix.cf")
    return ok(f"Postfix hands mail to wod intake ({values.get('myhostname')})")


@check("mail-reachable", "mail")
def mail_reachable(host: Host) -> CheckResult:
    s = host.settings
    address = "127.0.0.1" if s.smtp_host in ("0.0.0.0", "", "*") else s.smtp_host
    address = "::1" if address == "::" else address
    port = s.smtp_port
    try:
        with socket.create_connection((address, port), timeout=MAIL_TIMEOUT) as sock:
            sock.settimeout(MAIL_TIMEOUT)
            greeting = sock.recv(512)
            sock.sendall(b"QUIT\r\n")
    except OSError as exc:
        return fail(
            f"{address}:{port}: {exc.strerror or exc}",
            "is wod serve (or Postfix) running? systemctl status wod-backend",
        )
    first = greeting.decode("utf-8", "replace").strip().splitlines()[:1]
    if greeting.startswith(b"220"):
        return ok(f"{address}:{port} greets: {first[0][:60]}")
    return fail(
        f"{address}:{port} answered {first[0][:60] if first else 'nothing'}",
        "another program holds the port?",
    )


# -- workshops render --------------------------------------------------------------------
@check("workshops-render", "content")
def workshops_render(host: Host) -> CheckResult:
    s = host.settings
    names = host.content.catalog.names()
    if not names:
        return fail(f"no workshop in {s.notebooks_dir}", "check notebooks_dir")
    stdid = s.user_min
    broken: list[str] = []
    undefined: list[str] = []
    for name in names:
        try:
            host.content.deploy(
                name,
                stdid,
                s.home(stdid),
                uid=None,
                gid=None,
                password=SAMPLE_PASSWORD,
                dry_run=True,
            )
        except WodError as exc:
            first = exc.reason.splitlines()[-1] if "\n" in exc.reason else exc.reason
            variable = isinstance(exc, TemplateFailure) and exc.variable
            (undefined if variable else broken).append(f"{name}: {first}")
    if broken:
        return fail(listing(broken + undefined, 4), "wod deploy WORKSHOP --student N --dry-run")
    if undefined:
        return warn(
            f"{len(undefined)} of {len(names)} need variables a hook or the private tree "
            f"gives: {listing(undefined, 3)}",
            "wod vars WORKSHOP --student N; define them or check the hooks write them",
        )
    return ok(f"{len(names)} workshop(s) render for student {stdid}")
