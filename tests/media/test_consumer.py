import random

import pytest
from core_support import H264, OPUS, Clock, RecordingSink, audio, params, read, video

from media.codecs import ABS_SEND_TIME, AUDIO_LEVEL, SDES_MID, CodecInfo
from media.router import Router, RouterError
from media.rtcp import RtcpPliPacket, RtcpReportBlock, RtcpSdesPacket, RtcpSrPacket, ntp_from_ms
from media.rtp import RtpPacket, abs_send_time, unwrap_rtx, wrap_rtx
from media.seq import SeqUnwrapper

SUB_EXT = {SDES_MID: 4, ABS_SEND_TIME: 5, AUDIO_LEVEL: 6}
SUB_VP8 = CodecInfo("video/VP8", 90000, 120, rtx_payload_type=121, rtcp_feedback=("nack",))


def setup(*, rtx: bool = True, codec=SUB_VP8, kind="video"):
    clock = Clock()
    router = Router("r", clock=clock)
    upstream = RecordingSink()
    if kind == "video":
        producer = router.create_producer("p", "video", "camera", "main", params(), upstream)
        sub = params(codec, ssrc=5000, rtx_ssrc=5001 if rtx else None, extensions=SUB_EXT, mid="3")
    else:
        producer = router.create_producer(
            "p", "audio", "mic", "main", params(OPUS, ssrc=2000, rtx_ssrc=None), upstream
        )
        sub = params(OPUS, ssrc=6000, rtx_ssrc=None, extensions=SUB_EXT, mid="1")
    sink = RecordingSink()
    consumer = router.create_consumer("c", "p", sub, sink)
    upstream.clear()
    return clock, router, producer, consumer, sink, upstream


def feed(producer, clock, packets, step_ms=10):
    for packet in packets:
        producer.receive_rtp(packet, clock.advance(step_ms))


def test_video_consumer_sends_nothing_before_the_first_keyframe():
    clock, _, producer, _, sink, _ = setup()
    feed(producer, clock, [video(10, 0), video(11, 3000)])
    assert sink.rtp_data == []
    feed(producer, clock, [video(12, 6000, key=True), video(13, 6000, start=False)])
    assert sink.seqs() == [12, 13]


def test_audio_consumer_sends_from_the_first_packet():
    clock, _, producer, _, sink, _ = setup(kind="audio")
    feed(producer, clock, [audio(1, 960), audio(2, 1920)])
    assert sink.seqs() == [1, 2]


def test_outgoing_packets_carry_the_subscribers_ssrc_and_payload_type():
    clock, _, producer, _, sink, _ = setup()
    feed(producer, clock, [video(12, 6000, key=True, marker=True)])
    (out,) = sink.rtp
    assert (out.ssrc, out.payload_type, out.marker) == (5000, 120, True)
    assert out.payload == video(12, 6000, key=True).payload


def test_the_shared_packet_is_not_changed_by_consumers():
    clock, router, producer, _, _, _ = setup()
    other = RecordingSink()
    router.create_consumer("c2", "p", params(ssrc=7000, extensions={}), other)
    packet = video(12, 6000, key=True)
    before = bytes(packet)
    producer.receive_rtp(packet, clock.advance(1))
    assert bytes(packet) == before
    assert other.rtp[0].ssrc == 7000


def test_sequence_numbers_stay_continuous_across_the_16_bit_wrap():
    clock, _, producer, _, sink, _ = setup()
    feed(producer, clock, [video(65533 + i, 3000 * i, key=i == 0) for i in range(6)])
    assert sink.seqs() == [65533, 65534, 65535, 0, 1, 2]


def test_timestamps_pass_the_32_bit_wrap_unchanged_in_distance():
    clock, _, producer, _, sink, _ = setup()
    base = 0xFFFFFFFF - 4000
    feed(producer, clock, [video(1 + i, base + 3000 * i, key=i == 0) for i in range(3)])
    ts = [p.timestamp for p in sink.rtp]
    assert [(t - ts[0]) & 0xFFFFFFFF for t in ts] == [0, 3000, 6000]


