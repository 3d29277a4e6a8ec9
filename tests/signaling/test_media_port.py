"""The room drives the media plane through the MediaPort as the lesson changes."""

from __future__ import annotations

from typing import Any

import pytest
from signal_harness import Client, RecordingMedia, Signal

from signaling.errors import ErrorCode
from signaling.grants import Role, Source
from signaling.media_port import NullMediaPort, PeerInfo, QualityReport
from signaling.policy import PublishedTrack


def produced(message: dict[str, Any]) -> set[tuple[str | None, str, str]]:
    return {(p["classroom_id"], p["source"], p["layer"]) for p in message["producers"]}


async def latest_producers(client: Client) -> set[tuple[str | None, str, str]]:
    await client.settle()
    changes = [m for m in client.pending() if m["type"] == "producers_changed"]
    client.buffer = [m for m in client.buffer if m["type"] != "producers_changed"]
    assert changes, "no producers_changed"
    return produced(changes[-1])


LEAD_TRACKS = [
    {"mid": "0", "source": "camera", "layer": "main"},
    {"mid": "1", "source": "camera", "layer": "low"},
    {"mid": "2", "source": "mic"},
]
RECEIVER_TRACKS = [{"mid": "0", "source": "camera"}, {"mid": "1", "source": "mic"}]


async def test_a_publish_is_answered_and_the_receivers_are_offered_the_lead(
    lesson: Signal, media: RecordingMedia
) -> None:
    lead = await lesson.live()
    r1 = await lesson.receiver("r1")
    reply = await lead.request("publish", sdp="v=0 lead", tracks=LEAD_TRACKS)
    assert reply["type"] == "publish_answer" and reply["sdp"] == "answer-to:v=0 lead"
    assert await latest_producers(r1) == {
        ("lead-room", "camera", "main"),
        ("lead-room", "mic", "main"),
    }
    offer = await r1.expect(lambda m: m["type"] == "subscribe_offer" and m["consumers"])
    assert {c["producer"]["source"] for c in offer["consumers"]} == {"camera", "mic"}
    assert (await r1.request("subscribe_answer", sdp="v=0 answer"))["type"] == "ok"
    assert media.answers == [(r1.joined["peer_id"], "v=0 answer")]


async def test_stage_and_mute_move_a_classrooms_tracks(
    lesson: Signal, media: RecordingMedia
) -> None:
    lead = await lesson.live()
    r1 = await lesson.receiver("r1")
    r2 = await lesson.receiver("r2")
    await r1.request("publish", sdp="v=0 r1", tracks=RECEIVER_TRACKS)
    assert await latest_producers(lead) == {("r1", "camera", "main")}
    await lead.request("set_stage", classroom_id="r1")
    assert await latest_producers(lead) == {("r1", "camera", "main"), ("r1", "mic", "main")}
    assert await latest_producers(r2) == {("r1", "camera", "main"), ("r1", "mic", "main")}
    await lead.request("mute", classroom_id="r1", muted=True)
    assert await latest_producers(lead) == {("r1", "camera", "main")}
    # The media plane was asked for the same set the peer was told.
    assert {
        (r.classroom_id, r.source.value) for r in media.subscriptions[r2.joined["peer_id"]]
    } == {
        ("r1", "camera"),
        ("r1", "mic"),
    }


async def test_a_lost_peers_media_is_released_and_others_stop_receiving_it(
    lesson: Signal, media: RecordingMedia
) -> None:
    lead = await lesson.live()
    r1 = await lesson.receiver("r1")
    await r1.request("publish", sdp="v=0 r1", tracks=RECEIVER_TRACKS)
    assert await latest_producers(lead) == {("r1", "camera", "main")}
    r1.drop()
    await lead.expect("participant_lost")
    assert await latest_producers(lead) == set()
    assert r1.joined["peer_id"] in media.closed


async def test_tracks_beyond_the_grant_reported_by_media_are_ignored(
    lesson: Signal, media: RecordingMedia
) -> None:
    lead = await lesson.live()
    r1 = await lesson.receiver("r1")
    assert media.listener is not None
    peer_id = r1.joined["peer_id"]
    media.listener.producers_changed(
        "lesson-1",
        peer_id,
        (PublishedTrack(peer_id, Role.RECEIVER, "r1", Source.SCREEN),),
    )
    await lead.settle()
    assert not [m for m in lead.pending() if m["type"] == "producers_changed" and m["producers"]]


async def test_quality_reports_reach_the_lead_and_patrol_only(
    lesson: Signal, media: RecordingMedia
) -> None:
    lead = await lesson.live()
    r1 = await lesson.receiver("r1")
    r2 = await lesson.receiver("r2")
    patrol = await lesson.patrol()
    assert media.listener is not None
    report = QualityReport(loss=0.02, jitter_ms=8.0, rtt_ms=35.0, bitrate_kbps=900.0)
    media.listener.quality_changed("lesson-1", r1.joined["peer_id"], report)
    for client in (lead, patrol):
        quality = await client.expect("quality")
        assert quality["classroom_id"] == "r1" and quality["loss"] == 0.02
    await r2.settle()
    assert "quality" not in r2.types()


async def test_a_failed_publish_transport_is_told_to_the_publisher_alone(
    lesson: Signal, media: RecordingMedia
) -> None:
    lead = await lesson.live()
    r1 = await lesson.receiver("r1")
    assert media.listener is not None
    reason = "DTLS handshake failed (fingerprint mismatch)"
    media.listener.publish_failed("lesson-1", lead.joined["peer_id"], reason)
    error = await lead.expect("error")
    assert error["code"] == "transport_failed" and error.get("id") is None
    assert reason in error["message"]
    await r1.settle()
    assert "error" not in r1.types()


async def test_a_codec_a_receiver_refused_is_told_to_that_receiver_alone(
    lesson: Signal, media: RecordingMedia
) -> None:
    lead = await lesson.live()
    r1 = await lesson.receiver("r1")
    assert media.listener is not None
    reason = "The video camera of peer x cannot be received: your answer rejected m-line 0."
    media.listener.subscribe_refused("lesson-1", r1.joined["peer_id"], reason)
    error = await r1.expect("error")
    assert error == {"type": "error", "id": None, "code": "unsupported_codec", "message": reason}
    await lead.settle()
    assert "error" not in lead.types()


async def test_the_null_media_port_answers_media_unavailable() -> None:
    port = NullMediaPort()
    peer = PeerInfo("lesson-1", "p", Role.LEAD, "lead-room")
    with pytest.raises(Exception) as info:
        await port.publish(peer, "v=0", [])
    assert getattr(info.value, "code", None) is ErrorCode.MEDIA_UNAVAILABLE
    await port.close_peer(peer)
