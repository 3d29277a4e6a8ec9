"""RTSP sources through the real service: an admin attaches a 录播 host (a GStreamer RTSP
server on loopback, H.264 + AAC, asking for a password) to the lead classroom; while the
lesson is live the service pulls it as the classroom's camera and mic, a decoding receiver
plays it, the lead page hears the source's state, a restart of the host brings video back
within 5 s, and an H.265 host is refused with a reason the admin sees.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio
from gst_support import require_gstreamer
from rtsp_support import RtspSourceProcess

from media.synthetic.terminal import SyntheticTerminal
from tongke_bench.loss import LiveService, live_service

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def live(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveService]:
    require_gstreamer()
    async with live_service(tmp_path_factory.mktemp("rtsp"), faults=False) as service:
        yield service


async def wait_until(condition: Callable[[], bool], within: float = 20.0, what: Any = "") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"not met within {within}s: {what() if callable(what) else what}")
        await asyncio.sleep(0.05)


def producers_of(terminal: SyntheticTerminal) -> set[tuple[str, str]]:
    changes = terminal.of_type("producers_changed")
    return {(p["peer_id"], p["source"]) for p in changes[-1]["producers"]} if changes else set()


def states(terminal: SyntheticTerminal, source: str = "camera") -> list[str]:
    return [m["state"] for m in terminal.of_type("ingest_state") if m["source"] == source]


async def test_a_recording_classroom_host_is_the_lead_camera_while_the_lesson_is_live(
    live: LiveService,
) -> None:
    lesson = (await live.api("GET", f"/api/lessons/{live.lesson_id}")).json()
    room = lesson["lead"]["id"]
    host = await RtspSourceProcess("--user", "luobo", "--password", "p@ss:word").start()
    h265 = await RtspSourceProcess("--codec", "h265", "--no-audio").start()
    lead: SyntheticTerminal | None = None
    receiver: SyntheticTerminal | None = None
    try:
        url = host.url.replace("rtsp://", "rtsp://luobo:p%40ss%3Aword@")
        made = await live.api("POST", f"/api/classrooms/{room}/rtsp-sources", {"url": url})
        assert made.status_code == 201, made.text
        source = made.json()
        # The credentials are split off and never shown again.
        assert source["url"] == host.url and source["username"] == "luobo"
        assert source["has_password"] is True and "p@ss" not in made.text
        assert source["status"] is None  # no lesson of the classroom is live yet
        again = await live.api("POST", f"/api/classrooms/{room}/rtsp-sources", {"url": url})
        assert again.status_code == 409
        bad = await live.api("POST", f"/api/classrooms/{room}/rtsp-sources", {"url": "http://x/y"})
        assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_rtsp_url"

        lead = live.terminal("lead")  # the teacher's page, with its own camera
        await lead.start(start_lesson=True)
        receiver = live.terminal("receiver", 0, decode=True, publish=False)
        await receiver.start()
        await wait_until(lambda: "live" in states(lead), what=lambda: lead.of_type("ingest_state"))
        live_state = next(m for m in lead.of_type("ingest_state") if m["state"] == "live")
        assert live_state["classroom_id"] == room and live_state["video"].startswith("H.264")
        assert "AAC" in live_state["audio"]
        await wait_until(
            lambda: (
                {s for p, s in producers_of(receiver) if p.startswith("rtsp-")} == {"camera", "mic"}
            ),
            what=lambda: producers_of(receiver),
        )
        assert not any(p == lead.joined["peer_id"] for p, _ in producers_of(receiver))
        got = receiver.receiver
        assert got is not None
        video, audio = got.decoded["video"], got.decoded["audio"]
        await wait_until(
            lambda: got.decoded["video"] >= video + 60 and got.decoded["audio"] >= audio + 50,
            what=lambda: got.decoded,
        )
        assert got.decode_errors == 0 and got.video_sizes[-1] == (640, 360)
        listed = (await live.api("GET", f"/api/classrooms/{room}/rtsp-sources")).json()
        assert listed[0]["status"]["state"] == "live"

        # The recording takes the host's picture and sound, not the lead page's own.
        assert (await lead.request({"type": "set_recording", "on": True}))["type"] == "ok"
        controller = live.state.recording

        def recorded() -> set[tuple[str, str]]:
            active = controller._active.get(live.lesson_id)
            media = {p.id: p for p in live.state.media.producers(live.lesson_id)}
            ids = active.consumers if active is not None else {}
            return {(media[i].peer_id.split("-")[0], media[i].source) for i in ids if i in media}

        await wait_until(lambda: recorded() == {("rtsp", "camera"), ("rtsp", "mic")},
                         what=recorded)  # fmt: skip
        assert (await lead.request({"type": "set_recording", "on": False}))["type"] == "ok"

        # The host reboots: the lead page sees it retrying, and the picture comes back.
        await host.kill()
        await wait_until(lambda: states(lead)[-1] == "retrying", within=15,
                         what=lambda: states(lead))  # fmt: skip
        before = got.decoded["video"]
        await host.start()
        restarted = time.monotonic()
        await wait_until(lambda: got.decoded["video"] >= before + 10, within=10,
                         what=lambda: (got.decoded, states(lead)))  # fmt: skip
        assert time.monotonic() - restarted < 5.0
        assert states(lead)[-1] == "live" and got.decode_errors == 0

        # An H.265 host as the board: refused, with the reason on the lead page and for the admin.
        board = await live.api(
            "POST",
            f"/api/classrooms/{room}/rtsp-sources",
            {"url": h265.url, "source": "board", "transport": "udp"},
        )
        assert board.status_code == 201, board.text
        await wait_until(lambda: "failed" in states(lead, "board"),
                         what=lambda: lead.of_type("ingest_state"))  # fmt: skip
        failed = [m for m in lead.of_type("ingest_state") if m["source"] == "board"][-1]
        assert failed["code"] == "unsupported_codec" and "H.265" in failed["message"]
        listed = (await live.api("GET", f"/api/classrooms/{room}/rtsp-sources")).json()
        status = next(s for s in listed if s["source"] == "board")["status"]
        assert status["state"] == "failed" and "H.264" in status["message"]

        # Detached: the pull stops and the lead page's own camera is forwarded again.
        gone = await live.api("DELETE", f"/api/classrooms/{room}/rtsp-sources/{source['id']}")
        assert gone.status_code == 204
        await wait_until(lambda: states(lead)[-1] == "stopped", what=lambda: states(lead))
        await wait_until(
            lambda: (lead.joined["peer_id"], "camera") in producers_of(receiver),
            what=lambda: producers_of(receiver),
        )
    finally:
        for terminal in (receiver, lead):
            if terminal is not None:
                await terminal.close()
        await host.kill()
        await h265.kill()
