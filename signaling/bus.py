"""Bus and directory. PLACEHOLDER: signaling helper replaces."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Protocol


class Bus(Protocol):
    async def ping(self) -> None: ...


class LocalBus:
    async def ping(self) -> None:
        return None


@asynccontextmanager
async def open_bus(redis_url: str) -> AsyncIterator[Bus]:
    yield LocalBus()
