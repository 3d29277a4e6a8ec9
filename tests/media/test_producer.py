from core_support import H264, OPUS, VP8, Clock, RecordingSink, audio, params, video

from media.codecs import CodecInfo
from media.producer import Producer
from media.rtcp import (
    RtcpFirPacket,
    RtcpNackPacket,
    RtcpPliPacket,
    RtcpRembPacket,
    RtcpRrPacket,
    RtcpSrPacket,
    ntp_middle32,
)
from media.rtp import RtpPacket, wrap_rtx


class Collector:
    """A ProducerListener that keeps what the producer hands on."""

    def __init__(self) -> None:
        self.packets: list[RtpPacket] = []
        self.closed: list[Producer] = []

    def on_producer_rtp(self, producer, packet):
        self.packets.append(packet)

    def on_producer_closed(self, producer):
        self.closed.append(producer)


def make(codec=VP8, kind="video", rtx_ssrc=1001, **kw):
    clock = Clock()
    listener = Collector()
    sink = RecordingSink()
    ssrc = 1000 if kind == "video" else 2000
    producer = Producer(
        "p",
        kind,
        "camera",
        "main",
        params(codec, ssrc, rtx_ssrc),
        listener,
        sink,
        clock=clock,
        report_ssrc=77,
        **kw,
    )
    return clock, producer, listener, sink


def seqs(listener):
    return [p.sequence_number for p in listener.packets]


def test_packets_are_handed_on_in_arrival_order():
    clock, producer, listener, _ = make()
    for s in (1, 2, 3):
        producer.receive_rtp(video(s, s * 3000), clock.advance(10))
    assert seqs(listener) == [1, 2, 3]
    assert producer.stats().packets_received == 3


def test_first_packet_of_a_keyframe_is_marked():
    clock, producer, listener, _ = make()
    producer.receive_rtp(video(1, 0, key=True), clock.advance(1))
    producer.receive_rtp(video(2, 0, start=False), clock.advance(1))
    assert [p.keyframe for p in listener.packets] == [True, False]
    assert producer.stats().key_frames_received == 1


def test_h264_keyframes_are_marked_from_sps():
    clock, producer, listener, _ = make(H264)
    sps = RtpPacket(payload_type=102, sequence_number=1, ssrc=1000, payload=b"\x67\x42\x00")
    producer.receive_rtp(sps, clock.advance(1))
    assert listener.packets[0].keyframe


def test_packets_of_another_ssrc_or_payload_type_are_discarded():
    clock, producer, listener, _ = make()
    producer.receive_rtp(video(1, 0, ssrc=999), clock.advance(1))
    producer.receive_rtp(video(2, 0, pt=100), clock.advance(1))
    assert listener.packets == []
    assert producer.stats().packets_discarded == 2


def test_a_gap_is_nacked_upstream_at_once():
    clock, producer, _, sink = make()
    for s in (10, 11, 14):
        producer.receive_rtp(video(s, 0), clock.advance(1))
    assert sink.rtcp == [RtcpNackPacket(77, 1000, [12, 13])]


def test_a_gap_across_the_sequence_wrap_is_nacked():
    clock, producer, _, sink = make()
    producer.receive_rtp(video(65534, 0), clock.advance(1))
    producer.receive_rtp(video(1, 0), clock.advance(1))
    assert sink.rtcp == [RtcpNackPacket(77, 1000, [65535, 0])]


def test_missing_packets_are_nacked_again_once_a_round_trip_has_passed():
    clock, producer, _, sink = make()
    producer.receive_rtp(video(1, 0), clock.advance(1))
    producer.receive_rtp(video(3, 0), clock.advance(1))
    producer.receive_rtp(video(4, 0), clock.advance(50))
    producer.receive_rtp(video(5, 0), clock.advance(49))
    assert len(sink.rtcp) == 1  # default RTT 100 ms not yet over
    producer.receive_rtp(video(6, 0), clock.advance(25))
    assert sink.rtcp == [RtcpNackPacket(77, 1000, [2])] * 2


