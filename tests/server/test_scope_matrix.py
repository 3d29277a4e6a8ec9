"""The scope matrix: every HTTP route of the app x every role and scope x in or out of scope.

Generated from the app's route table: a route that declares no access rule, or that this
file has no case for, fails `test_every_route_declares_a_rule_and_has_a_case`. The rule each
route declares is pinned in RULES (so a loosened rule shows in review), and the matrix
checks that the running app enforces it: a resource of county B is, to every account of
county A, exactly as absent as one that does not exist (404), through every route.

The district: counties A and B; schools A1 (中心校) and A2 (教学点) in A, B1 in B. Actors:
the district admin, A's county admin, A1's school admin, a teacher of A1 (the teacher of
the home lessons), an inspector of county A, and nobody signed in.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from app_support import make_settings
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from shared_support import fresh_postgres_database

from server.accounts_cli import create_account
from server.api.access import Rule, route_rule
from server.app import create_app
from server.db.models import LibraryRecording
from server.scope import ScopeLevel

PASSWORD = "correct horse battery"

# actor -> (role, scope level); anonymous has none.
ACTORS: dict[str, tuple[str, ScopeLevel] | None] = {
    "anonymous": None,
    "district_admin": ("admin", ScopeLevel.DISTRICT),
    "county_admin": ("admin", ScopeLevel.COUNTY),
    "school_admin": ("admin", ScopeLevel.SCHOOL),
    "teacher": ("teacher", ScopeLevel.SCHOOL),
    "inspector": ("inspector", ScopeLevel.COUNTY),
}
PLACES = ("home", "away")  # county A (the actors' own) or county B


def _name() -> str:
    return uuid.uuid4().hex[:8]


@dataclass
class World:
    client: TestClient
    tokens: dict[str, str] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)
    cache: dict[str, Any] = field(default_factory=dict)
    years: Iterator[int] = field(default_factory=lambda: itertools.count(2100))

    def headers(self, actor: str) -> dict[str, str]:
        token = self.tokens.get(actor)
        return {"Authorization": f"Bearer {token}"} if token else {}

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.client.post(path, json=body, headers=self.headers("district_admin"))
        assert response.status_code in (200, 201), response.text
        return response.json()  # type: ignore[no-any-return]

    def county(self, place: str) -> str:
        return self.ids["county_a" if place == "home" else "county_b"]

    def school(self, place: str) -> str:
        """The place's main school (A1 or B1): the school admin's own at home."""
        return self.ids["school_a1" if place == "home" else "school_b1"]

    def new_school(self, place: str) -> str:
        body = {"name": _name(), "kind": "central", "county_id": self.county(place)}
        return str(self.post("/api/schools", body)["id"])

    def classroom(self, place: str, kind: str = "any") -> str:
        body = {"school_id": self.school(place), "name": _name(), "kind": kind}
        return str(self.post("/api/classrooms", body)["id"])

    def account(self, place: str, role: str = "teacher") -> str:
        body = {
            "username": _name(),
            "display_name": "x",
            "role": role,
            "password": PASSWORD,
            "school_id": self.school(place),
        }
        return str(self.post("/api/accounts", body)["id"])

    def teacher(self, place: str) -> str:
        return self.ids["teacher" if place == "home" else "teacher_b"]

    def lesson_body(self, place: str, teacher: str | None = None) -> dict[str, Any]:
        start = datetime.now(UTC) + timedelta(hours=1)
        return {
            "title": "口算乘法",
            "teacher_id": teacher or self.teacher(place),
            "lead_classroom_id": self.classroom(place, "lead"),
            "receiver_classroom_ids": [self.classroom(place, "receiving")],
            "scheduled_start": start.isoformat(),
            "scheduled_end": (start + timedelta(minutes=45)).isoformat(),
            "subject": "数学",
        }

    def lesson(self, place: str) -> dict[str, Any]:
        return self.post("/api/lessons", self.lesson_body(place))

    def shared_lesson(self, place: str) -> dict[str, Any]:
        key = f"lesson {place}"
        if key not in self.cache:
            self.cache[key] = self.lesson(place)
        return self.cache[key]  # type: ignore[no-any-return]

    def link(self, lesson: dict[str, Any]) -> dict[str, Any]:
        return self.post(
            f"/api/lessons/{lesson['id']}/links", {"classroom_id": lesson["lead"]["id"]}
        )

    def term(self) -> dict[str, Any]:
        """A fresh one-week term (Monday to Friday) in a year of its own."""
        year = next(self.years)
        monday = date(year, 3, 1) + timedelta(days=(7 - date(year, 3, 1).weekday()) % 7)
        body = {
            "name": f"term {year}",
            "first_day": monday.isoformat(),
            "last_day": (monday + timedelta(days=4)).isoformat(),
        }
        return self.post("/api/terms", body)

    def shared_term(self) -> dict[str, Any]:
        if "term" not in self.cache:
            self.cache["term"] = self.term()
        return self.cache["term"]  # type: ignore[no-any-return]

    def slot_body(self, place: str) -> dict[str, Any]:
        # A teacher and rooms of its own: slots of the shared term never clash.
        teacher = self.account(place)
        return {
            "weekday": 1,
            "period": 1,
            "starts": "08:00",
            "ends": "08:45",
            "lead_classroom_id": self.classroom(place, "lead"),
            "teacher_id": teacher,
            "receiver_classroom_ids": [self.classroom(place, "receiving")],
        }

    def slot(self, place: str) -> dict[str, Any]:
        term = self.shared_term()
        return self.post(f"/api/terms/{term['id']}/slots", self.slot_body(place))

    def shared_slot(self, place: str) -> dict[str, Any]:
        key = f"slot {place}"
        if key not in self.cache:
            self.cache[key] = self.slot(place)
        return self.cache[key]  # type: ignore[no-any-return]

    def slot_monday(self) -> str:
        return str(self.shared_term()["first_day"])

    def recording(self, place: str) -> str:
        """A catalogue entry of a lesson at `place`, taught by the place's teacher."""
        lesson = self.shared_lesson(place)
        state = self.client.app_state["app"]

        async def add() -> str:
            async with state.db.sessions.begin() as session:
                row = LibraryRecording(
                    lesson_id=lesson["id"],
                    directory=f"rec-{_name()}",
                    state="finished",
                    title="口算乘法",
                    teacher_id=self.teacher(place),
                    started_at=datetime.now(UTC),
                    duration_s=60.0,
                )
                session.add(row)
                await session.flush()
                return row.id

        return self.client.portal.call(add)  # type: ignore[union-attr]

    def shared_recording(self, place: str) -> str:
        key = f"recording {place}"
        if key not in self.cache:
            self.cache[key] = self.recording(place)
        return self.cache[key]  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    body: dict[str, Any] | None = None
    token: str | None = None  # replaces the actor's usual token (sign-out, password)
    # Sent without the account's token: the route's credential is another bearer (WHIP).
    bare: bool = False


