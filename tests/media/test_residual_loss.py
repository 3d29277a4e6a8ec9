from media.residual_loss import WindowedShare


def test_the_first_reading_only_starts_the_window():
    assert WindowedShare().update(0, 5, 100) is None


def test_a_window_shorter_than_a_report_interval_is_not_judged():
    r = WindowedShare(window_ms=1500)
    r.update(0, 0, 0)
    assert r.update(1000, 50, 100) is None
    assert r.update(1600, 4, 200) == 4 / 200


def test_repeats_count_against_the_packets_sent_in_the_window():
    r = WindowedShare(window_ms=1000)
    r.update(0, 3, 1000)
    assert r.update(1000, 3, 1100) == 0.0  # every first retransmission arrived
    assert r.update(2000, 8, 1200) == 0.05
    assert r.update(3000, 28, 1300) == 0.2


def test_a_window_with_nothing_sent_gives_no_reading():
    r = WindowedShare(window_ms=1000)
    r.update(0, 0, 500)
    assert r.update(1000, 0, 500) is None  # paused
    assert r.update(2000, 1, 600) == 0.01


def test_a_restarted_stream_starts_a_new_window():
    r = WindowedShare(window_ms=1000)
    r.update(0, 0, 70_000)
    assert r.update(1000, 0, 10) is None  # the extended sequence went back
    assert r.update(2000, 1, 110) == 0.01


def test_the_share_never_exceeds_one_nor_goes_below_zero():
    r = WindowedShare(window_ms=1000)
    r.update(0, 0, 0)
    assert r.update(1000, 40, 10) == 1.0
    assert r.update(2000, 30, 20) == 0.0  # a report's cumulative lost can go down
