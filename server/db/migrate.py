"""Alembic, configured in code so it works from an installed package (no alembic.ini)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
# Alembic (with Mako and Pygments, ~11 MiB resident) is imported only when a database is
# behind: a service whose database is at head never loads it.
_REVISION = re.compile(r"""^(down_)?revision(?::[^=]*)?=\s*(.+)$""", re.M)


def async_url(database_url: str) -> str:
    """The URL with an asyncio driver: plain postgresql:// and sqlite:// URLs are accepted."""
    for plain, driver in (
        ("postgresql://", "postgresql+asyncpg://"),
        ("postgres://", "postgresql+asyncpg://"),
        ("sqlite://", "sqlite+aiosqlite://"),
    ):
        if database_url.startswith(plain):
            return driver + database_url[len(plain) :]
    return database_url


def alembic_config(database_url: str) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # env.py reads the URL from attributes: set_main_option would treat % as interpolation.
    config.attributes["database_url"] = async_url(database_url)
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring the database at `database_url` (an async driver URL) up to `revision`.

    Synchronous: call it from a thread when an event loop is running.
    """
    from alembic import command

    command.upgrade(alembic_config(database_url), revision)


def script_heads() -> set[str]:
    """The head revisions of server/migrations/versions, read from the files' text (the
    `revision` and `down_revision` lines), without importing Alembic."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        for down, value in _REVISION.findall(path.read_text(encoding="utf-8")):
            names = set(re.findall(r"""["']([^"']+)["']""", value))
            (parents if down else revisions).update(names)
    return revisions - parents


async def at_head(engine: AsyncEngine) -> bool:
    """Whether the database already stands at the single head (then nothing is migrated)."""
    heads = script_heads()
    if len(heads) != 1:
        return False  # let Alembic judge (and explain) anything unusual
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(text("SELECT version_num FROM alembic_version"))
            return {row[0] for row in rows} == heads
    except Exception:  # no version table yet (a fresh database), or unreachable: migrate
        return False
