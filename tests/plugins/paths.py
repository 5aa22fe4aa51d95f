"""Paths and ports shared by every test module."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "wod" / "samples" / "notebooks"


def _fixtures_path() -> Path:
    return Path(os.environ.get("WOD_FIXTURES", ROOT.parent / "shared" / "fixtures" / "notebooks"))


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """The shared real WoD workshops, read in place (never copied into the project)."""
    path = _fixtures_path()
    if not (path / "WKSHP-API101").is_dir():
        pytest.skip(f"shared fixture workshops not found at {path} (set WOD_FIXTURES)")
    return path


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    """The sample workshops bundled with the project."""
    return SAMPLES


def get_free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def free_port() -> int:
    return get_free_port()


#: The shared real WoD workshops (read in place from ``$WOD_FIXTURES``).
FIXTURE_WORKSHOPS = (
    "WKSHP-API101",
    "WKSHP-Ansible101",
    "WKSHP-Docker101",
    "WKSHP-GO101",
    "WKSHP-Podman201",
    "WKSHP-Python101",
)


@contextmanager
def serve_in_thread(app: Any, name: str, timeout: float = 10.0) -> Iterator[int]:
    """Serve an ASGI ``app`` with uvicorn on a free loopback port in a thread; yields the
    port once it accepts connections, stops it at the end of the block."""
    port = get_free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="off",
            access_log=False,
        )
    )
    thread = threading.Thread(target=server.run, name=f"{name}-{port}", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start on port {port}")
            time.sleep(0.01)
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout)


def wait_http(url: str, proc: subprocess.Popen, what: str, timeout: float = 30.0) -> None:
    """Wait until ``url`` answers 200, while the process ``proc`` serving it lives."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{what} not ready after {timeout:g} s ({url})")
