"""What several test folders share: the PostgreSQL server the tests may create databases on.

On the path through pyproject's `pythonpath` (test folders have no __init__.py and are on
sys.path only while their own tests run).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg
import pytest
from sqlalchemy.engine import make_url

# Trust auth, database `test`.
POSTGRES_URL = os.environ.get(
    "TONGKE_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)


async def postgres_admin(statement: str) -> None:
    """Run one statement (CREATE/DROP DATABASE) on POSTGRES_URL's database."""
    url = make_url(POSTGRES_URL)
    connection = await asyncpg.connect(
        host=url.host, port=url.port, user=url.username, database=url.database
    )
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def new_database_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def postgres_database_url(name: str) -> str:
    return make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)


@contextmanager
def fresh_postgres_database(prefix: str = "tongke_test") -> Iterator[str]:
    """A new, empty PostgreSQL database (dropped afterwards); skips the test if unreachable."""
    name = new_database_name(prefix)
    try:
        asyncio.run(postgres_admin(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.skip(f"PostgreSQL at {POSTGRES_URL} is not reachable: {exc}")
    try:
        yield postgres_database_url(name)
    finally:
        asyncio.run(postgres_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
