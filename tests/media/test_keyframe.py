from media.keyframe import KeyFrameRequester


def make(**kw):
    sent = []
    return KeyFrameRequester(lambda: sent.append(1), **kw), sent


def test_first_request_goes_out_at_once():
    kf, sent = make()
    assert kf.request(0) is True
    assert len(sent) == 1 and kf.waiting


def test_many_requests_at_once_become_one():
    kf, sent = make()
    for _ in range(10):
        kf.request(0)
    assert len(sent) == 1
    assert kf.requests_received == 10 and kf.requests_sent == 1


def test_a_request_after_the_keyframe_inside_the_interval_is_held_then_sent():
    kf, sent = make(min_interval_ms=500)
    kf.request(0)
    kf.key_frame_received()
    assert kf.request(100) is False and kf.pending
    assert kf.poll(499) is False
    assert kf.poll(500) is True
    assert len(sent) == 2


def test_a_keyframe_satisfies_a_held_request():
    kf, sent = make(min_interval_ms=500)
    kf.request(0)
    kf.key_frame_received()
    kf.request(100)
    kf.key_frame_received()
    assert kf.poll(600) is False
    assert len(sent) == 1


def test_an_unanswered_request_is_retried():
    kf, sent = make(min_interval_ms=500, retry_ms=1000)
    kf.request(0)
    assert kf.poll(999) is False
    assert kf.poll(1000) is True
    assert len(sent) == 2


def test_poll_before_any_request_does_nothing():
    kf, sent = make()
    assert kf.poll(10_000) is False and sent == []
