from core_support import VP8_DELTA, VP8_KEY, Clock, RecordingSink, params, video

from media.quality import PeerQuality, QualityMeter, StreamQuality, level_of
from media.router import Router
from media.rtcp import RtcpReportBlock


def test_no_streams_is_good():
    assert level_of(StreamQuality()) == 2


def test_levels_follow_loss_rtt_and_jitter_thresholds():
    assert level_of(StreamQuality(loss=0.01, rtt_ms=100, streams=1)) == 2
    assert level_of(StreamQuality(loss=0.03, streams=1)) == 1
    assert level_of(StreamQuality(rtt_ms=300, streams=1)) == 1
    assert level_of(StreamQuality(jitter_ms=50, streams=1)) == 1
    assert level_of(StreamQuality(loss=0.1, streams=1)) == 0
    assert level_of(StreamQuality(rtt_ms=500, streams=1)) == 0


def test_meter_reports_upstream_and_downstream_with_bitrates():
    clock = Clock()
    router = Router("r", clock=clock)
    producer = router.create_producer("p", "video", "camera", "main", params(), RecordingSink())
    consumer = router.create_consumer("c", "p", params(ssrc=5000), RecordingSink())
    meter = QualityMeter()
    first = meter.sample(clock.now, [producer], [consumer])
    assert first.upstream.bitrate_bps == 0
    for s in range(100):
        payload = (VP8_KEY if s == 0 else VP8_DELTA).ljust(996, b"\x00")
        producer.receive_rtp(video(s, 0, payload=payload), clock.advance(10))
    consumer.receive_receiver_report(RtcpReportBlock(5000, fraction_lost=13, jitter=1800))
    q = meter.sample(clock.now, [producer], [consumer])
    assert isinstance(q, PeerQuality)
    assert q.upstream.bitrate_bps == 800_000 and q.downstream.bitrate_bps == 800_000
    assert q.upstream.streams == 1 and q.downstream.streams == 1
    assert q.downstream.loss == 13 / 256 and q.downstream.jitter_ms == 20
    assert q.level == "fair"


def test_closed_streams_are_left_out():
    clock = Clock()
    router = Router("r", clock=clock)
    producer = router.create_producer("p", "video", "camera", "main", params(), RecordingSink())
    producer.close()
    q = QualityMeter().sample(clock.now, [producer], [])
    assert q.upstream.streams == 0 and q.level == "good"


def test_downstream_loss_covers_every_report_since_the_last_sample():
    """A burst in one report and a clean one after it (the link was moved to the low layer)
    still reads as loss over the sample's interval."""
    clock = Clock()
    router = Router("r", clock=clock)
    router.create_producer("p", "video", "camera", "main", params(), RecordingSink())
    consumer = router.create_consumer("c", "p", params(ssrc=5000), RecordingSink())
    meter = QualityMeter()
    consumer.receive_receiver_report(RtcpReportBlock(5000, packets_lost=0, highest_sequence=1000))
    assert meter.sample(clock.advance(2000), [], [consumer]).downstream.loss == 0.0
    # 60 of 200 lost, then a report with no new loss and fraction 0.
    consumer.receive_receiver_report(
        RtcpReportBlock(5000, fraction_lost=77, packets_lost=60, highest_sequence=1200)
    )
    consumer.receive_receiver_report(
        RtcpReportBlock(5000, fraction_lost=0, packets_lost=60, highest_sequence=1300)
    )
    assert meter.sample(clock.advance(2000), [], [consumer]).downstream.loss == 0.2
    # No report since: the last report's fraction.
    assert meter.sample(clock.advance(2000), [], [consumer]).downstream.loss == 0.0
