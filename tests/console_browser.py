"""The browser harness: the app on a real server thread, driven by Debian's headless Chromium."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from werkzeug.serving import make_server

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
DOCS = Path(__file__).resolve().parent.parent / "docs"


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    """Where the run saves its screenshots: docs/ (for the README) when
    AGEGATE_UPDATE_SCREENSHOTS=1, else the test's temp dir, so a plain run leaves the tree clean
    (case ids are random, so every run's pictures differ byte for byte)."""
    if os.environ.get("AGEGATE_UPDATE_SCREENSHOTS") == "1":
        DOCS.mkdir(exist_ok=True)
        return DOCS
    return tmp_path
MISSING = ("Chromium is not installed at /usr/bin/chromium. Run the README's test command, "
           "`bash scripts/test.sh`, which installs Debian's chromium before running pytest.")


@pytest.fixture
def live_server(app) -> Iterator[str]:
    """The app served by a real werkzeug server on a free loopback port, over real Redis."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def browser() -> Iterator[object]:
    """Headless Chromium; a missing browser FAILS the test rather than skipping it."""
    from playwright.sync_api import Error, sync_playwright

    if not CHROMIUM.exists():
        pytest.fail(MISSING, pytrace=False)
    with sync_playwright() as playwright:
        try:
            chromium = playwright.chromium.launch(executable_path=str(CHROMIUM),
                                                  args=CHROMIUM_ARGS)
        except Error as error:
            pytest.fail(f"{MISSING} ({error.message.splitlines()[0]})", pytrace=False)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, live_server) -> Iterator[object]:
    """A fresh browser context and page at a desk-sized viewport."""
    context = browser.new_context(viewport={"width": 1280, "height": 860}, base_url=live_server)
    tab = context.new_page()
    tab.set_default_timeout(10_000)
    yield tab
    context.close()
