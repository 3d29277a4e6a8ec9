"""RED (RFC 2198) toward subscribers: the packer, the history, the policy and the consumer.

Plain packets and a real Router with recording sinks; no sockets (negotiation and real
peers: test_red_negotiation.py; Chromium: tests/web/test_browser_poor_network.py).
"""

from __future__ import annotations

import pytest
from core_support import OPUS, Clock, RecordingSink, audio, params

from media.codecs import ABS_SEND_TIME, AUDIO_LEVEL, SDES_MID, CodecInfo
from media.consumer import SimpleConsumer
from media.red import (
    CLEAN_MS,
    MAX_BLOCK_LENGTH,
    MAX_RED_PAYLOAD,
    RedConsumer,
    RedHistory,
    RedundancyPolicy,
    pack_red,
    split_red,
)
from media.router import Router
from media.rtcp import RtcpReportBlock
from media.rtp import RtpPacket

OPUS_PT = 96
RED_PT = 63
SUB_EXT = {SDES_MID: 4, ABS_SEND_TIME: 5, AUDIO_LEVEL: 6}
SUB_OPUS = CodecInfo("audio/opus", 48000, OPUS_PT, channels=2, red_payload_type=RED_PT)


def opus(seq: int, ts: int, payload: bytes | None = None) -> RtpPacket:
    return RtpPacket(
        payload_type=111,
        sequence_number=seq & 0xFFFF,
        timestamp=ts & 0xFFFFFFFF,
        payload=payload if payload is not None else b"op" + (seq & 0xFFFF).to_bytes(2, "big"),
    )


# -- wire format ----------------------------------------------------------------------


def test_two_redundant_blocks_are_laid_out_as_rfc_2198_says() -> None:
    older, newer, primary = opus(1, 1000, b"A" * 3), opus(2, 1960, b"BB"), opus(3, 2920, b"C")
    data = pack_red(OPUS_PT, primary, older, newer)
    # F=1 | PT 96, offset 1920 (14 bits), length 3 (10 bits); then offset 960, length 2.
    first = (0x80 | OPUS_PT) << 24 | 1920 << 10 | 3
    second = (0x80 | OPUS_PT) << 24 | 960 << 10 | 2
    assert data[:4] == first.to_bytes(4, "big")
    assert data[4:8] == second.to_bytes(4, "big")
    assert data[8] == OPUS_PT  # F=0: the primary's one-byte header
    assert data[9:] == b"AAABBC"  # oldest first, the primary last
    assert split_red(data) == [(OPUS_PT, 1920, b"AAA"), (OPUS_PT, 960, b"BB"), (OPUS_PT, 0, b"C")]


def test_the_primary_alone_has_a_one_byte_header() -> None:
    assert pack_red(OPUS_PT, opus(7, 0, b"xyz")) == bytes([OPUS_PT]) + b"xyz"
    assert split_red(bytes([OPUS_PT])) == [(OPUS_PT, 0, b"")]


def refusal(data: bytes) -> str:
    with pytest.raises(ValueError) as refused:
        split_red(data)
    return str(refused.value)


def test_a_malformed_red_payload_is_refused_saying_why() -> None:
    assert refusal(b"") == "RED payload ends inside its block headers."
    assert refusal(bytes([0x80 | OPUS_PT, 0, 0])) == "RED payload ends inside its block headers."
    header = ((0x80 | OPUS_PT) << 24 | 960 << 10 | 50).to_bytes(4, "big")
    assert refusal(header + bytes([OPUS_PT]) + b"short") == (
        "RED block of 50 bytes exceeds the payload."
    )


# -- which earlier packets ride along ---------------------------------------------------


def run(history: RedHistory, packets: list[RtpPacket], distance: int) -> list[bytes]:
    return [pack_red(OPUS_PT, p, *history.choose(p, distance)) for p in packets]


def test_distance_one_repeats_the_packet_before() -> None:
    out = run(RedHistory(), [opus(10, 0), opus(11, 960), opus(12, 1920)], 1)
    assert split_red(out[0]) == [(OPUS_PT, 0, opus(10, 0).payload)]
    assert split_red(out[2]) == [(OPUS_PT, 960, opus(11, 0).payload), (OPUS_PT, 0, b"op\x00\x0c")]


def test_distance_two_repeats_the_two_before_and_zero_none() -> None:
    history = RedHistory()
    out = run(history, [opus(10, 0), opus(11, 960), opus(12, 1920)], 2)
    assert [(pt, off) for pt, off, _ in split_red(out[2])] == [(96, 1920), (96, 960), (96, 0)]
    (only,) = split_red(run(history, [opus(13, 2880)], 0)[0])
    assert only == (OPUS_PT, 0, opus(13, 0).payload)


def test_sequence_and_timestamp_wrap_around() -> None:
    out = run(RedHistory(), [opus(0xFFFF, 0xFFFFFC40), opus(0x10000, 0x100000000 + 0)], 1)
    assert split_red(out[1]) == [(OPUS_PT, 960, opus(0xFFFF, 0).payload), (96, 0, b"op\x00\x00")]


