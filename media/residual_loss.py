"""The loss that remains after repair, as the SFU sees its own retransmissions fare.

A receiver report's ``fraction_lost`` counts every packet missing when the report was
written, including those a NACK is about to repair: on a lossy rural link whose losses the
SFU's retransmissions repair in full, it reads the raw loss (2-10 %) while the subscriber
decodes every frame. Switching layers on it cost the main picture for nothing (issue 20).

The report's cumulative ``packets_lost`` does not help either: Chromium counts a packet it
got back through RTX as still lost on the media stream (a recovered packet skips the media
SSRC's receive statistics), so it too reads the raw loss; measured with the service's pages
at 5 % random loss, windows read 2-9 %.

What the SFU does know is how its repairs go: a subscriber asks again for a packet it was
already sent again (after the resend interval) when that retransmission was lost too, or
came too late. Those repeats, over the packets sent in a window, are the loss one round of
repair did not cover: about p² on a link that loses p at random (0.25 % at 5 %, 1 % at
10 %), and most of what is sent on a congested one, whose queue drops the retransmissions
as well. The window spans at least one report interval, so one burst does not decide.
"""

from __future__ import annotations

WINDOW_MS = 1500  # libwebrtc sends a video RR about every second; a repair takes one RTT
# Raw loss (repaired or not) judged over this: a report rides on every NACK, so one report
# can cover two packets and read 50 % on a link that loses 5 %.
RAW_WINDOW_MS = 1000


class WindowedShare:
    """The growth of one cumulative counter over another's, per window of at least
    ``window_ms``: repeated NACKs over packets sent (the loss repair left), or a receiver
    report's cumulative lost over its highest sequence number (the raw loss)."""

    __slots__ = ("_at", "_part", "_whole", "_window_ms")

    def __init__(self, window_ms: int = WINDOW_MS) -> None:
        self._window_ms = window_ms
        self._at = -1
        self._part = 0
        self._whole = 0

    def update(self, now_ms: int, part: int, whole: int) -> float | None:
        """Feed both cumulative counters; the share (0-1) over the window this call closes,
        else None (window still open, nothing counted in it, or the counters restarted)."""
        if self._at < 0:
            self._restart(now_ms, part, whole)
            return None
        if now_ms - self._at < self._window_ms:
            return None
        grown = whole - self._whole
        part_grown = part - self._part
        self._restart(now_ms, part, whole)
        if grown <= 0 or grown > 0x8000:
            return None  # paused, or the stream restarted / the report is stale
        return min(1.0, max(0, part_grown) / grown)

    def _restart(self, now_ms: int, part: int, whole: int) -> None:
        self._at = now_ms
        self._part = part
        self._whole = whole
