import itertools
import random

import pytest
from core_support import H264, VP8_DELTA, Clock, RecordingSink, params, video, vp8_payload

from media.codecs import ABS_SEND_TIME, AUDIO_LEVEL, SDES_MID, CodecInfo, vp8_ids
from media.layers import (
    DROP,
    FORWARD,
    LOW,
    MAIN,
    DualStreamSelector,
    NullLayerSelector,
    Translation,
    layer_index,
)
from media.router import Router
from media.rtcp import RtcpPliPacket, RtcpReportBlock, RtcpSrPacket
from media.rtp import RtpPacket, is_vp8_keyframe, unwrap_rtx
from media.seq import SeqUnwrapper


def key(layer_ssrc=1):
    packet = video(1, 0, key=True, ssrc=layer_ssrc)
    packet.keyframe = True
    return packet


def delta():
    return video(2, 0)


def test_layer_names_map_to_indexes():
    assert (layer_index("low"), layer_index("main")) == (LOW, MAIN)
    with pytest.raises(ValueError, match=r"^unknown layer 'hd': expected 'low' or 'main'\.$"):
        layer_index("hd")


def test_translations_are_shared_constants_not_new_objects():
    s = DualStreamSelector()
    assert s.select(delta(), MAIN) is DROP
    switch = s.select(key(), MAIN)
    assert switch == Translation(drop=False, switching=True, layer=MAIN)
    assert s.select(delta(), MAIN) is FORWARD
    assert s.select(key(), MAIN) is FORWARD


def test_null_selector_waits_for_a_keyframe_then_forwards_everything():
    s = NullLayerSelector()
    assert s.select(delta(), 0) is DROP
    assert s.select(key(), 0).switching
    assert s.select(delta(), 0) is FORWARD
    s.reset()
    assert s.select(delta(), 0) is DROP


def test_selector_starts_on_the_preferred_layer():
    s = DualStreamSelector(preferred=LOW)
    assert s.target_layer == LOW and s.current_layer == -1
    assert s.select(key(), MAIN) is DROP
    assert s.select(key(), LOW).switching
    assert s.current_layer == LOW


def test_current_layer_keeps_flowing_until_the_target_keyframe():
    s = DualStreamSelector()
    s.select(key(), MAIN)
    assert s.set_preferred(LOW) is True
    assert s.select(delta(), MAIN) is FORWARD
    assert s.select(delta(), LOW) is DROP
    assert s.select(key(), LOW).switching
    assert s.select(delta(), MAIN) is DROP


def test_low_bandwidth_drops_to_low_at_once():
    s = DualStreamSelector()
    assert s.update(0, available_bps=500_000, main_bps=900_000) is True
    assert s.target_layer == LOW


def test_an_estimate_climbing_under_main_at_the_start_keeps_main():
    """Chromium's REMB starts near 300 kbit/s and climbs while the lead's encoder ramps main
    to 1 Mbit/s faster: a climbing estimate is not a short link (measured: the classroom sat
    on low for the first 15 s of every lesson)."""
    s = DualStreamSelector()
    remb, main = 300_000, 300_000
    for t in range(0, 20_000, 1000):
        assert s.update(t, available_bps=remb, main_bps=main) is False
        remb, main = int(remb * 1.07), min(1_000_000, main + 100_000)
    assert s.target_layer == MAIN


def test_an_estimate_that_backs_off_under_main_moves_to_low():
    s = DualStreamSelector()
    ramp = ((400_000, 300_000), (450_000, 600_000), (500_000, 900_000))
    for t, (remb, main) in enumerate(ramp):
        assert s.update(t * 1000, available_bps=remb, main_bps=main) is False
    # Overuse: the estimator backs off to 0.85x what arrives.
    assert s.update(3000, available_bps=425_000, main_bps=900_000) is True
    assert s.target_layer == LOW


def test_an_estimate_that_holds_under_main_moves_to_low():
    s = DualStreamSelector()
    s.update(0, available_bps=300_000, main_bps=200_000)
    s.update(1000, available_bps=320_000, main_bps=500_000)  # climbing: kept
    assert s.target_layer == MAIN
    assert s.update(2000, available_bps=320_000, main_bps=900_000) is True  # stopped climbing


def test_bandwidth_covering_main_does_not_change_the_target():
    s = DualStreamSelector()
    assert s.update(0, available_bps=2_000_000, main_bps=900_000) is False
    assert s.target_layer == MAIN


def test_climbing_back_needs_margin_for_the_whole_hold_time():
    s = DualStreamSelector(up_after_ms=5000, up_margin=1.25, probe_after_ms=60_000)
    s.update(0, available_bps=500_000, main_bps=900_000)
    assert s.update(1000, available_bps=1_000_000, main_bps=900_000) is False  # no margin
    assert s.update(2000, available_bps=1_000_000, main_bps=900_000) is False
    assert s.update(3000, available_bps=2_000_000, main_bps=900_000) is False
    assert s.update(7999, available_bps=2_000_000, main_bps=900_000) is False
    assert s.update(8000, available_bps=2_000_000, main_bps=900_000) is True
    assert s.target_layer == MAIN


