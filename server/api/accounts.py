"""/api/accounts: admins, teachers and inspectors. Admins change; deleting deactivates."""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.api.errors import ApiError, ErrorResponse, not_found
from server.api.schemas import AccountIn, AccountOut, AccountPatch
from server.auth import AdminPrincipal, CurrentPrincipal, State, revoke_account_sessions
from server.db.models import Account, AccountRole, School
from server.passwords import hash_password_async

router = APIRouter(prefix="/accounts", tags=["accounts"])

ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorResponse} for code in (401, 403, 404, 409, 422)
}


async def _check_school(session: AsyncSession, school_id: str | None) -> None:
    if school_id is not None and await session.get(School, school_id) is None:
        raise not_found("school")


async def _keeps_an_admin(session: AsyncSession) -> None:
    """Refuse a change that would leave no active admin to run the district."""
    admins = await session.scalar(
        select(func.count())
        .select_from(Account)
        .where(Account.role == AccountRole.ADMIN.value, Account.active.is_(True))
    )
    if not admins:
        raise ApiError(409, "last_admin", "This is the last active admin account.")


@router.get("", responses=ERRORS)
async def list_accounts(
    _: CurrentPrincipal, state: State, role: AccountRole | None = None
) -> list[AccountOut]:
    async with state.db.sessions.begin() as session:
        query = select(Account).order_by(Account.username)
        if role is not None:
            query = query.where(Account.role == role.value)
        return [AccountOut.model_validate(row) for row in await session.scalars(query)]


@router.get("/{account_id}", responses=ERRORS)
async def get_account(account_id: str, _: CurrentPrincipal, state: State) -> AccountOut:
    async with state.db.sessions.begin() as session:
        account = await session.get(Account, account_id)
        if account is None:
            raise not_found("account")
        return AccountOut.model_validate(account)


@router.post("", status_code=status.HTTP_201_CREATED, responses=ERRORS)
async def create_account(body: AccountIn, _: AdminPrincipal, state: State) -> AccountOut:
    password_hash = await hash_password_async(body.password)
    async with state.db.sessions.begin() as session:
        if await session.scalar(select(Account.id).where(Account.username == body.username)):
            raise ApiError(409, "username_taken", "That username is taken.")
        await _check_school(session, body.school_id)
        account = Account(
            username=body.username,
            display_name=body.display_name,
            role=body.role.value,
            password_hash=password_hash,
            school_id=body.school_id,
        )
        session.add(account)
        await session.flush()
        return AccountOut.model_validate(account)


@router.patch("/{account_id}", responses=ERRORS)
async def update_account(
    account_id: str, body: AccountPatch, _: AdminPrincipal, state: State
) -> AccountOut:
    changes = body.model_dump(exclude_unset=True)
    password = changes.pop("password", None)
    password_hash = await hash_password_async(password) if password else None
    async with state.db.sessions.begin() as session:
        account = await session.get(Account, account_id)
        if account is None:
            raise not_found("account")
        if "school_id" in changes:
            await _check_school(session, changes["school_id"])
        for field in ("display_name", "role", "active"):
            if changes.get(field) is not None:
                setattr(account, field, changes[field])
        if "school_id" in changes:
            account.school_id = changes["school_id"]
        if password_hash is not None:
            account.password_hash = password_hash
        await session.flush()
        await _keeps_an_admin(session)
        if password_hash is not None or not account.active:
            # A new password or a deactivation signs the account out everywhere.
            await revoke_account_sessions(session, account.id)
        return AccountOut.model_validate(account)


@router.delete("/{account_id}", status_code=status.HTTP_204_NO_CONTENT, responses=ERRORS)
async def deactivate_account(account_id: str, _: AdminPrincipal, state: State) -> Response:
    """Accounts are kept (lessons and notes name them); deleting deactivates and signs out."""
    async with state.db.sessions.begin() as session:
        account = await session.get(Account, account_id)
        if account is None:
            raise not_found("account")
        account.active = False
        await session.flush()
        await _keeps_an_admin(session)
        await revoke_account_sessions(session, account.id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
