"""Synthetic clip and peers: pre-encoded once, packetized only, and decodable."""

import asyncio

import av
from aiortc import RTCSessionDescription

from media.aiortc_hooks import DecodeErrorCounter
from media.synthetic import clip
from media.synthetic.peers import (
    ClipVideoTrack,
    StreamCounters,
    SyntheticPublisher,
    SyntheticReceiver,
    make_peer_connection,
    vp8_starts_keyframe,
)

LOOPBACK = ["127.0.0.1"]


def test_clip_is_vp8_with_keyframes_on_the_gop_grid(clip_cache) -> None:
    frames = clip.load_video(clip.MAIN, clip_cache)
    assert len(frames) == clip.MAIN.fps * clip.MAIN.seconds
    keyframes = [i for i, f in enumerate(frames) if f.keyframe]
    assert keyframes == list(range(0, len(frames), clip.MAIN.gop_frames))


def test_clip_frames_decode_without_error(clip_cache) -> None:
    decoder = av.CodecContext.create("libvpx", "r")
    sizes = set()
    for frame in clip.load_video(clip.LOW, clip_cache)[:60]:
        for picture in decoder.decode(av.Packet(frame.data)):
            sizes.add((picture.width, picture.height))
    assert sizes == {(320, 240)}


def test_audio_clip_is_twenty_millisecond_opus_packets(clip_cache) -> None:
    packets = clip.load_audio(10, clip_cache)
    assert 499 <= len(packets) <= 502
    decoder = av.CodecContext.create("opus", "r")
    samples = sum(f.samples for p in packets[:10] for f in decoder.decode(av.Packet(p.data)))
    assert samples >= 9 * 960


async def test_video_track_jumps_to_the_next_keyframe_when_asked(clip_cache) -> None:
    frames = clip.load_video(clip.MAIN, clip_cache)
    track = ClipVideoTrack(frames, fps=1000)
    first = await track.recv()
    second = await track.recv()
    assert bytes(first) == frames[0].data and bytes(second) == frames[1].data
    track.request_keyframe()
    jumped = await track.recv()
    assert bytes(jumped) == frames[clip.MAIN.gop_frames].data
    assert jumped.pts == 2 * (90_000 // 1000) and track.keyframes_sent == 2


def test_vp8_keyframe_detection_reads_only_the_payload_descriptor() -> None:
    assert vp8_starts_keyframe(bytes([0x10, 0x00]))  # S=1, PID=0, P=0
    assert not vp8_starts_keyframe(bytes([0x10, 0x01]))  # inter frame
    assert not vp8_starts_keyframe(bytes([0x00, 0x00]))  # not a partition start
    # X=1, I=1 with a 15-bit picture id, then the frame tag.
    assert vp8_starts_keyframe(bytes([0x90, 0x80, 0x81, 0x23, 0x00]))
    assert not vp8_starts_keyframe(b"")


def test_stream_counters_count_repaired_sequences_as_received() -> None:
    stats = StreamCounters(kind="video")
    for seq in (65534, 65535, 1, 2):
        SyntheticReceiver._add_seq(stats, seq)
    assert stats.expected == 5 and stats.lost == 1
    SyntheticReceiver._add_seq(stats, 0)  # the retransmission arrives
    assert stats.lost == 0


async def test_publisher_clip_decodes_at_a_plain_aiortc_peer(clip_cache) -> None:
    publisher = SyntheticPublisher(host_addresses=LOOPBACK, layers=("low",), cache_dir=clip_cache)
    answerer = make_peer_connection()
    counter = DecodeErrorCounter.install()
    before = sum(counter.by_thread.values())
    decoded = {"audio": 0, "video": 0}
    tasks = []

    async def drain(track) -> None:  # type: ignore[no-untyped-def]
        while True:
            await track.recv()
            decoded[track.kind] += 1

    answerer.on("track", lambda track: tasks.append(asyncio.ensure_future(drain(track))))
    try:
        await answerer.setRemoteDescription(
            RTCSessionDescription(await publisher.create_offer(), "offer")
        )
        from media import aiortc_hooks as hooks

        hooks.use_host_addresses(answerer, LOOPBACK)
        await answerer.setLocalDescription(await answerer.createAnswer())
        await publisher.accept_answer(answerer.localDescription.sdp)
        assert [(t.kind, t.source, t.layer) for t in publisher.tracks] == [
            ("video", "camera", "low"),
            ("audio", "mic", "main"),
        ]
        for _ in range(200):
            if decoded["video"] >= 20 and decoded["audio"] >= 20:
                break
            await asyncio.sleep(0.05)
        assert decoded["video"] >= 20 and decoded["audio"] >= 20
        assert sum(counter.by_thread.values()) == before
    finally:
        for task in tasks:
            task.cancel()
        await publisher.close()
        await answerer.close()