def test_a_known_short_rtt_lets_nacks_repeat_sooner_but_not_below_20_ms():
    clock, producer, _, sink = make()
    producer.set_rtt(5)
    producer.receive_rtp(video(1, 0), clock.advance(1))
    producer.receive_rtp(video(3, 0), clock.advance(1))
    producer.receive_rtp(video(4, 0), clock.advance(19))
    assert len(sink.rtcp) == 1
    producer.receive_rtp(video(5, 0), clock.advance(20))
    assert len(sink.rtcp) == 2


def test_rtx_packet_is_unwrapped_and_fills_the_gap():
    clock, producer, listener, _ = make()
    producer.receive_rtp(video(1, 0), clock.advance(1))
    producer.receive_rtp(video(3, 0), clock.advance(1))
    rtx = wrap_rtx(video(2, 0), 97, 1001, 500)
    producer.receive_rtp(rtx, clock.advance(1))
    assert seqs(listener) == [1, 3, 2]
    recovered = listener.packets[-1]
    assert (recovered.ssrc, recovered.payload_type) == (1000, 96)
    stats = producer.stats()
    assert stats.packets_retransmitted == 1 and stats.packets_lost == 0
    assert producer.nack.pending == 0


def test_padding_only_rtx_is_dropped():
    _clock, producer, listener, _ = make()
    producer.receive_rtp(RtpPacket(payload_type=97, ssrc=1001, padding_size=200), 1)
    assert listener.packets == []


def test_a_duplicate_packet_is_not_forwarded_twice():
    clock, producer, listener, _ = make()
    producer.receive_rtp(video(1, 0), clock.advance(1))
    producer.receive_rtp(wrap_rtx(video(1, 0), 97, 1001, 9), clock.advance(1))
    assert seqs(listener) == [1]
    assert producer.stats().packets_duplicated == 1


def test_a_huge_jump_confirmed_by_the_next_packet_restarts_the_stream_and_asks_for_a_keyframe():
    clock, producer, listener, sink = make()
    producer.receive_rtp(video(1, 0), clock.advance(1))
    producer.receive_rtp(video(20001, 0), clock.advance(1))
    producer.receive_rtp(video(20002, 0), clock.advance(1))
    assert [type(p) for p in sink.rtcp] == [RtcpPliPacket]  # no NACK for 19999 packets
    assert producer.stream_restarts == 1
    assert seqs(listener) == [1, 20001, 20002]
    block = RtcpRrPacket.parse(producer.get_rtcp(clock.now)[0]).reports[0]
    assert block.packets_lost == 0 and block.highest_sequence == 20002


def test_a_restart_to_lower_sequence_numbers_is_followed():
    clock, producer, _, sink = make()
    for s in (40_000, 40_001):
        producer.receive_rtp(video(s, 0), clock.advance(1))
    for s in (7, 8, 10):
        producer.receive_rtp(video(s, 0), clock.advance(1))
    assert producer.stream_restarts == 1
    assert sink.rtcp[-1] == RtcpNackPacket(77, 1000, [9])


def test_a_single_stray_packet_far_away_does_not_restart_the_stream():
    clock, producer, listener, sink = make()
    for s in (1, 2, 30_000, 3, 4):
        producer.receive_rtp(video(s, 0), clock.advance(1))
    assert producer.stream_restarts == 0 and sink.rtcp_data == []
    assert seqs(listener) == [1, 2, 30_000, 3, 4]
    block = RtcpRrPacket.parse(producer.get_rtcp(clock.now)[0]).reports[0]
    assert block.highest_sequence == 4


def test_giving_up_on_a_lost_packet_asks_for_a_keyframe():
    clock, producer, _, sink = make()
    producer.receive_rtp(video(1, 0), clock.advance(1))
    producer.receive_rtp(video(3, 0), clock.advance(1))
    producer.set_rtt(30)
    for s in range(4, 60):
        producer.receive_rtp(video(s, 0), clock.advance(30))
    kinds = [type(p) for p in sink.rtcp]
    assert kinds.count(RtcpNackPacket) == 10  # max_retries
    assert RtcpPliPacket in kinds