def test_defaults_try_main_again_within_seconds_of_a_clean_link():
    """An impairment ends (no loss left after repair, nothing short): main is the target
    again 5 s later, well inside the 10 s the issue asks for."""
    s = DualStreamSelector()
    assert s.update(0, loss=0.12) and s.target_layer == LOW
    assert s.update(1000, loss=0.0) is False
    assert s.update(5999, loss=0.0) is False
    assert s.update(6000, loss=0.0) is True and s.target_layer == MAIN


def test_defaults_keep_main_under_a_few_percent_left_after_repair():
    s = DualStreamSelector()
    for t in range(0, 20_000, 1000):
        assert s.update(t, loss=0.03) is False
    assert s.target_layer == MAIN
    assert s.update(20_000, loss=0.05) is True and s.target_layer == LOW


def test_a_bad_estimate_during_the_hold_time_restarts_it():
    s = DualStreamSelector(up_after_ms=5000, probe_after_ms=60_000)
    s.update(0, available_bps=500_000, main_bps=900_000)
    s.update(1000, available_bps=2_000_000, main_bps=900_000)
    s.update(3000, available_bps=1_000_000, main_bps=900_000)  # no margin: restart
    s.update(4000, available_bps=2_000_000, main_bps=900_000)
    assert s.update(8000, available_bps=2_000_000, main_bps=900_000) is False
    assert s.update(9000, available_bps=2_000_000, main_bps=900_000) is True


def test_heavy_loss_drops_to_low_and_a_calm_spell_tries_main_again():
    s = DualStreamSelector(probe_after_ms=1000)
    assert s.update(0, loss=0.2) is True and s.target_layer == LOW
    s.update(100, loss=0.0)
    assert s.update(1099, loss=0.01) is False
    assert s.update(1100, loss=0.01) is True and s.target_layer == MAIN


def test_a_subscriber_fed_low_climbs_back_without_ever_reporting_main_bitrate():
    s = DualStreamSelector(probe_after_ms=15_000, up_after_ms=5000)
    s.update(0, available_bps=400_000, main_bps=900_000, low_bps=250_000)
    for t in range(1000, 15_000, 1000):  # REMB ~1.5x low: never covers main
        assert s.update(t, available_bps=380_000, main_bps=900_000, low_bps=250_000) is False
    assert s.update(16_000, available_bps=380_000, main_bps=900_000, low_bps=250_000) is True
    assert s.target_layer == MAIN


def test_a_failed_try_doubles_the_wait_before_the_next_one():
    s = DualStreamSelector(probe_after_ms=1000, probe_window_ms=10_000, probe_max_ms=3000)
    s.update(0, loss=0.2)
    s.update(1, loss=0.0)
    assert s.update(1001, loss=0.0) and s.target_layer == MAIN
    s.update(2000, loss=0.3)  # main failed within the window
    s.update(2001, loss=0.0)
    assert s.update(3001, loss=0.0) is False
    assert s.update(4001, loss=0.0) is True  # waited 2 s
    s.update(5000, loss=0.3)
    s.update(5001, loss=0.0)
    assert s.update(8000, loss=0.0) is False
    assert s.update(8001, loss=0.0) is True  # capped at 3 s


def test_a_try_that_held_resets_the_wait():
    s = DualStreamSelector(probe_after_ms=1000, probe_window_ms=10_000)
    s.update(0, loss=0.2)
    s.update(1, loss=0.0)
    s.update(1001, loss=0.0)
    s.update(2000, loss=0.3)
    s.update(2001, loss=0.0)
    s.update(4001, loss=0.0)  # up again after 2 s
    s.update(20_000, loss=0.3)  # held for 16 s: a real change of conditions
    s.update(20_001, loss=0.0)
    assert s.update(21_001, loss=0.0) is True


def test_congestion_while_on_low_keeps_it_low():
    s = DualStreamSelector(probe_after_ms=1000)
    s.update(0, loss=0.2)
    s.update(1, loss=0.0)
    s.update(900, loss=0.05)  # not calm: restart
    assert s.update(1500, loss=0.0) is False
    s.update(1600, available_bps=100_000, low_bps=250_000)  # low itself does not fit
    assert s.update(2600, loss=0.0) is False


def probing_selector() -> DualStreamSelector:
    s = DualStreamSelector(
        probe_after_ms=5000, probe_ms=2000, probe_max_ms=20_000, probe_retry_max_ms=6000
    )
    s.can_probe = True
    s.update(0, available_bps=210_000, main_bps=900_000, low_bps=200_000)  # a 300k cap
    assert s.target_layer == LOW
    return s


def test_a_calm_spell_starts_a_probe_not_a_switch():
    s = probing_selector()
    s.update(1000, loss=0.0)
    assert s.update(6000, loss=0.0) is False and s.probing
    # Main's rate over what low carries, ramping up over the probe from a twentieth of it.
    assert s.probe_rate_bps(6000) == 35_000
    assert abs(s.probe_rate_bps(7000) - (0.05 + 0.95 / 4) * 700_000) < 2  # half way
    assert s.probe_rate_bps(8000) == s.probe_rate_bps(9000) == 700_000
    assert s.update(7000, loss=0.0, probe_loss=0.05) is False  # padding got through
    assert s.update(8000, loss=0.0) is True and s.target_layer == MAIN and not s.probing


