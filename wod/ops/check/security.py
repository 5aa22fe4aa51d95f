"""Host protection checks (SPEC 6 "check"): firewall, time sync, security updates,
fail2ban on hub logins, the backend's systemd units.

Reported only, each with the command that sets it up: changing a firewall or installing
packages is the admin's decision.
"""

from __future__ import annotations

import re
import shutil

from wod import proc
from wod.errors import WodError
from wod.ops.check.base import CheckResult, Host, check, fail, listing, ok, skipped, warn


# -- firewall ------------------------------------------------------------------------------
def parse_ufw(text: str) -> set[str] | None:
    """Allowed ``port/proto`` (``port`` for both) from ``ufw status``; None when inactive."""
    if "Status: active" not in text:
        return None
    allowed = set()
    for line in text.splitlines():
        line = line.strip()
        if re.match(r"^OpenSSH(?:\s+\(v6\))?\s+ALLOW\b", line):
            allowed.add("22/tcp")
        m = re.match(r"^(\d+(?::\d+)?)(?:/(tcp|udp))?\s+(?:\(v6\)\s+)?ALLOW\b", line)
        if m:
            allowed.add(m.group(1) + (f"/{m.group(2)}" if m.group(2) else ""))
    return allowed


def _firewall_allowed(host: Host) -> tuple[str, set[str]] | None:
    if shutil.which("ufw"):
        try:
            out = proc.run(["ufw", "status"], timeout=20, check=False).output
        except WodError:
            out = ""
        allowed = parse_ufw(out)
        if allowed is not None:
            return "ufw", allowed
    if shutil.which("firewall-cmd"):
        try:
            state = proc.run(["firewall-cmd", "--state"], timeout=20, check=False)
            if state.returncode == 0:
                ports = proc.run(["firewall-cmd", "--list-ports"], timeout=20).output.split()
                services = proc.run(["firewall-cmd", "--list-services"], timeout=20).output
                allowed = set(ports)
                if "ssh" in services.split():
                    allowed.add("22/tcp")
                if "ntp" in services.split():
                    allowed.add("123/udp")
                if "smtp" in services.split():
                    allowed.add("25/tcp")
                return "firewalld", allowed
        except WodError:
            pass
    return None


def _allows(allowed: set[str], port: int, proto: str) -> bool:
    return f"{port}/{proto}" in allowed or str(port) in allowed


@check("firewall", "host")
def firewall(host: Host) -> CheckResult:
    s = host.settings
    wanted = [(22, "tcp"), (123, "tcp"), (123, "udp"), (s.smtp_port, "tcp"), (s.http_port, "tcp")]
    found = _firewall_allowed(host)
    if found is None:
        return warn(
            "no active firewall (ufw or firewalld)",
            "apt-get install ufw && ufw allow 22/tcp && ufw allow 123 && ufw enable",
        )
    kind, allowed = found
    missing = [f"{p}/{proto}" for p, proto in wanted if p and not _allows(allowed, p, proto)]
    if not missing:
        return ok(f"{kind} allows {', '.join(f'{p}/{pr}' for p, pr in wanted)}")
    cmd = "ufw allow" if kind == "ufw" else "firewall-cmd --permanent --add-port="
    return fail(f"{kind} does not allow {', '.join(missing)}", f"{cmd} {missing[0]} (each)")


# -- time sync -----------------------------------------------------------------------------
TIME_DAEMONS = ("chronyd", "ntpd", "systemd-timesyncd", "openntpd", "ntpsec")


@check("time-sync", "host")
def time_sync(host: Host) -> CheckResult:
    import psutil

    running = sorted(
        {p.info["name"] for p in psutil.process_iter(["name"]) if p.info["name"] in TIME_DAEMONS}
    )
    if running:
        return ok(f"running: {', '.join(running)}")
    return warn(
        "no time synchronisation daemon running (chrony, ntpd, systemd-timesyncd)",
        "apt-get install chrony",
    )


# -- security updates and fail2ban ---------------------------------------------------------
@check("security-updates", "host")
def security_updates(host: Host) -> CheckResult:
    periodic = host.path("/etc/apt/apt.conf.d/20auto-upgrades")
    try:
        text = periodic.read_text()
    except OSError:
        text = ""
    if re.search(r'APT::Periodic::Unattended-Upgrade\s+"[1-9]', text):
        return ok("unattended-upgrades enabled")
    if host.path("/etc/dnf/automatic.conf").is_file():
        return ok("dnf-automatic configured")
    return warn(
        "no automatic security updates (unattended-upgrades / dnf-automatic)",
        "apt-get install unattended-upgrades && dpkg-reconfigure -plow unattended-upgrades",
    )


@check("fail2ban", "host")
def fail2ban(host: Host) -> CheckResult:
    files = [host.path("/etc/fail2ban/jail.local")]
    d = host.path("/etc/fail2ban/jail.d")
    if d.is_dir():
        files += sorted(d.glob("*"))
    for path in files:
        try:
            if "jupyterhub" in path.read_text(errors="replace").lower():
                return ok(f"jupyterhub jail in {path}")
        except OSError:
            continue
    return warn(
        "no fail2ban jail for JupyterHub logins",
        "apt-get install fail2ban, and a jupyterhub jail (maxretry = 3) in /etc/fail2ban/jail.d",
    )


# -- services ------------------------------------------------------------------------------
@check("services", "host")
def services(host: Host) -> CheckResult:
    from wod.ops.install import ENABLED  # what `wod install` enables

    if not host.path("/run/systemd/system").is_dir() or not shutil.which("systemctl"):
        return skipped("systemd is not running on this host")
    off = []
    for unit in ENABLED:
        done = proc.run(["systemctl", "is-enabled", unit], timeout=20, check=False)
        if done.output.strip() != "enabled":
            off.append(f"{unit} {done.output.strip() or 'unknown'}")
    if not off:
        return ok(f"enabled: {', '.join(ENABLED)}")
    return fail(listing(off), f"systemctl enable --now {off[0].split()[0]} (or wod install)")
