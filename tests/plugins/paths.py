"""Paths and ports shared by every test module."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

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