def test_a_subscriber_that_prefers_low_is_never_probed():
    s = probing_selector()
    s.set_preferred(LOW)  # a patrol's grid: main would not be forwarded anyway
    s.update(1000, loss=0.0)
    assert s.update(6000, loss=0.0) is False and not s.probing and s.target_layer == LOW


def test_a_probe_whose_padding_is_lost_keeps_low_and_doubles_the_wait():
    s = probing_selector()
    s.update(1000, loss=0.0)
    s.update(6000, loss=0.0)
    assert s.update(6500, probe_loss=0.6) is False  # the cap dropped the padding
    assert not s.probing and s.target_layer == LOW
    s.update(6600, loss=0.0)
    assert s.update(11_600, loss=0.0) is False and not s.probing  # 5 s is not enough now
    assert s.update(12_600, loss=0.0) is False and s.probing  # 6 s: a probe waits no longer
    s.update(13_000, probe_loss=0.5)
    s.update(13_100, loss=0.0)
    assert s.update(19_100, loss=0.0) is False and s.probing


def test_a_probe_fails_on_loss_of_low_itself_or_an_estimate_backing_off():
    s = probing_selector()
    s.update(1000, loss=0.0)
    s.update(6000, loss=0.0)
    assert s.update(6500, loss=0.3) is False and not s.probing
    t = probing_selector()
    t.update(1000, loss=0.0)
    t.update(6000, loss=0.0)
    assert t.update(6500, available_bps=150_000) is False and not t.probing
    assert t.target_layer == LOW


def test_an_estimate_covering_main_switches_without_probing():
    s = probing_selector()
    for t in range(1000, 7000, 1000):
        s.update(t, available_bps=1_200_000, main_bps=900_000, low_bps=200_000)
    assert s.target_layer == MAIN and not s.probing


def test_steady_moderate_loss_on_low_tries_main_after_the_longest_wait():
    """5 % loss on low is not calm (it may be congestion), but a link that keeps losing
    5 % for probe_max_ms and nothing worse gets main again (random loss, which NACK repairs
    on main as well); main then holds while the loss stays under down_loss."""
    s = DualStreamSelector(probe_after_ms=15_000, probe_max_ms=60_000, down_loss=0.10, up_loss=0.02)
    assert s.update(0, loss=0.2) and s.target_layer == LOW
    for t in range(1000, 61_000, 1000):
        assert s.update(t, loss=0.05) is False, t  # never calm: no 15 s try
    assert s.update(61_000, loss=0.05) is True and s.target_layer == MAIN
    for t in range(62_000, 90_000, 1000):
        assert s.update(t, loss=0.06) is False  # main holds: under down_loss


def test_loss_reaching_down_loss_on_low_restarts_the_longest_wait():
    s = DualStreamSelector(probe_after_ms=15_000, probe_max_ms=60_000, down_loss=0.10, up_loss=0.02)
    s.update(0, loss=0.2)
    s.update(1000, loss=0.05)
    s.update(30_000, loss=0.12)  # heavy again: the wait starts over
    s.update(31_000, loss=0.05)
    assert s.update(90_000, loss=0.05) is False
    assert s.update(91_000, loss=0.05) is True and s.target_layer == MAIN


def test_a_tiny_main_bitrate_is_judged_against_the_floor():
    s = DualStreamSelector(main_bitrate_floor=300_000)
    assert s.update(0, available_bps=200_000, main_bps=10_000) is True


def test_bandwidth_never_lifts_above_the_preferred_layer():
    s = DualStreamSelector(preferred=LOW, up_after_ms=0)
    s.update(0, available_bps=10_000_000, main_bps=900_000)
    s.update(1, available_bps=10_000_000, main_bps=900_000)
    assert s.target_layer == LOW


def test_only_existing_layers_are_targeted():
    s = DualStreamSelector(preferred=LOW, available=(MAIN,))
    assert s.target_layer == MAIN
    assert s.set_available((LOW, MAIN)) is True and s.target_layer == LOW


def test_losing_the_current_layer_waits_for_a_keyframe_again():
    s = DualStreamSelector(preferred=LOW)
    s.select(key(), LOW)
    s.set_available((MAIN,))
    assert s.current_layer == -1 and s.target_layer == MAIN
    assert s.select(delta(), MAIN) is DROP


def test_a_selector_needs_a_layer():
    with pytest.raises(ValueError, match=r"^a dual-stream selector needs at least one layer\.$"):
        DualStreamSelector(available=())


# -- LayeredConsumer: the selector applied ----------------------------------------------

SUB_EXT = {SDES_MID: 4, ABS_SEND_TIME: 5, AUDIO_LEVEL: 6}
SUB_VP8 = CodecInfo("video/VP8", 90000, 120, rtx_payload_type=121, rtcp_feedback=("nack",))


