"""What `tongke serve` checks before it starts, each failure one line naming what and where.

Without these, a missing data folder permission, an unreachable database or Redis surfaced
as a 100-240-line traceback from the lifespan (issue 17). Each check returns nothing or
raises StartupError with its exit status (docs/api.md, "Command line"); `tongke doctor`
(server/doctor.py) runs the same checks and more, without stopping at the first.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from enum import IntEnum
from pathlib import Path

from server.settings import Settings

# How long a start-up probe of the database or Redis may take before it counts as down.
PROBE_TIMEOUT_S = 5.0


class ExitCode(IntEnum):
    """Exit statuses of `tongke serve` (documented; scripts and systemd read them)."""

    SETTINGS = 2  # a setting, the config file or a TLS file
    DATA_DIR = 3  # the data folder or the recording root cannot be written
    DATABASE = 4  # the database cannot be reached, or it is missing
    REDIS = 5  # Redis (TONGKE_REDIS_URL) cannot be reached
    WORKERS = 6  # a media worker process cannot start (server/workers/check.py)


class StartupError(Exception):
    def __init__(self, code: ExitCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def check_config_file(config_file: Path | None) -> None:
    """A config file that is named must exist: a typo must not start on defaults."""
    named = config_file or (Path(os.environ["TONGKE_CONFIG"]) if "TONGKE_CONFIG" in os.environ
                            else None)  # fmt: skip
    if named is None:
        return
    if not named.is_file():
        raise StartupError(ExitCode.SETTINGS, f"config file {named} does not exist")
    if not os.access(named, os.R_OK):
        raise StartupError(ExitCode.SETTINGS, f"config file {named} cannot be read")


def writable_folder(folder: Path, what: str) -> None:
    """Creates ``folder`` if needed and proves a file can be written there."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".tongke-probe-"):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise StartupError(
            ExitCode.DATA_DIR, f"{what} {folder.resolve()} is not writable: {reason}"
        ) from exc


def check_folders(settings: Settings) -> None:
    writable_folder(settings.data_dir, "data folder")
    writable_folder(settings.effective_recording_root, "recording root")


def _where(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


async def probe_database(settings: Settings, write: bool = False) -> None:
    """Connects (and with ``write``, writes in a rolled-back transaction)."""
    from sqlalchemy import text

    from server.db import make_engine

    url = settings.effective_database_url
    engine = make_engine(url, settings.database_pool_timeout_s)
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_S):
            async with engine.connect() as connection:
                transaction = await connection.begin()
                await connection.execute(text("SELECT 1"))
                if write:
                    await connection.execute(text("CREATE TEMPORARY TABLE tongke_probe (x int)"))
                    await connection.execute(text("INSERT INTO tongke_probe VALUES (1)"))
                await transaction.rollback()
    except TimeoutError as exc:
        raise StartupError(
            ExitCode.DATABASE,
            f"database {_where(url)} did not answer within {PROBE_TIMEOUT_S:.0f} s",
        ) from exc
    except Exception as exc:
        raise StartupError(
            ExitCode.DATABASE, f"database {_where(url)} cannot be used: {reason_of(exc)}"
        ) from exc
    finally:
        await engine.dispose()


async def probe_redis(url: str) -> None:
    from redis.asyncio import Redis

    client = Redis.from_url(url)
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_S):
            await client.ping()
    except Exception as exc:
        raise StartupError(
            ExitCode.REDIS, f"Redis {_where(url)} cannot be reached: {reason_of(exc)}"
        ) from exc
    finally:
        await client.aclose()


def reason_of(exc: BaseException) -> str:
    """The driver's own first line, without SQLAlchemy's links and parameters."""
    inner = getattr(exc, "orig", None) or exc
    text = str(inner).strip().splitlines()[0] if str(inner).strip() else type(inner).__name__
    return text[:300]


def preflight(settings: Settings, config_file: Path | None) -> None:
    """Every start-up check, in the order an operator would fix them."""
    check_config_file(config_file)
    check_folders(settings)

    async def services() -> None:
        await probe_database(settings)
        if settings.redis_url:
            await probe_redis(settings.redis_url)

    asyncio.run(services())