def test_a_big_sequence_jump_is_passed_through_with_the_same_offset():
    clock, _, producer, _, sink, _ = setup()
    feed(producer, clock, [video(100, 0, key=True), video(101, 3000), video(30101, 6000)])
    assert sink.seqs() == [100, 101, 30101]


def test_a_dropped_packet_leaves_a_gap_so_the_subscriber_can_nack_it():
    clock, _, producer, _, sink, _ = setup()
    feed(producer, clock, [video(1, 0, key=True), video(2, 0), video(4, 3000)])
    assert sink.seqs() == [1, 2, 4]


def test_a_packet_older_than_the_sync_point_is_dropped():
    clock, _, producer, _, sink, _ = setup()
    feed(producer, clock, [video(10, 3000, key=True), video(9, 0), video(11, 3000)])
    assert sink.seqs() == [10, 11]


def test_nack_is_answered_with_rtx_when_negotiated():
    clock, _, producer, consumer, sink, _ = setup(rtx=True)
    feed(producer, clock, [video(1, 0, key=True), video(2, 3000), video(3, 6000)])
    original = sink.rtp[1]
    sink.clear()
    consumer.receive_nack([original.sequence_number])
    (rtx,) = sink.rtp
    assert (rtx.ssrc, rtx.payload_type, rtx.sequence_number) == (5001, 121, 0)
    assert rtx.payload == original.sequence_number.to_bytes(2, "big") + original.payload
    assert rtx.timestamp == original.timestamp
    assert consumer.stats().packets_retransmitted == 1


def test_rtx_sequence_numbers_count_up_per_retransmission():
    clock, _, producer, consumer, sink, _ = setup(rtx=True)
    feed(producer, clock, [video(1, 0, key=True), video(2, 3000)])
    sink.clear()
    consumer.receive_nack([1, 2])
    clock.advance(200)  # past the resend interval: the same packet may be resent
    consumer.receive_nack([1])
    assert [p.sequence_number for p in sink.rtp] == [0, 1, 2]


def test_a_packet_is_resent_at_most_once_per_resend_interval():
    clock, _, producer, consumer, sink, _ = setup(rtx=True)
    feed(producer, clock, [video(1, 0, key=True), video(2, 3000)])
    sink.clear()
    consumer.receive_nack([1, 2, 1])  # aiortc repeats its whole list on every new gap
    clock.advance(20)
    consumer.receive_nack([1, 2])
    assert len(sink.rtp) == 2
    assert consumer.stats().nacks_throttled == 3
    clock.advance(100)
    consumer.receive_nack([2])
    assert len(sink.rtp) == 3


def test_nack_is_answered_with_the_same_packet_when_rtx_is_not_negotiated():
    clock, _, producer, consumer, sink, _ = setup(rtx=False)
    feed(producer, clock, [video(1, 0, key=True), video(2, 3000)])
    original = sink.rtp[1]
    sink.clear()
    consumer.receive_nack([2])
    (again,) = sink.rtp
    assert again.ssrc == 5000 and again.sequence_number == 2
    assert again.payload == original.payload and again.timestamp == original.timestamp


def test_nack_for_a_packet_never_sent_is_counted_as_a_miss():
    clock, _, producer, consumer, sink, _ = setup()
    feed(producer, clock, [video(9, 0), video(10, 3000, key=True)])
    sink.clear()
    consumer.receive_nack([9, 11, 500])
    assert sink.rtp_data == []
    assert consumer.stats().nack_misses == 3


def test_nack_for_a_packet_lost_upstream_and_recovered_by_rtx_is_answered():
    clock, _, producer, consumer, sink, upstream = setup()
    feed(producer, clock, [video(1, 0, key=True), video(3, 3000)])
    assert upstream.rtcp[0].lost == [2]
    missing = video(2, 0)
    rtx = RtpPacket(
        payload_type=97,
        sequence_number=77,
        timestamp=0,
        ssrc=1001,
        payload=(2).to_bytes(2, "big") + missing.payload,
    )
    producer.receive_rtp(rtx, clock.advance(5))
    assert sink.seqs() == [1, 3, 2]  # the recovered packet is forwarded at once
    sink.clear()
    consumer.receive_nack([2])
    assert sink.rtp[0].payload[2:] == missing.payload


