"""The HTTP authorization matrix: every state-changing route x every role.

Each case builds its own rows with the admin first, so cases never depend on each other.
Every cell asserts the exact status, and for refusals the exact error code.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from conftest import District

ROLES = ("anonymous", "admin", "teacher", "other_teacher", "inspector")
PASSWORD = "correct horse battery"


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    body: dict[str, Any] | None = None
    # A token that replaces the role's usual one (logout needs a session of its own).
    token: str | None = None


Expected = int | tuple[int, str]
UNAUTHENTICATED: Expected = (401, "not_authenticated")
FORBIDDEN: Expected = (403, "forbidden")


def admin_only(ok: int) -> dict[str, Expected]:
    return {
        "anonymous": UNAUTHENTICATED,
        "admin": ok,
        "teacher": FORBIDDEN,
        "other_teacher": FORBIDDEN,
        "inspector": FORBIDDEN,
    }


def owner(ok: int) -> dict[str, Expected]:
    """Admins and the lesson's own teacher."""
    return {
        "anonymous": UNAUTHENTICATED,
        "admin": ok,
        "teacher": ok,
        "other_teacher": FORBIDDEN,
        "inspector": FORBIDDEN,
    }


def _name() -> str:
    return uuid.uuid4().hex[:8]


def _account(d: District) -> str:
    body = {"username": _name(), "display_name": "x", "role": "teacher", "password": PASSWORD}
    return str(d.admin_post("/api/accounts", body)["id"])


def _logout(d: District, role: str) -> Call:
    if role == "anonymous":
        return Call("POST", "/api/auth/logout")
    return Call("POST", "/api/auth/logout", token=d.login(role))


def _change_password(d: District, role: str) -> Call:
    body = {"current_password": PASSWORD, "new_password": "another long one"}
    if role == "anonymous":
        return Call("POST", "/api/auth/password", body)
    # A fresh account of the role's kind: the change signs out the shared accounts' sessions.
    kind = {"other_teacher": "teacher"}.get(role, role)
    username = _name()
    d.admin_post(
        "/api/accounts",
        {"username": username, "display_name": "x", "role": kind, "password": PASSWORD},
    )
    token = d.client.post(
        "/api/auth/login", json={"username": username, "password": PASSWORD}
    ).json()["token"]
    d.client.cookies.clear()
    return Call("POST", "/api/auth/password", body, token=token)


Setup = Callable[["District", str], Call]

