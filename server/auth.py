"""Login sessions and the FastAPI dependencies that say who is calling.

A session token is 32 random bytes handed to the client once (cookie and response body);
the database keeps only its SHA-256, so a leaked database grants no session.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from server.api.errors import ApiError, forbidden
from server.db.models import Account, AccountRole, LoginSession, School, utcnow
from server.passwords import dummy_hash, verify_password_async
from server.scope import DISTRICT_SCOPE, AccountScope, ScopeLevel
from server.state import AppState, get_state

COOKIE_NAME = "tongke_session"


@dataclass(frozen=True, slots=True)
class Principal:
    """The signed-in account behind a request, detached from any database session."""

    account_id: str
    username: str
    display_name: str
    role: AccountRole
    school_id: str | None
    session_id: str
    # Where the account may act (server/scope.py); district-wide when left out.
    scope: AccountScope = DISTRICT_SCOPE

    @property
    def is_admin(self) -> bool:
        return self.role is AccountRole.ADMIN

    @property
    def is_district_admin(self) -> bool:
        return self.is_admin and self.scope.level is ScopeLevel.DISTRICT


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _not_authenticated(message: str = "Sign in first.") -> ApiError:
    return ApiError(401, "not_authenticated", message, headers={"WWW-Authenticate": "Bearer"})


async def check_credentials(session: AsyncSession, username: str, password: str) -> Account:
    """The active account these credentials name, or 401 invalid_credentials."""
    account = await session.scalar(select(Account).where(Account.username == username))
    if account is None:
        await verify_password_async(dummy_hash(), password)
    elif account.active and await verify_password_async(account.password_hash, password):
        return account
    raise ApiError(401, "invalid_credentials", "Wrong username or password.")


async def open_session(session: AsyncSession, account: Account, ttl_s: int) -> tuple[str, datetime]:
    """Create a login session; returns the token (shown once) and its expiry."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    expires_at = now + timedelta(seconds=ttl_s)
    session.add(
        LoginSession(
            token_hash=hash_token(token),
            account_id=account.id,
            created_at=now,
            expires_at=expires_at,
        )
    )
    return token, expires_at


async def revoke_session(session: AsyncSession, session_id: str) -> None:
    await session.execute(
        update(LoginSession)
        .where(LoginSession.id == session_id, LoginSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


async def revoke_account_sessions(session: AsyncSession, account_id: str) -> None:
    await session.execute(
        update(LoginSession)
        .where(LoginSession.account_id == account_id, LoginSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


def request_token(request: Request) -> str | None:
    """The session token from `Authorization: Bearer` or else the cookie."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.cookies.get(COOKIE_NAME) or None


async def optional_principal(
    request: Request, state: Annotated[AppState, Depends(get_state)]
) -> Principal | None:
    token = request_token(request)
    if token is None:
        return None
    async with state.db.sessions.begin() as session:
        row = (
            await session.execute(
                select(LoginSession, Account, School.county_id)
                .join(Account, Account.id == LoginSession.account_id)
                .outerjoin(School, School.id == Account.school_id)
                .where(LoginSession.token_hash == hash_token(token))
            )
        ).first()
    if row is None:
        raise _not_authenticated("The session is unknown; sign in again.")
    login, account, school_county_id = row
    if login.revoked_at is not None or not account.active:
        raise _not_authenticated("The session has ended; sign in again.")
    if login.expires_at <= utcnow():
        raise ApiError(
            401,
            "session_expired",
            "The session has expired; sign in again.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return Principal(
        account_id=account.id,
        username=account.username,
        display_name=account.display_name,
        role=AccountRole(account.role),
        school_id=account.school_id,
        session_id=login.id,
        scope=AccountScope.of(
            school_county_id if account.school_id is not None else account.county_id,
            account.school_id,
        ),
    )


async def current_principal(
    principal: Annotated[Principal | None, Depends(optional_principal)],
) -> Principal:
    if principal is None:
        raise _not_authenticated()
    return principal


def require_role(*roles: AccountRole) -> Callable[..., Awaitable[Principal]]:
    """A dependency that admits only the given roles (403 forbidden otherwise)."""
    allowed = frozenset(roles)

    async def dependency(
        principal: Annotated[Principal, Depends(current_principal)],
    ) -> Principal:
        if principal.role not in allowed:
            raise forbidden(f"This needs the role {' or '.join(sorted(allowed))}.")
        return principal

    return dependency


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
AdminPrincipal = Annotated[Principal, Depends(require_role(AccountRole.ADMIN))]
State = Annotated[AppState, Depends(get_state)]
