"""Database access: one AsyncEngine per app, short sessions, migrations to head on open."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from server.db.migrate import async_url, at_head, upgrade
from server.settings import Settings


@dataclass(frozen=True, slots=True)
class Database:
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]


def make_engine(url: str, pool_timeout_s: float = 10.0) -> AsyncEngine:
    """An engine that enforces foreign keys on SQLite too (off there by default)."""
    engine = create_async_engine(async_url(url), pool_timeout=pool_timeout_s)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

    return engine


@asynccontextmanager
async def open_database(settings: Settings) -> AsyncIterator[Database]:
    url = settings.effective_database_url
    engine = make_engine(url, settings.database_pool_timeout_s)
    try:
        if not await at_head(engine):
            # Alembic is synchronous; its env.py runs its own event loop in this worker thread.
            await asyncio.to_thread(upgrade, url)
        yield Database(engine, async_sessionmaker(engine, expire_on_commit=False))
    finally:
        await engine.dispose()
