"""Lesson rooms. PLACEHOLDER: signaling helper replaces."""

from __future__ import annotations

from dataclasses import dataclass

from signaling.bus import Bus
from signaling.hooks import LessonHooks
from signaling.stats import SignalingStats


@dataclass(frozen=True, slots=True)
class RoomConfig:
    heartbeat_interval_s: float = 2.0
    heartbeat_timeout_s: float = 6.0
    resume_window_s: float = 30.0
    max_message_bytes: int = 64 * 1024
    rate_per_s: float = 20.0
    rate_burst: int = 60
    max_peers: int = 500


class RoomManager:
    def __init__(self, bus: Bus, hooks: LessonHooks, config: RoomConfig) -> None:
        self.bus = bus
        self.hooks = hooks
        self.config = config
        self.stats = SignalingStats()

    async def close(self) -> None:
        return None
