"""A lesson over HTTPS at a LAN name, as on a school network: `tongke serve --https`, no
public_url, Chromium resolving school.test to the loopback address (so the page's origin is
not a secure-by-default localhost) and trusting the local CA the way /ca/ tells a classroom
PC to (an NSS database in its HOME, made with certutil).
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Iterator
from typing import Any

import pytest
from browser_harness import (
    MEDIA_MS,
    District,
    LiveServer,
    PageWatch,
    frames_rise,
    started,
    video_plays,
    wait_js,
)
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

pytestmark = pytest.mark.browser

HOSTNAME = "school.test"


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = LiveServer(tmp_path_factory.mktemp("https-data"), https=True, hostname=HOSTNAME)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def plays_on(watch: PageWatch, selector: str) -> None:
    """The video shows a picture and its time advances."""
    video_plays(watch, selector)
    time = f"document.querySelector({selector!r}).currentTime"
    before = float(watch.page.evaluate(time))
    wait_js(watch, f"{time} > {before + 0.5}", MEDIA_MS)


def test_a_lesson_runs_over_https_at_a_lan_name_without_public_url(
    open_page: Any, lesson: District, live_server: LiveServer
) -> None:
    lead, receiver = started(open_page, lesson, "lead", "receiver1")
    origin = lead.page.evaluate("[location.origin, window.isSecureContext]")
    assert origin == [live_server.url, True]
    assert live_server.settings.public_url == ""
    plays_on(receiver, "#lead-video video")
    frames_rise(receiver)
    video_plays(lead, f".tile[data-classroom='{lesson.receivers[0]['id']}'] video")
    patrol = open_page()
    patrol.page.goto(f"/patrol/?link={lesson.links['patrol']}")
    plays_on(patrol, ".wall .tile video")
    for name, watch in (("lead", lead), ("receiver1", receiver), ("patrol", patrol)):
        watch.screenshot(f"https-{name}-zh-CN")
        assert not [e for e in watch.errors if "ERR_CERT" in e or "SecurityError" in e]


def test_the_websocket_refuses_a_foreign_origin_over_https(live_server: LiveServer) -> None:
    assert live_server.tls is not None and live_server.tls.ca_file is not None
    trust = ssl.create_default_context(cafile=str(live_server.tls.ca_file))
    url = f"wss://127.0.0.1:{live_server.port}/ws"
    with pytest.raises(InvalidStatus) as refused:
        connect(url, ssl=trust, origin=f"https://evil.test:{live_server.port}").close()  # type: ignore[arg-type]
    assert refused.value.response.status_code == 403
    # The page's own origin (school.test) is no setting: only same-origin lets it in, which
    # the lesson above used. The service's own address is accepted as before.
    with connect(url, ssl=trust, origin=f"https://127.0.0.1:{live_server.port}") as ws:  # type: ignore[arg-type]
        ws.send("{}")
        assert '"error"' in str(ws.recv(timeout=5))


def test_the_ca_page_shows_the_fingerprint_to_compare_in_chinese_then_english(
    open_page: Any, live_server: LiveServer
) -> None:
    assert live_server.tls is not None
    watch = open_page()
    watch.page.goto("/ca/")
    watch.page.wait_for_selector("#ca-fingerprint[data-state=ready]")
    shown = watch.page.inner_text("#ca-fingerprint")
    assert shown == f"SHA-256 {live_server.tls.ca_fingerprint}"
    body = watch.page.inner_text("main")
    for words in ("Windows 10 / 11", "统信 UOS", "安卓平板", "iPad", "受信任的根证书颁发机构"):
        assert words in body
    assert not re.search(r"\bca\.(?!crt)[a-z_0-9]+", body)  # no key left untranslated
    href = watch.page.get_attribute("#ca-download", "href")
    downloaded = watch.page.evaluate(f"fetch({href!r}).then(r => r.text())")
    assert downloaded == live_server.tls.ca_pem.decode()
    watch.screenshot("https-ca-zh-CN")
    watch.page.click("#lang-switch")
    watch.page.wait_for_function("document.documentElement.lang === 'en'")
    body = watch.page.inner_text("main")
    assert "Trusted Root Certification Authorities" in body and "统信" not in body
    assert watch.page.inner_text("#ca-fingerprint") == shown
    watch.screenshot("https-ca-en")
    assert watch.errors == []
