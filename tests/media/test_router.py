import logging

import pytest
from core_support import OPUS, Clock, RecordingSink, audio, params, video

from media.consumer import SimpleConsumer
from media.layers import LayeredConsumer
from media.router import Router, RouterError


def make():
    clock = Clock()
    router = Router("lesson-1", clock=clock)
    upstream = RecordingSink()
    producer = router.create_producer("p", "video", "camera", "main", params(), upstream)
    return clock, router, producer, upstream


def test_router_fans_a_packet_out_to_every_consumer():
    clock, router, producer, _ = make()
    sinks = [RecordingSink() for _ in range(3)]
    for i, sink in enumerate(sinks):
        router.create_consumer(f"c{i}", "p", params(ssrc=5000 + i), sink)
    producer.receive_rtp(video(1, 0, key=True), clock.advance(1))
    assert [s.rtp[0].ssrc for s in sinks] == [5000, 5001, 5002]


def test_audio_gets_a_simple_consumer_and_camera_video_a_layered_one():
    _, router, _, upstream = make()
    router.create_producer("a", "audio", "mic", "main", params(OPUS, 2000, None), upstream)
    assert isinstance(
        router.create_consumer("ca", "a", params(OPUS, 6000, None), RecordingSink()), SimpleConsumer
    )
    assert isinstance(
        router.create_consumer("cv", "p", params(ssrc=7000), RecordingSink()), LayeredConsumer
    )
    assert isinstance(
        router.create_consumer("cs", "p", params(ssrc=7001), RecordingSink(), layered=False),
        SimpleConsumer,
    )


def test_creating_a_consumer_asks_the_producer_for_a_keyframe():
    _, router, producer, upstream = make()
    router.create_consumer("c", "p", params(ssrc=5000), RecordingSink())
    assert len(upstream.rtcp) == 1
    assert producer.stats().key_frame_requests_sent == 1


def test_a_paused_consumer_does_not_ask_for_a_keyframe():
    _, router, _, upstream = make()
    router.create_consumer("c", "p", params(ssrc=5000), RecordingSink(), paused=True)
    assert upstream.rtcp == []


def test_duplicate_producer_id_is_refused_with_a_code():
    _, router, _, upstream = make()
    with pytest.raises(RouterError, match=r"^Producer p already exists\.$") as info:
        router.create_producer("p", "video", "camera", "main", params(), upstream)
    assert info.value.code == "producer_exists"


def test_producer_with_a_kind_that_does_not_match_its_codec_is_refused():
    _, router, _, upstream = make()
    with pytest.raises(RouterError) as info:
        router.create_producer("x", "audio", "mic", "main", params(), upstream)
    assert info.value.code == "bad_producer"
    assert info.value.message == "producer kind audio does not match codec video/VP8."


def test_unknown_producer_kind_is_refused():
    _, router, _, upstream = make()
    with pytest.raises(RouterError, match=r"^producer kind must be audio or video, not 'data'\.$"):
        router.create_producer("x", "data", "mic", "main", params(), upstream)


def test_consumer_of_an_unknown_producer_is_refused():
    _, router, _, _ = make()
    with pytest.raises(RouterError, match=r"^Producer nope does not exist\.$") as info:
        router.create_consumer("c", "nope", params(), RecordingSink())
    assert info.value.code == "producer_not_found"


def test_duplicate_consumer_id_is_refused():
    _, router, _, _ = make()
    router.create_consumer("c", "p", params(ssrc=5000), RecordingSink())
    with pytest.raises(RouterError, match=r"^Consumer c already exists\.$") as info:
        router.create_consumer("c", "p", params(ssrc=5001), RecordingSink())
    assert info.value.code == "consumer_exists"


def test_unknown_preferred_layer_is_refused():
    _, router, _, _ = make()
    with pytest.raises(RouterError, match=r"^Unknown layer 'mid': expected 'low' or 'main'\.$"):
        router.create_consumer("c", "p", params(ssrc=5000), RecordingSink(), preferred_layer="mid")


