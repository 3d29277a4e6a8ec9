"""web/js/client.js's LessonMedia against the real SFU (media.sfu.MediaService), no signaling.

A publisher page sends its fake camera (main + low copy) and microphone; a subscriber page
answers the SFU's offer and decodes. The pages' `request` is bridged to MediaService exactly
where the signaling server will call it, so this checks the browser side of the media path
(SDP, mids, dual stream, no trickle ICE) before the media plane is wired into signaling.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from browser_harness import PageWatch, wait_js

from media.sfu import MediaService, TrackSpec

pytestmark = pytest.mark.browser

LESSON = "lesson-1"

# A page-side stand-in for LessonClient: requests go to Python, events come from Python.
FAKE_CLIENT = """async () => {
  const { Emitter, LessonMedia } = await import('/js/client.js');
  const client = new Emitter();
  client.joined = { ice_servers: [] };
  client.request = (message) => window.toSfu(message);
  const media = new LessonMedia(client);
  window.mediaErrors = [];
  media.on('error', (e) => window.mediaErrors.push(String(e && (e.stack || e.message || e))));
  window.tongke = { client, media };
}"""


class SfuLoop:
    """MediaService on its own event loop thread (Playwright's sync API owns this one)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.service: MediaService = self.run(self._make())

    async def _make(self) -> MediaService:
        return MediaService(ice_servers=[], host_addresses=["127.0.0.1"])

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    def close(self) -> None:
        self.run(self.service.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)


@pytest.fixture
def sfu() -> Iterator[SfuLoop]:
    loop = SfuLoop()
    yield loop
    loop.close()


def bridge(watch: PageWatch, sfu: SfuLoop, peer_id: str) -> None:
    def to_sfu(message: dict[str, Any]) -> dict[str, Any]:
        if message["type"] == "publish":
            specs = [
                TrackSpec(t["mid"], t["source"], t.get("layer", "main")) for t in message["tracks"]
            ]
            result = sfu.run(sfu.service.publish(LESSON, peer_id, message["sdp"], specs))
            return {"type": "publish_answer", "sdp": result.sdp}
        if message["type"] == "subscribe_answer":
            sfu.run(sfu.service.answer(peer_id, message["sdp"]))
            return {"type": "ok", "of": "subscribe_answer"}
        raise AssertionError(f"unexpected request {message['type']}")

    watch.page.expose_function("toSfu", to_sfu)
    watch.page.goto("/")
    watch.page.evaluate(FAKE_CLIENT)


def test_published_dual_stream_and_mic_reach_a_subscriber_page(
    open_page: Any, sfu: SfuLoop
) -> None:
    lead = open_page()
    bridge(lead, sfu, "lead")
    lead.page.evaluate(
        """async () => {
          const { openCamera, openMic } = await import('/js/client.js');
          const camera = await openCamera(undefined, { width: 640, height: 360 });
          const mic = await openMic();
          await window.tongke.media.publish({ camera, mic });
        }"""
    )
    assert lead.page.evaluate("window.mediaErrors") == []
    producers = sfu.service.producers(LESSON)
    assert sorted((p.kind, p.source, p.layer) for p in producers) == [
        ("audio", "mic", "main"),
        ("video", "camera", "low"),
        ("video", "camera", "main"),
    ]
    receiver = open_page()
    bridge(receiver, sfu, "receiver")
    ids = [p.id for p in producers if p.layer == "main"]
    offer = sfu.run(sfu.service.subscribe(LESSON, "receiver", ids))
    consumers = [
        {
            "consumer_id": c.id,
            "mid": c.mid,
            "producer": {
                "peer_id": c.publisher_peer_id,
                "classroom_id": "lead-room",
                "kind": c.kind,
                "source": c.source,
                "layer": "main",
            },
        }
        for c in offer.consumers
    ]
    receiver.page.evaluate(
        "([sdp, consumers]) => window.tongke.client.emit('subscribe_offer', "
        "{type: 'subscribe_offer', sdp, consumers})",
        [offer.sdp, consumers],
    )
    wait_js(receiver, "window.tongke.media.consumers.size === 2")
    wait_js(
        receiver,
        "window.tongke.media.stats().then(s => s.framesDecoded > 10 && s.audioPackets > 10)",
        30_000,
    )
    kinds = receiver.page.evaluate(
        "[...window.tongke.media.consumers.values()].map(c => c.track.kind).sort()"
    )
    assert kinds == ["audio", "video"]
    assert [e for e in lead.errors + receiver.errors if "favicon" not in e] == []