def setup_layers(preferred="main"):
    clock = Clock()
    router = Router("r", clock=clock)
    upstream = RecordingSink()
    main = router.create_producer(
        "main", "video", "camera", "main", params(ssrc=1000, rtx_ssrc=1001), upstream, group="g"
    )
    low = router.create_producer(
        "low", "video", "camera", "low", params(ssrc=3000, rtx_ssrc=3001), upstream, group="g"
    )
    sink = RecordingSink()
    sub = params(SUB_VP8, ssrc=5000, rtx_ssrc=5001, extensions=SUB_EXT, mid="3")
    consumer = router.create_consumer("c", "main", sub, sink, preferred_layer=preferred)
    return clock, router, main, low, consumer, sink, upstream


def both(
    clock,
    main,
    low,
    frames,
    *,
    main_seq=100,
    low_seq=5000,
    main_ts=0,
    low_ts=777_000,
    key_main=(),
    key_low=(),
    step_ms=33,
):
    """Feed ``frames`` frames of both layers (2 packets per main frame, 1 per low frame)."""
    for f in range(frames):
        now = clock.advance(step_ms)
        ts_m = main_ts + 3000 * f
        main.receive_rtp(video(main_seq + 2 * f, ts_m, key=f in key_main, ssrc=1000), now)
        main.receive_rtp(
            video(main_seq + 2 * f + 1, ts_m, start=False, ssrc=1000, marker=True), now
        )
        low.receive_rtp(
            video(low_seq + f, low_ts + 3000 * f, key=f in key_low, ssrc=3000, marker=True), now
        )


def test_layered_consumer_is_made_for_a_main_and_low_pair():
    *_, consumer, _, _ = setup_layers()
    assert type(consumer).__name__ == "LayeredConsumer"
    assert {p.id for p in consumer.producers} == {"main", "low"}


def test_layered_consumer_starts_on_the_preferred_layers_keyframe_only():
    clock, _, main, low, consumer, sink, upstream = setup_layers(preferred="low")
    assert [p.media_ssrc for p in upstream.rtcp] == [3000]  # keyframe asked of low
    both(clock, main, low, 3, key_main=(0,), key_low=(1,))
    assert consumer.current_layer == "low"
    assert [p.payload[-4:] for p in sink.rtp] == [
        (5001).to_bytes(4, "big"),
        (5002).to_bytes(4, "big"),
    ]


def test_switch_to_low_keeps_sequence_continuous_and_timestamps_increasing():
    clock, _, main, low, consumer, sink, _ = setup_layers()
    both(clock, main, low, 3, key_main=(0,))
    assert consumer.current_layer == "main"
    consumer.set_preferred_layer("low")
    both(
        clock, main, low, 3, main_seq=106, low_seq=5003, main_ts=9000, low_ts=786_000, key_low=(1,)
    )
    out = sink.rtp
    seqs = [p.sequence_number for p in out]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # no gap, no duplicate
    ts = [p.timestamp for p in out]
    assert all(b >= a for a, b in itertools.pairwise(ts))
    assert consumer.current_layer == "low"
    switch = [p.payload[-4:] for p in out].index((5004).to_bytes(4, "big"))
    # The low keyframe arrived with the main frame just sent (same capture instant): the
    # smallest step (1 ms) keeps timestamps strictly increasing across the switch.
    assert ts[switch] - ts[switch - 1] == 90
    assert all(p.ssrc == 5000 for p in out)


def test_old_layer_packets_after_the_switch_are_dropped():
    clock, _, main, low, consumer, sink, _ = setup_layers()
    both(clock, main, low, 2, key_main=(0,))
    consumer.set_preferred_layer("low")
    both(
        clock, main, low, 1, main_seq=104, low_seq=5002, main_ts=6000, low_ts=783_000, key_low=(0,)
    )
    sink.clear()
    both(clock, main, low, 2, main_seq=106, low_seq=5003, main_ts=9000, low_ts=786_000)
    assert [p.payload[-4:] for p in sink.rtp] == [
        (5003).to_bytes(4, "big"),
        (5004).to_bytes(4, "big"),
    ]


def test_target_layer_packets_before_its_keyframe_are_not_sent():
    clock, _, main, low, consumer, sink, _ = setup_layers()
    both(clock, main, low, 1, key_main=(0,))
    consumer.set_preferred_layer("low")
    sink.clear()
    both(clock, main, low, 2, main_seq=102, low_seq=5001, main_ts=3000, low_ts=780_000)
    assert all(p.payload[-4:] < (5000).to_bytes(4, "big") for p in sink.rtp)
    assert consumer.current_layer == "main"


