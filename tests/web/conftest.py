"""Browser tests: the real service on a free port and Debian's Chromium with fake devices.

One server and one browser per test module; each test opens its own browser contexts.
Screenshots go to test-artifacts/web/ (gitignored) so a person can look at every page.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_harness import CHROMIUM, CHROMIUM_FLAGS, District, LiveServer, PageWatch


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = LiveServer(tmp_path_factory.mktemp("web-data"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def district(live_server: LiveServer) -> District:
    return live_server.seed()


@pytest.fixture(scope="module")
def browser(live_server: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Chromium not found at {CHROMIUM}")
    sync_api = pytest.importorskip("playwright.sync_api")
    # The server's hostname and certificate, as a classroom PC resolves and trusts them.
    env = live_server.chromium_env(tmp_path_factory.mktemp("home"))
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=CHROMIUM,
            args=CHROMIUM_FLAGS + live_server.chromium_flags(),
            env=env,
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def open_page(browser: Any, live_server: LiveServer) -> Iterator[Any]:
    """open_page(lang="zh-CN", width=1366, height=768) -> PageWatch in a fresh context.

    The service's Content-Security-Policy forbids eval, which Playwright's string
    predicates (wait_for_function) use; tests bypass it unless `enforce_csp` (then wait
    with selectors, URLs and evaluate only: tests/web/test_security.py)."""
    contexts: list[Any] = []

    def make(
        lang: str = "zh-CN", width: int = 1366, height: int = 768, enforce_csp: bool = False
    ) -> PageWatch:
        context = browser.new_context(
            base_url=live_server.url,
            viewport={"width": width, "height": height},
            locale=lang,
            permissions=["camera", "microphone"],
            bypass_csp=not enforce_csp,
        )
        # Only the first page load: the page's own language switch must stick.
        key = "'tongke.lang'"
        context.add_init_script(
            f"if (!localStorage.getItem({key})) localStorage.setItem({key}, {lang!r});"
        )
        contexts.append(context)
        return PageWatch(context.new_page())

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def lesson(live_server: LiveServer, district: District) -> District:
    """A fresh lesson (scheduled, with join links) of the module's district."""
    return live_server.new_lesson(district)
