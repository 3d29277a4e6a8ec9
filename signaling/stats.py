"""Counters the signaling layer keeps for metrics; read by server/metrics.py at scrape time."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass(slots=True)
class SignalingStats:
    # Client messages received, by message type ("invalid" for unparseable ones).
    messages: Counter[str] = field(default_factory=Counter)
    # Error replies sent, by error code.
    errors: Counter[str] = field(default_factory=Counter)
    # Peers currently joined, by role.
    peers: Counter[str] = field(default_factory=Counter)
    live_lessons: int = 0