Expected = int | tuple[int, str]
Build = Callable[[World, str, str], Call]  # (world, actor, place) -> call


@dataclass(frozen=True)
class Case:
    build: Build
    # What a caller the rule lets through gets (some routes refuse later for other reasons
    # that prove the rule let the call through: faults off, one node, workflow order).
    ok: Expected
    # The body names resources (a school, a roster) that must lie in the caller's scope.
    body_scoped: bool = False
    # The 404 code an out-of-scope resource answers.
    missing: str = ""


def _fresh_login(w: World, actor: str) -> str | None:
    """A session of a fresh account of the actor's kind and scope (password change and
    sign-out end sessions; the shared ones must survive)."""
    if ACTORS[actor] is None:
        return None
    role, level = ACTORS[actor]  # type: ignore[misc]
    username = _name()
    body: dict[str, Any] = {
        "username": username, "display_name": "x", "role": role, "password": PASSWORD,
    }  # fmt: skip
    if level is ScopeLevel.COUNTY:
        body["county_id"] = w.ids["county_a"]
    elif level is ScopeLevel.SCHOOL:
        body["school_id"] = w.ids["school_a1"]
    w.post("/api/accounts", body)
    response = w.client.post("/api/auth/login", json={"username": username, "password": PASSWORD})
    w.client.cookies.clear()
    return str(response.json()["token"])


def _lesson_call(method: str, suffix: str = "", body: Any = None, shared: bool = False) -> Build:
    def build(w: World, actor: str, place: str) -> Call:
        lesson = w.shared_lesson(place) if shared else w.lesson(place)
        return Call(method, f"/api/lessons/{lesson['id']}{suffix}", body)

    return build


def _link_call(method: str, suffix: str) -> Build:
    def build(w: World, actor: str, place: str) -> Call:
        lesson = w.lesson(place)
        link = w.link(lesson)
        return Call(method, f"/api/lessons/{lesson['id']}/links/{link['id']}{suffix}")

    return build


def _slot_call(method: str, suffix: str = "", body: Any = None, shared: bool = False) -> Build:
    def build(w: World, actor: str, place: str) -> Call:
        slot = w.shared_slot(place) if shared else w.slot(place)
        path = f"/api/slots/{slot['id']}{suffix}".replace("{day}", w.slot_monday())
        return Call(method, path, body)

    return build


def _rtsp_body() -> dict[str, Any]:
    # Disabled: the matrix checks who may attach a source, nothing is pulled.
    return {"url": "rtsp://cam:secret@192.0.2.7:554/live", "enabled": False}


def _rtsp_source(w: World, place: str) -> str:
    """The path of a fresh RTSP source on a fresh classroom at `place`."""
    room = w.classroom(place)
    source = w.post(f"/api/classrooms/{room}/rtsp-sources", _rtsp_body())
    return f"/api/classrooms/{room}/rtsp-sources/{source['id']}"


def _terminal(w: World, place: str) -> str:
    """A device enrolled in a classroom of `place`: its terminal id."""
    code = w.post(f"/api/classrooms/{w.classroom(place)}/terminal-codes", {})["code"]
    enrolled = w.client.post("/api/terminal/enroll", json={"code": code})
    assert enrolled.status_code == 201, enrolled.text
    return str(enrolled.json()["terminal"]["id"])


def _rubric_body() -> dict[str, Any]:
    return {"name": _name(), "scale_max": 10, "items": [{"label": "目标", "weight": 1}]}


def _rubric(w: World) -> dict[str, Any]:
    """A rubric of the district (made once by the district admin)."""
    if "rubric" not in w.cache:
        w.cache["rubric"] = w.post("/api/rubrics", _rubric_body())
    return w.cache["rubric"]  # type: ignore[no-any-return]


def _recording_call(method: str, suffix: str = "", body: Any = None) -> Build:
    def build(w: World, actor: str, place: str) -> Call:
        return Call(method, f"/api/library/{w.shared_recording(place)}{suffix}", body)

    return build


