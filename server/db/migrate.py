"""Alembic, configured in code so it works from an installed package (no alembic.ini)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


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
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # env.py reads the URL from attributes: set_main_option would treat % as interpolation.
    config.attributes["database_url"] = async_url(database_url)
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring the database at `database_url` (an async driver URL) up to `revision`.

    Synchronous: call it from a thread when an event loop is running.
    """
    command.upgrade(alembic_config(database_url), revision)
