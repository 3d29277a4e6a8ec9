"""/api/auth: sign in (cookie and bearer token), sign out, who am I."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status
from sqlalchemy import update

from server.api.access import SignedIn, access
from server.api.errors import ApiError, ErrorResponse
from server.api.schemas import AccountOut, LoginIn, LoginOut, PasswordChangeIn
from server.auth import (
    COOKIE_NAME,
    State,
    check_credentials,
    open_session,
    revoke_session,
)
from server.db.models import Account, LoginSession, utcnow
from server.origin import client_address
from server.passwords import hash_password_async, verify_password_async

router = APIRouter(prefix="/auth", tags=["auth"])

ERRORS: dict[int | str, dict[str, object]] = {401: {"model": ErrorResponse}}
LOGIN_ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorResponse} for code in (401, 429)
}


@router.post(
    "/login",
    responses=LOGIN_ERRORS,
    dependencies=[access(None, why="the password is the credential")],
)
async def login(body: LoginIn, request: Request, response: Response, state: State) -> LoginOut:
    """Check the password; the session token comes back as an HttpOnly cookie and in the body.
    Too many wrong passwords for the username or from the address: 429 login_throttled with
    Retry-After, the password not even checked."""
    throttle = state.login_throttle
    address = client_address(request, state.settings)
    wait_s = throttle.retry_after_s(body.username, address)
    if wait_s:
        raise ApiError(
            429,
            "login_throttled",
            f"Too many wrong passwords; try again in {wait_s} s.",
            headers={"Retry-After": str(wait_s)},
        )
    try:
        async with state.db.sessions.begin() as session:
            account = await check_credentials(session, body.username, body.password)
            token, expires_at = await open_session(session, account, state.settings.session_ttl_s)
            out = AccountOut.model_validate(account)
    except ApiError as exc:
        if exc.code == "invalid_credentials":
            throttle.failed(body.username, address)
        raise
    throttle.succeeded(body.username)
    response.set_cookie(
        COOKIE_NAME,
        token,
        max_age=state.settings.session_ttl_s,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )
    return LoginOut(token=token, expires_at=expires_at, account=out)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT, responses=ERRORS)
async def logout(principal: SignedIn, state: State) -> Response:
    """End this session; its token and cookie stop working at once."""
    async with state.db.sessions.begin() as session:
        await revoke_session(session, principal.session_id)
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    response.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="lax")
    return response


@router.post(
    "/password",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={401: {"model": ErrorResponse}, 422: {"model": ErrorResponse}},
)
async def change_password(body: PasswordChangeIn, principal: SignedIn, state: State) -> Response:
    """Change one's own password; every other session of the account is signed out."""
    new_hash = await hash_password_async(body.new_password)
    async with state.db.sessions.begin() as session:
        account = await session.get_one(Account, principal.account_id)
        if not await verify_password_async(account.password_hash, body.current_password):
            raise ApiError(422, "wrong_password", "The current password is wrong.")
        account.password_hash = new_hash
        await session.execute(
            update(LoginSession)
            .where(
                LoginSession.account_id == account.id,
                LoginSession.id != principal.session_id,
                LoginSession.revoked_at.is_(None),
            )
            .values(revoked_at=utcnow())
        )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/me", responses=ERRORS)
async def me(principal: SignedIn, state: State) -> AccountOut:
    async with state.db.sessions.begin() as session:
        account = await session.get_one(Account, principal.account_id)
        return AccountOut.model_validate(account)
