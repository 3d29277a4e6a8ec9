"""A lesson whose lead classroom is a 录播 host (RTSP source attached) and whose lead page is
never opened: it goes live from the API (POST /api/lessons/{id}/start) or at its timetable
time (start_mode "time"), and a decoding receiver gets the host's picture and sound within
a few seconds, with no lead peer in the room at all.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from gst_support import require_gstreamer
from rtsp_support import RtspSourceProcess
from sqlalchemy import update

from media.synthetic.terminal import SyntheticTerminal
from server.db.models import Lesson, utcnow
from tongke_bench.loss import LiveService, live_service

# The supervisor looks every 0.5 s (default 2 s): the time-mode start is due within a poll.
POLL_S = 0.5


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[LiveService]:
    require_gstreamer()
    async with live_service(tmp_path, faults=False, rtsp_poll_s=POLL_S) as service:
        yield service


@pytest.fixture
async def host() -> AsyncIterator[RtspSourceProcess]:
    source = await RtspSourceProcess("--gop", "30").start()
    try:
        yield source
    finally:
        await source.kill()


async def wait_until(condition: Callable[[], bool], within: float = 15.0, what: Any = "") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"not met within {within}s: {what() if callable(what) else what}")
        await asyncio.sleep(0.05)


def producers_of(terminal: SyntheticTerminal) -> set[tuple[str, str]]:
    changes = terminal.of_type("producers_changed")
    return {(p["peer_id"], p["source"]) for p in changes[-1]["producers"]} if changes else set()


async def attach_host(live: LiveService, url: str) -> str:
    lesson = (await live.api("GET", f"/api/lessons/{live.lesson_id}")).json()
    lead = str(lesson["lead"]["id"])
    made = await live.api("POST", f"/api/classrooms/{lead}/rtsp-sources", {"url": url})
    assert made.status_code == 201, made.text
    return lead


async def waiting_receiver(live: LiveService) -> SyntheticTerminal:
    """A receiving classroom on its waiting screen: joined while the lesson is scheduled."""
    receiver = live.terminal("receiver", 0, decode=True, publish=False)
    await receiver.start()
    assert receiver.joined["lesson"]["state"] == "scheduled"
    return receiver


async def plays_the_host(live: LiveService, receiver: SyntheticTerminal, since: float) -> float:
    """Seconds from ``since`` until the receiver decoded the host's video (and hears it)."""
    got = receiver.receiver
    assert got is not None
    await wait_until(lambda: got.decoded["video"] >= 10, what=lambda: (got.decoded,
                     producers_of(receiver)))  # fmt: skip
    took = time.monotonic() - since
    await wait_until(lambda: got.decoded["audio"] >= 20, what=lambda: got.decoded)
    assert got.decode_errors == 0 and got.video_sizes[-1] == (640, 360)
    # The host's camera and mic, and nothing else: no lead page is in the room.
    assert {s for _, s in producers_of(receiver)} == {"camera", "mic"}
    assert all(p.startswith("rtsp-") for p, _ in producers_of(receiver))
    room = live.state.rooms.rooms[live.lesson_id]
    assert [p.role.value for p in room.peers.values() if p.ingest is None] == ["receiver"]
    return took


async def test_a_lesson_started_from_the_api_plays_its_rtsp_host_with_no_lead_page(
    live: LiveService, host: RtspSourceProcess
) -> None:
    await attach_host(live, host.url)
    receiver = await waiting_receiver(live)
    began = time.monotonic()
    started = await live.api("POST", f"/api/lessons/{live.lesson_id}/start")
    assert started.status_code == 200, started.text
    assert started.json()["state"] == "live" and started.json()["started_at"] is not None
    await receiver.wait_for("lesson_started", within_s=5)
    took = await plays_the_host(live, receiver, began)
    print(f"API start -> receiver decodes the 录播 host: {took:.2f} s")
    assert took < 5.0
    again = await live.api("POST", f"/api/lessons/{live.lesson_id}/start")
    assert again.status_code == 409 and again.json()["error"]["code"] == "lesson_live"
    ended = await live.api("POST", f"/api/lessons/{live.lesson_id}/end")
    assert ended.status_code == 200 and ended.json()["state"] == "ended"
    late = await live.api("POST", f"/api/lessons/{live.lesson_id}/start")
    assert late.status_code == 409 and late.json()["error"]["code"] == "lesson_ended"


async def test_a_time_mode_lesson_led_by_an_rtsp_host_starts_at_its_time(
    live: LiveService, host: RtspSourceProcess
) -> None:
    # As the timetable generates it: start_mode "time", due now.
    async with live.state.db.sessions.begin() as session:
        await session.execute(
            update(Lesson)
            .where(Lesson.id == live.lesson_id)
            .values(
                start_mode="time",
                scheduled_start=utcnow() - timedelta(seconds=1),
                scheduled_end=utcnow() + timedelta(hours=1),
            )
        )
    receiver = await waiting_receiver(live)
    # Without a 录播 host its lead page starts it (web/js/pages/lead.js), not the service.
    await asyncio.sleep(3 * POLL_S)
    lesson = (await live.api("GET", f"/api/lessons/{live.lesson_id}")).json()
    assert lesson["state"] == "scheduled"
    began = time.monotonic()
    await attach_host(live, host.url)
    await receiver.wait_for("lesson_started", within_s=5)
    took = await plays_the_host(live, receiver, began)
    print(f"time-mode lesson, host attached -> receiver decodes it: {took:.2f} s")
    assert took < 5.0
    lesson = (await live.api("GET", f"/api/lessons/{live.lesson_id}")).json()
    assert lesson["state"] == "live"
