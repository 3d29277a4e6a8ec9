from media.nack import NackGenerator


def test_in_order_packets_produce_no_nacks():
    nack = NackGenerator()
    assert [nack.receive(s, 0) for s in (1, 2, 3)] == [[], [], []]
    assert nack.pending == 0


def test_a_gap_is_reported_at_once():
    nack = NackGenerator()
    nack.receive(1, 0)
    assert nack.receive(5, 0) == [2, 3, 4]
    assert nack.missing() == [2, 3, 4]


def test_a_gap_across_the_wrap_is_reported_in_order():
    nack = NackGenerator()
    nack.receive(65534, 0)
    assert nack.receive(2, 0) == [65535, 0, 1]


def test_an_arriving_missing_packet_is_recovered():
    nack = NackGenerator()
    nack.receive(1, 0)
    nack.receive(4, 0)
    nack.receive(2, 5, recovered=True)
    assert nack.missing() == [3]
    assert nack.packets_recovered == 1


def test_reordered_packets_are_not_reported_twice():
    nack = NackGenerator()
    nack.receive(1, 0)
    nack.receive(3, 0)
    assert nack.receive(2, 1) == []
    assert nack.receive(3, 1) == []


def test_retries_are_spaced_by_the_rtt_and_the_minimum_interval():
    nack = NackGenerator(min_interval_ms=20)
    nack.receive(1, 0)
    nack.receive(3, 0)
    assert nack.due(10) == []
    assert nack.due(20) == [2]
    assert nack.due(30, rtt_ms=50) == []
    assert nack.due(70, rtt_ms=50) == [2]


def test_a_packet_is_given_up_after_max_retries_and_a_keyframe_is_wanted():
    nack = NackGenerator(max_retries=3, min_interval_ms=10)
    nack.receive(1, 0)
    nack.receive(3, 0)
    assert [nack.due(t) for t in (10, 20, 30)] == [[2], [2], []]
    assert nack.pending == 0
    assert nack.key_frame_required and nack.packets_given_up == 1


def test_a_packet_is_given_up_after_max_age():
    nack = NackGenerator(max_age_ms=100, min_interval_ms=1000)
    nack.receive(1, 0)
    nack.receive(3, 0)
    assert nack.due(101) == []
    assert nack.pending == 0 and nack.key_frame_required


def test_a_jump_larger_than_the_list_asks_for_a_keyframe_instead():
    nack = NackGenerator(max_packets=100)
    nack.receive(1, 0)
    assert nack.receive(500, 0) == []
    assert nack.pending == 0 and nack.key_frame_required


def test_overflowing_the_list_drops_the_oldest_and_asks_for_a_keyframe():
    nack = NackGenerator(max_packets=5)
    nack.receive(1, 0)
    nack.receive(5, 0)
    nack.receive(9, 0)
    assert nack.missing() == [3, 4, 6, 7, 8]
    assert nack.key_frame_required and nack.packets_given_up == 1


def test_a_keyframe_drops_older_missing_packets():
    nack = NackGenerator()
    nack.receive(1, 0)
    nack.receive(5, 0)
    nack.receive(8, 0)
    nack.key_frame_received(6)
    assert nack.missing() == [6, 7]
    assert not nack.key_frame_required


def test_reset_forgets_the_stream():
    nack = NackGenerator()
    nack.receive(1, 0)
    nack.receive(5, 0)
    nack.reset()
    nack.receive(100, 0)
    assert nack.pending == 0