def test_headers_are_rewritten_to_the_subscribers_extension_ids():
    clock, _, producer, _, sink, _ = setup(kind="audio")
    producer.receive_rtp(audio(1, 960, level=25), clock.advance(1))
    (out,) = sink.rtp
    assert out.get_extension(4) == b"1"  # the subscriber's own MID
    assert out.get_extension(5) == abs_send_time(clock.now)
    assert out.get_extension(6) == bytes([0x80 | 25])
    assert out.get_extension(1) is None  # the publisher's MID is gone
    assert out.get_extension(3) is None


def test_a_consumer_without_extensions_sends_none():
    clock, router, producer, _, _, _ = setup()
    bare = RecordingSink()
    router.create_consumer("c2", "p", params(ssrc=7000, extensions={}), bare)
    producer.receive_rtp(video(1, 0, key=True), clock.advance(1))
    assert bare.rtp[0].extensions == []
    assert bare.rtp_data[0][0] & 0x10 == 0


def test_pause_then_resume_continues_seq_and_timestamp_without_a_gap():
    clock, _, producer, consumer, sink, _ = setup()
    feed(producer, clock, [video(1, 0, key=True), video(2, 3000)], step_ms=33)
    consumer.pause()
    feed(producer, clock, [video(3 + i, 6000 + 3000 * i, key=i == 2) for i in range(5)], 33)
    consumer.resume()
    feed(producer, clock, [video(8, 21000), video(9, 24000, key=True)], step_ms=33)
    seqs = sink.seqs()
    ts = [p.timestamp for p in sink.rtp]
    assert seqs == [1, 2, 3]
    assert ts[2] - ts[1] == 7 * 33 * 90  # the wall time that passed, in 90 kHz ticks


def test_resume_asks_the_producer_for_a_keyframe():
    clock, _, _producer, consumer, _, upstream = setup()
    consumer.pause()
    clock.advance(1000)
    consumer.resume()
    assert [type(p) for p in upstream.rtcp] == [RtcpPliPacket]


def test_subscriber_pli_becomes_one_pli_upstream_within_the_rate_limit():
    clock, router, producer, consumer, _, upstream = setup()
    clock.advance(1000)
    consumer.receive_key_frame_request()
    consumer.receive_key_frame_request()
    router.create_consumer("c2", "p", params(ssrc=7000), RecordingSink())
    assert [type(p) for p in upstream.rtcp] == [RtcpPliPacket]
    assert upstream.rtcp[0].media_ssrc == 1000
    assert producer.stats().key_frame_requests_sent == 2  # creation + this one


def test_a_held_request_is_dropped_when_a_keyframe_arrives_meanwhile():
    clock, _, producer, consumer, _, upstream = setup()
    clock.advance(1000)
    consumer.receive_key_frame_request()
    clock.advance(100)
    consumer.receive_key_frame_request()
    feed(producer, clock, [video(1, 0, key=True)], step_ms=100)
    feed(producer, clock, [video(2, 3000)], step_ms=600)
    assert len(upstream.rtcp) == 1


def test_sender_report_maps_time_through_the_producers_sender_report():
    clock, _, producer, consumer, _sink, _ = setup()
    producer.receive_sender_report(RtcpSrPacket(1000, 0, 90_000, 0, 0), clock.now)
    feed(producer, clock, [video(1, 90_000, key=True)], step_ms=0)
    now = clock.advance(500)
    sr, sdes = (
        RtcpSrPacket.parse(d) if i == 0 else RtcpSdesPacket.parse(d)
        for i, d in enumerate(consumer.get_rtcp(now))
    )
    assert sr.ssrc == 5000
    assert sr.rtp_timestamp == 90_000 + 45_000
    assert sr.ntp_timestamp == ntp_from_ms(now)
    assert (sr.packet_count, sr.octet_count) == (1, len(video(1, 0, key=True).payload))
    assert sdes.chunks[0].ssrc == 5000 and sdes.chunks[0].items == [(1, b"tongke")]