def test_a_packet_lost_before_the_server_leaves_a_gap_the_one_before_it_fills() -> None:
    packets = [opus(20, 0), opus(21, 960), opus(23, 2880)]  # 22 never arrived
    far = run(RedHistory(), packets, 2)
    # 21 is two back (timestamp offset 1920), 20 is three back: too far for distance 2.
    assert [(off, data) for _, off, data in split_red(far[2])] == [
        (1920, opus(21, 0).payload),
        (0, opus(23, 0).payload),
    ]
    near = run(RedHistory(), packets, 1)
    assert len(split_red(near[2])) == 1  # distance 1: 21 is too far back


def test_a_packet_older_than_14_bits_of_timestamp_is_not_repeated() -> None:
    # After a pause in the sound (DTX), the packet before is more than 341 ms back.
    out = run(RedHistory(), [opus(1, 0), opus(2, 0x4000)], 1)
    assert len(split_red(out[1])) == 1
    out = run(RedHistory(), [opus(1, 0), opus(2, 0x3FFF)], 1)
    assert split_red(out[1])[0][1] == 0x3FFF


def test_a_payload_past_10_bits_of_length_is_not_repeated() -> None:
    big = opus(1, 0, b"x" * (MAX_BLOCK_LENGTH + 1))
    out = run(RedHistory(), [big, opus(2, 960)], 1)
    assert len(split_red(out[1])) == 1
    fits = opus(1, 0, b"x" * MAX_BLOCK_LENGTH)
    assert split_red(run(RedHistory(), [fits, opus(2, 960)], 1)[1])[0][2] == fits.payload


