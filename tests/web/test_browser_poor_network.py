"""Poor rural links in Chromium: fault drills on a receiving classroom, seen from the pages.

The service runs with fault drills on (`faults=True`) and the production liveness settings
(2 s pings, 6 s heartbeat timeout, 4 s silence timeout). A drill cuts the classroom's whole
link (media and WebSocket, both directions) through the admin API, for a duration, as
docs/operations.md "Fault drills" describes. The figures (how long, how often) are for
benchmarks/browser_poor_network.py; these tests check behaviour: a classroom always comes
back by itself, a short blip never shows as lost, its audio survives loss (Opus FEC, RED),
and random loss that NACK repairs keeps it on the main picture.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from contextlib import closing
from typing import Any

import pytest
from browser_harness import (
    MEDIA_MS,
    District,
    LiveServer,
    PageWatch,
    join_classroom,
    started,
    video_plays,
    wait_js,
)

DEAD = {"media": {"drop": 1.0}, "signaling": {"drop": 1.0}}


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = LiveServer(
        tmp_path_factory.mktemp("poor-network"),
        faults=True,
        heartbeat_interval_s=2.0,
        heartbeat_timeout_s=6.0,
        silence_timeout_s=4.0,
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


def drill(server: LiveServer, lesson: District, peer_id: str, body: dict[str, Any]) -> None:
    with closing(server.http("admin")) as admin:
        path = f"/api/lessons/{lesson.lesson['id']}/faults/{peer_id}"
        reply = admin.put(path, json=body)
        assert reply.status_code == 200, reply.text


def peer_of(lead: PageWatch, classroom_id: str) -> dict[str, Any]:
    return lead.page.evaluate(
        "(id) => [...window.tongke.state.participants.values()]"
        ".find((p) => p.classroom_id === id) ?? null",
        classroom_id,
    )


def tile_track(lead: PageWatch, classroom_id: str) -> str:
    """The id of the video track the lead's tile of a classroom shows ("" for none)."""
    return lead.page.evaluate(
        "(id) => document.querySelector(`.tile[data-classroom='${id}'] video`)"
        "?.srcObject?.getVideoTracks()[0]?.id ?? ''",
        classroom_id,
    )


def tile_frames(lead: PageWatch, classroom_id: str) -> int:
    return lead.page.evaluate(
        "(id) => document.querySelector(`.tile[data-classroom='${id}'] video`)"
        "?.getVideoPlaybackQuality().totalVideoFrames ?? 0",
        classroom_id,
    )


def test_a_lost_classroom_comes_back_by_itself_on_the_leads_screen(
    open_page: Any, live_server: LiveServer, lesson: District
) -> None:
    lead, r1 = started(open_page, lesson, "lead", "receiver1")
    room = lesson.receivers[0]["id"]
    tile = f".tile[data-classroom='{room}'] video"
    video_plays(lead, tile)
    before = tile_track(lead, room)
    peer = peer_of(lead, room)

    # Ten seconds of a dead line: lost after ~4 s, then the drill ends by itself.
    drill(live_server, lesson, peer["peer_id"], {"to_peer": DEAD, "from_peer": DEAD,
                                                 "duration_s": 10})  # fmt: skip
    cut = time.monotonic()
    # The classroom's own pill says so while nothing arrives (stale numbers said 网络良好).
    wait_js(r1, "document.querySelector('#quality').dataset.quality === 'down'", 5000)
    assert r1.page.text_content("#quality") == "连接中断"
    wait_js(lead, f"window.tongke.state.participants.get({peer['peer_id']!r})?.state === 'lost'")
    lost_after = time.monotonic() - cut
    assert 3.5 < lost_after < 8, lost_after
    pill = f".tile[data-classroom='{room}'] .pill[data-quality]"
    wait_js(lead, f"document.querySelector({pill!r}).dataset.quality === 'down'", 3000)

    # Nobody touches either page: the classroom publishes again and the lead's tile plays a
    # new track of it.
    wait_js(
        lead,
        f"(() => {{ const v = document.querySelector({tile!r});"
        f" const tr = v?.srcObject?.getVideoTracks()[0];"
        f" return tr && tr.id !== {before!r} && v.videoWidth > 0; }})()",
        MEDIA_MS,
    )
    frames = tile_frames(lead, room)
    lead.page.wait_for_timeout(1000)
    assert tile_frames(lead, room) > frames
    back = [p for p in lead.page.evaluate("[...window.tongke.state.participants.values()]")
            if p["classroom_id"] == room]  # fmt: skip
    assert back and back[0]["state"] == "connected"
    assert r1.page.evaluate("window.tongke.media.restarts") >= 1
    video_plays(r1, "#lead-video video")  # and its own receive side came back too
    lead.screenshot("poor-network-back")
    assert not lead.errors and not r1.errors, lead.errors + r1.errors