def test_sender_report_falls_back_to_the_arrival_clock_without_a_producer_report():
    clock, _, producer, consumer, _, _ = setup()
    feed(producer, clock, [video(1, 3000, key=True)], step_ms=0)
    sr = RtcpSrPacket.parse(consumer.get_rtcp(clock.advance(100))[0])
    assert sr.rtp_timestamp == 3000 + 9000


def test_no_sender_report_before_anything_was_sent():
    _, _, _, consumer, _, _ = setup()
    assert consumer.get_rtcp(20_000) == []


def test_receiver_report_gives_loss_jitter_and_round_trip_time():
    clock, _, producer, consumer, _, _ = setup()
    feed(producer, clock, [video(1, 0, key=True)])
    sent = clock.now
    sr = RtcpSrPacket.parse(consumer.get_rtcp(sent)[0])
    clock.advance(150)
    lsr = (sr.ntp_timestamp >> 16) & 0xFFFFFFFF
    consumer.receive_receiver_report(
        RtcpReportBlock(
            5000, fraction_lost=64, packets_lost=3, jitter=900, lsr=lsr, dlsr=65536 // 10
        )
    )
    stats = consumer.stats()
    assert stats.fraction_lost == 0.25
    assert stats.packets_lost == 3
    assert stats.jitter_ms == 10
    assert stats.rtt_ms == pytest.approx(50, abs=1)


def test_remb_is_recorded_in_stats():
    _, _, _, consumer, _, _ = setup()
    consumer.receive_remb(800_000)
    assert consumer.stats().remb_bps == 800_000


def test_a_consumer_with_another_clock_rate_is_refused():
    _, router, _, _, _, _ = setup()
    odd = CodecInfo("video/VP8", 48000, 96)
    with pytest.raises(RouterError, match=r"^consumer clock rate 48000 differs") as info:
        router.create_consumer("c9", "p", params(odd), RecordingSink())
    assert info.value.code == "bad_consumer"


def test_a_consumer_of_another_kind_is_refused():
    _, router, _, _, _, _ = setup()
    with pytest.raises(RouterError) as info:
        router.create_consumer("c9", "p", params(OPUS), RecordingSink())
    assert info.value.code == "bad_consumer"
    assert info.value.message == "consumer codec audio/opus does not match producer kind video."


def test_closed_consumer_sends_nothing_and_emits_closed_once():
    clock, router, producer, consumer, sink, _ = setup()
    reasons = []
    consumer.events.on("closed", reasons.append)
    consumer.close()
    consumer.close()
    feed(producer, clock, [video(1, 0, key=True)])
    assert sink.rtp_data == []
    assert reasons == ["closed"]
    assert router.get_consumer("c") is None
    assert router.consumers_of("p") == ()


def test_transport_closed_closes_the_consumer_with_its_reason():
    _, router, _, consumer, _, _ = setup()
    reasons = []
    consumer.events.on("closed", reasons.append)
    consumer.transport_closed()
    assert reasons == ["transport_closed"] and router.get_consumer("c") is None


def test_a_consumer_of_another_codec_is_refused_since_nothing_is_transcoded():
    _, router, _, _, _, _ = setup()
    with pytest.raises(RouterError) as info:
        router.create_consumer("c9", "p", params(H264), RecordingSink())
    assert info.value.message == "consumer codec video/H264 differs from producer codec video/VP8."


def test_a_subscribers_keyframe_request_is_counted():
    _, _, _, consumer, _, _ = setup()
    consumer.receive_key_frame_request()
    assert consumer.stats().key_frame_requests_received == 1


# -- end to end: loss on both hops, repaired by NACK -------------------------------------


