"""RetransmissionBuffer: the per-producer packet cache that answers subscribers' NACKs.

A fixed ring indexed by ``seq % size`` (size a power of two dividing 2**16, so wrap-around
needs no special case). It keeps the parsed packets themselves: nothing downstream mutates
a packet after the producer stored it, so no copy is made.
"""

from __future__ import annotations

from media.rtp import RtpPacket

SEQ_SPACE = 1 << 16


class RetransmissionBuffer:
    """Stores the last ``size`` packets of one stream, for at most ``max_age_ms``."""

    __slots__ = ("_arrivals", "_mask", "_max_age_ms", "_packets", "_size")

    def __init__(self, size: int = 512, max_age_ms: int = 2000) -> None:
        if size <= 0 or size & (size - 1) or size > SEQ_SPACE:
            raise ValueError(f"retransmission buffer size {size} is not a power of two <= 65536.")
        self._size = size
        self._mask = size - 1
        self._max_age_ms = max_age_ms
        self._packets: list[RtpPacket | None] = [None] * size
        self._arrivals = [0] * size

    @property
    def size(self) -> int:
        return self._size

    def store(self, packet: RtpPacket, arrival_ms: int) -> None:
        """Keep ``packet``; an older packet never replaces a newer one in the same slot."""
        i = packet.sequence_number & self._mask
        old = self._packets[i]
        if old is not None and old.sequence_number != packet.sequence_number:
            # Slot owner is newer when it is ahead of us (wrap-safe), unless it is stale.
            if ((old.sequence_number - packet.sequence_number) & 0xFFFF) < 0x8000 and (
                arrival_ms - self._arrivals[i] <= self._max_age_ms
            ):
                return
        self._packets[i] = packet
        self._arrivals[i] = arrival_ms

    def get(self, seq: int, now_ms: int) -> RtpPacket | None:
        """The stored packet with sequence number ``seq``, unless missing or too old."""
        i = seq & self._mask
        packet = self._packets[i]
        if packet is None or packet.sequence_number != seq:
            return None
        if now_ms - self._arrivals[i] > self._max_age_ms:
            return None
        return packet

    def clear(self) -> None:
        """Forget everything (producer closed)."""
        self._packets = [None] * self._size