def test_a_blip_shorter_than_three_seconds_never_shows_as_lost(
    open_page: Any, live_server: LiveServer, lesson: District
) -> None:
    lead, r1 = started(open_page, lesson, "lead", "receiver1")
    room = lesson.receivers[0]["id"]
    video_plays(lead, f".tile[data-classroom='{room}'] video")
    peer = peer_of(lead, room)
    lead.page.evaluate(
        "(id) => { window.sawLost = false; window.tongke.client.on('participant_lost',"
        " (m) => { if (m.participant.peer_id === id) window.sawLost = true; }); }",
        peer["peer_id"],
    )
    restarts = r1.page.evaluate("window.tongke.media.restarts")
    drill(live_server, lesson, peer["peer_id"], {"to_peer": DEAD, "from_peer": DEAD,
                                                 "duration_s": 2.8})  # fmt: skip
    # Well past the blip, the ping it swallowed and the heartbeat timeout that follows.
    lead.page.wait_for_timeout(12_000)
    assert lead.page.evaluate("window.sawLost") is False
    assert peer_of(lead, room)["state"] == "connected"
    assert peer_of(lead, room)["peer_id"] == peer["peer_id"]
    frames = tile_frames(lead, room)
    lead.page.wait_for_timeout(1000)
    assert tile_frames(lead, room) > frames
    # Its transports rode it out: no media restart was needed.
    assert r1.page.evaluate("window.tongke.media.restarts") == restarts


AUDIO_IN = """() => (async () => {
  const pc = window.tongke.media?.recvPc;
  if (!pc) return null;
  for (const r of (await pc.getStats()).values()) {
    if (r.type === 'inbound-rtp' && r.kind === 'audio') return {
      received: r.totalSamplesReceived ?? 0, concealed: r.concealedSamples ?? 0,
      silent: r.silentConcealedSamples ?? 0, fec: r.fecPacketsReceived ?? 0,
      lost: r.packetsLost ?? 0, packets: r.packetsReceived ?? 0};
  }
  return null;
})()"""


AUDIO_CODECS = """() => {
  const pc = window.tongke.media?.recvPc;
  const audio = pc?.getTransceivers().find((t) => t.receiver.track?.kind === 'audio');
  return audio ? audio.receiver.getParameters().codecs.map((c) => c.mimeType) : null;
}"""


# A browser without RED (an older one; aiortc and webrtcbin answer so too): the page's
# peer connections take offers with audio/red left out, so it answers Opus alone.
WITHOUT_RED = r"""(() => {
  const apply = RTCPeerConnection.prototype.setRemoteDescription;
  RTCPeerConnection.prototype.setRemoteDescription = function (d) {
    const red = d?.type === 'offer' && d.sdp.match(/a=rtpmap:(\d+) red\/48000\/2/);
    if (red) {
      const pt = red[1];
      const sdp = d.sdp.replace(new RegExp(`a=(rtpmap|fmtp):${pt} [^\r\n]*\r\n`, 'g'), '')
        .replace(new RegExp(`^(m=audio [^\r\n]*?) ${pt}\\b`, 'm'), '$1');
      d = {type: d.type, sdp};
    }
    return apply.call(this, d);
  };
})();"""


