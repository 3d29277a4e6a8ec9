"""Join links: create per classroom or inspector, open without an account, revoke, expire."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import update

from server.db.models import JoinLink, utcnow
from server.state import AppState
from signaling.grants import Control, Role, Source

if TYPE_CHECKING:
    from conftest import District


def _error(response: Any) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


def test_roster_links_give_the_lead_and_each_receiver_their_role(district: District) -> None:
    lesson = district.lesson(receivers=3)
    response = district.client.post(
        f"/api/lessons/{lesson['id']}/links/roster", json={}, headers=district.headers("teacher")
    )
    assert response.status_code == 201
    links = response.json()
    assert [(link["role"], link["classroom_id"]) for link in links] == [
        ("lead", lesson["lead"]["id"]),
        *(("receiver", room["id"]) for room in lesson["receivers"]),
    ]
    # No public_url: links name the origin the request arrived on (TestClient's).
    assert all(link["url"] == f"http://testserver/join/{link['code']}" for link in links)
    assert all(len(link["code"]) >= 24 for link in links)
    listed = district.client.get(
        f"/api/lessons/{lesson['id']}/links", headers=district.headers("admin")
    ).json()
    assert [link["id"] for link in listed] == [link["id"] for link in links]


def test_opening_a_receiver_link_mints_a_receiver_join_token(district: District) -> None:
    lesson = district.lesson()
    room = lesson["receivers"][1]
    link = district.link(lesson, room["id"])
    response = district.client.post(f"/api/join/{link['code']}")
    assert response.status_code == 200
    joined = response.json()
    assert joined["role"] == "receiver"
    assert joined["ws_url"] == "/ws"
    assert joined["ice_servers"] == district.state.settings.ice_servers
    assert joined["expires_in"] == district.state.settings.join_token_ttl_s
    assert joined["classroom"]["id"] == room["id"]
    assert joined["lesson"]["id"] == lesson["id"] and joined["lesson"]["subject"] == "数学"
    grant = district.state.tokens.verify(joined["token"])
    assert (grant.lesson_id, grant.role, grant.classroom_id) == (
        lesson["id"],
        Role.RECEIVER,
        room["id"],
    )
    assert grant.publish == {Source.CAMERA, Source.MIC}
    assert grant.controls == {Control.HAND}
    assert room["name"] in grant.name


def test_the_lead_link_grants_lead_controls_in_the_teachers_name(district: District) -> None:
    lesson = district.lesson()
    joined = district.client.post(f"/api/join/{district.link(lesson)['code']}").json()
    grant = district.state.tokens.verify(joined["token"])
    assert grant.role is Role.LEAD and grant.classroom_id == lesson["lead"]["id"]
    assert grant.account_id == district.ids["teacher"]
    assert Control.STAGE in grant.controls and Source.SCREEN in grant.publish


def test_a_revoked_link_answers_link_revoked(district: District) -> None:
    lesson = district.lesson()
    link = district.link(lesson)
    path = f"/api/lessons/{lesson['id']}/links/{link['id']}/revoke"
    revoked = district.client.post(path, headers=district.headers("teacher")).json()
    assert revoked["revoked_at"] is not None
    # Revoking again keeps the first time.
    again = district.client.post(path, headers=district.headers("admin")).json()
    assert again["revoked_at"] == revoked["revoked_at"]
    assert _error(district.client.post(f"/api/join/{link['code']}")) == (410, "link_revoked")


def test_a_deleted_link_is_revoked_too(district: District) -> None:
    lesson = district.lesson()
    link = district.link(lesson)
    response = district.client.delete(
        f"/api/lessons/{lesson['id']}/links/{link['id']}", headers=district.headers("admin")
    )
    assert response.status_code == 204
    assert _error(district.client.post(f"/api/join/{link['code']}")) == (410, "link_revoked")


def test_an_unknown_code_answers_link_not_found(district: District) -> None:
    assert _error(district.client.post("/api/join/no-such-code")) == (404, "link_not_found")
    lesson = district.lesson()
    response = district.client.post(
        f"/api/lessons/{lesson['id']}/links/nope/revoke", headers=district.headers("admin")
    )
    assert _error(response) == (404, "link_not_found")


def test_a_link_past_its_expiry_answers_link_expired(district: District) -> None:
    lesson = district.lesson()
    expires = utcnow() + timedelta(hours=1)
    link = district.admin_post(
        f"/api/lessons/{lesson['id']}/links",
        {"classroom_id": lesson["lead"]["id"], "expires_at": expires.isoformat()},
    )
    assert district.client.post(f"/api/join/{link['code']}").status_code == 200

    async def expire(state: AppState) -> None:
        async with state.db.sessions.begin() as session:
            await session.execute(
                update(JoinLink)
                .where(JoinLink.id == link["id"])
                .values(expires_at=utcnow() - timedelta(seconds=1))
            )

    district.run(expire)
    assert _error(district.client.post(f"/api/join/{link['code']}")) == (410, "link_expired")


def test_a_link_cannot_be_born_expired(district: District) -> None:
    lesson = district.lesson()
    response = district.client.post(
        f"/api/lessons/{lesson['id']}/links",
        json={
            "classroom_id": lesson["lead"]["id"],
            "expires_at": (utcnow() - timedelta(minutes=1)).isoformat(),
        },
        headers=district.headers("admin"),
    )
    assert _error(response) == (422, "invalid_expiry")


def test_an_ended_lesson_refuses_joins_and_new_links(district: District) -> None:
    lesson = district.lesson()
    link = district.link(lesson)
    admin = district.headers("admin")
    district.client.post(f"/api/lessons/{lesson['id']}/end", headers=admin)
    assert _error(district.client.post(f"/api/join/{link['code']}")) == (409, "lesson_ended")
    response = district.client.post(
        f"/api/lessons/{lesson['id']}/links",
        json={"classroom_id": lesson["lead"]["id"]},
        headers=admin,
    )
    assert _error(response) == (409, "lesson_ended")
    response = district.client.post(
        f"/api/lessons/{lesson['id']}/patrol-token", headers=district.headers("inspector")
    )
    assert _error(response) == (409, "lesson_ended")


def test_a_link_for_a_classroom_outside_the_lesson_is_refused(district: District) -> None:
    lesson = district.lesson()
    admin = district.headers("admin")
    path = f"/api/lessons/{lesson['id']}/links"
    response = district.client.post(
        path, json={"classroom_id": district.classroom()}, headers=admin
    )
    assert _error(response) == (422, "classroom_not_in_lesson")
    response = district.client.post(
        path, json={"classroom_id": lesson["lead"]["id"], "role": "receiver"}, headers=admin
    )
    assert _error(response) == (422, "role_mismatch")
    assert _error(district.client.post(path, json={}, headers=admin)) == (
        422,
        "classroom_required",
    )


def test_patrol_links_belong_to_inspectors_only(district: District) -> None:
    lesson = district.lesson()
    admin = district.headers("admin")
    path = f"/api/lessons/{lesson['id']}/links"
    for body in (
        {"account_id": district.ids["teacher"]},
        {"role": "patrol"},
        {"role": "patrol", "account_id": district.ids["inspector"], "classroom_id": "x"},
    ):
        response = district.client.post(path, json=body, headers=admin)
        assert _error(response) == (422, "patrol_needs_inspector"), body
    link = district.admin_post(path, {"account_id": district.ids["inspector"]})
    base = "http://testserver"
    assert link["role"] == "patrol" and link["url"] == f"{base}/patrol?link={link['code']}"
    joined = district.client.post(f"/api/join/{link['code']}").json()
    grant = district.state.tokens.verify(joined["token"])
    assert grant.role is Role.PATROL and grant.account_id == district.ids["inspector"]
    assert grant.publish == frozenset() and grant.classroom_id is None
    assert joined["classroom"] is None


def test_an_inspector_mints_his_own_patrol_token(district: District) -> None:
    lesson = district.lesson()
    response = district.client.post(
        f"/api/lessons/{lesson['id']}/patrol-token", headers=district.headers("inspector")
    )
    assert response.status_code == 200
    grant = district.state.tokens.verify(response.json()["token"])
    assert grant.role is Role.PATROL
    assert grant.account_id == district.ids["inspector"]
    assert grant.controls == {Control.NOTE, Control.SUBSCRIBE_ANY, Control.TALK}


def test_a_deactivated_inspectors_patrol_link_stops_working(district: District) -> None:
    account = district.admin_post(
        "/api/accounts",
        {
            "username": "retired-inspector",
            "display_name": "x",
            "role": "inspector",
            "password": district.password,
        },
    )
    lesson = district.lesson()
    link = district.admin_post(f"/api/lessons/{lesson['id']}/links", {"account_id": account["id"]})
    district.client.delete(f"/api/accounts/{account['id']}", headers=district.headers("admin"))
    assert _error(district.client.post(f"/api/join/{link['code']}")) == (410, "link_revoked")


def test_links_name_the_address_the_admin_reached_the_service_on(district: District) -> None:
    lesson = district.lesson(receivers=1)
    lan = {**district.headers("teacher"), "host": "[fd00::2]:8443"}
    response = district.client.post(
        f"/api/lessons/{lesson['id']}/links/roster", json={}, headers=lan
    )
    assert response.status_code == 201
    for link in response.json():
        assert link["url"] == f"http://[fd00::2]:8443/join/{link['code']}"