def test_audio_producers_do_not_nack():
    clock, producer, listener, sink = make(OPUS, "audio", rtx_ssrc=None)
    producer.receive_rtp(audio(1, 0), clock.advance(1))
    producer.receive_rtp(audio(5, 0), clock.advance(1))
    assert sink.rtcp_data == []
    assert seqs(listener) == [1, 5]


def test_requests_while_one_is_outstanding_are_answered_by_the_same_keyframe():
    clock, producer, _, sink = make()
    producer.request_key_frame()
    producer.request_key_frame()
    clock.advance(499)
    producer.request_key_frame()
    producer.receive_rtp(video(1, 0), clock.advance(1))
    assert sink.rtcp == [RtcpPliPacket(77, 1000)]
    stats = producer.stats()
    assert (stats.key_frame_requests_received, stats.key_frame_requests_sent) == (3, 1)


def test_an_unanswered_request_is_repeated_after_a_second():
    clock, producer, _, sink = make()
    producer.request_key_frame()
    producer.receive_rtp(video(1, 0), clock.advance(990))
    assert len(sink.rtcp) == 1
    producer.receive_rtp(video(2, 0), clock.advance(20))
    assert sink.rtcp == [RtcpPliPacket(77, 1000)] * 2


def test_a_request_soon_after_a_keyframe_is_held_until_the_interval_has_passed():
    clock, producer, _, sink = make()
    producer.request_key_frame()
    producer.receive_rtp(video(1, 0, key=True), clock.advance(100))
    producer.request_key_frame()
    producer.receive_rtp(video(2, 0), clock.advance(300))
    assert len(sink.rtcp) == 1
    producer.receive_rtp(video(3, 0), clock.advance(100))
    assert sink.rtcp == [RtcpPliPacket(77, 1000)] * 2


def test_fir_is_used_when_pli_was_not_negotiated():
    codec = CodecInfo("video/VP8", 90000, 96, rtcp_feedback=("ccm fir",))
    clock, producer, _, sink = make(codec, rtx_ssrc=None)
    producer.request_key_frame()
    clock.advance(600)
    producer.request_key_frame()
    assert sink.rtcp == [RtcpFirPacket(77, [(1000, 1)]), RtcpFirPacket(77, [(1000, 2)])]


def test_audio_producers_ignore_keyframe_requests():
    _, producer, _, sink = make(OPUS, "audio", rtx_ssrc=None)
    producer.request_key_frame()
    assert sink.rtcp_data == []


def test_receiver_report_counts_loss_and_extended_highest_sequence():
    clock, producer, _, _ = make()
    for s in (65533, 65534, 1, 2):  # 65535 and 0 lost, one wrap
        producer.receive_rtp(video(s, 0), clock.advance(1))
    rr, remb = (p for d in producer.get_rtcp(clock.now) for p in [d])
    rr = RtcpRrPacket.parse(rr)
    (block,) = rr.reports
    assert rr.ssrc == 77 and block.ssrc == 1000
    assert block.highest_sequence == 0x10000 + 2
    assert block.packets_lost == 2
    assert block.fraction_lost == 2 * 256 // 6
    assert RtcpRembPacket.parse(remb) == RtcpRembPacket(77, 3_000_000, [1000])


def test_fraction_lost_covers_only_the_interval_since_the_last_report():
    clock, producer, _, _ = make()
    for s in (1, 3):
        producer.receive_rtp(video(s, 0), clock.advance(1))
    producer.get_rtcp(clock.now)
    for s in (4, 5, 6, 7):
        producer.receive_rtp(video(s, 0), clock.advance(1))
    block = RtcpRrPacket.parse(producer.get_rtcp(clock.now)[0]).reports[0]
    assert block.fraction_lost == 0 and block.packets_lost == 1