CASES: dict[str, Case] = {
    # Auth ---------------------------------------------------------------------------------
    "POST /api/auth/login": Case(
        lambda w, a, p: Call("POST", "/api/auth/login", {"username": "nobody", "password": "x"}),
        (401, "invalid_credentials"),
    ),
    "POST /api/auth/logout": Case(
        lambda w, a, p: Call("POST", "/api/auth/logout", token=_fresh_login(w, a)), 204
    ),
    "POST /api/auth/password": Case(
        lambda w, a, p: Call(
            "POST",
            "/api/auth/password",
            {"current_password": PASSWORD, "new_password": "another long one"},
            token=_fresh_login(w, a),
        ),
        204,
    ),
    "GET /api/auth/me": Case(lambda w, a, p: Call("GET", "/api/auth/me"), 200),
    # Counties -----------------------------------------------------------------------------
    "GET /api/counties": Case(lambda w, a, p: Call("GET", "/api/counties"), 200),
    "POST /api/counties": Case(
        lambda w, a, p: Call("POST", "/api/counties", {"name": _name()}), 201
    ),
    "GET /api/counties/{county_id}": Case(
        lambda w, a, p: Call("GET", f"/api/counties/{w.county(p)}"), 200, missing="county_not_found"
    ),
    "PATCH /api/counties/{county_id}": Case(
        lambda w, a, p: Call("PATCH", f"/api/counties/{w.county(p)}", {"code": "522700"}),
        200,
        missing="county_not_found",
    ),
    "DELETE /api/counties/{county_id}": Case(
        # A county with schools stays: 409 proves the rule let the district admin through.
        lambda w, a, p: Call("DELETE", f"/api/counties/{w.county(p)}"),
        (409, "county_in_use"),
        missing="county_not_found",
    ),
    # Schools ------------------------------------------------------------------------------
    "GET /api/schools": Case(lambda w, a, p: Call("GET", "/api/schools"), 200),
    "POST /api/schools": Case(
        lambda w, a, p: Call(
            "POST",
            "/api/schools",
            {"name": _name(), "kind": "teaching_point", "county_id": w.county(p)},
        ),
        201,
        body_scoped=True,
        missing="county_not_found",
    ),
    "GET /api/schools/{school_id}": Case(
        lambda w, a, p: Call("GET", f"/api/schools/{w.school(p)}"), 200, missing="school_not_found"
    ),
    "PATCH /api/schools/{school_id}": Case(
        lambda w, a, p: Call("PATCH", f"/api/schools/{w.school(p)}", {"kind": "central"}),
        200,
        missing="school_not_found",
    ),
    "DELETE /api/schools/{school_id}": Case(
        lambda w, a, p: Call("DELETE", f"/api/schools/{w.new_school(p)}"),
        204,
        missing="school_not_found",
    ),
    # Classrooms ---------------------------------------------------------------------------
    "GET /api/classrooms": Case(lambda w, a, p: Call("GET", "/api/classrooms"), 200),
    "POST /api/classrooms": Case(
        lambda w, a, p: Call(
            "POST", "/api/classrooms", {"school_id": w.school(p), "name": _name()}
        ),
        201,
        body_scoped=True,
        missing="school_not_found",
    ),
    "GET /api/classrooms/{classroom_id}": Case(
        lambda w, a, p: Call("GET", f"/api/classrooms/{w.classroom(p)}"),
        200,
        missing="classroom_not_found",
    ),
    "PATCH /api/classrooms/{classroom_id}": Case(
        lambda w, a, p: Call("PATCH", f"/api/classrooms/{w.classroom(p)}", {"kind": "receiving"}),
        200,
        missing="classroom_not_found",
    ),
    "DELETE /api/classrooms/{classroom_id}": Case(
        lambda w, a, p: Call("DELETE", f"/api/classrooms/{w.classroom(p)}"),
        204,
        missing="classroom_not_found",
    ),
    # Accounts -----------------------------------------------------------------------------
    "GET /api/accounts": Case(lambda w, a, p: Call("GET", "/api/accounts"), 200),
    "POST /api/accounts": Case(
        lambda w, a, p: Call(
            "POST",
            "/api/accounts",
            {
                "username": _name(),
                "display_name": "x",
                "role": "inspector",
                "password": PASSWORD,
                "school_id": w.school(p),
            },
        ),
        201,
        body_scoped=True,
        missing="school_not_found",
    ),
    "GET /api/accounts/{account_id}": Case(
        lambda w, a, p: Call("GET", f"/api/accounts/{w.account(p)}"),
        200,
        missing="account_not_found",
    ),
    "PATCH /api/accounts/{account_id}": Case(
        lambda w, a, p: Call("PATCH", f"/api/accounts/{w.account(p)}", {"display_name": "y"}),
        200,
        missing="account_not_found",
    ),
    "DELETE /api/accounts/{account_id}": Case(
        lambda w, a, p: Call("DELETE", f"/api/accounts/{w.account(p)}"),
        204,
        missing="account_not_found",
    ),
    # Lessons and links --------------------------------------------------------------------
    "GET /api/lessons": Case(lambda w, a, p: Call("GET", "/api/lessons"), 200),
    "POST /api/lessons": Case(
        lambda w, a, p: Call(
            # A teacher schedules only his own lessons (else 403 before any scope check).
            "POST",
            "/api/lessons",
            w.lesson_body(p, w.ids["teacher"] if a == "teacher" else None),
        ),
        201,
        body_scoped=True,
        missing="classroom_not_found",
    ),
    "GET /api/lessons/{lesson_id}": Case(
        _lesson_call("GET", shared=True), 200, missing="lesson_not_found"
    ),
    "PATCH /api/lessons/{lesson_id}": Case(
        _lesson_call("PATCH", body={"title": "新标题"}), 200, missing="lesson_not_found"
    ),
    "DELETE /api/lessons/{lesson_id}": Case(
        _lesson_call("DELETE"), 204, missing="lesson_not_found"
    ),
    "POST /api/lessons/{lesson_id}/start": Case(
        _lesson_call("POST", "/start"), 200, missing="lesson_not_found"
    ),
    "POST /api/lessons/{lesson_id}/end": Case(
        _lesson_call("POST", "/end"), 200, missing="lesson_not_found"
    ),
    "GET /api/lessons/{lesson_id}/links": Case(
        _lesson_call("GET", "/links", shared=True), 200, missing="lesson_not_found"
    ),
    "POST /api/lessons/{lesson_id}/links": Case(
        lambda w, a, p: (
            (lesson := w.lesson(p))
            and Call(
                "POST", f"/api/lessons/{lesson['id']}/links", {"classroom_id": lesson["lead"]["id"]}
            )
        ),
        201,
        missing="lesson_not_found",
    ),
    "POST /api/lessons/{lesson_id}/links/roster": Case(
        _lesson_call("POST", "/links/roster", body={}), 201, missing="lesson_not_found"
    ),
    "POST /api/lessons/{lesson_id}/links/{link_id}/revoke": Case(
        _link_call("POST", "/revoke"), 200, missing="lesson_not_found"
    ),
    "DELETE /api/lessons/{lesson_id}/links/{link_id}": Case(
        _link_call("DELETE", ""), 204, missing="lesson_not_found"
    ),
    "GET /api/lessons/{lesson_id}/attendance": Case(
        _lesson_call("GET", "/attendance", shared=True), 200, missing="lesson_not_found"
    ),
    "POST /api/lessons/{lesson_id}/patrol-token": Case(
        _lesson_call("POST", "/patrol-token", shared=True), 200, missing="lesson_not_found"
    ),
    "POST /api/join/{code}": Case(
        lambda w, a, p: Call("POST", f"/api/join/{w.link(w.shared_lesson(p))['code']}"), 200
    ),
    "GET /api/join/{code}/outcome": Case(
        lambda w, a, p: Call("GET", f"/api/join/{w.link(w.shared_lesson(p))['code']}/outcome"),
        200,
    ),
    "GET /api/join/{code}/recording-space": Case(
        lambda w, a, p: Call(
            "GET", f"/api/join/{w.link(w.shared_lesson(p))['code']}/recording-space"
        ),
        200,
    ),
    # Fault drills are off here: 409 faults_disabled proves the rule let the admin through.
    "GET /api/lessons/{lesson_id}/faults": Case(
        _lesson_call("GET", "/faults", shared=True),
        (409, "faults_disabled"),
        missing="lesson_not_found",
    ),
    "PUT /api/lessons/{lesson_id}/faults/{peer_id}": Case(
        _lesson_call("PUT", "/faults/p1", body={}, shared=True),
        (409, "faults_disabled"),
        missing="lesson_not_found",
    ),
    "DELETE /api/lessons/{lesson_id}/faults/{peer_id}": Case(
        _lesson_call("DELETE", "/faults/p1", shared=True),
        (409, "faults_disabled"),
        missing="lesson_not_found",
    ),
    # Library ------------------------------------------------------------------------------
    "GET /api/library": Case(lambda w, a, p: Call("GET", "/api/library"), 200),
    "GET /api/library/exemplary/counts": Case(
        lambda w, a, p: Call("GET", "/api/library/exemplary/counts"), 200
    ),
    "GET /api/library/recording-status/{lesson_id}": Case(
        lambda w, a, p: Call("GET", f"/api/library/recording-status/{w.shared_lesson(p)['id']}"),
        200,
        missing="lesson_not_found",
    ),
    "GET /api/library/{recording_id}": Case(_recording_call("GET"), 200),
    "GET /api/library/{recording_id}/files/{name:path}": Case(
        _recording_call("GET", "/files/none.webm"), (404, "file_not_found")
    ),
    "POST /api/library/{recording_id}/evaluations": Case(
        _recording_call("POST", "/evaluations", {"t_s": 1, "text": "好"}), 201
    ),
    "POST /api/library/{recording_id}/nominate": Case(
        _recording_call("POST", "/nominate", {}),
        (409, "rendition_not_ready"),
        missing="recording_not_found",
    ),
    "POST /api/library/{recording_id}/review": Case(
        _recording_call("POST", "/review", {"decision": "returned", "scores": {}, "comment": ""}),
        422,  # the rubric needs every score: checked once the rule let the reviewer in
        missing="recording_not_found",
    ),
    # Terms, slots, exceptions, timetable sheets -------------------------------------------
    "GET /api/terms": Case(lambda w, a, p: Call("GET", "/api/terms"), 200),
    "POST /api/terms": Case(
        lambda w, a, p: (
            (year := next(w.years))
            and Call(
                "POST",
                "/api/terms",
                {"name": f"t{year}", "first_day": f"{year}-03-02", "last_day": f"{year}-03-06"},
            )
        ),
        201,
    ),
    "GET /api/terms/{term_id}": Case(
        lambda w, a, p: Call("GET", f"/api/terms/{w.shared_term()['id']}"), 200
    ),
    "PATCH /api/terms/{term_id}": Case(
        lambda w, a, p: Call("PATCH", f"/api/terms/{w.term()['id']}", {"name": _name()}), 200
    ),
    "DELETE /api/terms/{term_id}": Case(
        lambda w, a, p: Call("DELETE", f"/api/terms/{w.term()['id']}"), 204
    ),
    "POST /api/terms/{term_id}/generate": Case(
        lambda w, a, p: Call("POST", f"/api/terms/{w.term()['id']}/generate"), 200
    ),
    "GET /api/terms/{term_id}/slots": Case(
        lambda w, a, p: Call("GET", f"/api/terms/{w.shared_term()['id']}/slots"), 200
    ),
    "POST /api/terms/{term_id}/slots": Case(
        lambda w, a, p: Call("POST", f"/api/terms/{w.shared_term()['id']}/slots", w.slot_body(p)),
        201,
        body_scoped=True,
        missing="classroom_not_found",
    ),
    "GET /api/slots/{slot_id}": Case(_slot_call("GET", shared=True), 200, missing="slot_not_found"),
    "PATCH /api/slots/{slot_id}": Case(
        _slot_call("PATCH", body={"title": "新"}), 200, missing="slot_not_found"
    ),
    "DELETE /api/slots/{slot_id}": Case(_slot_call("DELETE"), 204, missing="slot_not_found"),
    "GET /api/slots/{slot_id}/exceptions": Case(
        _slot_call("GET", "/exceptions", shared=True), 200, missing="slot_not_found"
    ),
    "PUT /api/slots/{slot_id}/exceptions/{day}": Case(
        _slot_call("PUT", "/exceptions/{day}", {"action": "cancel"}), 200, missing="slot_not_found"
    ),
    "DELETE /api/slots/{slot_id}/exceptions/{day}": Case(
        _slot_call("DELETE", "/exceptions/{day}"),
        (404, "exception_not_found"),  # a fresh slot has none: the rule let the call through
        missing="slot_not_found",
    ),
    "GET /api/terms/{term_id}/timetable.xlsx": Case(
        lambda w, a, p: Call("GET", f"/api/terms/{w.shared_term()['id']}/timetable.xlsx"), 200
    ),
    "GET /api/terms/{term_id}/timetable.csv": Case(
        lambda w, a, p: Call("GET", f"/api/terms/{w.shared_term()['id']}/timetable.csv"), 200
    ),
    "POST /api/terms/{term_id}/timetable": Case(
        lambda w, a, p: Call("POST", f"/api/terms/{w.shared_term()['id']}/timetable"),
        422,  # no file attached: validated once the rule let the district admin in
    ),
    # Rubrics: one for the whole district; everyone reads, district admins define.
    "GET /api/rubrics": Case(lambda w, a, p: Call("GET", "/api/rubrics"), 200),
    "GET /api/rubrics/current": Case(lambda w, a, p: Call("GET", "/api/rubrics/current"), 200),
    "GET /api/rubrics/versions/{version_id}": Case(
        lambda w, a, p: Call("GET", f"/api/rubrics/versions/{_rubric(w)['version_id']}"), 200
    ),
    # A patrol opened from its link reads the rubric with the link (nobody signed in).
    "GET /api/rubrics/for-link/{code}": Case(
        lambda w, a, p: Call("GET", "/api/rubrics/for-link/abc"), (404, "link_not_found")
    ),
    "POST /api/rubrics": Case(lambda w, a, p: Call("POST", "/api/rubrics", _rubric_body()), 201),
    "PUT /api/rubrics/{rubric_id}": Case(
        lambda w, a, p: Call("PUT", f"/api/rubrics/{_rubric(w)['rubric_id']}", _rubric_body()),
        200,
    ),
    "POST /api/rubrics/{rubric_id}/use": Case(
        lambda w, a, p: Call("POST", f"/api/rubrics/{_rubric(w)['rubric_id']}/use"), 200
    ),
    # 督导 reports (tests/server/test_reports.py checks a county sees nothing of another).
    # The patrol wall: live lessons in the inspector's scope (tests/server/test_patrol_wall.py).
    "GET /api/patrol/lessons": Case(lambda w, a, p: Call("GET", "/api/patrol/lessons"), 200),
    "GET /api/reports/summary": Case(lambda w, a, p: Call("GET", "/api/reports/summary"), 200),
    "GET /api/reports/lessons": Case(lambda w, a, p: Call("GET", "/api/reports/lessons"), 200),
    "GET /api/reports/summary.xlsx": Case(
        lambda w, a, p: Call("GET", "/api/reports/summary.xlsx"), 200
    ),
    "GET /api/reports/summary.csv": Case(
        lambda w, a, p: Call("GET", "/api/reports/summary.csv"), 200
    ),
    # WHIP ingest: credentials per classroom (admins), the WHIP endpoint (its bearer).
    "GET /api/classrooms/{classroom_id}/whip-credentials": Case(
        lambda w, a, p: Call("GET", f"/api/classrooms/{w.classroom(p)}/whip-credentials"),
        200,
        missing="classroom_not_found",
    ),
    "POST /api/classrooms/{classroom_id}/whip-credentials": Case(
        lambda w, a, p: Call(
            "POST", f"/api/classrooms/{w.classroom(p)}/whip-credentials", {"name": "编码器"}
        ),
        201,
        missing="classroom_not_found",
    ),
    "DELETE /api/whip-credentials/{credential_id}": Case(
        lambda w, a, p: Call(
            "DELETE",
            "/api/whip-credentials/"
            + w.post(f"/api/classrooms/{w.classroom(p)}/whip-credentials", {"name": "x"})["id"],
        ),
        204,
        missing="whip_credential_not_found",
    ),
    # Classroom terminals: codes and the list per classroom (admins); the device's own routes
    # (its code, then its credential, is the credential).
    "POST /api/classrooms/{classroom_id}/terminal-codes": Case(
        lambda w, a, p: Call("POST", f"/api/classrooms/{w.classroom(p)}/terminal-codes", {}),
        201,
        missing="classroom_not_found",
    ),
    "GET /api/classrooms/{classroom_id}/terminals": Case(
        lambda w, a, p: Call("GET", f"/api/classrooms/{w.classroom(p)}/terminals"),
        200,
        missing="classroom_not_found",
    ),
    "DELETE /api/terminals/{terminal_id}": Case(
        lambda w, a, p: Call("DELETE", f"/api/terminals/{_terminal(w, p)}"),
        204,
        missing="terminal_not_found",
    ),
    "POST /api/terminal/enroll": Case(
        lambda w, a, p: Call("POST", "/api/terminal/enroll", {"code": "2345-6789"}, bare=True),
        (404, "enroll_code_unknown"),
    ),
    "GET /api/terminal/today": Case(
        lambda w, a, p: Call("GET", "/api/terminal/today", bare=True),
        (401, "terminal_unauthorized"),
    ),
    "POST /api/terminal/lessons/{lesson_id}/join": Case(
        lambda w, a, p: Call("POST", "/api/terminal/lessons/x/join", bare=True),
        (401, "terminal_unauthorized"),
    ),
    # RTSP sources (a 录播 host as a classroom's camera): admins whose scope holds the classroom.
    "GET /api/classrooms/{classroom_id}/rtsp-sources": Case(
        lambda w, a, p: Call("GET", f"/api/classrooms/{w.classroom(p)}/rtsp-sources"),
        200,
        missing="classroom_not_found",
    ),
    "POST /api/classrooms/{classroom_id}/rtsp-sources": Case(
        lambda w, a, p: Call(
            "POST", f"/api/classrooms/{w.classroom(p)}/rtsp-sources", _rtsp_body()
        ),
        201,
        missing="classroom_not_found",
    ),
    "PATCH /api/classrooms/{classroom_id}/rtsp-sources/{source_id}": Case(
        lambda w, a, p: Call("PATCH", _rtsp_source(w, p), {"transport": "udp"}),
        200,
        missing="classroom_not_found",
    ),
    "DELETE /api/classrooms/{classroom_id}/rtsp-sources/{source_id}": Case(
        lambda w, a, p: Call("DELETE", _rtsp_source(w, p)),
        204,
        missing="classroom_not_found",
    ),
    "OPTIONS /whip/{classroom_id}": Case(lambda w, a, p: Call("OPTIONS", "/whip/x"), 204),
    "POST /whip/{classroom_id}": Case(
        lambda w, a, p: Call("POST", "/whip/x", bare=True), (401, "whip_unauthorized")
    ),
    "DELETE /whip/{classroom_id}/{resource_id}": Case(
        lambda w, a, p: Call("DELETE", "/whip/x/y", bare=True), (401, "whip_unauthorized")
    ),
    "PATCH /whip/{classroom_id}/{resource_id}": Case(
        lambda w, a, p: Call("PATCH", "/whip/x/y"), 405
    ),
    # One node: 404 cluster_disabled proves the rule let the district admin through.
    "GET /api/cluster": Case(
        lambda w, a, p: Call("GET", "/api/cluster"), (404, "cluster_disabled")
    ),
    "POST /api/cluster/drain": Case(
        lambda w, a, p: Call("POST", "/api/cluster/drain"), (404, "cluster_disabled")
    ),
    "POST /api/cluster/undrain": Case(
        lambda w, a, p: Call("POST", "/api/cluster/undrain"), (404, "cluster_disabled")
    ),
    # Outside /api ----------------------------------------------------------------------------
    "POST /api/netcheck/upload": Case(lambda w, a, p: Call("POST", "/api/netcheck/upload"), 204),
    "GET /api/tls": Case(lambda w, a, p: Call("GET", "/api/tls"), 200),
    "GET /healthz": Case(lambda w, a, p: Call("GET", "/healthz"), 200),
    "GET /readyz": Case(lambda w, a, p: Call("GET", "/readyz"), 200),
    "GET /metrics": Case(lambda w, a, p: Call("GET", "/metrics"), 200),
    "GET /join/{code}": Case(lambda w, a, p: Call("GET", "/join/abc"), 200),
    "GET /ca.crt": Case(lambda w, a, p: Call("GET", "/ca.crt"), (404, "no_local_ca")),
}