def test_switch_uses_sender_reports_to_align_media_time_when_both_layers_have_them():
    clock, _, main, low, consumer, sink, _ = setup_layers()
    # Both layers' RTP clocks related to the publisher's NTP clock: low ts 777_000 == main ts 0.
    main.receive_sender_report(RtcpSrPacket(1000, 5 << 32, 0, 0, 0), clock.now)
    low.receive_sender_report(RtcpSrPacket(3000, 5 << 32, 777_000, 0, 0), clock.now)
    main.receive_rtp(video(100, 0, key=True, ssrc=1000, marker=True), clock.advance(50))
    main.receive_rtp(video(101, 3000, ssrc=1000, marker=True), clock.advance(50))
    consumer.set_preferred_layer("low")
    # Arrives 80 ms later (network jitter), but is media time 6000 on main's clock.
    low.receive_rtp(video(5002, 783_000, key=True, ssrc=3000), clock.advance(80))
    ts = [p.timestamp for p in sink.rtp]
    assert ts == [0, 3000, 6000]


def test_switch_without_sender_reports_uses_the_arrival_time_between_the_packets():
    clock, _, main, low, consumer, sink, _ = setup_layers()
    main.receive_rtp(video(100, 0, key=True, ssrc=1000, marker=True), clock.advance(50))
    consumer.set_preferred_layer("low")
    low.receive_rtp(video(5002, 783_000, key=True, ssrc=3000), clock.advance(80))
    assert [p.timestamp for p in sink.rtp] == [0, 80 * 90]
    assert sink.seqs() == [100, 101]


def test_nack_for_a_packet_sent_before_the_switch_comes_from_the_old_layer():
    clock, _, main, low, consumer, sink, _ = setup_layers()
    both(clock, main, low, 2, key_main=(0,))
    before = sink.rtp[1]
    consumer.set_preferred_layer("low")
    both(
        clock, main, low, 2, main_seq=104, low_seq=5002, main_ts=6000, low_ts=783_000, key_low=(0,)
    )
    first_low = next(p for p in sink.rtp if p.payload[-4:] == (5002).to_bytes(4, "big"))
    sink.clear()
    consumer.receive_nack([before.sequence_number, first_low.sequence_number])
    old, new = sink.rtp
    assert old.payload[2:] == before.payload and old.timestamp == before.timestamp
    assert new.payload[2:][-4:] == (5002).to_bytes(4, "big")


def test_remb_under_the_main_bitrate_moves_to_low_and_asks_low_for_a_keyframe():
    clock, _, main, low, consumer, _sink, upstream = setup_layers()
    both(clock, main, low, 30, key_main=(0,))
    upstream.clear()
    changes = []
    consumer.events.on("layer_changed", changes.append)
    consumer.receive_remb(100_000)
    assert consumer.target_layer == "low"
    assert [p.media_ssrc for p in upstream.rtcp if isinstance(p, RtcpPliPacket)] == [3000]
    both(
        clock,
        main,
        low,
        1,
        main_seq=160,
        low_seq=5030,
        main_ts=90_000,
        low_ts=867_000,
        key_low=(0,),
    )
    assert changes == ["low"] and consumer.current_layer == "low"


def report(lost: int, highest: int, fraction: int = 0) -> RtcpReportBlock:
    return RtcpReportBlock(
        5000, fraction_lost=fraction, packets_lost=lost, highest_sequence=highest
    )


def test_loss_that_nack_repairs_keeps_main():
    """20 % raw loss in every report, but each missing packet was asked for once and its
    retransmission arrived (never asked for again): the subscriber saw no loss."""
    clock, _, main, low, consumer, sink, _ = setup_layers()
    for i in range(10):
        both(clock, main, low, 30, main_seq=100 + 60 * i, main_ts=90_000 * i, key_main=(0,))
        consumer.receive_nack(sink.seqs()[-60:][::5])  # every fifth packet, once
        consumer.receive_receiver_report(report(12 * i, 1000 + 60 * i, fraction=51))
    assert consumer.stats().nacks_repeated == 0
    assert consumer.target_layer == "main"


def test_retransmissions_lost_again_move_to_low():
    clock, _, main, low, consumer, sink, _ = setup_layers()
    both(clock, main, low, 30, key_main=(0,))
    consumer.receive_receiver_report(report(0, 1000))  # opens the window
    both(clock, main, low, 30, main_seq=160, main_ts=90_000)
    lost = sink.seqs()[-60:][::6]  # 10 of 60
    consumer.receive_nack(lost)
    clock.advance(200)  # past the resend interval: asked again, so the resends were lost
    consumer.receive_nack(lost)
    assert consumer.stats().nacks_repeated == 10
    consumer.receive_receiver_report(report(10, 1060, fraction=20))  # inside the window
    assert consumer.target_layer == "main"
    clock.advance(1000)
    consumer.receive_receiver_report(report(10, 1060, fraction=20))  # 10 of ~120 sent: 8 %
    assert consumer.target_layer == "low"


def test_heavy_raw_loss_over_a_second_moves_to_low_without_waiting_for_repairs():
    clock, _, main, low, consumer, _, _ = setup_layers()
    both(clock, main, low, 3, key_main=(0,))
    consumer.receive_receiver_report(report(0, 1000))
    # A report riding on a NACK can read 50 % over two packets: not a second's worth.
    clock.advance(100)
    consumer.receive_receiver_report(report(1, 1002, fraction=128))
    assert consumer.target_layer == "main"
    clock.advance(1000)
    consumer.receive_receiver_report(report(10, 1100, fraction=26))  # 10 %: NACK's job
    assert consumer.target_layer == "main"
    clock.advance(1000)
    consumer.receive_receiver_report(report(60, 1200, fraction=128))  # 50 %: a capped link
    assert consumer.target_layer == "low"


