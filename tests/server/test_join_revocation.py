"""Revocation takes effect at join (issue 17, finding 12): a join token minted from a link
that was revoked since, or for an account deactivated since, is refused with
token_revoked, though its signature and expiry are still good. SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy import update

from server.db.models import Account
from server.revocations import Revocations
from server.state import AppState

if TYPE_CHECKING:
    from conftest import District


def join(district: District, token: str) -> dict[str, Any]:
    """The answer to a join with `token` (joined or error), the socket closed after."""
    with district.client.websocket_connect("/ws") as ws:
        ws.send_json({"type": "join", "id": "j", "version": 1, "token": token})
        while True:
            message = json.loads(ws.receive_text())
            if message.get("id") == "j":
                return message


def token_of(district: District, code: str) -> str:
    response = district.client.post(f"/api/join/{code}")
    assert response.status_code == 200, response.text
    return str(response.json()["token"])


def inspector(district: District) -> dict[str, Any]:
    return district.admin_post(
        "/api/accounts",
        {
            "username": f"inspector-{uuid.uuid4().hex[:6]}",
            "display_name": "赵巡课员",
            "role": "inspector",
            "password": district.password,
        },
    )


def test_a_token_from_a_link_revoked_since_is_refused_at_join(district: District) -> None:
    lesson = district.lesson()
    link = district.link(lesson)
    before, after = token_of(district, link["code"]), token_of(district, link["code"])
    assert district.state.tokens.verify(before).link_id == link["id"]
    assert join(district, before)["type"] == "joined"  # read (and cached) as good
    revoke = f"/api/lessons/{lesson['id']}/links/{link['id']}/revoke"
    assert district.client.post(revoke, headers=district.headers("teacher")).status_code == 200
    refused = join(district, after)
    assert (refused["type"], refused["code"]) == ("error", "token_revoked")
    assert "revoked" in refused["message"]


def test_other_links_of_the_lesson_still_join(district: District) -> None:
    lesson = district.lesson()
    kept, revoked = district.link(lesson), district.link(lesson)
    token = token_of(district, kept["code"])
    district.client.delete(
        f"/api/lessons/{lesson['id']}/links/{revoked['id']}", headers=district.headers("admin")
    )
    assert join(district, token)["type"] == "joined"


def test_a_patrol_link_token_of_an_inspector_deactivated_since_is_refused(
    district: District,
) -> None:
    account = inspector(district)
    lesson = district.lesson()
    link = district.admin_post(f"/api/lessons/{lesson['id']}/links", {"account_id": account["id"]})
    token = token_of(district, link["code"])
    assert join(district, token)["type"] == "joined"
    gone = district.client.delete(
        f"/api/accounts/{account['id']}", headers=district.headers("admin")
    )
    assert gone.status_code == 204
    refused = join(district, token)
    assert (refused["type"], refused["code"]) == ("error", "token_revoked")
    assert "deactivated" in refused["message"]


def test_an_own_patrol_token_of_an_inspector_deactivated_since_is_refused(
    district: District,
) -> None:
    account = inspector(district)
    signed_in = district.client.post(
        "/api/auth/login", json={"username": account["username"], "password": district.password}
    )
    district.client.cookies.clear()  # identity by header only
    session = str(signed_in.json()["token"])
    lesson = district.lesson()
    response = district.client.post(
        f"/api/lessons/{lesson['id']}/patrol-token", headers=district.bearer(session)
    )
    token = str(response.json()["token"])
    assert district.state.tokens.verify(token).link_id is None
    patch = district.client.patch(
        f"/api/accounts/{account['id']}", json={"active": False}, headers=district.headers("admin")
    )
    assert patch.status_code == 200, patch.text
    assert join(district, token)["code"] == "token_revoked"
    # Active again: the same token joins again.
    district.client.patch(
        f"/api/accounts/{account['id']}", json={"active": True}, headers=district.headers("admin")
    )
    assert join(district, token)["type"] == "joined"


def test_a_deactivation_from_outside_the_api_is_read_after_the_cache_time(
    district: District,
) -> None:
    """`tongke accounts` or another node changes the database behind this node's back: the
    answer is read again once it is older than the cache time."""
    account = inspector(district)

    async def check(state: AppState) -> tuple[str | None, str | None, str | None]:
        cached = Revocations(state.db, ttl_s=3600.0)
        fresh = Revocations(state.db, ttl_s=0.0)
        first = await cached.refusal(None, account["id"])
        await fresh.refusal(None, account["id"])
        async with state.db.sessions.begin() as session:
            await session.execute(
                update(Account).where(Account.id == account["id"]).values(active=False)
            )
        return (
            first,
            await cached.refusal(None, account["id"]),
            await fresh.refusal(None, account["id"]),
        )

    first, cached, fresh = district.run(check)
    assert first is None and cached is None  # within the cache time: the old answer
    assert fresh is not None and "deactivated" in fresh