CASES: dict[str, tuple[Setup, dict[str, Expected]]] = {
    "create school": (
        lambda d, r: Call("POST", "/api/schools", {"name": _name(), "kind": "teaching_point"}),
        admin_only(201),
    ),
    "update school": (
        lambda d, r: Call("PATCH", f"/api/schools/{d.school()}", {"name": _name()}),
        admin_only(200),
    ),
    "delete school": (
        lambda d, r: Call("DELETE", f"/api/schools/{d.school()}"),
        admin_only(204),
    ),
    "create classroom": (
        lambda d, r: Call("POST", "/api/classrooms", {"school_id": d.school(), "name": _name()}),
        admin_only(201),
    ),
    "update classroom": (
        lambda d, r: Call("PATCH", f"/api/classrooms/{d.classroom()}", {"kind": "receiving"}),
        admin_only(200),
    ),
    "delete classroom": (
        lambda d, r: Call("DELETE", f"/api/classrooms/{d.classroom()}"),
        admin_only(204),
    ),
    "create account": (
        lambda d, r: Call(
            "POST",
            "/api/accounts",
            {"username": _name(), "display_name": "x", "role": "inspector", "password": PASSWORD},
        ),
        admin_only(201),
    ),
    "update account": (
        lambda d, r: Call("PATCH", f"/api/accounts/{_account(d)}", {"display_name": "y"}),
        admin_only(200),
    ),
    "deactivate account": (
        lambda d, r: Call("DELETE", f"/api/accounts/{_account(d)}"),
        admin_only(204),
    ),
    "create lesson": (
        lambda d, r: Call("POST", "/api/lessons", d.lesson_body()),
        owner(201),
    ),
    "update lesson": (
        lambda d, r: Call("PATCH", f"/api/lessons/{d.lesson()['id']}", {"title": "新标题"}),
        owner(200),
    ),
    "start lesson": (
        lambda d, r: Call("POST", f"/api/lessons/{d.lesson()['id']}/start"),
        owner(200),
    ),
    "end lesson": (
        lambda d, r: Call("POST", f"/api/lessons/{d.lesson()['id']}/end"),
        owner(200),
    ),
    "delete lesson": (
        lambda d, r: Call("DELETE", f"/api/lessons/{d.lesson()['id']}"),
        owner(204),
    ),
    "list join links": (
        lambda d, r: Call("GET", f"/api/lessons/{d.lesson()['id']}/links"),
        owner(200),
    ),
    "create join link": (
        lambda d, r: (
            (lesson := d.lesson())
            and Call(
                "POST", f"/api/lessons/{lesson['id']}/links", {"classroom_id": lesson["lead"]["id"]}
            )
        ),
        owner(201),
    ),
    "create roster links": (
        lambda d, r: Call("POST", f"/api/lessons/{d.lesson()['id']}/links/roster", {}),
        owner(201),
    ),
    "create patrol link": (
        lambda d, r: Call(
            "POST",
            f"/api/lessons/{d.lesson()['id']}/links",
            {"account_id": d.ids["inspector"], "role": "patrol"},
        ),
        owner(201),
    ),
    "revoke join link": (
        lambda d, r: (
            (lesson := d.lesson())
            and Call("POST", f"/api/lessons/{lesson['id']}/links/{d.link(lesson)['id']}/revoke")
        ),
        owner(200),
    ),
    "delete join link": (
        lambda d, r: (
            (lesson := d.lesson())
            and Call("DELETE", f"/api/lessons/{lesson['id']}/links/{d.link(lesson)['id']}")
        ),
        owner(204),
    ),
    "mint patrol token": (
        lambda d, r: Call("POST", f"/api/lessons/{d.lesson()['id']}/patrol-token"),
        {
            "anonymous": UNAUTHENTICATED,
            "admin": FORBIDDEN,
            "teacher": FORBIDDEN,
            "other_teacher": FORBIDDEN,
            "inspector": 200,
        },
    ),
    "open join link": (
        lambda d, r: Call("POST", f"/api/join/{d.link(d.lesson())['code']}"),
        dict.fromkeys(ROLES, 200),
    ),
    "change own password": (
        _change_password,
        {role: UNAUTHENTICATED if role == "anonymous" else 204 for role in ROLES},
    ),
    "sign out": (
        _logout,
        {role: UNAUTHENTICATED if role == "anonymous" else 204 for role in ROLES},
    ),
    # One node here: the admin is let through and told there is no cluster.
    # tests/cluster/test_two_nodes.py drains and undrains a real cluster node.
    "drain node": (
        lambda d, r: Call("POST", "/api/cluster/drain"),
        admin_only(404) | {"admin": (404, "cluster_disabled")},
    ),
    "undrain node": (
        lambda d, r: Call("POST", "/api/cluster/undrain"),
        admin_only(404) | {"admin": (404, "cluster_disabled")},
    ),
    # Fault drills are off here: the admin is let through and told so.
    # tests/signaling/test_faults_api.py drives them on a node started with TONGKE_FAULTS.
    "set faults": (
        lambda d, r: Call("PUT", f"/api/lessons/{d.lesson()['id']}/faults/p1", {}),
        admin_only(409) | {"admin": (409, "faults_disabled")},
    ),
    "clear faults": (
        lambda d, r: Call("DELETE", f"/api/lessons/{d.lesson()['id']}/faults/p1"),
        admin_only(409) | {"admin": (409, "faults_disabled")},
    ),
}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("case", list(CASES))
def test_state_changing_route_answers_each_role_as_the_matrix_says(
    district: District, case: str, role: str
) -> None:
    setup, expected = CASES[case]
    call = setup(district, role)
    headers = (
        district.headers(role) if call.token is None else {"Authorization": f"Bearer {call.token}"}
    )
    response = district.client.request(call.method, call.path, json=call.body, headers=headers)
    want = expected[role]
    status, code = want if isinstance(want, tuple) else (want, None)
    assert response.status_code == status, response.text
    if code is not None:
        assert response.json()["error"]["code"] == code


