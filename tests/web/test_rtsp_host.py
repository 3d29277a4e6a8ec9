"""A 录播 host as the lead classroom's camera, in Chromium: the admin attaches the host's RTSP
stream (a GStreamer RTSP server on loopback, H.264 + AAC); the lead page starts the lesson
and shows the host's state; a receiving classroom's page plays the host's picture (640x360,
not the lead page's fake camera) and hears it.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import closing
from typing import Any

import pytest
from browser_harness import MEDIA_MS, District, LiveServer, frames_rise, started, wait_js
from gst_support import SYSTEM_PYTHON, require_gstreamer
from rtsp_support import SCRIPT, free_port

pytestmark = pytest.mark.browser


@pytest.fixture(params=["main", "high"])
def rtsp_host(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """A host sending H.264 of the profile named (Main, High: what 录播 hosts send; the
    SFU forwards it as it is, never decoded)."""
    require_gstreamer()
    port = free_port()
    process = subprocess.Popen(
        [
            SYSTEM_PYTHON,
            str(SCRIPT),
            "--port",
            str(port),
            "--gop",
            "30",
            "--profile",
            request.param,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == b"ready"
        yield f"rtsp://127.0.0.1:{port}/live/main", request.param
    finally:
        process.kill()
        process.wait(10)


def test_the_lead_classroom_camera_comes_from_its_rtsp_host(
    open_page: Any, lesson: District, live_server: LiveServer, rtsp_host: tuple[str, str]
) -> None:
    url, profile = rtsp_host
    with closing(live_server.http("admin")) as admin:
        live_server.post(admin, f"/api/classrooms/{lesson.lead['id']}/rtsp-sources", {"url": url})
    try:
        lead, receiver = started(open_page, lesson, "lead", "receiver1")
        banner = "document.querySelector('#ingest-banner')"
        wait_js(lead, f"{banner}?.dataset.states === 'camera:live'", MEDIA_MS)
        text = lead.page.evaluate(f"{banner}.textContent")
        assert text.startswith("录播主机：直播中（H.264 640x360"), text
        # The profile the host sends (profile-level-id): forwarded as it is, never decoded.
        assert {"main": "(4d", "high": "(64"}[profile] in text, text
        wait_js(
            receiver, "document.querySelector('#lead-video video')?.videoHeight === 360", MEDIA_MS
        )
        frames_rise(receiver)
        wait_js(receiver, "window.tongke.media.stats().then(s => s.audioPackets > 0)", MEDIA_MS)
        assert lead.errors == [] and receiver.errors == []
        lead.screenshot(f"rtsp-host-{profile}-lead-zh-CN")
        receiver.screenshot(f"rtsp-host-{profile}-receiver-zh-CN")
    finally:
        with closing(live_server.http("admin")) as admin:
            sources = admin.get(f"/api/classrooms/{lesson.lead['id']}/rtsp-sources").json()
            for source in sources:
                admin.delete(f"/api/classrooms/{lesson.lead['id']}/rtsp-sources/{source['id']}")