def test_receiver_report_echoes_the_last_sender_report_for_rtt():
    clock, producer, _, _ = make()
    producer.receive_rtp(video(1, 0), clock.advance(1))
    ntp = 0x12345678_9ABCDEF0
    producer.receive_sender_report(RtcpSrPacket(1000, ntp, 0, 1, 1), clock.now)
    clock.advance(500)
    block = RtcpRrPacket.parse(producer.get_rtcp(clock.now)[0]).reports[0]
    assert block.lsr == ntp_middle32(ntp)
    assert block.dlsr == 32768


def test_no_receiver_report_before_the_first_packet():
    _, producer, _, _ = make()
    assert producer.get_rtcp(1) == []


def test_jitter_follows_rfc_3550():
    clock, producer, _, _ = make()
    producer.receive_rtp(video(1, 0), clock.advance(0))
    producer.receive_rtp(video(2, 2700), clock.advance(30 + 16))  # 16 ms late
    assert producer.stats().jitter_ms == 1.0  # 1/16 of 16 ms


def test_rtp_timestamp_at_uses_the_sender_report_then_the_arrival_clock():
    clock, producer, _, _ = make()
    assert producer.rtp_timestamp_at(clock.now) is None
    producer.receive_rtp(video(1, 3000), clock.now)
    assert producer.rtp_timestamp_at(clock.now + 10) == 3000 + 900
    producer.receive_sender_report(RtcpSrPacket(1000, 0, 90_000, 0, 0), clock.now)
    assert producer.rtp_timestamp_at(clock.now + 1000) == 180_000


def test_audio_levels_go_to_the_observer():
    class Levels:
        def __init__(self):
            self.seen = []

        def add(self, producer_id, level, now_ms):
            self.seen.append((producer_id, level))

        def remove(self, producer_id):
            self.seen.append((producer_id, "removed"))

    levels = Levels()
    clock, producer, _, _ = make(OPUS, "audio", rtx_ssrc=None, audio_levels=levels)
    producer.receive_rtp(audio(1, 0, level=42), clock.advance(1))
    producer.receive_rtp(audio(2, 0), clock.advance(1))
    producer.close()
    assert levels.seen == [("p", 42), ("p", "removed")]


def test_a_paused_producer_keeps_counting_but_hands_nothing_on():
    clock, producer, listener, sink = make()
    producer.pause()
    producer.receive_rtp(video(1, 0), clock.advance(1))
    assert listener.packets == [] and producer.stats().packets_received == 1
    producer.resume()
    assert [type(p) for p in sink.rtcp] == [RtcpPliPacket]


def test_close_is_idempotent_tells_the_listener_once_and_stops_everything():
    clock, producer, listener, _ = make()
    reasons = []
    producer.events.on("closed", reasons.append)
    producer.close()
    producer.close()
    producer.receive_rtp(video(1, 0), clock.advance(1))
    assert reasons == ["closed"] and listener.closed == [producer]
    assert listener.packets == [] and producer.get_rtcp(clock.now) == []


def test_bitrate_is_measured_over_half_second_samples():
    clock, producer, _, _ = make()
    assert producer.bitrate_bps(clock.now) == 0
    for s in range(50):
        producer.receive_rtp(video(s, 0, payload=bytes(996)), clock.advance(10))
    assert producer.bitrate_bps(clock.now) == 50 * 1000 * 8 * 2


def test_video_is_cached_for_subscribers_even_without_upstream_nack():
    codec = CodecInfo("video/VP8", 90000, 96, rtcp_feedback=("nack pli",))
    clock, producer, _, sink = make(codec, rtx_ssrc=None)
    producer.receive_rtp(video(1, 0), clock.advance(1))
    producer.receive_rtp(video(3, 0), clock.advance(1))
    assert producer.buffer.get(3, clock.now) is not None
    assert sink.rtcp_data == []  # the publisher did not offer NACK
