"""KeyFrameRequester: aggregates keyframe requests (PLI/FIR) for one producer.

Many subscribers asking at once produce one request upstream; further requests within
``min_interval_ms`` are held and sent when the interval has passed, unless a keyframe
arrived meanwhile (which satisfies every pending request). A request that got no keyframe
within ``retry_ms`` is sent again.
"""

from __future__ import annotations

from collections.abc import Callable


class KeyFrameRequester:
    """Rate-limited keyframe requests; ``send()`` writes one PLI or FIR upstream."""

    __slots__ = (
        "_last_sent_ms",
        "_min_interval_ms",
        "_pending",
        "_retry_ms",
        "_send",
        "_waiting",
        "requests_received",
        "requests_sent",
    )

    def __init__(
        self, send: Callable[[], None], *, min_interval_ms: int = 500, retry_ms: int = 1000
    ) -> None:
        self._send = send
        self._min_interval_ms = min_interval_ms
        self._retry_ms = retry_ms
        self._last_sent_ms: int | None = None
        self._pending = False  # a request is held back by the rate limit
        self._waiting = False  # a request went out, no keyframe yet
        self.requests_received = 0
        self.requests_sent = 0

    @property
    def pending(self) -> bool:
        """True while a request is held back by the rate limit."""
        return self._pending

    @property
    def waiting(self) -> bool:
        """True while a sent request has not been answered by a keyframe."""
        return self._waiting

    def request(self, now_ms: int) -> bool:
        """Ask for a keyframe; True when a request went upstream now."""
        self.requests_received += 1
        last = self._last_sent_ms
        if last is None or now_ms - last >= self._min_interval_ms:
            self._fire(now_ms)
            return True
        if not self._waiting:
            self._pending = True
        return False

    def poll(self, now_ms: int) -> bool:
        """Send a held or unanswered request whose time has come; True when one went out."""
        last = self._last_sent_ms
        if last is None:
            return False
        if self._pending and now_ms - last >= self._min_interval_ms:
            self._fire(now_ms)
            return True
        if self._waiting and now_ms - last >= self._retry_ms:
            self._fire(now_ms)
            return True
        return False

    def key_frame_received(self) -> None:
        """A keyframe arrived: every held and outstanding request is satisfied."""
        self._pending = False
        self._waiting = False

    def _fire(self, now_ms: int) -> None:
        self._last_sent_ms = now_ms
        self._pending = False
        self._waiting = True
        self.requests_sent += 1
        self._send()
