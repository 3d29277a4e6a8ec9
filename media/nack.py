"""NackGenerator: the receive-side loss detector of one producer stream (mediasoup style).

``receive`` tracks incoming sequence numbers: each new gap is returned at once so the
producer can NACK it immediately; ``due`` (called from the producer's periodic work) returns
the sequence numbers to ask for again, spaced by the RTT, until they arrive or give up after
``max_retries`` tries or ``max_age_ms``. A jump larger than ``max_packets`` or a list overflow
means repair is hopeless: ``key_frame_required`` is raised instead.
"""

from __future__ import annotations

from media.seq import SeqUnwrapper


class NackGenerator:
    """Gap detection and NACK scheduling for one stream (sequence numbers are 16-bit)."""

    __slots__ = (
        "_items",
        "_max_age_ms",
        "_max_packets",
        "_max_retries",
        "_min_interval_ms",
        "_unwrapper",
        "key_frame_required",
        "nacks_sent",
        "packets_given_up",
        "packets_recovered",
    )

    def __init__(
        self,
        *,
        max_packets: int = 1000,
        max_retries: int = 10,
        max_age_ms: int = 1000,
        min_interval_ms: int = 20,
    ) -> None:
        self._unwrapper = SeqUnwrapper()
        # extended seq -> [first_seen_ms, last_sent_ms, tries]; insertion order is seq order.
        self._items: dict[int, list[int]] = {}
        self._max_packets = max_packets
        self._max_retries = max_retries
        self._max_age_ms = max_age_ms
        self._min_interval_ms = min_interval_ms
        self.key_frame_required = False
        self.nacks_sent = 0
        self.packets_recovered = 0
        self.packets_given_up = 0

    @property
    def pending(self) -> int:
        """How many sequence numbers are still missing."""
        return len(self._items)

    def missing(self) -> list[int]:
        """The missing 16-bit sequence numbers, oldest first."""
        return [s & 0xFFFF for s in self._items]

    def receive(self, seq: int, now_ms: int, recovered: bool = False) -> list[int]:
        """Account for an arriving packet; return the new gaps' sequence numbers to NACK now."""
        last = self._unwrapper.last
        ext = self._unwrapper.unwrap(seq)
        if last < 0 or ext == last:
            return []
        if ext < last:
            if self._items.pop(ext, None) is not None:
                self.packets_recovered += 1
            return []
        gap = ext - last - 1
        if gap == 0:
            return []
        if gap > self._max_packets:
            self._items.clear()
            self.key_frame_required = True
            return []
        items = self._items
        new = []
        for s in range(last + 1, ext):
            items[s] = [now_ms, now_ms, 1]
            new.append(s & 0xFFFF)
        overflow = len(items) - self._max_packets
        if overflow > 0:
            for s in list(items)[:overflow]:
                del items[s]
            self.packets_given_up += overflow
            self.key_frame_required = True
        self.nacks_sent += len(new)
        return new

    def due(self, now_ms: int, rtt_ms: float = 0) -> list[int]:
        """Sequence numbers to NACK again now; drops the ones past their retries or age."""
        if not self._items:
            return []
        interval = max(self._min_interval_ms, rtt_ms)
        out = []
        expired = []
        for s, item in self._items.items():
            if now_ms - item[0] > self._max_age_ms or item[2] >= self._max_retries:
                expired.append(s)
            elif now_ms - item[1] >= interval:
                item[1] = now_ms
                item[2] += 1
                out.append(s & 0xFFFF)
        for s in expired:
            del self._items[s]
        if expired:
            self.packets_given_up += len(expired)
            self.key_frame_required = True
        self.nacks_sent += len(out)
        return out

    def key_frame_received(self, seq: int) -> None:
        """A keyframe starts at ``seq``: anything missing before it is no longer needed."""
        if not self._items:
            return
        ext = self._unwrapper.unwrap(seq)
        for s in [s for s in self._items if s < ext]:
            del self._items[s]
        self.key_frame_required = False

    def reset(self) -> None:
        """Forget all state (e.g. after a stream restart)."""
        self._unwrapper = SeqUnwrapper()
        self._items.clear()
        self.key_frame_required = False