def test_every_state_changing_api_route_is_in_the_matrix(district: District) -> None:
    covered = {
        "POST /api/schools", "PATCH /api/schools/{school_id}", "DELETE /api/schools/{school_id}",
        "POST /api/classrooms", "PATCH /api/classrooms/{classroom_id}",
        "DELETE /api/classrooms/{classroom_id}",
        "POST /api/accounts", "PATCH /api/accounts/{account_id}",
        "DELETE /api/accounts/{account_id}",
        "POST /api/lessons", "PATCH /api/lessons/{lesson_id}", "POST /api/lessons/{lesson_id}/end",
        "POST /api/lessons/{lesson_id}/start",
        "DELETE /api/lessons/{lesson_id}",
        "POST /api/lessons/{lesson_id}/links", "POST /api/lessons/{lesson_id}/links/roster",
        "POST /api/lessons/{lesson_id}/links/{link_id}/revoke",
        "DELETE /api/lessons/{lesson_id}/links/{link_id}",
        "POST /api/lessons/{lesson_id}/patrol-token", "POST /api/join/{code}",
        "POST /api/auth/logout", "POST /api/auth/password",
        # Sign-in changes no role's rights; tests/server/test_auth.py covers it.
        "POST /api/auth/login",
        # The device check's upload probe stores nothing; tests/server/test_pages.py covers it.
        "POST /api/netcheck/upload",
        # Library routes: tests/library/test_library_workflow.py has their matrix.
        "POST /api/library/{recording_id}/evaluations",
        "POST /api/library/{recording_id}/nominate",
        "POST /api/library/{recording_id}/review",
        "POST /api/cluster/drain", "POST /api/cluster/undrain",
        "PUT /api/lessons/{lesson_id}/faults/{peer_id}",
        "DELETE /api/lessons/{lesson_id}/faults/{peer_id}",
        # Counties and the timetable: tests/server/test_scope_matrix.py has their role x
        # scope matrix (it covers every route of the app, generated from the route table).
        "POST /api/counties", "PATCH /api/counties/{county_id}",
        "DELETE /api/counties/{county_id}",
        "POST /api/terms", "PATCH /api/terms/{term_id}", "DELETE /api/terms/{term_id}",
        "POST /api/terms/{term_id}/generate", "POST /api/terms/{term_id}/slots",
        "POST /api/terms/{term_id}/timetable", "PATCH /api/slots/{slot_id}",
        "DELETE /api/slots/{slot_id}", "PUT /api/slots/{slot_id}/exceptions/{day}",
        "DELETE /api/slots/{slot_id}/exceptions/{day}",
        "POST /api/classrooms/{classroom_id}/whip-credentials",
        "DELETE /api/whip-credentials/{credential_id}",
        "POST /api/classrooms/{classroom_id}/rtsp-sources",
        "PATCH /api/classrooms/{classroom_id}/rtsp-sources/{source_id}",
        "DELETE /api/classrooms/{classroom_id}/rtsp-sources/{source_id}",
        # Classroom terminals: the scope matrix and tests/server/test_terminals.py (the
        # device's own routes take its credential, not an account).
        "POST /api/classrooms/{classroom_id}/terminal-codes",
        "DELETE /api/terminals/{terminal_id}",
        "POST /api/terminal/enroll",
        "POST /api/terminal/lessons/{lesson_id}/join",
        # Rubrics: the scope matrix and tests/library/test_rubrics.py.
        "POST /api/rubrics", "PUT /api/rubrics/{rubric_id}", "POST /api/rubrics/{rubric_id}/use",
    }  # fmt: skip
    schema = district.client.get("/openapi.json").json()
    routes = {
        f"{method.upper()} {path}"
        for path, item in schema["paths"].items()
        for method in item
        if path.startswith("/api") and method in {"post", "patch", "put", "delete"}
    }
    assert routes == covered
