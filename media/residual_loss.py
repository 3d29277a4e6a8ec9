"""The loss that remains after repair, read from a subscriber's receiver reports.

A receiver report's ``fraction_lost`` counts every packet missing when the report was
written, including those a NACK is about to repair: on a lossy rural link whose losses the
SFU's retransmissions repair in full, it reads the raw loss (2-10 %) while the subscriber
decodes every frame. Switching layers on it cost the main picture for nothing (issue 20).

The cumulative ``packets_lost`` of the same reports is expected minus *received*, and a
repaired packet counts as received (libwebrtc counts retransmissions unwrapped from RTX on
the media stream), so its growth over a window, divided by the growth of the extended
highest sequence number, is the loss that was not repaired: what the subscriber saw.
The window spans at least one report interval, so that a repair in flight when one report
was written lands before the window closes.
"""

from __future__ import annotations

from media.rtcp import RtcpReportBlock

WINDOW_MS = 1500  # libwebrtc sends a video RR about every second; a repair takes one RTT


class ResidualLoss:
    """Windowed loss after repair from successive report blocks of one SSRC."""

    __slots__ = ("_at", "_highest", "_lost", "_window_ms")

    def __init__(self, window_ms: int = WINDOW_MS) -> None:
        self._window_ms = window_ms
        self._at = -1
        self._lost = 0
        self._highest = 0

    def update(self, now_ms: int, block: RtcpReportBlock) -> float | None:
        """Feed one block; the residual loss (0-1) of the window it closes, else None."""
        if self._at < 0:
            self._restart(now_ms, block)
            return None
        if now_ms - self._at < self._window_ms:
            return None
        expected = block.highest_sequence - self._highest
        if expected <= 0 or expected > 0x8000:
            self._restart(now_ms, block)  # the stream restarted or the report is stale
            return None
        lost = max(0, block.packets_lost - self._lost)
        self._restart(now_ms, block)
        return min(1.0, lost / expected)

    def _restart(self, now_ms: int, block: RtcpReportBlock) -> None:
        self._at = now_ms
        self._lost = block.packets_lost
        self._highest = block.highest_sequence
