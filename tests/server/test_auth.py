"""Sign-in sessions: cookie and bearer token, sign-out, expiry, hashed storage."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select, update

from server.auth import COOKIE_NAME
from server.db.models import LoginSession, utcnow
from server.state import AppState

if TYPE_CHECKING:
    from conftest import District


def test_login_sets_an_http_only_lax_cookie_and_returns_the_token(district: District) -> None:
    client = district.client
    response = client.post(
        "/api/auth/login", json={"username": "teacher", "password": district.password}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["account"]["username"] == "teacher"
    assert body["account"]["role"] == "teacher"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE_NAME}={body['token']}")
    assert "HttpOnly" in cookie and "samesite=lax" in cookie.lower()
    # The cookie alone signs the browser in.
    assert client.get("/api/auth/me").json()["username"] == "teacher"
    client.cookies.clear()
    assert (
        client.get("/api/auth/me", headers=district.bearer(body["token"])).json()["id"]
        == (district.ids["teacher"])
    )


def test_a_wrong_password_or_unknown_user_gets_the_same_refusal(district: District) -> None:
    for username, password in (("teacher", "wrong password"), ("nobody", district.password)):
        response = district.client.post(
            "/api/auth/login", json={"username": username, "password": password}
        )
        assert response.status_code == 401
        assert response.json() == {
            "error": {"code": "invalid_credentials", "message": "Wrong username or password."}
        }
    assert district.client.cookies.get(COOKIE_NAME) is None


def test_me_without_a_session_is_not_authenticated(district: District) -> None:
    response = district.client.get("/api/auth/me")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    response = district.client.get("/api/auth/me", headers=district.bearer("made-up"))
    assert response.json()["error"]["code"] == "not_authenticated"


def test_logout_ends_the_session_at_once(district: District) -> None:
    token = district.login("inspector")
    assert district.client.get("/api/auth/me", headers=district.bearer(token)).status_code == 200
    response = district.client.post("/api/auth/logout", headers=district.bearer(token))
    assert response.status_code == 204
    assert COOKIE_NAME in response.headers["set-cookie"]  # the cookie is cleared
    response = district.client.get("/api/auth/me", headers=district.bearer(token))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    # Other sessions of the same account live on.
    assert district.client.get("/api/auth/me", headers=district.headers("inspector")).is_success


def test_an_expired_session_is_refused_with_session_expired(district: District) -> None:
    token = district.login("teacher")
    token_hash = hashlib.sha256(token.encode()).hexdigest()

    async def expire(state: AppState) -> None:
        async with state.db.sessions.begin() as session:
            await session.execute(
                update(LoginSession)
                .where(LoginSession.token_hash == token_hash)
                .values(expires_at=utcnow() - timedelta(seconds=1))
            )

    district.run(expire)
    response = district.client.get("/api/auth/me", headers=district.bearer(token))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "session_expired"


def test_sessions_last_session_ttl_and_are_stored_hashed(district: District) -> None:
    token = district.login("admin")

    async def stored(state: AppState) -> LoginSession | None:
        async with state.db.sessions.begin() as session:
            return await session.scalar(
                select(LoginSession).where(
                    LoginSession.token_hash == hashlib.sha256(token.encode()).hexdigest()
                )
            )

    row = district.run(stored)
    assert row is not None and token not in row.token_hash
    ttl = district.state.settings.session_ttl_s
    lasts = row.expires_at - row.created_at
    assert lasts == timedelta(seconds=ttl)


def test_a_deactivated_account_is_signed_out_and_cannot_sign_in(district: District) -> None:
    account = district.admin_post(
        "/api/accounts",
        {
            "username": "leaver",
            "display_name": "x",
            "role": "teacher",
            "password": district.password,
        },
    )
    response = district.client.post(
        "/api/auth/login", json={"username": "leaver", "password": district.password}
    )
    token = response.json()["token"]
    district.client.cookies.clear()
    response = district.client.delete(
        f"/api/accounts/{account['id']}", headers=district.headers("admin")
    )
    assert response.status_code == 204
    assert district.client.get("/api/auth/me", headers=district.bearer(token)).status_code == 401
    response = district.client.post(
        "/api/auth/login", json={"username": "leaver", "password": district.password}
    )
    assert response.json()["error"]["code"] == "invalid_credentials"


def test_a_new_password_signs_the_account_out_everywhere(district: District) -> None:
    account = district.admin_post(
        "/api/accounts",
        {
            "username": "forgetful",
            "display_name": "x",
            "role": "teacher",
            "password": district.password,
        },
    )
    token = district.client.post(
        "/api/auth/login", json={"username": "forgetful", "password": district.password}
    ).json()["token"]
    district.client.cookies.clear()
    response = district.client.patch(
        f"/api/accounts/{account['id']}",
        json={"password": "a brand new one"},
        headers=district.headers("admin"),
    )
    assert response.status_code == 200
    assert district.client.get("/api/auth/me", headers=district.bearer(token)).status_code == 401
    response = district.client.post(
        "/api/auth/login", json={"username": "forgetful", "password": "a brand new one"}
    )
    assert response.status_code == 200
    district.client.cookies.clear()


def test_changing_ones_own_password_signs_out_the_other_sessions(district: District) -> None:
    account = district.admin_post(
        "/api/accounts",
        {
            "username": "mover",
            "display_name": "x",
            "role": "inspector",
            "password": district.password,
        },
    )
    assert account["role"] == "inspector"

    def sign_in(password: str) -> str:
        response = district.client.post(
            "/api/auth/login", json={"username": "mover", "password": password}
        )
        district.client.cookies.clear()
        assert response.status_code == 200, response.text
        return str(response.json()["token"])

    this, other = sign_in(district.password), sign_in(district.password)
    response = district.client.post(
        "/api/auth/password",
        json={"current_password": "not it", "new_password": "a new password"},
        headers=district.bearer(this),
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "wrong_password"
    response = district.client.post(
        "/api/auth/password",
        json={"current_password": district.password, "new_password": "a new password"},
        headers=district.bearer(this),
    )
    assert response.status_code == 204
    assert district.client.get("/api/auth/me", headers=district.bearer(this)).status_code == 200
    assert district.client.get("/api/auth/me", headers=district.bearer(other)).status_code == 401
    sign_in("a new password")
