"""Fixtures of the signaling tests; the harness itself is in signal_harness.py."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from signal_harness import FAST, RecordingMedia, Signal

from signaling.rooms import RoomConfig


@pytest.fixture
async def signal() -> AsyncIterator[Signal]:
    s = Signal(FAST)
    yield s
    await s.aclose()


@pytest.fixture
async def make_signal() -> AsyncIterator[Callable[..., Signal]]:
    made: list[Signal] = []

    def make(config: RoomConfig = FAST, media: Any = None) -> Signal:
        s = Signal(config, media)
        made.append(s)
        return s

    yield make
    for s in made:
        await s.aclose()


@pytest.fixture
def media() -> RecordingMedia:
    return RecordingMedia()


@pytest.fixture
def lesson(make_signal: Callable[..., Signal], media: RecordingMedia) -> Signal:
    """A lesson whose media plane is the RecordingMedia stand-in."""
    return make_signal(media=media)