def test_blocks_that_would_pass_the_size_budget_are_left_out_oldest_first() -> None:
    half = b"y" * (MAX_RED_PAYLOAD // 2)
    packets = [opus(1, 0, half), opus(2, 960, half), opus(3, 1920, b"z" * 40)]
    out = run(RedHistory(), packets, 2)
    assert [off for _, off, _ in split_red(out[2])] == [960, 0]  # packet 1 left out
    assert len(out[2]) <= MAX_RED_PAYLOAD


def test_a_late_packet_is_sent_with_what_precedes_it_and_does_not_become_the_newest() -> None:
    history = RedHistory()
    run(history, [opus(1, 0), opus(3, 1920)], 2)
    late = run(history, [opus(2, 960)], 2)[0]
    assert split_red(late) == [(OPUS_PT, 960, opus(1, 0).payload), (96, 0, opus(2, 0).payload)]
    nxt = run(history, [opus(4, 2880)], 2)[0]
    # 3 is still the newest (1 is three back now): the late 2 is not taken for it.
    assert split_red(nxt) == [(OPUS_PT, 960, opus(3, 0).payload), (96, 0, opus(4, 0).payload)]


# -- how much to repeat -------------------------------------------------------------------


def test_the_policy_repeats_one_at_first_two_under_heavy_loss_and_none_on_a_clean_link() -> None:
    policy = RedundancyPolicy()
    assert policy.distance == 1  # no report yet
    policy.report(26, 1000)  # 10 %
    assert policy.distance == 2
    policy.report(13, 2000)  # 5 %: still heavy enough to keep two (cleared below ~3 %)
    assert policy.distance == 2
    policy.report(5, 3000)  # 2 %
    assert policy.distance == 1
    policy.report(13, 4000)  # 5 % from one: not heavy
    assert policy.distance == 1
    policy.report(0, 5000)
    policy.report(0, 5000 + CLEAN_MS - 1)
    assert policy.distance == 1
    policy.report(0, 5000 + CLEAN_MS)
    assert policy.distance == 0  # clean for 10 s: the primary alone
    policy.report(3, 20_000)  # any loss brings the repeats back
    assert policy.distance == 1


def test_one_clean_report_after_heavy_loss_steps_down_to_one() -> None:
    policy = RedundancyPolicy()
    policy.report(40, 1000)
    policy.report(0, 2000)
    assert policy.distance == 1


# -- the consumer -------------------------------------------------------------------------


def red_lesson(n: int = 1) -> tuple[Clock, Router, list[RedConsumer], list[RecordingSink]]:
    clock = Clock()
    router = Router("r", clock=clock)
    router.create_producer(
        "mic", "audio", "mic", "main", params(OPUS, ssrc=2000, rtx_ssrc=None), RecordingSink()
    )
    sinks = [RecordingSink() for _ in range(n)]
    consumers = []
    for i, sink in enumerate(sinks):
        sub = params(SUB_OPUS, ssrc=6000 + i, rtx_ssrc=None, extensions=SUB_EXT, mid="1")
        consumer = router.create_consumer(f"c{i}", "mic", sub, sink)
        assert isinstance(consumer, RedConsumer)
        consumers.append(consumer)
    return clock, router, consumers, sinks


def feed(router: Router, clock: Clock, packets: list[RtpPacket]) -> None:
    producer = router.get_producer("mic")
    assert producer is not None
    for packet in packets:
        producer.receive_rtp(packet, clock.advance(20))


def test_a_red_consumer_sends_red_with_the_plain_consumers_numbering_and_extensions() -> None:
    clock, router, (consumer,), (sink,) = red_lesson()
    plain_sink = RecordingSink()
    plain = router.create_consumer(
        "plain",
        "mic",
        params(OPUS, ssrc=7000, rtx_ssrc=None, extensions=SUB_EXT, mid="1"),
        plain_sink,
    )
    assert type(plain) is SimpleConsumer
    feed(router, clock, [audio(s, s * 960, level=30) for s in range(100, 104)])
    red, opus_out = sink.rtp, plain_sink.rtp
    assert [p.payload_type for p in red] == [RED_PT] * 4
    assert [p.payload_type for p in opus_out] == [111] * 4  # the plain one: unchanged
    assert [p.sequence_number for p in red] == [p.sequence_number for p in opus_out]
    assert [p.timestamp for p in red] == [p.timestamp for p in opus_out]
    assert red[0].ssrc == 6000 and red[0].extensions == opus_out[0].extensions
    assert red[0].get_extension(6) == bytes([0x80 | 30])  # audio level, remapped
    assert split_red(red[0].payload) == [(OPUS_PT, 0, opus_out[0].payload)]
    assert split_red(red[3].payload) == [
        (OPUS_PT, 960, opus_out[2].payload),
        (OPUS_PT, 0, opus_out[3].payload),
    ]
    # Sender reports count the bytes that went out, blocks and headers included.
    assert consumer.stats().bytes_sent == sum(len(p.payload) for p in red)


def test_receiver_reports_set_how_much_is_repeated() -> None:
    clock, router, (consumer,), (sink,) = red_lesson()
    feed(router, clock, [audio(s, s * 960) for s in range(1, 4)])
    consumer.receive_receiver_report(RtcpReportBlock(ssrc=6000, fraction_lost=30))
    assert consumer.red_distance == 2
    consumer.receive_receiver_report(RtcpReportBlock(ssrc=9999, fraction_lost=0))  # not ours
    assert consumer.red_distance == 2
    feed(router, clock, [audio(4, 4 * 960)])
    assert [off for _, off, _ in split_red(sink.rtp[-1].payload)] == [1920, 960, 0]
    consumer.receive_receiver_report(RtcpReportBlock(ssrc=6000))
    clock.advance(CLEAN_MS)
    consumer.receive_receiver_report(RtcpReportBlock(ssrc=6000))
    assert consumer.red_distance == 0
    feed(router, clock, [audio(5, 5 * 960)])
    assert len(split_red(sink.rtp[-1].payload)) == 1


def test_after_a_pause_nothing_from_before_it_is_repeated() -> None:
    clock, router, (consumer,), (sink,) = red_lesson()
    feed(router, clock, [audio(1, 960), audio(2, 1920)])
    consumer.pause()
    feed(router, clock, [audio(3, 2880)])
    consumer.resume()
    feed(router, clock, [audio(4, 3840), audio(5, 4800)])
    first, second = sink.rtp[-2:]
    assert first.sequence_number == 3  # continues right after the last sent (2)
    assert len(split_red(first.payload)) == 1  # 3 was never sent: not repeated either
    assert [off for _, off, _ in split_red(second.payload)] == [960, 0]


def test_alike_red_consumers_send_one_shared_copy_and_each_keeps_its_own_choice() -> None:
    clock, router, consumers, sinks = red_lesson(3)
    packets = [audio(s, s * 960) for s in range(1, 5)]
    feed(router, clock, packets)
    cached = packets[-1].red_cache
    assert cached is not None
    # Same blocks, same extension rewrite: the bytes after the fixed header were built
    # once, kept on the packet, and went to all three.
    assert all(sink.rtp_data[-1][12:] == cached[5] for sink in sinks)
    consumers[0].receive_receiver_report(RtcpReportBlock(ssrc=6000, fraction_lost=40))
    feed(router, clock, [audio(5, 5 * 960)])
    assert len(split_red(sinks[0].rtp[-1].payload)) == 3
    assert len(split_red(sinks[1].rtp[-1].payload)) == 2  # its own choice, not the cached one
    assert len(split_red(sinks[2].rtp[-1].payload)) == 2


def test_a_nack_for_red_audio_resends_nothing() -> None:
    clock, router, (consumer,), (sink,) = red_lesson()
    feed(router, clock, [audio(s, s * 960) for s in range(1, 5)])
    sent = len(sink.rtp_data)
    consumer.receive_nack([2, 3])
    # Audio is not kept for retransmission: RED is its repair.
    assert len(sink.rtp_data) == sent
    assert consumer.stats().nack_misses == 2 and consumer.stats().packets_retransmitted == 0


def test_a_consumer_without_a_red_payload_type_cannot_be_a_red_consumer() -> None:
    clock = Clock()
    router = Router("r", clock=clock)
    producer = router.create_producer(
        "mic", "audio", "mic", "main", params(OPUS, ssrc=2000, rtx_ssrc=None), RecordingSink()
    )
    with pytest.raises(ValueError, match="negotiated no audio/red payload type"):
        RedConsumer("c", producer, params(OPUS, ssrc=1, rtx_ssrc=None), RecordingSink(), router)