def drop_to_low_then_calm_until_probing(clock, main, low, consumer):
    """Heavy loss moves the consumer to low; then low at 30 fps with clean reports (nothing
    asked again) every second until the calm spell starts a probe."""
    both(clock, main, low, 3, key_main=(0,))
    consumer.receive_receiver_report(report(0, 1000))
    clock.advance(1000)
    consumer.receive_receiver_report(report(60, 1100, fraction=128))
    assert consumer.target_layer == "low"
    for i in range(10):
        both(
            clock,
            main,
            low,
            30,
            main_seq=200 + 60 * i,
            low_seq=5100 + 30 * i,
            main_ts=90_000 * i,
            low_ts=777_000 + 90_000 * i,
            key_low=(0,) if i == 0 else (),
        )
        consumer.receive_receiver_report(report(60, 1200 + 30 * i))
        if consumer.selector.probing:
            return
    raise AssertionError("no probe after 10 s of calm")


def rtx_report(lost: int, highest: int) -> RtcpReportBlock:
    return RtcpReportBlock(5001, packets_lost=lost, highest_sequence=highest)


def test_a_probe_pads_low_with_rtx_copies_up_to_mains_rate_and_then_switches():
    clock, _, main, low, consumer, sink, _ = setup_layers()
    drop_to_low_then_calm_until_probing(clock, main, low, consumer)
    sink.clear()
    for f in range(30):  # a second of low in 1 kB packets, as a browser's are
        low.receive_rtp(
            video(6000 + f, 1_500_000 + 3000 * f, ssrc=3000, marker=True, payload=VP8_DELTA * 170),
            clock.advance(33),
        )
    sent = sink.rtp
    media = [p for p in sent if p.ssrc == 5000]
    padding = [p for p in sent if p.ssrc == 5001]
    assert len(media) == 30 and consumer.current_layer == "low"
    # The copies are RTX of packets already sent (the subscriber drops them as duplicates).
    assert {int.from_bytes(p.payload[:2], "big") for p in padding} <= {
        p.sequence_number for p in media
    } | {(media[0].sequence_number - k) & 0xFFFF for k in range(1, 20)}
    padded = sum(len(d) for d in sink.rtp_data if RtpPacket.parse(d).ssrc == 5001) * 8
    full = consumer.selector.probe_rate_bps(clock.now + 10_000)
    assert 0.05 * full < padded < 0.25 * full  # the ramp's first third: 5 % to 16 %
    assert consumer.stats().probe_packets == len(padding)
    consumer.receive_receiver_report(rtx_report(0, 100))
    clock.advance(600)
    consumer.receive_receiver_report(rtx_report(2, 160))  # 2 of 60 copies lost: room
    clock.advance(1500)
    consumer.receive_receiver_report(report(60, 1500))
    assert consumer.target_layer == "main" and not consumer.selector.probing
    sink.clear()
    both(clock, main, low, 5, main_seq=2000, low_seq=7000, main_ts=1_800_000, low_ts=2_400_000)
    assert all(p.ssrc == 5000 for p in sink.rtp)  # no more padding


def test_a_probe_whose_copies_are_lost_stops_padding_and_stays_on_low():
    clock, _, main, low, consumer, sink, _ = setup_layers()
    drop_to_low_then_calm_until_probing(clock, main, low, consumer)
    both(clock, main, low, 10, main_seq=1000, low_seq=6000, main_ts=900_000, low_ts=1_500_000)
    consumer.receive_receiver_report(rtx_report(0, 100))
    clock.advance(600)
    consumer.receive_receiver_report(rtx_report(30, 160))  # half the copies lost: capped
    assert not consumer.selector.probing and consumer.target_layer == "low"
    sink.clear()
    both(clock, main, low, 10, main_seq=1100, low_seq=6100, main_ts=990_000, low_ts=1_590_000)
    assert all(p.ssrc == 5000 for p in sink.rtp)


def test_a_link_short_of_main_stops_main_at_a_frames_end_until_lows_keyframe():
    clock, _, main, low, consumer, sink, _ = setup_layers()
    both(clock, main, low, 3, key_main=(0,))
    main.receive_rtp(video(106, 9000, ssrc=1000), clock.advance(33))  # a frame begins
    consumer.receive_receiver_report(report(0, 1000))
    clock.advance(1000)
    consumer.receive_receiver_report(report(60, 1100, fraction=128))  # a cap: heavy loss
    assert consumer.target_layer == "low" and consumer.current_layer == "main"
    sink.clear()
    main.receive_rtp(video(107, 9000, start=False, ssrc=1000, marker=True), clock.advance(1))
    both(clock, main, low, 3, main_seq=108, main_ts=12_000, low_seq=5003, low_ts=786_000)
    assert sink.seqs() == [107]  # only the end of the frame under way; no new frame of main
    consumer.receive_nack([105, 106])  # repairs of main would only fill the short line
    assert sink.seqs() == [107] and consumer.stats().nacks_shed == 1
    both(
        clock,
        main,
        low,
        2,
        main_seq=114,
        main_ts=21_000,
        low_seq=5006,
        low_ts=795_000,
        key_low=(0,),
    )
    assert consumer.current_layer == "low"
    assert sink.seqs() == [107, 108, 109]  # low's keyframe follows on: no hole


