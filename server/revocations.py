"""Join-time revocation: a join token is refused once its link is revoked or its account
deactivated, though its signature and expiry are still good (docs/protocol.md
`token_revoked`).

A join asks the database once per link (or account) and keeps the answer for CACHE_S
seconds, so a rejoin storm after a moved lesson or a restarted worker costs one query per
classroom, not one per join. Revoking a link or deactivating an account through this
process forgets every answer at once; another node, or `tongke accounts` run from the
shell, is seen within CACHE_S.
"""

from __future__ import annotations

import time

from sqlalchemy import select
from sqlalchemy.orm import aliased

from server.db import Database
from server.db.models import Account, JoinLink

# Answers kept at most this many; past it the table starts afresh (revocations are rare,
# and a table of thousands of links costs a few hundred KiB).
MAX_ENTRIES = 10_000

# How long an answer is kept: long enough that a storm of rejoins reads each link once,
# short enough that a revocation made on another node or from the shell bites soon.
CACHE_S = 5.0

LinkAccount = aliased(Account)


class Revocations:
    def __init__(self, db: Database, ttl_s: float = CACHE_S) -> None:
        self._db = db
        self._ttl_s = ttl_s
        # (link id, account id) -> (refusal or None, monotonic time it was read).
        self._answers: dict[tuple[str | None, str | None], tuple[str | None, float]] = {}

    def forget(self) -> None:
        """A link was revoked or an account's standing changed: read everything again."""
        self._answers.clear()

    async def refusal(self, link_id: str | None, account_id: str | None) -> str | None:
        """Why a token minted from `link_id` (or, without a link, for `account_id`) may no
        longer join, or None. A token with neither is judged by its signature alone."""
        if link_id is None and account_id is None:
            return None
        key = (link_id, account_id)
        now = time.monotonic()
        cached = self._answers.get(key)
        if cached is not None and now - cached[1] < self._ttl_s:
            return cached[0]
        answer = await self._read(link_id, account_id)
        if len(self._answers) >= MAX_ENTRIES:
            self._answers.clear()
        self._answers[key] = (answer, now)
        return answer

    async def _read(self, link_id: str | None, account_id: str | None) -> str | None:
        async with self._db.sessions.begin() as session:
            if link_id is not None:
                # The link's own account (a patrol link's inspector), as opening it checks;
                # a lead link names the lesson's teacher in its token but not in the link.
                row = (
                    await session.execute(
                        select(JoinLink.revoked_at, LinkAccount.active)
                        .outerjoin(LinkAccount, LinkAccount.id == JoinLink.account_id)
                        .where(JoinLink.id == link_id)
                    )
                ).first()
                if row is None:
                    return "The join link this token came from no longer exists."
                if row.revoked_at is not None:
                    return "The join link this token came from was revoked."
                if row.active is False:
                    return "The account this join link belongs to is deactivated."
                return None
            active = await session.scalar(select(Account.active).where(Account.id == account_id))
        if not active:
            return "The account this join token was issued to is deactivated or gone."
        return None
