"""A small synchronous event emitter whose listeners can never break the emitter.

``emit`` calls listeners in registration order over a snapshot; an exception in one is
logged and the rest still run (mediasoup's ``safeEmit``). Not for the per-packet path.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

Listener = Callable[..., Any]


class EventEmitter:
    """``on(event, fn)``, ``once(event, fn)``, ``off(event, fn)``, ``emit(event, *args)``."""

    __slots__ = ("_listeners",)

    def __init__(self) -> None:
        self._listeners: dict[str, list[Listener]] = {}

    def on(self, event: str, listener: Listener) -> Listener:
        """Call ``listener(*args)`` on every ``emit(event, *args)``; returns the listener."""
        self._listeners.setdefault(event, []).append(listener)
        return listener

    def once(self, event: str, listener: Listener) -> Listener:
        """Like ``on`` but only for the next emit; ``off`` takes the returned wrapper."""

        def wrapper(*args: Any) -> None:
            self.off(event, wrapper)
            listener(*args)

        return self.on(event, wrapper)

    def off(self, event: str, listener: Listener) -> None:
        """Remove one registration of ``listener``; unknown listeners are ignored."""
        listeners = self._listeners.get(event)
        if listeners and listener in listeners:
            listeners.remove(listener)

    def remove_all_listeners(self) -> None:
        """Forget every listener (after the final ``closed`` event)."""
        self._listeners.clear()

    def listener_count(self, event: str) -> int:
        """How many listeners ``event`` has."""
        return len(self._listeners.get(event, ()))

    def emit(self, event: str, *args: Any) -> bool:
        """Call each listener of ``event``; errors are logged, never raised. True if any."""
        listeners = self._listeners.get(event)
        if not listeners:
            return False
        for listener in tuple(listeners):
            try:
                listener(*args)
            except Exception:
                logger.exception("listener of %r raised", event)
        return True


def monotonic_ms() -> int:
    """Monotonic milliseconds: the clock of every ``arrival_ms`` and ``now_ms`` in media/."""
    return time.monotonic_ns() // 1_000_000


def wall_offset_ms() -> int:
    """Add to a ``monotonic_ms()`` value to get wall-clock ms since the Unix epoch (for NTP)."""
    return time.time_ns() // 1_000_000 - monotonic_ms()