def test_shedding_ends_after_a_second_without_the_targets_keyframe():
    """A low layer whose encoder sends nothing must not leave the classroom without main."""
    clock, _, main, low, consumer, sink, _ = setup_layers()
    both(clock, main, low, 3, key_main=(0,))
    consumer.receive_receiver_report(report(0, 1000))
    clock.advance(1000)
    consumer.receive_receiver_report(report(60, 1100, fraction=128))
    sink.clear()
    main.receive_rtp(video(106, 9000, ssrc=1000, marker=True), clock.advance(33))
    assert sink.seqs() == []  # shed
    main.receive_rtp(video(107, 12_000, ssrc=1000, marker=True), clock.advance(1000))
    assert sink.seqs() == [107] and consumer.current_layer == "main"


def test_a_camera_without_a_low_layer_keeps_flowing_on_a_short_link():
    """Nothing to shed to: the only layer goes on (an RTSP camera publishes main alone)."""
    clock, _, main, low, consumer, sink, _ = setup_layers()
    low.close()
    main.receive_rtp(video(100, 0, key=True, ssrc=1000, marker=True), clock.advance(33))
    consumer.receive_receiver_report(report(0, 1000))
    clock.advance(1000)
    consumer.receive_receiver_report(report(60, 1100, fraction=128))
    sink.clear()
    main.receive_rtp(video(101, 3000, ssrc=1000, marker=True), clock.advance(33))
    assert consumer.current_layer == "main" and sink.seqs() == [101]


def test_closing_the_low_producer_falls_back_to_main():
    clock, _router, main, low, consumer, sink, upstream = setup_layers(preferred="low")
    both(clock, main, low, 2, key_low=(0,))
    upstream.clear()
    low.close()
    assert not consumer.closed
    assert consumer.target_layer == "main"
    assert [p.media_ssrc for p in upstream.rtcp] == [1000]
    main.receive_rtp(video(200, 90_000, key=True, ssrc=1000), clock.advance(33))
    assert consumer.current_layer == "main"
    seqs = sink.seqs()
    assert seqs[-1] == seqs[-2] + 1


def test_closing_both_layers_closes_the_layered_consumer():
    _, router, main, low, consumer, _, _ = setup_layers()
    reasons = []
    consumer.events.on("closed", reasons.append)
    low.close()
    main.close()
    assert reasons == ["producer_closed"]
    assert router.consumers == {}


def test_a_low_layer_published_later_joins_existing_consumers():
    clock = Clock()
    router = Router("r", clock=clock)
    upstream = RecordingSink()
    main = router.create_producer("main", "video", "camera", "main", params(), upstream, group="g")
    consumer = router.create_consumer(
        "c", "main", params(ssrc=5000), RecordingSink(), preferred_layer="low"
    )
    assert consumer.target_layer == "main"
    router.create_producer(
        "low", "video", "camera", "low", params(ssrc=3000, rtx_ssrc=None), upstream, group="g"
    )
    assert consumer.target_layer == "low"
    assert router.consumers_of("low") == (consumer,)
    assert main.closed is False


def test_a_low_layer_with_another_codec_does_not_join():
    clock = Clock()
    router = Router("r", clock=clock)
    upstream = RecordingSink()
    router.create_producer("main", "video", "camera", "main", params(), upstream, group="g")
    consumer = router.create_consumer("c", "main", params(ssrc=5000), RecordingSink())
    router.create_producer(
        "low", "video", "camera", "low", params(H264, ssrc=3000), upstream, group="g"
    )
    assert [p.id for p in consumer.producers] == ["main"]
    assert router.consumers_of("low") == ()