def test_a_lossy_classroom_without_red_gets_the_leads_voice_with_opus_fec(
    open_page: Any, live_server: LiveServer, lesson: District
) -> None:
    lead = join_classroom(open_page(), lesson.links["lead"])
    r1 = open_page()
    r1.page.add_init_script(WITHOUT_RED)
    join_classroom(r1, lesson.links["receiver1"])
    lead.page.click("#start-lesson")
    wait_js(r1, f"({AUDIO_IN})().then((a) => a && a.packets > 100)", MEDIA_MS)
    assert r1.page.evaluate(AUDIO_CODECS) == ["audio/opus"]  # plain Opus, as before RED
    # The lead was answered with in-band FEC (fmtp useinbandfec=1 on its Opus).
    answer = lead.page.evaluate("window.tongke.media.sendPc.remoteDescription.sdp")
    assert "useinbandfec=1" in answer, answer
    peer = peer_of(lead, lesson.receivers[0]["id"])
    # Loss on the classroom's downlink only: the lead's encoder can only learn of it from the
    # server's receiver reports, which carry the worst loss a subscriber reports. (15 %: the
    # fake microphone's beep reads as music to libopus, which leaves CELT for SILK, the mode
    # with in-band FEC, only past ~8 % loss; speech switches at 1-2 %.)
    drill(live_server, lesson, peer["peer_id"], {"to_peer": {"media": {"drop": 0.15}},
                                                 "duration_s": 30})  # fmt: skip
    r1.page.wait_for_timeout(5000)  # the classroom's reports reach the lead's encoder
    before = r1.page.evaluate(AUDIO_IN)
    r1.page.wait_for_timeout(15_000)
    after = r1.page.evaluate(AUDIO_IN)
    delta = {k: after[k] - before[k] for k in after}
    concealed = (delta["concealed"] - delta["silent"]) / max(1, delta["received"])
    print(f"15 % loss toward the classroom: {delta}, concealed {concealed:.2%}")
    assert delta["lost"] > 0, delta
    # Packets carrying Opus FEC arrived: without the reports' loss the encoder adds none.
    assert delta["fec"] > 0, delta
    assert not lead.errors and not r1.errors, lead.errors + r1.errors


def test_a_lossy_classroom_hears_the_lead_through_red(
    open_page: Any, live_server: LiveServer, lesson: District
) -> None:
    lead, r1 = started(open_page, lesson, "lead", "receiver1")
    wait_js(r1, f"({AUDIO_IN})().then((a) => a && a.packets > 50)", MEDIA_MS)
    # The classroom's answer kept RED over the lead's Opus. (getStats' inbound-rtp names
    # the codec its blocks decode with, Opus; the receiver's parameters list both.)
    codecs = r1.page.evaluate(AUDIO_CODECS)
    assert codecs is not None and {"audio/red", "audio/opus"} <= set(codecs), codecs
    peer = peer_of(lead, lesson.receivers[0]["id"])
    drill(live_server, lesson, peer["peer_id"], {"to_peer": {"media": {"drop": 0.10}},
                                                 "duration_s": 14})  # fmt: skip
    r1.page.wait_for_timeout(3000)  # its first reports under loss: two earlier packets repeated
    before = r1.page.evaluate(AUDIO_IN)
    r1.page.wait_for_timeout(8000)
    after = r1.page.evaluate(AUDIO_IN)
    delta = {k: after[k] - before[k] for k in after}
    lost = delta["lost"] / max(1, delta["lost"] + delta["packets"])
    concealed = (delta["concealed"] - delta["silent"]) / max(1, delta["received"])
    print(f"10 % loss toward the classroom with RED: lost {lost:.1%}, concealed {concealed:.2%}")
    assert lost > 0.05, delta  # the drill took packets away ...
    # ... and the next packets brought most of them back: without RED, concealment is about
    # the loss (the fake microphone's beep is CELT, without in-band FEC).
    assert concealed < lost / 4, (lost, concealed, delta)
    assert not lead.errors and not r1.errors, lead.errors + r1.errors


