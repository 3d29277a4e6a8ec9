"""What `tongke db upgrade`, `tongke admin create` and `tongke seed-demo` do."""

from __future__ import annotations

import sys
from typing import TextIO

from sqlalchemy import select

from server.db import open_database
from server.db.migrate import upgrade
from server.db.models import Account, AccountRole
from server.passwords import MIN_LENGTH, hash_password_async
from server.settings import Settings


class CliError(Exception):
    """A refusal the command line prints as one sentence and exits 1 on."""


def db_upgrade(settings: Settings) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.effective_database_url)


async def create_account(
    settings: Settings,
    username: str,
    password: str,
    display_name: str = "",
    role: AccountRole = AccountRole.ADMIN,
) -> str:
    """Create an account (an admin by default) and return its id."""
    if len(password) < MIN_LENGTH:
        raise CliError(f"The password must have at least {MIN_LENGTH} characters.")
    if not username.strip():
        raise CliError("The username must not be empty.")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    password_hash = await hash_password_async(password)
    async with open_database(settings) as db, db.sessions.begin() as session:
        if await session.scalar(select(Account.id).where(Account.username == username)):
            raise CliError(f"The username {username!r} is taken.")
        account = Account(
            username=username.strip(),
            display_name=display_name.strip() or username.strip(),
            role=role.value,
            password_hash=password_hash,
        )
        session.add(account)
        await session.flush()
        return account.id


async def seed_demo_command(settings: Settings, out: TextIO | None = None) -> bool:
    """Seed the demo district into an empty database and print its links. False if not empty."""
    from server.demo import database_is_empty, describe, seed_demo

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    async with open_database(settings) as db:
        if not await database_is_empty(db):
            return False
        district = await seed_demo(db, settings)
    print(describe(district, settings), file=out or sys.stdout, flush=True)
    return True