def test_switching_back_and_forth_under_loss_gives_one_clean_repaired_stream():
    rng = random.Random(3)
    clock = Clock()
    router = Router("r", clock=clock)
    upstream = RecordingSink()
    main = router.create_producer("main", "video", "camera", "main", params(), upstream, group="g")
    low = router.create_producer(
        "low", "video", "camera", "low", params(ssrc=3000, rtx_ssrc=3001), upstream, group="g"
    )
    received: dict[int, RtpPacket] = {}
    unwrapper = SeqUnwrapper()

    class Lossy(RecordingSink):
        def send_rtp(self, data):
            if rng.random() < 0.05:
                return
            packet = RtpPacket.parse(data)
            if packet.ssrc == 5001:
                packet = unwrap_rtx(packet, 120, 5000)
            received.setdefault(unwrapper.unwrap(packet.sequence_number), packet)

    def missing():
        keys = sorted(received)
        return [s & 0xFFFF for s in range(keys[0], keys[-1] + 1) if s not in received]

    sub = params(SUB_VP8, ssrc=5000, rtx_ssrc=5001, extensions=SUB_EXT)
    consumer = router.create_consumer("c", "main", sub, Lossy())
    for f in range(600):
        now = clock.advance(33)
        if f % 100 == 50:
            consumer.set_preferred_layer("low" if consumer.target_layer == "main" else "main")
        for k in range(3):
            payload = vp8_payload(1000 + f, key=f % 30 == 0, start=k == 0)
            packet = video(60_000 + 3 * f + k, 3000 * f, ssrc=1000, payload=payload, marker=k == 2)
            main.receive_rtp(packet, now)
        payload = vp8_payload((30_000 + f) & 0x7FFF, key=f % 30 == 15)
        low.receive_rtp(
            video(20_000 + f, 500_000 + 3000 * f, ssrc=3000, payload=payload, marker=True), now
        )
        if f % 3 == 2:
            consumer.receive_nack(missing())
    for _ in range(20):
        consumer.receive_nack(missing())
    assert missing() == []
    stream = [received[k] for k in sorted(received)]
    assert consumer.stats().layer_switches >= 6
    for a, b in itertools.pairwise(stream):
        a_layer = int.from_bytes(a.payload[-4:], "big") < 50_000
        b_layer = int.from_bytes(b.payload[-4:], "big") < 50_000
        a_pid, b_pid = vp8_ids(a.payload)[0], vp8_ids(b.payload)[0]
        assert b.timestamp >= a.timestamp
        if a.timestamp == b.timestamp:
            assert a_layer == b_layer and a_pid == b_pid  # one frame never mixes layers
        else:
            assert b_pid == (a_pid + 1) & 0x7FFF  # picture ids run on across switches
        if a_layer != b_layer:
            assert is_vp8_keyframe(b.payload)  # every switch lands on a keyframe


def test_a_switch_waits_for_the_end_of_the_frame_being_forwarded():
    clock, _, main, low, consumer, sink, upstream = setup_layers()
    both(clock, main, low, 2, key_main=(0,))
    consumer.set_preferred_layer("low")
    upstream.clear()
    # A main frame's first packet goes out; its second is late (lost upstream, being
    # repaired). Low's keyframe now would cut that frame short without a visible gap.
    main.receive_rtp(video(104, 6000, ssrc=1000), clock.advance(33))
    low.receive_rtp(video(5002, 783_000, key=True, ssrc=3000, marker=True), clock.now)
    assert consumer.current_layer == "main" and consumer.switches_held == 1
    # Low's next keyframe is asked for (held by the rate limit: one was asked just before).
    assert low.key_frames.pending and not upstream.rtcp
    main.receive_rtp(video(105, 6000, start=False, ssrc=1000, marker=True), clock.advance(5))
    low.receive_rtp(video(5003, 786_000, key=True, ssrc=3000, marker=True), clock.advance(28))
    assert consumer.current_layer == "low"
    sent = [p.payload[-4:] for p in sink.rtp]
    assert sent[-3:] == [n.to_bytes(4, "big") for n in (104, 105, 5003)]
    seqs = sink.seqs()
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))


def test_a_subscribers_pli_during_a_pending_switch_asks_both_layers():
    clock, _, main, low, consumer, _, upstream = setup_layers()
    both(clock, main, low, 1, key_main=(0,))
    clock.advance(1000)
    consumer.set_preferred_layer("low")
    upstream.clear()
    clock.advance(1000)
    consumer.receive_key_frame_request()
    assert sorted(p.media_ssrc for p in upstream.rtcp) == [1000, 3000]


def test_a_subscribers_pli_without_a_pending_switch_asks_only_the_current_layer():
    clock, _, main, low, consumer, _, upstream = setup_layers()
    both(clock, main, low, 1, key_main=(0,))
    upstream.clear()
    clock.advance(1000)
    consumer.receive_key_frame_request()
    assert [p.media_ssrc for p in upstream.rtcp] == [1000]


def test_vp8_picture_ids_continue_across_a_switch_and_in_retransmissions():
    clock, _, main, low, consumer, sink, _ = setup_layers()
    for f in range(2):
        main.receive_rtp(
            video(
                100 + f, 3000 * f, ssrc=1000, marker=True, payload=vp8_payload(500 + f, key=f == 0)
            ),
            clock.advance(33),
        )
    consumer.set_preferred_layer("low")
    low.receive_rtp(
        video(7000, 90_000, ssrc=3000, payload=vp8_payload(32_000, key=True)), clock.advance(33)
    )
    low.receive_rtp(video(7001, 93_000, ssrc=3000, payload=vp8_payload(32_001)), clock.advance(33))
    assert [vp8_ids(p.payload)[0] for p in sink.rtp] == [500, 501, 502, 503]
    sink.clear()
    consumer.receive_nack([101, 103])
    old, new = sink.rtp
    assert vp8_ids(old.payload[2:])[0] == 501 and vp8_ids(new.payload[2:])[0] == 503