def lead_camera_consumers(lead_peer: str) -> list[Any]:
    """The SFU's consumers of the lead's camera (this process runs the service: the layer
    is read where it is decided, since the decoded size cannot tell)."""
    from media.layers import LayeredConsumer

    return [
        o
        for o in gc.get_objects()
        if isinstance(o, LayeredConsumer)
        and not o.closed
        and any(p.group == f"{lead_peer}/camera" for p in o.producers)
    ]


def lead_camera_layers(lead_peer: str) -> list[str | None]:
    return [c.current_layer for c in lead_camera_consumers(lead_peer)]


def settled_on_main(lead_peer: str) -> bool:
    """The classroom gets main and its bandwidth estimate covers main's rate: at a lesson's
    start the browser's estimate climbs from ~100 kbit/s for ~20 s, and one that stops
    short of main rightly moves it to low (not the loss this test is about)."""
    consumers = lead_camera_consumers(lead_peer)
    if len(consumers) != 1 or consumers[0].current_layer != "main":
        return False
    remb = consumers[0].stats().remb_bps
    return remb is not None and remb >= consumers[0].selector.main_rate_bps > 0


def test_random_loss_that_nack_repairs_keeps_the_classroom_on_main(
    open_page: Any, live_server: LiveServer, lesson: District
) -> None:
    """5 % random loss toward a classroom is NACK's to repair, not a reason for low. Chromium
    counts a packet repaired over RTX as still lost in its receiver reports, so the layer
    rule judges the repairs that failed (NACKs repeated after a resend): every reading it
    judges stays far under the 5 % that leaves main, while the reports' own count reads the
    raw loss (a rule read from it, as before issue 20's fix, moved this classroom to low
    within seconds). The layer itself is not asserted: on a loaded machine the browser's
    delay-based estimate can dip and move the classroom to low, which is the estimate's half
    of the rule, not the loss's (docs/benchmarks.md measures the layer on a quiet one)."""
    lead, r1 = started(open_page, lesson, "lead", "receiver1")
    wait_js(r1, "document.querySelector('#lead-video video')?.videoWidth > 0", MEDIA_MS)
    lead_peer = lead.page.evaluate("window.tongke.client.joined.peer_id")
    deadline = time.monotonic() + 45
    while not settled_on_main(lead_peer):
        assert time.monotonic() < deadline, lead_camera_layers(lead_peer)
        time.sleep(0.25)
    (consumer,) = lead_camera_consumers(lead_peer)
    peer = peer_of(lead, lesson.receivers[0]["id"])
    frames = "document.querySelector('#lead-video video').getVideoPlaybackQuality()" \
        ".totalVideoFrames"  # fmt: skip
    drill(live_server, lesson, peer["peer_id"], {"to_peer": {"media": {"drop": 0.05}},
                                                 "duration_s": 12})  # fmt: skip
    start, before = consumer.stats(), r1.page.evaluate(frames)
    layers, judged = [], []
    for _ in range(40):  # 10 s
        time.sleep(0.25)
        layers.append(consumer.current_layer)
        judged.append(consumer.loss_judged)
    end, decoded = consumer.stats(), r1.page.evaluate(frames) - before
    sent = end.packets_sent - start.packets_sent
    repeated = (end.nacks_repeated - start.nacks_repeated) / sent
    reported = (end.packets_lost - start.packets_lost) / max(
        1, end.highest_sequence - start.highest_sequence
    )
    print(f"5 % loss: repairs failed {repeated:.2%}, reported lost {reported:.2%}, {layers}")
    assert end.nacks_received > start.nacks_received  # the drill took packets away
    assert repeated < 0.02, (repeated, layers)  # the repairs that failed: far under 5 %
    assert max(judged) < 0.05, judged  # every reading the rule judged kept main
    assert reported > 0.02, reported  # what the reports say: the raw loss
    assert decoded > 50, decoded  # the picture went on (the encoder makes ~20-25 fps here)
    assert not lead.errors and not r1.errors, lead.errors + r1.errors
