"""/api/accounts: admins, teachers and inspectors. Admins change; deleting deactivates."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Response, status
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.api.access import ADMINS, EVERYONE, ScopedAdmin, SignedIn, access, require_in_scope
from server.api.errors import ApiError, ErrorResponse, not_found
from server.api.schemas import AccountIn, AccountOut, AccountPatch
from server.auth import Principal, State, revoke_account_sessions
from server.db.models import Account, AccountRole
from server.passwords import hash_password_async
from server.scope import ScopeLevel

router = APIRouter(prefix="/accounts", tags=["accounts"])

ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorResponse} for code in (401, 403, 404, 409, 422)
}


AccountReader = Annotated[Principal, access(EVERYONE, resource="account")]
AccountManager = Annotated[Principal, access(ADMINS, resource="account", manage=True)]


async def _home(
    session: AsyncSession, principal: Principal, school_id: str | None, county_id: str | None
) -> tuple[str | None, str | None]:
    """The (school_id, county_id) an account is given: one of them, or neither for the
    district; it must lie in the caller's scope. Left out, it is the caller's own."""
    if school_id is not None and county_id is not None:
        raise ApiError(
            422, "scope_ambiguous", "An account belongs to a school or a county, not both."
        )
    if school_id is not None:
        await require_in_scope(session, principal, "school", school_id, manage=True)
        return school_id, None
    if county_id is not None:
        await require_in_scope(session, principal, "county", county_id, manage=True)
        return None, county_id
    if principal.scope.level is not ScopeLevel.DISTRICT:
        return principal.scope.school_id, (
            principal.scope.county_id if principal.scope.school_id is None else None
        )
    return None, None


async def _keeps_an_admin(session: AsyncSession) -> None:
    """Refuse a change that would leave no active district admin to run the district."""
    admins = await session.scalar(
        select(func.count())
        .select_from(Account)
        .where(
            Account.role == AccountRole.ADMIN.value,
            Account.active.is_(True),
            Account.school_id.is_(None),
            Account.county_id.is_(None),
        )
    )
    if not admins:
        raise ApiError(409, "last_admin", "This is the last active district admin account.")


@router.get("", responses=ERRORS)
async def list_accounts(
    principal: SignedIn, state: State, role: AccountRole | None = None
) -> list[AccountOut]:
    """The accounts whose home lies in the caller's scope."""
    async with state.db.sessions.begin() as session:
        query = select(Account).where(principal.scope.account_clause()).order_by(Account.username)
        if role is not None:
            query = query.where(Account.role == role.value)
        return [AccountOut.model_validate(row) for row in await session.scalars(query)]


@router.get("/{account_id}", responses=ERRORS)
async def get_account(account_id: str, _: AccountReader, state: State) -> AccountOut:
    async with state.db.sessions.begin() as session:
        account = await session.get(Account, account_id)
        if account is None:
            raise not_found("account")
        return AccountOut.model_validate(account)


@router.post("", status_code=status.HTTP_201_CREATED, responses=ERRORS)
async def create_account(body: AccountIn, principal: ScopedAdmin, state: State) -> AccountOut:
    password_hash = await hash_password_async(body.password)
    async with state.db.sessions.begin() as session:
        if await session.scalar(select(Account.id).where(Account.username == body.username)):
            raise ApiError(409, "username_taken", "That username is taken.")
        school_id, county_id = await _home(session, principal, body.school_id, body.county_id)
        account = Account(
            username=body.username,
            display_name=body.display_name,
            role=body.role.value,
            password_hash=password_hash,
            school_id=school_id,
            county_id=county_id,
        )
        session.add(account)
        await session.flush()
        return AccountOut.model_validate(account)


@router.patch("/{account_id}", responses=ERRORS)
async def update_account(
    account_id: str, body: AccountPatch, principal: AccountManager, state: State
) -> AccountOut:
    changes = body.model_dump(exclude_unset=True)
    password = changes.pop("password", None)
    password_hash = await hash_password_async(password) if password else None
    async with state.db.sessions.begin() as session:
        account = await session.get(Account, account_id)
        if account is None:
            raise not_found("account")
        moved = changes.keys() & {"school_id", "county_id"}
        if moved:
            school_id, county_id = await _home(
                session, principal, changes.get("school_id"), changes.get("county_id")
            )
        for field in ("display_name", "role", "active"):
            if changes.get(field) is not None:
                setattr(account, field, changes[field])
        if moved:
            account.school_id, account.county_id = school_id, county_id
        if password_hash is not None:
            account.password_hash = password_hash
        await session.flush()
        await _keeps_an_admin(session)
        if password_hash is not None or not account.active:
            # A new password or a deactivation signs the account out everywhere.
            await revoke_account_sessions(session, account.id)
        out = AccountOut.model_validate(account)
    if "active" in changes:
        state.revocations_changed()  # its join tokens refused (or admitted) again at join
    return out


@router.delete("/{account_id}", status_code=status.HTTP_204_NO_CONTENT, responses=ERRORS)
async def deactivate_account(account_id: str, _: AccountManager, state: State) -> Response:
    """Accounts are kept (lessons and notes name them); deleting deactivates and signs out."""
    async with state.db.sessions.begin() as session:
        account = await session.get(Account, account_id)
        if account is None:
            raise not_found("account")
        account.active = False
        await session.flush()
        await _keeps_an_admin(session)
        await revoke_account_sessions(session, account.id)
    state.revocations_changed()  # its join tokens are refused at join (token_revoked)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
