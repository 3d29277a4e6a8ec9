from media.seq import (
    SeqUnwrapper,
    seq_add,
    seq_diff,
    seq_gt,
    seq_lt,
    ts_add,
    ts_diff,
    ts_gt,
)


def test_seq_add_wraps_past_65535():
    assert seq_add(65535, 1) == 0
    assert seq_add(65530, 10) == 4
    assert seq_add(3, -5) == 65534


def test_seq_gt_treats_zero_as_newer_than_65535():
    assert seq_gt(0, 65535)
    assert seq_gt(5, 65530)
    assert not seq_gt(65535, 0)
    assert seq_lt(65530, 5)


def test_seq_gt_is_false_for_equal_numbers():
    assert not seq_gt(7, 7)
    assert not seq_lt(7, 7)


def test_seq_diff_is_signed_across_the_wrap():
    assert seq_diff(2, 65534) == 4
    assert seq_diff(65534, 2) == -4
    assert seq_diff(100, 100) == 0
    assert seq_diff(32767, 0) == 32767
    assert seq_diff(32768, 0) == -32768


def test_ts_arithmetic_wraps_at_32_bits():
    assert ts_add(0xFFFFFFFF, 1) == 0
    assert ts_add(0, -3000) == 0xFFFFFFFF - 2999
    assert ts_diff(100, 0xFFFFFF00) == 356
    assert ts_gt(100, 0xFFFFFF00)
    assert not ts_gt(0xFFFFFF00, 100)


def test_unwrapper_counts_roll_overs():
    u = SeqUnwrapper()
    first = u.unwrap(65534)
    assert u.unwrap(65535) == first + 1
    assert u.unwrap(0) == first + 2
    assert u.unwrap(1) == first + 3


def test_unwrapper_maps_a_late_packet_from_before_the_wrap_below_the_last():
    u = SeqUnwrapper()
    u.unwrap(65535)
    after = u.unwrap(2)
    late = u.unwrap(65534)
    assert late == after - 4
    assert u.last == after


def test_unwrapper_never_goes_negative_for_an_early_older_packet():
    u = SeqUnwrapper()
    u.unwrap(0)
    assert u.unwrap(65535) >= 0
