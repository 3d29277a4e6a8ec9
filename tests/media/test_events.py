import logging

from media.events import EventEmitter, monotonic_ms, wall_offset_ms


def test_listeners_are_called_in_order_with_the_arguments():
    events = EventEmitter()
    seen = []
    events.on("x", lambda a, b: seen.append(("first", a, b)))
    events.on("x", lambda a, b: seen.append(("second", a, b)))
    assert events.emit("x", 1, 2) is True
    assert seen == [("first", 1, 2), ("second", 1, 2)]


def test_emit_without_listeners_returns_false():
    assert EventEmitter().emit("nothing") is False


def test_a_raising_listener_is_logged_and_the_others_still_run(caplog):
    events = EventEmitter()
    seen = []

    def bad():
        raise RuntimeError("boom")

    events.on("x", bad)
    events.on("x", lambda: seen.append("ok"))
    with caplog.at_level(logging.ERROR):
        events.emit("x")
    assert seen == ["ok"]
    assert "listener of 'x' raised" in caplog.text


def test_once_listener_runs_a_single_time():
    events = EventEmitter()
    seen = []
    events.once("x", seen.append)
    events.emit("x", 1)
    events.emit("x", 2)
    assert seen == [1]
    assert events.listener_count("x") == 0


def test_off_removes_a_listener_and_ignores_unknown_ones():
    events = EventEmitter()
    seen = []
    listener = events.on("x", seen.append)
    events.off("x", listener)
    events.off("x", listener)
    events.off("y", print)
    events.emit("x", 1)
    assert seen == []


def test_a_listener_removing_itself_during_emit_does_not_skip_others():
    events = EventEmitter()
    seen = []

    def first():
        events.off("x", first)
        seen.append("first")

    events.on("x", first)
    events.on("x", lambda: seen.append("second"))
    events.emit("x")
    assert seen == ["first", "second"]


def test_remove_all_listeners_silences_every_event():
    events = EventEmitter()
    events.on("x", print)
    events.remove_all_listeners()
    assert events.emit("x") is False


def test_the_media_clock_is_monotonic_and_the_wall_offset_points_to_now():
    import time

    a = monotonic_ms()
    assert monotonic_ms() >= a
    assert abs(a + wall_offset_ms() - time.time() * 1000) < 1000