# The rule each route declares, as a short sentence: roles, the narrowest scope admitted,
# and the resource its path names ("read": in or received in the scope; "manage": owned by
# it). "open" routes need no account (their reason is in the code).
RULES: dict[str, str] = {
    "POST /api/auth/login": "open",
    "POST /api/auth/logout": "everyone",
    "POST /api/auth/password": "everyone",
    "GET /api/auth/me": "everyone",
    "GET /api/counties": "everyone",
    "POST /api/counties": "admin district",
    "GET /api/counties/{county_id}": "everyone read county",
    "PATCH /api/counties/{county_id}": "admin district manage county",
    "DELETE /api/counties/{county_id}": "admin district manage county",
    "GET /api/schools": "everyone",
    "POST /api/schools": "admin county",
    "GET /api/schools/{school_id}": "everyone read school",
    "PATCH /api/schools/{school_id}": "admin manage school",
    "DELETE /api/schools/{school_id}": "admin county manage school",
    "GET /api/classrooms": "everyone",
    "POST /api/classrooms": "admin",
    "GET /api/classrooms/{classroom_id}": "everyone read classroom",
    "PATCH /api/classrooms/{classroom_id}": "admin manage classroom",
    "DELETE /api/classrooms/{classroom_id}": "admin manage classroom",
    "GET /api/accounts": "everyone",
    "POST /api/accounts": "admin",
    "GET /api/accounts/{account_id}": "everyone read account",
    "PATCH /api/accounts/{account_id}": "admin manage account",
    "DELETE /api/accounts/{account_id}": "admin manage account",
    "GET /api/lessons": "everyone",
    "POST /api/lessons": "admin,teacher",
    "GET /api/lessons/{lesson_id}": "everyone read lesson",
    "PATCH /api/lessons/{lesson_id}": "admin,teacher manage lesson",
    "DELETE /api/lessons/{lesson_id}": "admin,teacher manage lesson",
    "POST /api/lessons/{lesson_id}/start": "admin,teacher manage lesson",
    "POST /api/lessons/{lesson_id}/end": "admin,teacher manage lesson",
    "GET /api/lessons/{lesson_id}/links": "admin,teacher manage lesson",
    "POST /api/lessons/{lesson_id}/links": "admin,teacher manage lesson",
    "POST /api/lessons/{lesson_id}/links/roster": "admin,teacher manage lesson",
    "POST /api/lessons/{lesson_id}/links/{link_id}/revoke": "admin,teacher manage lesson",
    "DELETE /api/lessons/{lesson_id}/links/{link_id}": "admin,teacher manage lesson",
    "POST /api/lessons/{lesson_id}/patrol-token": "inspector read lesson",
    "GET /api/lessons/{lesson_id}/attendance": "everyone read lesson",
    "POST /api/join/{code}": "open",
    "GET /api/join/{code}/outcome": "open",
    "GET /api/join/{code}/recording-space": "open",
    "GET /api/lessons/{lesson_id}/faults": "admin manage lesson",
    "PUT /api/lessons/{lesson_id}/faults/{peer_id}": "admin manage lesson",
    "DELETE /api/lessons/{lesson_id}/faults/{peer_id}": "admin manage lesson",
    "GET /api/library": "everyone",
    "GET /api/library/exemplary/counts": "everyone",
    "GET /api/library/recording-status/{lesson_id}": "everyone read lesson",
    "GET /api/library/{recording_id}": "everyone",
    "GET /api/library/{recording_id}/files/{name:path}": "everyone",
    "POST /api/library/{recording_id}/evaluations": "inspector,teacher",
    "POST /api/library/{recording_id}/nominate": "admin,teacher manage recording",
    "POST /api/library/{recording_id}/review": "admin,inspector read recording",
    "GET /api/rubrics": "everyone",
    "GET /api/rubrics/current": "everyone",
    "GET /api/rubrics/versions/{version_id}": "everyone",
    "GET /api/rubrics/for-link/{code}": "open",
    "POST /api/rubrics": "admin district",
    "PUT /api/rubrics/{rubric_id}": "admin district",
    "POST /api/rubrics/{rubric_id}/use": "admin district",
    "GET /api/terms": "everyone",
    "POST /api/terms": "admin district",
    "GET /api/terms/{term_id}": "everyone",
    "PATCH /api/terms/{term_id}": "admin district",
    "DELETE /api/terms/{term_id}": "admin district",
    "POST /api/terms/{term_id}/generate": "admin district",
    "GET /api/terms/{term_id}/slots": "everyone",
    "POST /api/terms/{term_id}/slots": "admin",
    "GET /api/slots/{slot_id}": "everyone read slot",
    "PATCH /api/slots/{slot_id}": "admin manage slot",
    "DELETE /api/slots/{slot_id}": "admin manage slot",
    "GET /api/slots/{slot_id}/exceptions": "everyone read slot",
    "PUT /api/slots/{slot_id}/exceptions/{day}": "admin manage slot",
    "DELETE /api/slots/{slot_id}/exceptions/{day}": "admin manage slot",
    "GET /api/terms/{term_id}/timetable.xlsx": "everyone",
    "GET /api/terms/{term_id}/timetable.csv": "everyone",
    "POST /api/terms/{term_id}/timetable": "admin district",
    "GET /api/classrooms/{classroom_id}/whip-credentials": "admin manage classroom",
    "POST /api/classrooms/{classroom_id}/whip-credentials": "admin manage classroom",
    "DELETE /api/whip-credentials/{credential_id}": "admin manage whip_credential",
    "POST /api/classrooms/{classroom_id}/terminal-codes": "admin manage classroom",
    "GET /api/classrooms/{classroom_id}/terminals": "admin manage classroom",
    "DELETE /api/terminals/{terminal_id}": "admin manage terminal",
    "POST /api/terminal/enroll": "open",
    "GET /api/terminal/today": "open",
    "POST /api/terminal/lessons/{lesson_id}/join": "open",
    "GET /api/classrooms/{classroom_id}/rtsp-sources": "admin manage classroom",
    "POST /api/classrooms/{classroom_id}/rtsp-sources": "admin manage classroom",
    "PATCH /api/classrooms/{classroom_id}/rtsp-sources/{source_id}": "admin manage classroom",
    "DELETE /api/classrooms/{classroom_id}/rtsp-sources/{source_id}": "admin manage classroom",
    "OPTIONS /whip/{classroom_id}": "open",
    "POST /whip/{classroom_id}": "open",
    "DELETE /whip/{classroom_id}/{resource_id}": "open",
    "PATCH /whip/{classroom_id}/{resource_id}": "open",
    "GET /api/patrol/lessons": "inspector",
    "GET /api/reports/summary": "admin,inspector",
    "GET /api/reports/lessons": "admin,inspector",
    "GET /api/reports/summary.xlsx": "admin,inspector",
    "GET /api/reports/summary.csv": "admin,inspector",
    "GET /api/cluster": "admin district",
    "POST /api/cluster/drain": "admin district",
    "POST /api/cluster/undrain": "admin district",
    "POST /api/netcheck/upload": "open",
    "GET /api/tls": "open",
    "GET /healthz": "open",
    "GET /readyz": "open",
    "GET /metrics": "open",
    "GET /join/{code}": "open",
    "GET /ca.crt": "open",
}


