import pytest
from core_support import video

from media.retransmission import RetransmissionBuffer


def test_stored_packet_is_found_by_sequence_number():
    buffer = RetransmissionBuffer(size=8)
    packet = video(5, 0)
    buffer.store(packet, 100)
    assert buffer.get(5, 100) is packet
    assert buffer.get(6, 100) is None


def test_a_newer_packet_replaces_the_one_in_its_slot():
    buffer = RetransmissionBuffer(size=8)
    buffer.store(video(1, 0), 100)
    buffer.store(video(9, 0), 101)
    assert buffer.get(1, 101) is None
    assert buffer.get(9, 101).sequence_number == 9


def test_a_late_older_packet_does_not_evict_a_newer_one():
    buffer = RetransmissionBuffer(size=8)
    buffer.store(video(9, 0), 100)
    buffer.store(video(1, 0), 101)
    assert buffer.get(9, 101) is not None
    assert buffer.get(1, 101) is None


def test_slots_work_across_the_sequence_wrap():
    buffer = RetransmissionBuffer(size=8)
    for seq in (65534, 65535, 0, 1):
        buffer.store(video(seq, 0), 100)
    assert [buffer.get(s, 100).sequence_number for s in (65534, 65535, 0, 1)] == [
        65534,
        65535,
        0,
        1,
    ]


def test_packets_older_than_max_age_are_not_returned():
    buffer = RetransmissionBuffer(size=8, max_age_ms=1000)
    buffer.store(video(1, 0), 100)
    assert buffer.get(1, 1100) is not None
    assert buffer.get(1, 1101) is None


def test_a_stale_slot_is_taken_by_an_older_sequence_number():
    buffer = RetransmissionBuffer(size=8, max_age_ms=1000)
    buffer.store(video(9, 0), 100)
    buffer.store(video(1, 0), 5000)  # a restarted stream
    assert buffer.get(1, 5000) is not None


def test_clear_forgets_everything():
    buffer = RetransmissionBuffer(size=8)
    buffer.store(video(1, 0), 100)
    buffer.clear()
    assert buffer.get(1, 100) is None


@pytest.mark.parametrize("size", [0, 3, 100, 1 << 17])
def test_size_must_be_a_power_of_two_up_to_65536(size):
    with pytest.raises(ValueError, match=rf"^retransmission buffer size {size} is not a power"):
        RetransmissionBuffer(size=size)
