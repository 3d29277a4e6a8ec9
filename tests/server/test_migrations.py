"""Migrations: an empty SQLite and an empty PostgreSQL database reach head and match the models."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from server.db.migrate import alembic_config, upgrade
from server.db.models import Base


def _schema_diff(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


def _tables_and_revision(connection: Connection) -> tuple[set[str], str | None]:
    revision = MigrationContext.configure(connection).get_current_revision()
    return set(inspect(connection).get_table_names()), revision


async def test_an_empty_database_upgrades_to_head(database_url: str) -> None:
    await asyncio.to_thread(upgrade, database_url)
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            tables, revision = await connection.run_sync(_tables_and_revision)
    finally:
        await engine.dispose()
    assert set(Base.metadata.tables) <= tables
    assert revision == ScriptDirectory.from_config(alembic_config(database_url)).get_current_head()


async def test_the_migrated_schema_matches_the_models(database_url: str) -> None:
    await asyncio.to_thread(upgrade, database_url)
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            assert await connection.run_sync(_schema_diff) == []
    finally:
        await engine.dispose()


async def test_upgrading_twice_changes_nothing(database_url: str) -> None:
    await asyncio.to_thread(upgrade, database_url)
    await asyncio.to_thread(upgrade, database_url)
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            _, revision = await connection.run_sync(_tables_and_revision)
    finally:
        await engine.dispose()
    assert revision == ScriptDirectory.from_config(alembic_config(database_url)).get_current_head()


async def test_a_database_migrates_down_to_empty_and_back(database_url: str) -> None:
    from alembic import command

    from server.db.migrate import alembic_config

    await asyncio.to_thread(upgrade, database_url)
    await asyncio.to_thread(command.downgrade, alembic_config(database_url), "base")
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            tables, revision = await connection.run_sync(_tables_and_revision)
        assert revision is None and not (set(Base.metadata.tables) & tables)
        await asyncio.to_thread(upgrade, database_url)
        async with engine.connect() as connection:
            assert await connection.run_sync(_schema_diff) == []
    finally:
        await engine.dispose()


@pytest.mark.postgres
async def test_nodes_starting_together_on_postgresql_migrate_one_at_a_time(
    postgres_url: str,
) -> None:
    # Separate processes, as real nodes are (Alembic's context is process-global).
    script = "import sys; from server.db.migrate import upgrade; upgrade(sys.argv[1])"
    nodes = [
        await asyncio.create_subprocess_exec(sys.executable, "-c", script, postgres_url)
        for _ in range(3)
    ]
    assert [await node.wait() for node in nodes] == [0, 0, 0]
    engine = create_async_engine(postgres_url)
    try:
        async with engine.connect() as connection:
            assert await connection.run_sync(_schema_diff) == []
    finally:
        await engine.dispose()


def test_plain_database_urls_get_the_asyncio_drivers() -> None:
    from server.db.migrate import async_url

    assert async_url("postgresql://u@h:5432/d") == "postgresql+asyncpg://u@h:5432/d"
    assert async_url("postgres://u@h/d") == "postgresql+asyncpg://u@h/d"
    assert async_url("sqlite:////data/t.db") == "sqlite+aiosqlite:////data/t.db"
    assert async_url("postgresql+asyncpg://u@h/d") == "postgresql+asyncpg://u@h/d"


@pytest.mark.postgres
async def test_a_plain_postgresql_url_opens_and_migrates(postgres_url: str, tmp_path: Path) -> None:
    from server.db import open_database
    from server.settings import Settings

    plain = postgres_url.replace("postgresql+asyncpg://", "postgresql://")
    async with open_database(Settings(data_dir=tmp_path, database_url=plain)) as db:
        async with db.engine.connect() as connection:
            assert await connection.run_sync(_schema_diff) == []