def describe(rule: Rule) -> str:
    if rule.roles is None:
        return "open"
    roles = "everyone" if len(rule.roles) == 3 else ",".join(sorted(r.value for r in rule.roles))
    parts = [roles]
    if rule.level is not ScopeLevel.SCHOOL:
        parts.append(rule.level.value)
    if rule.resource is not None:
        parts.append(f"{'manage' if rule.manage else 'read'} {rule.resource}")
    return " ".join(parts)


def app_routes(client: TestClient) -> dict[str, Any]:
    """Every HTTP route of the app, 'METHOD path' -> route (HEAD left out): the app's own
    and, for included routers, each route as served (prefix and dependencies applied)."""
    routes: dict[str, Any] = {}
    for route in client.app.routes:  # type: ignore[attr-defined]
        served = (
            [route]
            if isinstance(route, APIRoute)
            else list(getattr(route, "effective_route_contexts", list)())
        )
        for one in served:
            for method in set(getattr(one, "methods", None) or ()) - {"HEAD"}:
                routes[f"{method} {one.path}"] = one
    return routes


def expected(rule: Rule, case: Case, actor: str, place: str) -> Expected:
    if rule.roles is None:
        return case.ok
    who = ACTORS[actor]
    if who is None:
        return (401, "not_authenticated")
    role, level = who
    if role not in {r.value for r in rule.roles}:
        return (403, "forbidden")
    if level.width < rule.level.width:
        return (403, "forbidden")
    scoped = rule.resource is not None or case.body_scoped
    if place == "away" and scoped and level is not ScopeLevel.DISTRICT:
        return (404, case.missing)
    return case.ok