def test_producer_close_closes_its_consumers_with_producer_closed():
    _, router, producer, _ = make()
    consumer = router.create_consumer("c", "p", params(ssrc=5000), RecordingSink())
    reasons, closed_producers = [], []
    consumer.events.on("closed", reasons.append)
    producer.events.on("closed", closed_producers.append)
    router.events.on("producer_closed", closed_producers.append)
    producer.close()
    producer.close()
    assert reasons == ["producer_closed"]
    assert closed_producers == ["closed", "p"]
    assert router.producers == {} and router.consumers == {}


def test_router_close_closes_everything_once_with_router_closed():
    _, router, producer, _ = make()
    consumer = router.create_consumer("c", "p", params(ssrc=5000), RecordingSink())
    events = []
    producer.events.on("closed", lambda r: events.append(("producer", r)))
    consumer.events.on("closed", lambda r: events.append(("consumer", r)))
    router.events.on("closed", lambda r: events.append(("router", r)))
    router.close("lesson_ended")
    router.close()
    assert events == [
        ("consumer", "router_closed"),
        ("producer", "router_closed"),
        ("router", "lesson_ended"),
    ]
    assert producer.closed and consumer.closed and router.closed


def test_closed_router_refuses_new_producers():
    _, router, _, upstream = make()
    router.close()
    with pytest.raises(RouterError, match=r"^Router lesson-1 is closed\.$") as info:
        router.create_producer("q", "video", "camera", "main", params(), upstream)
    assert info.value.code == "router_closed"


def test_a_raising_listener_does_not_break_the_close_cascade(caplog):
    _, router, producer, _ = make()
    consumer = router.create_consumer("c", "p", params(ssrc=5000), RecordingSink())

    def boom(reason):
        raise RuntimeError("listener bug")

    consumer.events.on("closed", boom)
    seen = []
    producer.events.on("closed", seen.append)
    with caplog.at_level(logging.ERROR):
        router.close()
    assert seen == ["router_closed"] and consumer.closed
    assert "listener of 'closed' raised" in caplog.text


def test_a_closed_consumer_is_no_longer_fed():
    clock, router, producer, _ = make()
    keep, gone = RecordingSink(), RecordingSink()
    router.create_consumer("keep", "p", params(ssrc=5000), keep)
    router.create_consumer("gone", "p", params(ssrc=5001), gone).close()
    producer.receive_rtp(video(1, 0, key=True), clock.advance(1))
    assert len(keep.rtp_data) == 1 and gone.rtp_data == []
    assert [c.id for c in router.consumers_of("p")] == ["keep"]


def test_active_speaker_event_names_the_loudest_microphone():
    clock = Clock()
    router = Router("r", clock=clock, audio_level_interval_ms=100)
    upstream = RecordingSink()
    ext = {"urn:ietf:params:rtp-hdrext:ssrc-audio-level": 3}
    router.create_producer(
        "quiet", "audio", "mic", "main", params(OPUS, 2000, None, extensions=ext), upstream
    )
    router.create_producer(
        "loud", "audio", "mic", "main", params(OPUS, 2001, None, extensions=ext), upstream
    )
    speakers = []
    router.events.on("active_speaker", speakers.append)
    for i in range(30):
        now = clock.advance(20)
        router.get_producer("quiet").receive_rtp(audio(i, 960 * i, ssrc=2000, level=70), now)
        router.get_producer("loud").receive_rtp(audio(i, 960 * i, ssrc=2001, level=20), now)
    assert speakers == ["loud"]
    router.get_producer("loud").close()
    assert speakers == ["loud", None]


def test_a_consumer_whose_sink_raises_is_closed_and_the_others_still_get_the_packet(caplog):
    clock, router, producer, _ = make()

    class BrokenSink(RecordingSink):
        def send_rtp(self, data):
            raise OSError("socket gone")

    broken = router.create_consumer("broken", "p", params(ssrc=5000), BrokenSink())
    healthy = RecordingSink()
    router.create_consumer("ok", "p", params(ssrc=5001), healthy)
    reasons = []
    broken.events.on("closed", reasons.append)
    with caplog.at_level(logging.ERROR):
        producer.receive_rtp(video(1, 0, key=True), clock.advance(1))
    assert len(healthy.rtp_data) == 1
    assert reasons == ["error"] and router.get_consumer("broken") is None
    assert "consumer broken failed to send; closing it" in caplog.text
