"""Active-speaker detection from the ssrc-audio-level header extension (RFC 6464).

Nothing is decoded: each audio packet's level (0 = loudest, 127 = silence, in -dBov) is
added per producer; every ``interval_ms`` the loudest producer whose mean level is at or
under ``threshold`` becomes the active speaker (``None`` after silence), reported through
``on_active_speaker`` only when it changes. A new speaker must hold the lead for
``hold_intervals`` intervals so that a cough does not switch the lead's view.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

logger = logging.getLogger(__name__)


class NullAudioLevelObserver:
    """Ignores levels (video producers, routers without active-speaker detection)."""

    def add(self, producer_id: str, level: int, now_ms: int) -> None:
        pass

    def remove(self, producer_id: str) -> None:
        pass


class AudioLevelObserver:
    """Turns per-packet audio levels into active-speaker changes."""

    def __init__(
        self,
        on_active_speaker: Callable[[str | None], None],
        *,
        interval_ms: int = 300,
        threshold: int = 50,
        min_packets: int = 5,
        hold_intervals: int = 2,
    ) -> None:
        self._on_active_speaker = on_active_speaker
        self._interval_ms = interval_ms
        self._threshold = threshold
        self._min_packets = min_packets
        self._hold_intervals = hold_intervals
        self._sums: dict[str, list[int]] = {}  # producer id -> [sum of levels, count]
        self._window_start = -1
        self._active: str | None = None
        self._candidate: str | None = None
        self._candidate_count = 0

    @property
    def active_speaker(self) -> str | None:
        return self._active

    def add(self, producer_id: str, level: int, now_ms: int) -> None:
        """One packet's level (0-127, -dBov) of ``producer_id`` at ``now_ms``."""
        acc = self._sums.get(producer_id)
        if acc is None:
            acc = self._sums[producer_id] = [0, 0]
        acc[0] += level
        acc[1] += 1
        if self._window_start < 0:
            self._window_start = now_ms
        elif now_ms - self._window_start >= self._interval_ms:
            self.poll(now_ms)

    def remove(self, producer_id: str) -> None:
        """Forget a producer; if it was the active speaker, report silence."""
        self._sums.pop(producer_id, None)
        if self._candidate == producer_id:
            self._candidate = None
            self._candidate_count = 0
        if self._active == producer_id:
            self._set_active(None)

    def poll(self, now_ms: int) -> str | None:
        """Close the current window and decide; returns the active speaker."""
        self._window_start = now_ms
        loudest: str | None = None
        best = self._threshold + 1
        for producer_id, acc in self._sums.items():
            if acc[1] >= self._min_packets:
                mean = acc[0] / acc[1]
                if mean < best:
                    best = mean
                    loudest = producer_id
            acc[0] = acc[1] = 0
        if loudest == self._active:
            self._candidate = None
            self._candidate_count = 0
            return self._active
        if loudest == self._candidate:
            self._candidate_count += 1
        else:
            self._candidate = loudest
            self._candidate_count = 1
        if self._candidate_count >= self._hold_intervals or self._active is None:
            self._candidate = None
            self._candidate_count = 0
            self._set_active(loudest)
        return self._active

    def _set_active(self, producer_id: str | None) -> None:
        if producer_id == self._active:
            return
        self._active = producer_id
        try:
            self._on_active_speaker(producer_id)
        except Exception:
            logger.exception("active speaker listener raised")