@contextmanager
def database_url_for(backend: str, data_dir: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{(data_dir / 'tongke.db').resolve()}"
        return
    with fresh_postgres_database() as url:
        yield url


@dataclass
class Matrix:
    world: World
    routes: dict[str, Any]


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def matrix(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Matrix]:
    import asyncio

    data_dir = tmp_path_factory.mktemp("scope")
    with database_url_for(request.param, data_dir) as url:
        settings = make_settings(data_dir, url)
        asyncio.run(create_account(settings, "district-admin", PASSWORD, "州管理员"))
        with TestClient(create_app(settings)) as client:
            w = World(client)
            w.tokens["district_admin"] = _login(client, "district-admin")
            w.ids["county_a"] = w.post("/api/counties", {"name": "甲县"})["id"]
            w.ids["county_b"] = w.post("/api/counties", {"name": "乙县"})["id"]
            for key, county, kind in (
                ("school_a1", "county_a", "central"),
                ("school_a2", "county_a", "teaching_point"),
                ("school_b1", "county_b", "central"),
            ):
                body = {"name": key, "kind": kind, "county_id": w.ids[county]}
                w.ids[key] = w.post("/api/schools", body)["id"]
            for actor, role, home in (
                ("county_admin", "admin", {"county_id": w.ids["county_a"]}),
                ("school_admin", "admin", {"school_id": w.ids["school_a1"]}),
                ("teacher", "teacher", {"school_id": w.ids["school_a1"]}),
                ("inspector", "inspector", {"county_id": w.ids["county_a"]}),
                ("teacher_b", "teacher", {"school_id": w.ids["school_b1"]}),
            ):
                body = {"username": actor.replace("_", "-"), "display_name": actor,
                        "role": role, "password": PASSWORD, **home}  # fmt: skip
                w.ids[actor] = w.post("/api/accounts", body)["id"]
                w.tokens[actor] = _login(client, actor.replace("_", "-"))
            yield Matrix(w, app_routes(client))


def _login(client: TestClient, username: str) -> str:
    response = client.post("/api/auth/login", json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    client.cookies.clear()
    return str(response.json()["token"])


def test_every_route_declares_a_rule_and_has_a_case(matrix: Matrix) -> None:
    routes = matrix.routes
    undeclared = sorted(name for name, route in routes.items() if route_rule(route) is None)
    assert undeclared == [], "routes without an access rule (server/api/access.py)"
    assert sorted(set(routes) - set(CASES)) == [], "routes without a case in this matrix"
    assert sorted(set(CASES) - set(routes)) == [], "cases for routes that no longer exist"
    declared = {name: describe(route_rule(route)) for name, route in routes.items()}  # type: ignore[arg-type]
    assert declared == RULES


MATRIX = [(name, actor, place) for name in CASES for actor in ACTORS for place in PLACES]


@pytest.mark.parametrize(("name", "actor", "place"), MATRIX)
def test_route_answers_each_actor_in_and_out_of_scope(
    matrix: Matrix, name: str, actor: str, place: str
) -> None:
    route = matrix.routes.get(name)
    if route is None:
        pytest.fail(f"{name} is not a route of the app any more")
    rule = route_rule(route)
    assert rule is not None, f"{name} declares no access rule"
    case = CASES[name]
    scoped = rule.resource is not None or case.body_scoped
    if place == "away" and not scoped:
        pytest.skip("the route names no resource: in or out of scope is the same call")
    call = case.build(matrix.world, actor, place)
    headers = (
        {}
        if call.bare
        else matrix.world.headers(actor)
        if call.token is None
        else {"Authorization": f"Bearer {call.token}"}
    )
    response = matrix.world.client.request(call.method, call.path, json=call.body, headers=headers)
    want = expected(rule, case, actor, place)
    status, code = want if isinstance(want, tuple) else (want, None)
    assert response.status_code == status, response.text
    if code:
        assert response.json()["error"]["code"] == code
