"""Schools, classrooms and accounts over HTTP, and the common error shape."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from conftest import District


def _error(response: Any) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


def test_every_api_error_has_the_common_shape(district: District) -> None:
    client = district.client
    admin = district.headers("admin")
    for response in (
        client.post("/api/schools", json={"name": "x", "kind": "castle"}, headers=admin),
        client.post("/api/schools", content=b"{not json", headers=admin),
        client.get("/api/no-such-route"),
        client.put("/api/schools", headers=admin),
    ):
        body = response.json()
        assert set(body) == {"error"}
        assert set(body["error"]) == {"code", "message"}
        assert body["error"]["message"]
    assert _error(client.get("/api/no-such-route")) == (404, "not_found")
    assert _error(client.put("/api/schools", headers=admin)) == (405, "method_not_allowed")


def test_invalid_bodies_name_the_field_in_the_message(district: District) -> None:
    response = district.client.post(
        "/api/schools", json={"name": "x", "kind": "castle"}, headers=district.headers("admin")
    )
    assert _error(response) == (422, "invalid_request")
    assert "kind" in response.json()["error"]["message"]


def test_schools_and_classrooms_are_readable_by_every_signed_in_role(district: District) -> None:
    school = district.school()
    room = district.classroom(school)
    for role in ("teacher", "inspector"):
        headers = district.headers(role)
        assert school in [
            s["id"] for s in district.client.get("/api/schools", headers=headers).json()
        ]
        rooms = district.client.get(
            "/api/classrooms", params={"school_id": school}, headers=headers
        ).json()
        assert [r["id"] for r in rooms] == [room]
    assert _error(district.client.get("/api/schools")) == (401, "not_authenticated")


def test_a_school_with_classrooms_cannot_be_deleted(district: District) -> None:
    school = district.school()
    room = district.classroom(school)
    admin = district.headers("admin")
    assert _error(district.client.delete(f"/api/schools/{school}", headers=admin)) == (
        409,
        "school_in_use",
    )
    assert district.client.delete(f"/api/classrooms/{room}", headers=admin).status_code == 204
    assert district.client.delete(f"/api/schools/{school}", headers=admin).status_code == 204
    assert _error(district.client.get(f"/api/schools/{school}", headers=admin)) == (
        404,
        "school_not_found",
    )


def test_a_classroom_in_a_lesson_cannot_be_deleted(district: District) -> None:
    lesson = district.lesson()
    response = district.client.delete(
        f"/api/classrooms/{lesson['receivers'][0]['id']}", headers=district.headers("admin")
    )
    assert _error(response) == (409, "classroom_in_use")


def test_classroom_names_are_unique_within_a_school(district: District) -> None:
    school = district.school()
    body = {"school_id": school, "name": "一年级教室"}
    admin = district.headers("admin")
    assert district.client.post("/api/classrooms", json=body, headers=admin).status_code == 201
    response = district.client.post("/api/classrooms", json=body, headers=admin)
    assert _error(response) == (409, "classroom_name_taken")
    response = district.client.post(
        "/api/classrooms", json={**body, "school_id": "nope"}, headers=admin
    )
    assert _error(response) == (404, "school_not_found")


def test_usernames_are_unique(district: District) -> None:
    body = {"username": "dup", "display_name": "x", "role": "teacher", "password": "long enough"}
    admin = district.headers("admin")
    assert district.client.post("/api/accounts", json=body, headers=admin).status_code == 201
    response = district.client.post("/api/accounts", json=body, headers=admin)
    assert _error(response) == (409, "username_taken")
    response = district.client.post(
        "/api/accounts", json={**body, "username": "dup2", "password": "short"}, headers=admin
    )
    assert _error(response) == (422, "invalid_request")


def test_the_last_active_admin_cannot_be_removed(sqlite_district: District) -> None:
    district = sqlite_district
    me = district.client.get("/api/auth/me", headers=district.headers("admin")).json()
    admin = district.headers("admin")
    response = district.client.delete(f"/api/accounts/{me['id']}", headers=admin)
    assert _error(response) == (409, "last_admin")
    response = district.client.patch(
        f"/api/accounts/{me['id']}", json={"role": "teacher"}, headers=admin
    )
    assert _error(response) == (409, "last_admin")
    # Nothing changed: the admin still signs in as admin.
    assert district.client.get("/api/auth/me", headers=admin).json()["role"] == "admin"


def test_accounts_list_by_role_without_password_hashes(district: District) -> None:
    response = district.client.get(
        "/api/accounts", params={"role": "inspector"}, headers=district.headers("teacher")
    )
    accounts = response.json()
    assert district.ids["inspector"] in [a["id"] for a in accounts]
    assert all(a["role"] == "inspector" and "password_hash" not in a for a in accounts)