class LossySubscriber:
    """A subscriber behind a lossy link: drops a share of what it is sent, unwraps RTX, and
    knows which outgoing sequence numbers it still misses."""

    def __init__(self, rng, loss, rtx_ssrc):
        self.rng = rng
        self.loss = loss
        self.rtx_ssrc = rtx_ssrc
        self.unwrapper = SeqUnwrapper()
        self.received: dict[int, RtpPacket] = {}

    def send_rtp(self, data):
        if self.rng.random() < self.loss:
            return
        packet = RtpPacket.parse(data)
        if packet.ssrc == self.rtx_ssrc:
            packet = unwrap_rtx(packet, 120, 5000)
        self.received.setdefault(self.unwrapper.unwrap(packet.sequence_number), packet)

    def send_rtcp(self, data):
        pass

    def missing(self):
        if not self.received:
            return []
        first, last = min(self.received), max(self.received)
        return [s & 0xFFFF for s in range(first, last + 1) if s not in self.received]


def test_five_percent_loss_on_both_hops_is_fully_repaired_across_the_wrap():
    rng = random.Random(7)
    clock = Clock()
    router = Router("r", clock=clock)
    producer = router.create_producer("p", "video", "camera", "main", params(), RecordingSink())
    subscriber = LossySubscriber(rng, 0.05, 5001)
    consumer = router.create_consumer(
        "c", "p", params(SUB_VP8, ssrc=5000, rtx_ssrc=5001, extensions=SUB_EXT), subscriber
    )
    first_seq = 64_000
    late: list[tuple[int, RtpPacket]] = []  # upstream losses, repaired by the publisher's RTX
    for i in range(3000):
        seq = first_seq + i
        packet = video(seq, 3000 * (i // 3), key=i % 300 == 0, start=i % 3 == 0)
        now = clock.advance(3)
        if rng.random() < 0.05:
            late.append((i + 4, wrap_rtx(packet, 97, 1001, i)))
        else:
            producer.receive_rtp(packet, now)
        while late and late[0][0] <= i:
            producer.receive_rtp(late.pop(0)[1], now)
        if i % 10 == 9:
            consumer.receive_nack(subscriber.missing())
    for _ in range(20):
        consumer.receive_nack(subscriber.missing())
    assert subscriber.missing() == []
    got = [subscriber.received[k] for k in sorted(subscriber.received)]
    assert len(got) == 3000
    assert [int.from_bytes(p.payload[-4:], "big") for p in got] == list(
        range(first_seq, first_seq + 3000)
    )
    assert got[-1].sequence_number == (first_seq + 2999) & 0xFFFF
    assert consumer.stats().packets_retransmitted >= 150


def test_a_publisher_restart_to_lower_numbers_continues_at_its_keyframe_without_a_gap():
    clock, _, producer, _, sink, _ = setup()
    feed(producer, clock, [video(40_000, 0, key=True), video(40_001, 3000)], step_ms=33)
    restart = [video(30_005, 900_000), video(30_006, 903_000, key=True), video(30_007, 903_000)]
    feed(producer, clock, restart, step_ms=33)
    assert sink.seqs() == [40_000, 40_001, 40_002, 40_003]
    ts = [p.timestamp for p in sink.rtp]
    assert ts[2] - ts[1] == 2 * 33 * 90


def test_an_h264_consumer_joining_mid_keyframe_waits_for_the_next_sps():
    clock = Clock()
    router = Router("r", clock=clock)
    producer = router.create_producer(
        "p", "video", "camera", "main", params(H264, ssrc=0x11223344), RecordingSink()
    )
    sink = RecordingSink()
    router.create_consumer("c", "p", params(H264, ssrc=5000, extensions={}), sink)
    for name in ("rtp_h264_fu_a_idr_start.bin", "rtp_h264_fu_a_idr_middle.bin"):
        producer.receive_rtp(RtpPacket.parse(read(name)), clock.advance(1))
    assert sink.rtp_data == []  # the SPS of that keyframe was missed
    stap = RtpPacket.parse(read("rtp_h264_stap_a.bin"))
    stap.sequence_number = 300
    producer.receive_rtp(stap, clock.advance(30))
    assert [p.payload for p in sink.rtp] == [stap.payload]
