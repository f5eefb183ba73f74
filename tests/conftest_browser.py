"""Fixtures for the browser tests: one real server and one Chromium for the whole session.

A test module uses them with `pytest_plugins = ["conftest_browser"]`: registered as a plugin, the fixtures
exist once per session however many modules ask for them, so all browser tests share one server.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from retrieval.measure.browser import LAPTOP, Server, launch_chromium, streamlit_server

# Assertions retry for up to 30 s instead of 5: the machine may be busy with other work.
expect.set_options(timeout=30_000)


@pytest.fixture(scope="session")
def live_server() -> Server:
    """`streamlit run app.py` with the real model and index, a fresh feedback database and a known password.

    Started on first use and stopped at the end of the session. A failure to start is cached by pytest and
    reported (with the server's output) to every test that needs it, without starting it again.
    """
    with streamlit_server() as server:
        yield server


@pytest.fixture(scope="session")
def chromium():
    """Debian's Chromium through Playwright's sync API."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def chat_page(chromium, live_server):
    """A page in a fresh browser context (so a new Streamlit session) at laptop width; not loaded yet."""
    context = chromium.new_context(viewport=LAPTOP, locale="zh-CN")
    context.set_default_timeout(60_000)
    try:
        yield context.new_page()
    finally:
        context.close()
