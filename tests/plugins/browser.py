"""Fixture plugin: ``browser``, one headless Debian ``chromium`` driven by Playwright per
test module (Playwright's own browser download is not used: ``executable_path``), and
``page`` / ``new_page`` for a fresh browser context (own cookies) per test."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from wod.ops.export import BROWSER_ARGS as ARGS  # the flags wod export runs chromium with

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One browser per test module: Playwright's sync API keeps an event loop running in
    the main thread while it is open, so it must be closed before tests that run their own
    (``asyncio.run``) — a session-wide browser broke every later module's."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install -e '.[test]')")
    if not shutil.which(CHROMIUM):
        pytest.skip(f"{CHROMIUM} not found (scripts/install-test-deps.sh installs chromium)")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, timeout=60_000)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def new_page(browser: Any) -> Iterator[Callable[[], Any]]:
    """Open pages in fresh contexts (separate cookies), all closed after the test."""
    contexts: list[Any] = []

    def make() -> Any:
        context = browser.new_context(viewport={"width": 1280, "height": 860})
        context.set_default_timeout(20_000)
        contexts.append(context)
        return context.new_page()

    try:
        yield make
    finally:
        for context in contexts:
            context.close()
