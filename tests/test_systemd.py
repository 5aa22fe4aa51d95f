"""``wod serve`` under systemd: the units pass ``systemd-analyze verify`` and ``security``;
the daemon speaks sd_notify to a real datagram socket (READY only once its listeners
accept, watchdog pings, STOPPING), re-reads its settings on SIGHUP, logs INFO lines (JSON
with ``--log-format json``) for requests and finished jobs, and warns about peers that do
not answer while it keeps serving."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.plugins.paths import ROOT, get_free_port
from wod.ops.install import UNITS, unit_text

WOD = [sys.executable, "-c", "from wod.cli import main; main()"]
ANALYZE = shutil.which("systemd-analyze")


def rendered_units(folder: Path) -> list[Path]:
    wod = Path(sys.executable).parent / "wod"
    out = []
    for name in UNITS:
        path = folder / name
        path.write_text(unit_text(name, str(wod), Path("/etc/wod/wod.yml")))
        out.append(path)
    return out


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze missing (apt-get install systemd)")
def test_units_pass_systemd_analyze_verify(tmp_path: Path):
    units = rendered_units(tmp_path)
    done = subprocess.run(
        [ANALYZE, "verify", *map(str, units)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    ours = [line for line in done.stderr.splitlines() if "wod-" in line]
    assert ours == [], ours


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze missing (apt-get install systemd)")
def test_every_service_unit_is_hardened(tmp_path: Path):
    for unit in rendered_units(tmp_path):
        if unit.suffix != ".service":
            continue
        done = subprocess.run(
            [ANALYZE, "security", "--offline=true", "--threshold=50", str(unit)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        # --threshold=50: fails above an exposure of 5.0 ("MEDIUM").
        assert done.returncode == 0, unit.name + done.stdout[-2000:] + done.stderr
        level = re.search(r"Overall exposure level for \S+: ([0-9.]+)", done.stdout)
        assert level and float(level.group(1)) <= 5.0, done.stdout[-500:]


def closed_port() -> int:
    return get_free_port()  # nothing listens there


def test_serve_speaks_sd_notify_reloads_on_sighup_and_logs_json(tmp_path: Path):
    notify_path = tmp_path / "notify.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(notify_path))
    listener.settimeout(20)
    smtp_port, http_port = get_free_port(), get_free_port()
    values = {
        "state_dir": str(tmp_path / "state"),
        "smtp_port": smtp_port,
        "http_port": http_port,
        "demo": True,
        "senders": ["api@example.com"],
        "command_mailbox": "wodadmin",
        "apidb_url": f"http://127.0.0.1:{closed_port()}/api",
        "hub_url": f"http://127.0.0.1:{closed_port()}",
        "ldap_host": "127.0.0.1",
        "ldap_port": closed_port(),
        "workers": 1,
    }
    config = tmp_path / "wod.yml"
    config.write_text("".join(f"{k}: {json.dumps(v)}\n" for k, v in values.items()))
    env = {
        **os.environ,
        "NOTIFY_SOCKET": str(notify_path),
        "WATCHDOG_USEC": "300000",  # pings every 0.15 s
    }
    env.pop("WATCHDOG_PID", None)
    proc = subprocess.Popen(
        [
            *WOD,
            "-c",
            str(config),
            "serve",
            "--log-format",
            "json",
            "--runner",
            "tests.test_serve:recording_runner",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    logged: list[dict] = []
    reader = threading.Thread(
        # Every line is one JSON object (uvicorn's and click's too): json.loads raises
        # otherwise and the line is missing below.
        target=lambda: logged.extend(json.loads(line) for line in proc.stderr if line.strip()),
        daemon=True,
    )
    reader.start()

    def wait_logged(text: str) -> None:
        deadline = time.monotonic() + 20
        while not any(text in e["message"] for e in list(logged)):
            assert time.monotonic() < deadline, f"{text!r} not logged: {logged}"
            time.sleep(0.05)

    try:
        ready = listener.recv(4096).decode()
        assert "READY=1" in ready
        # Ready means listening: both ports accept at once.
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=5) as smtp:
            smtp.sendmail(
                "api@example.com",
                ["wodadmin@backend"],
                "Subject: CREATE 3 9 ann@example.com\r\n\r\nWKSHP-API101\r\n",
            )
        resp = httpx.post(
            f"http://127.0.0.1:{http_port}/api/requests",
            json={"verb": "EXPLODE", "stdid": 3, "customer": 9, "workshop": "WKSHP-API101"},
            timeout=5,
        )
        assert resp.status_code == 422
        pings = [listener.recv(4096).decode() for _ in range(3)]
        assert pings == ["WATCHDOG=1"] * 3
        wait_logged("job 1 done")

        config.write_text(config.read_text().replace("workers: 1", "workers: 3"))
        proc.send_signal(signal.SIGHUP)
        wait_logged("SIGHUP: settings changed (workers)")
        proc.send_signal(signal.SIGTERM)
        messages = []
        while "STOPPING=1" not in messages:
            messages.append(listener.recv(4096).decode())
        assert proc.wait(30) == 0
        reader.join(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        listener.close()
    lines = logged
    messages_logged = [entry["message"] for entry in lines]
    assert all({"time", "level", "logger", "message"} <= set(e) for e in lines)
    finished = [e for e in lines if e.get("outcome")]
    assert finished and finished[0]["verb"] == "CREATE" and finished[0]["seat"] == 3
    assert finished[0]["workshop"] == "WKSHP-API101" and finished[0]["outcome"] == "done"
    assert isinstance(finished[0]["seconds"], float)
    assert any("rejected" in m for m in messages_logged)  # one line per refused request
    assert any(m.startswith("job 1: CREATE") for m in messages_logged)  # and per accepted
    assert any(m.startswith("SIGHUP: settings changed (workers)") for m in messages_logged)
    for peer in ("the api-db at", "JupyterHub at", "LDAP at"):
        assert any(peer in m and "does not answer" in m for m in messages_logged), peer
    assert any(e["level"] == "info" and "wod serve ready" in e["message"] for e in lines)


def test_version_names_the_release_and_the_job_database_schema():
    from wod import __version__
    from wod.queue import SCHEMA_VERSION

    done = subprocess.run([*WOD, "--version"], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0
    assert done.stdout.strip() == f"wod {__version__} (job database schema {SCHEMA_VERSION})"


def remaining(ctx) -> list[str]:
    """The tokens a group left for its subcommand (Click 8 keeps the first apart)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return [*getattr(ctx, "protected_args", []), *ctx.args]


def test_every_unit_command_is_a_wod_command_with_valid_options():
    """The timers' commands parse as the CLI defines them (a renamed option would
    otherwise only fail at 04:30 in the journal)."""
    import shlex

    import click

    from wod.cli import _register, cli

    _register()
    for name in UNITS:
        if not name.endswith(".service"):
            continue
        text = unit_text(name, "wod", Path("/etc/wod/wod.yml"))
        line = next(x for x in text.splitlines() if x.startswith("ExecStart="))
        args = shlex.split(line.removeprefix("ExecStart="))[1:]
        command: click.Command = cli
        ctx = cli.make_context("wod", list(args), resilient_parsing=True)
        rest = remaining(ctx)
        while isinstance(command, click.Group) and rest:
            sub_name, command, rest = command.resolve_command(ctx, rest)
            assert command is not None, (name, sub_name)
            ctx = command.make_context(sub_name, list(rest), parent=ctx)
            rest = remaining(ctx) if isinstance(command, click.Group) else []
        assert not isinstance(command, click.Group), (name, args)
