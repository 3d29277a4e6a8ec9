from media.audio_level import AudioLevelObserver, NullAudioLevelObserver


def make(**kw):
    seen = []
    return AudioLevelObserver(seen.append, interval_ms=100, **kw), seen


def speak(observer, t0, levels, packets=10):
    """Each producer in ``levels`` sends ``packets`` packets over 100 ms at its level."""
    for i in range(packets):
        for producer_id, level in levels.items():
            observer.add(producer_id, level, t0 + i * 10)
    return t0 + packets * 10


def test_the_loudest_producer_becomes_the_active_speaker():
    observer, seen = make()
    t = speak(observer, 0, {"a": 60, "b": 20, "c": 40})
    observer.poll(t)
    assert seen == ["b"] and observer.active_speaker == "b"


def test_silence_under_the_threshold_elects_nobody():
    observer, seen = make(threshold=50)
    observer.poll(speak(observer, 0, {"a": 90}))
    assert seen == [] and observer.active_speaker is None


def test_a_new_speaker_must_hold_for_two_intervals():
    observer, seen = make(hold_intervals=2)
    t = speak(observer, 0, {"a": 20, "b": 60})
    observer.poll(t)
    t = speak(observer, t, {"a": 60, "b": 10})
    observer.poll(t)
    assert seen == ["a"]
    t = speak(observer, t, {"a": 60, "b": 10})
    observer.poll(t)
    assert seen == ["a", "b"]


def test_a_short_burst_does_not_switch_the_speaker():
    observer, seen = make(hold_intervals=2)
    t = speak(observer, 0, {"a": 20})
    observer.poll(t)
    t = speak(observer, t, {"a": 60, "b": 10})
    observer.poll(t)
    t = speak(observer, t, {"a": 20, "b": 80})
    observer.poll(t)
    assert seen == ["a"]


def test_too_few_packets_do_not_count():
    observer, seen = make(min_packets=5)
    observer.poll(speak(observer, 0, {"a": 10}, packets=3))
    assert seen == []


def test_adding_levels_polls_by_itself_when_the_interval_has_passed():
    observer, seen = make()
    speak(observer, 0, {"a": 10}, packets=11)
    assert seen == ["a"]


def test_removing_the_active_speaker_reports_silence():
    observer, seen = make()
    observer.poll(speak(observer, 0, {"a": 10}))
    observer.remove("a")
    assert seen == ["a", None]


def test_a_raising_callback_is_logged_not_raised(caplog):
    def bad(producer_id):
        raise RuntimeError("boom")

    observer = AudioLevelObserver(bad, interval_ms=100)
    observer.poll(speak(observer, 0, {"a": 10}))
    assert "active speaker listener raised" in caplog.text


def test_null_observer_ignores_everything():
    null = NullAudioLevelObserver()
    null.add("a", 10, 0)
    null.remove("a")
