"""Test-only fault injection on a transport's outgoing RTP: drop and/or delay packets.

Off by default: transports use :data:`NO_FAULTS`, whose ``wrap`` returns the send function
unchanged, so the hot path pays nothing. Tests pass a :class:`FaultInjector` to a transport
(``MediaService.set_faults(peer_id, ...)``) to simulate a lossy or slow link toward one peer.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

Send = Callable[[bytes], None]


class NoFaults:
    """The null injector: sends go straight through."""

    def wrap(self, send: Send) -> Send:
        return send


NO_FAULTS = NoFaults()


class FaultInjector:
    """Drops a fraction ``drop_rate`` of packets and delays the rest by ``delay_ms``.

    Deterministic for a given ``seed``. ``dropped``/``passed`` count what it did.
    """

    def __init__(self, drop_rate: float = 0.0, delay_ms: float = 0.0, seed: int = 1) -> None:
        if not 0.0 <= drop_rate < 1.0:
            raise ValueError(f"drop_rate must be in [0, 1), got {drop_rate}.")
        if delay_ms < 0:
            raise ValueError(f"delay_ms must not be negative, got {delay_ms}.")
        self.drop_rate = drop_rate
        self.delay_ms = delay_ms
        self._random = random.Random(seed)
        self.dropped = 0
        self.passed = 0

    def wrap(self, send: Send) -> Send:
        chance = self._random.random
        delay = self.delay_ms / 1000.0

        def faulty_send(data: bytes) -> None:
            if self.drop_rate and chance() < self.drop_rate:
                self.dropped += 1
                return
            self.passed += 1
            if delay:
                asyncio.get_running_loop().call_later(delay, send, data)
            else:
                send(data)

        return faulty_send
