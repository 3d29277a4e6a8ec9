"""Wrap-safe arithmetic for 16-bit RTP sequence numbers and 32-bit RTP timestamps.

Every comparison of sequence numbers or timestamps in media/ goes through these helpers
(RFC 3550 serial-number arithmetic): a value is "greater" when it is less than half the
space ahead, so 0 follows 65535 and 5 follows 65530.
"""

from __future__ import annotations

SEQ_MOD = 1 << 16
SEQ_MASK = SEQ_MOD - 1
SEQ_HALF = SEQ_MOD >> 1
TS_MOD = 1 << 32
TS_MASK = TS_MOD - 1
TS_HALF = TS_MOD >> 1


def seq_add(seq: int, delta: int) -> int:
    """``seq + delta`` modulo 2**16 (delta may be negative)."""
    return (seq + delta) & SEQ_MASK


def seq_diff(a: int, b: int) -> int:
    """Signed distance ``a - b`` in [-32768, 32767]: positive when a is ahead of b."""
    d = (a - b) & SEQ_MASK
    return d - SEQ_MOD if d >= SEQ_HALF else d


def seq_gt(a: int, b: int) -> bool:
    """True when a is ahead of b (a newer packet)."""
    return a != b and ((a - b) & SEQ_MASK) < SEQ_HALF


def seq_lt(a: int, b: int) -> bool:
    """True when a is behind b (an older packet)."""
    return seq_gt(b, a)


def ts_add(ts: int, delta: int) -> int:
    """``ts + delta`` modulo 2**32 (delta may be negative)."""
    return (ts + delta) & TS_MASK


def ts_diff(a: int, b: int) -> int:
    """Signed distance ``a - b`` in [-2**31, 2**31 - 1]."""
    d = (a - b) & TS_MASK
    return d - TS_MOD if d >= TS_HALF else d


def ts_gt(a: int, b: int) -> bool:
    """True when timestamp a is ahead of b."""
    return a != b and ((a - b) & TS_MASK) < TS_HALF


class SeqUnwrapper:
    """Turns 16-bit sequence numbers into ever-growing 64-bit ones (roll-overs counted).

    The first value seen maps to itself plus 2**16 so that a slightly older packet after it
    never goes negative.
    """

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last = -1

    @property
    def last(self) -> int:
        """The highest extended value returned so far; -1 before the first packet."""
        return self._last

    def unwrap(self, seq: int) -> int:
        """The extended value of seq, relative to the last value seen."""
        last = self._last
        if last < 0:
            self._last = SEQ_MOD + seq
            return self._last
        d = (seq - last) & SEQ_MASK
        if d >= SEQ_HALF:
            d -= SEQ_MOD
        value = last + d
        if value > last:
            self._last = value
        return value
