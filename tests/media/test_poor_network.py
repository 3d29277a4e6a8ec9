"""Poor networks end to end: the real service, real signaling, faults set through the admin API.

Each test runs the app (uvicorn, in this process) with the demo lesson and fault injection on,
joins SyntheticTerminals over the real protocol (join link -> WebSocket -> publish /
subscribe), then degrades one receiving classroom's link through
``PUT /api/lessons/{id}/faults/{peer_id}`` and checks what the classroom and the lead see.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from media import aiortc_hooks as hooks
from media.synthetic.terminal import SyntheticTerminal
from tongke_bench.loss import LiveService, live_service, wait_until

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
async def live(tmp_path: Path, clip_cache: Path) -> AsyncIterator[LiveService]:
    async with live_service(tmp_path) as service:
        yield service


async def lesson_with_receiver(
    live: LiveService, *, publish: bool = False, patrol: bool = False
) -> tuple[SyntheticTerminal, SyntheticTerminal, SyntheticTerminal | None]:
    """A live lesson: the synthetic lead, one decoding receiving classroom (and a patrol)."""
    lead = live.terminal("lead")
    await lead.start(start_lesson=True)
    receiver = live.terminal("receiver", 0, decode=True, publish=publish)
    await receiver.start()
    watcher = None
    if patrol:
        watcher = live.terminal("patrol", 0, publish=False)
        await watcher.start()
    assert receiver.receiver is not None
    await wait_until(lambda: receiver.receiver.decoded["video"] >= 15, within=30)
    return lead, receiver, watcher


def decoded(terminal: SyntheticTerminal, kind: str = "video") -> int:
    assert terminal.receiver is not None
    return terminal.receiver.decoded[kind]


async def fps_over(terminal: SyntheticTerminal, seconds: float) -> float:
    start = decoded(terminal)
    await asyncio.sleep(seconds)
    return (decoded(terminal) - start) / seconds


def lead_camera_consumer(live: LiveService, lead: SyntheticTerminal, peer_id: str) -> object:
    media = live.state.media
    lead_id = lead.joined["peer_id"]
    (camera,) = [
        p
        for p in media.producers(live.lesson_id)
        if p.peer_id == lead_id and p.source == "camera" and p.layer == "main"
    ]
    consumer = media.consumer(peer_id, camera.id)
    assert consumer is not None
    return consumer


async def test_five_percent_loss_toward_a_receiver_is_repaired_and_decodes_at_25_fps(
    live: LiveService,
) -> None:
    _, receiver, _ = await lesson_with_receiver(live)
    peer_id = receiver.joined["peer_id"]
    reply = await live.set_faults(peer_id, {"to_peer": {"media": {"drop": 0.05}}, "seed": 5})
    assert reply["faults"]["to_peer"]["media"]["drop"] == 0.05
    await asyncio.sleep(1.0)
    fps = await fps_over(receiver, 6.0)
    stats = (await live.api("GET", f"/api/lessons/{live.lesson_id}/faults")).json()
    (mine,) = stats
    dropped = mine["stats"]["media_to_peer"]["dropped"]
    assert receiver.receiver is not None
    (video,) = receiver.receiver.of_kind("video")
    assert dropped > 20  # the loss really happened ...
    assert video.retransmissions > 0  # ... and NACK repaired it
    assert receiver.receiver.decode_errors == 0
    assert fps >= 25, f"{fps:.1f} fps under 5% loss"


async def test_ten_percent_loss_keeps_audio_continuous(live: LiveService) -> None:
    _, receiver, _ = await lesson_with_receiver(live)
    assert receiver.receiver is not None
    audio_ssrcs = {ssrc for ssrc, s in receiver.receiver.streams.items() if s.kind == "audio"}
    assert audio_ssrcs
    arrivals: list[float] = []

    def record(data: bytes) -> None:
        if int.from_bytes(data[8:12], "big") in audio_ssrcs:
            arrivals.append(hooks.now_ms())

    dtls = hooks.dtls_transport_of(receiver.receiver.pc)
    assert dtls is not None
    hooks.tap_incoming_rtp(dtls, record)
    await live.set_faults(receiver.joined["peer_id"], {"to_peer": {"media": {"drop": 0.10}}})
    await asyncio.sleep(0.5)
    arrivals.clear()
    start_audio = decoded(receiver, "audio")
    await asyncio.sleep(6.0)
    window = list(arrivals)
    gaps = [b - a for a, b in itertools.pairwise(window)]
    assert len(window) > 200  # ~50 packets/s less the 10% lost
    assert max(gaps) <= 200, f"largest audio gap {max(gaps)} ms"
    # aiortc's small audio jitter buffer skips what it lost and then some (150-170 of the ~270
    # that arrive get decoded here); the check is that the decoder keeps going, not its ratio.
    frames = decoded(receiver, "audio") - start_audio
    print(f"audio: {len(window)} packets in 6 s, {frames} decoded, largest gap {max(gaps)} ms")
    assert frames > 120
    assert receiver.receiver.decode_errors == 0


async def test_a_300_kbps_cap_moves_the_receiver_to_low_and_back_to_main(
    live: LiveService,
) -> None:
    lead, receiver, patrol = await lesson_with_receiver(live, patrol=True)
    assert patrol is not None and receiver.receiver is not None
    peer_id = receiver.joined["peer_id"]
    consumer = lead_camera_consumer(live, lead, peer_id)
    assert consumer.current_layer == "main"  # type: ignore[attr-defined]
    mark_lead, mark_patrol = len(lead.events), len(patrol.events)
    (audio,) = receiver.receiver.of_kind("audio")
    audio_lost = audio.lost

    reply = await live.set_faults(peer_id, {"to_peer": {"media": {"rate_kbps": 300}}})
    assert reply["faults"]["to_peer"]["media"]["rate_kbps"] == 300
    took = await wait_until(lambda: consumer.current_layer == "low", within=10)  # type: ignore[attr-defined]

    # The lead and the patrol see the classroom's degraded link in `quality` events.
    def degraded(m: dict) -> bool:  # type: ignore[type-arg]
        return m["peer_id"] == peer_id and m["loss"] >= 0.02

    await lead.wait_for("quality", degraded, within_s=8, since=mark_lead)
    await patrol.wait_for("quality", degraded, within_s=8, since=mark_patrol)
    # Low keeps decoding under the cap, without errors; audio was never the one dropped.
    before = decoded(receiver)
    await wait_until(lambda: decoded(receiver) >= before + 60, within=10)
    assert receiver.receiver.video_sizes[-1] == (320, 240)
    assert receiver.receiver.decode_errors == 0
    # The cap dropped video (main did not fit) but audio went first: none of it was lost.
    (mine,) = (await live.api("GET", f"/api/lessons/{live.lesson_id}/faults")).json()
    assert mine["stats"]["media_to_peer"]["cap_dropped"] > 0
    assert audio.lost == audio_lost
    print(f"switched to low {took:.1f}s after the cap")

    await live.clear_faults(peer_id)
    # The try at main comes after 15 s of calm; a try spoiled by a stall of this loaded
    # process doubles the wait (30 s): still "back to main", so allow for one.
    took = await wait_until(lambda: consumer.current_layer == "main", within=70)  # type: ignore[attr-defined]
    await wait_until(lambda: receiver.receiver.video_sizes[-1] == (640, 480), within=5)
    assert receiver.receiver.decode_errors == 0
    print(f"back on main {took:.1f}s after the cap was lifted")


async def test_a_receiver_whose_uplink_dies_is_lost_within_5s_and_resumes(
    live: LiveService,
) -> None:
    lead, receiver, _ = await lesson_with_receiver(live, publish=True)
    peer_id = receiver.joined["peer_id"]
    classroom = receiver.joined["you"]["classroom_id"]
    await wait_until(
        lambda: any(
            p["peer_id"] == peer_id
            for m in lead.of_type("producers_changed")
            for p in m["producers"]
        ),
        within=15,
    )
    mark = len(lead.events)
    loop = asyncio.get_running_loop()
    # Everything from the classroom stops: RTP/RTCP on both transports and its WebSocket.
    dead = {"media": {"drop": 1.0}, "signaling": {"drop": 1.0}}
    await live.set_faults(peer_id, {"from_peer": dead})
    died = loop.time()
    lost = await lead.wait_for(
        "participant_lost", lambda m: m["participant"]["peer_id"] == peer_id, within_s=8, since=mark
    )
    took = loop.time() - died
    assert lost["participant"]["classroom_id"] == classroom
    assert took <= 5.0, f"lost after {took:.1f}s"

    # The link comes back: the classroom resumes as the same peer with its subscriptions.
    await live.clear_faults(peer_id)
    joined = await receiver.resume()
    assert joined["resumed"] is True and joined["peer_id"] == peer_id
    await lead.wait_for(
        "participant_updated",
        lambda m: (
            m["participant"]["peer_id"] == peer_id and m["participant"]["state"] == "connected"
        ),
        within_s=10,
        since=mark,
    )
    await wait_until(lambda: decoded(receiver) >= 30, within=30)
    assert receiver.receiver is not None and receiver.receiver.decode_errors == 0
    # Its camera is published again: the lead is offered it.
    await lead.wait_for(
        "producers_changed",
        lambda m: any(p["peer_id"] == peer_id for p in m["producers"]),
        within_s=15,
        since=mark,
    )
    print(f"lost after {took:.1f}s")


def test_a_try_at_main_is_judged_by_loss_while_the_estimate_still_lags() -> None:
    from media.layers import LOW, MAIN, DualStreamSelector

    s = DualStreamSelector(probe_after_ms=1000, probe_window_ms=10_000)
    assert s.update(0, loss=0.3) and s.target_layer == LOW  # a capped link
    for t in range(100, 1200, 100):  # uncapped: calm, REMB ~1.5x low, never near main
        s.update(t, available_bps=240_000, main_bps=900_000, low_bps=150_000)
    assert s.target_layer == MAIN  # the try
    # The estimate ramps up behind the new rate: not a reason to give up ...
    for t in range(1300, 8000, 500):
        assert s.update(t, available_bps=300_000 + 50 * t, main_bps=900_000) is False
    # ... once it has covered main, it counts again; and loss always does.
    s.update(9000, available_bps=1_000_000, main_bps=900_000)
    assert s.update(9500, available_bps=500_000, main_bps=900_000) is True
    assert s.target_layer == LOW


def test_the_calm_spell_ignores_keyframe_spikes_of_the_low_bitrate() -> None:
    from media.layers import LOW, MAIN, DualStreamSelector

    s = DualStreamSelector(probe_after_ms=3000)
    s.update(0, loss=0.3)
    assert s.target_layer == LOW
    for i, t in enumerate(range(100, 3300, 100)):
        spike = 320_000 if i % 10 == 5 else 140_000  # a keyframe in the sampling window
        s.update(t, available_bps=260_000, main_bps=900_000, low_bps=spike)
    assert s.target_layer == MAIN


def test_a_clean_start_stays_on_main_through_keyframe_spikes() -> None:
    from media.layers import LOW, MAIN, DualStreamSelector

    s = DualStreamSelector()
    # aiortc's first REMB is about the incoming rate; main's samples spike over keyframes.
    s.update(0, loss=0.0, main_bps=1_090_000)  # an RR first, over the first keyframe
    spikes = [780_000, 840_000, 1_180_000, 800_000] * 3
    for t, main in zip(range(500, 6500, 500), spikes, strict=True):
        s.update(t, available_bps=870_000 + 10 * t, main_bps=main, low_bps=150_000)
    assert s.target_layer == MAIN
    # A real back-off (0.85x of a capped throughput) still moves it at once.
    assert s.update(7000, available_bps=255_000, main_bps=900_000) is True
    assert s.target_layer == LOW


def test_a_report_about_the_rtx_stream_is_not_the_streams_loss() -> None:
    from core_support import Clock, RecordingSink, params, video

    from media.codecs import CodecInfo
    from media.router import Router
    from media.rtcp import RtcpReportBlock

    clock = Clock()
    router = Router("r", clock=clock)
    producer = router.create_producer("p", "video", "camera", "main", params(), RecordingSink())
    vp8 = CodecInfo("video/VP8", 90000, 120, rtx_payload_type=121, rtcp_feedback=("nack",))
    consumer = router.create_consumer(
        "c", "p", params(vp8, ssrc=5000, rtx_ssrc=5001), RecordingSink()
    )
    producer.receive_rtp(video(1, 0, key=True), clock.advance(10))
    consumer.receive_receiver_report(RtcpReportBlock(5000, fraction_lost=5))
    # One of seven retransmissions lost reads 14 %: not the stream's loss (2 %).
    consumer.receive_receiver_report(RtcpReportBlock(5001, fraction_lost=36))
    assert consumer.stats().fraction_lost == 5 / 256


def test_bench_loss_levels_are_checked(capsys: pytest.CaptureFixture[str]) -> None:
    from server.cli import main
    from tongke_bench.loss import parse_losses

    assert parse_losses("0,2,5,10") == [0, 2, 5, 10]
    for bad in ("", "x", "5,100", "-1"):
        with pytest.raises(ValueError, match="Loss levels must be"):
            parse_losses(bad)
    assert main(["bench", "--loss", "2,abc"]) == 1
    assert "error: Loss levels must be comma-separated percentages" in capsys.readouterr().err


async def test_bench_loss_point_reports_what_the_classroom_got(tmp_path: Path) -> None:
    from tongke_bench.loss import format_loss_point, run_loss_point

    point = await run_loss_point(5, seconds=5.0, data_dir=tmp_path)
    assert point["loss_pct"] == 5 and point["decode_errors"] == 0
    assert point["fps"] > 20 and point["audio_packets_per_s"] > 40
    assert point["audio_max_gap_ms"] is not None and point["layer"] in ("main", "low")
    assert "loss    5%" in format_loss_point(point)
