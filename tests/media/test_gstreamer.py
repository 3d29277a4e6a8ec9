"""GStreamer's webrtcbin (Debian packages, the stack inside many classroom terminals) joins a
real lesson over the real WebSocket protocol: it publishes as the lead and plays as a
receiving classroom, VP8 and H.264 both ways, next to aiortc terminals.

The GStreamer terminal (media/synthetic/gst_terminal.py) runs under the system python3,
where Debian's python3-gi lives; the service and the aiortc terminals run here. Its offers
are GStreamer's own: ``a=setup:actpass``, an RSA certificate, ``a=bundle-only``; one case
also drops ``a=ssrc`` and insists on ``a=setup:passive`` as some terminals do, which makes
the SFU the DTLS client of an RSA peer.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from gst_support import GstTerminalProcess, require_gstreamer

from media.synthetic.terminal import SyntheticTerminal
from tongke_bench.loss import LiveService, live_service

pytestmark = pytest.mark.asyncio(loop_scope="module")

LOOPBACK = "127.0.0.1"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def live(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveService]:
    require_gstreamer()
    async with live_service(tmp_path_factory.mktemp("gstreamer"), faults=False) as service:
        yield service


async def wait_until(condition, within: float = 30.0, what=lambda: "") -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        assert loop.time() < deadline, f"not met within {within}s: {what()}"
        await asyncio.sleep(0.1)


@pytest.mark.parametrize(
    ("codec", "options"),
    [
        ("vp8", ()),
        ("h264", ()),
        ("vp8", ("--no-ssrc", "--setup", "passive")),
    ],
    ids=["vp8", "h264", "vp8-no-ssrc-sfu-dtls-client"],
)
async def test_a_gstreamer_lead_publishes_and_an_aiortc_receiver_decodes_it(
    live: LiveService, codec: str, options: tuple[str, ...], clip_cache: Path
) -> None:
    lead = GstTerminalProcess(
        "--base", live.base_url, "--code", live.codes["lead"][0], "--publish", codec,
        "--start", "--address", LOOPBACK, "--seconds", "90", *options,
    )  # fmt: skip
    receiver: SyntheticTerminal = live.terminal("receiver", 0, decode=True, publish=False)
    await lead.start()
    try:
        await lead.wait_for(lambda: bool(lead.of("published")))
        published = lead.of("published")[0]
        if "--setup" in options:
            assert "a=setup:active" in published["answer"]  # the SFU is the DTLS client
        else:
            assert "a=setup:passive" in published["answer"]
        if "--no-ssrc" in options:
            assert "a=ssrc" not in published["offer"]
        await receiver.start()
        assert receiver.receiver is not None
        got = receiver.receiver
        await wait_until(
            lambda: got.decoded["video"] >= 60 and got.decoded["audio"] >= 50,
            what=lambda: f"decoded {got.decoded}, gst {lead.describe()}",
        )
        assert got.decode_errors == 0
        assert got.video_sizes[-1] == (640, 360)
        assert lead.of("error") == []
    finally:
        await receiver.close()
        await lead.close()


@pytest.mark.parametrize("codec", ["vp8", "h264"])
async def test_a_gstreamer_receiver_plays_an_aiortc_lead(
    live: LiveService, codec: str, clip_cache: Path
) -> None:
    lead: SyntheticTerminal = live.terminal("lead", codec=codec)
    await lead.start(start_lesson=True)
    player = GstTerminalProcess(
        "--base", live.base_url, "--code", live.codes["receiver"][1], "--address", LOOPBACK,
        "--seconds", "90",
    )  # fmt: skip
    await player.start()
    try:
        await player.wait_for(
            lambda: player.stats["video_frames"] >= 60 and player.stats["audio_buffers"] >= 50
        )
        assert player.stats["decode_errors"] == 0
        caps = player.stats["video_caps"]  # the decoder's output: the lead's clip, 640x480
        assert caps.startswith("video/x-raw") and "width=(int)640" in caps, caps
        assert "height=(int)480" in caps, caps
        assert player.of("error") == []
    finally:
        await player.close()
        await lead.close()
