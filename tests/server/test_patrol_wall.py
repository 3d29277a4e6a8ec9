"""The patrol wall's list (GET /api/patrol/lessons), SQLite and PostgreSQL: live lessons in
the inspector's scope only (led from or received in it), filters by county, school and
subject with their facets, pages, and each tile's counts from real signaling: classrooms
present out of the roster, recording, and the classroom on stage."""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from app_support import make_settings
from starlette.testclient import WebSocketTestSession


def _server_conftest() -> Any:
    """tests/server/conftest.py by path (a bare `from conftest import` may find another
    folder's conftest when several folders run together)."""
    spec = importlib.util.spec_from_file_location(
        "server_conftest_for_wall", Path(__file__).with_name("conftest.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


conftest = _server_conftest()
PASSWORD = conftest.PASSWORD


@pytest.fixture(params=conftest.BACKENDS)
def district(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    with conftest.database_url_for(request.param, tmp_path) as url:
        with conftest.district_app(make_settings(tmp_path, url)) as value:
            yield value


def reply(ws: WebSocketTestSession, *wanted: str) -> dict[str, Any]:
    while True:
        message = json.loads(ws.receive_text())
        if message["type"] in wanted:
            return message


def connect(d: Any, stack: ExitStack, lesson: dict[str, Any], room: str) -> WebSocketTestSession:
    """A classroom of `lesson` joined over the real WebSocket."""
    code = d.link(lesson, room)["code"]
    token = d.client.post(f"/api/join/{code}").json()["token"]
    ws = stack.enter_context(d.client.websocket_connect("/ws"))
    ws.send_json({"type": "join", "id": "j", "version": 1, "token": token})
    assert reply(ws, "joined", "error")["type"] == "joined"
    return ws


def send(ws: WebSocketTestSession, message: dict[str, Any]) -> None:
    ws.send_json({"id": "x", **message})
    answer = reply(ws, "ok", "error")
    assert answer["type"] == "ok", answer


def wall(d: Any, token: str, **query: Any) -> Any:
    return d.client.get("/api/patrol/lessons", params=query, headers=d.bearer(token))


def eventually(check: Any, timeout_s: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def test_the_wall_lists_live_lessons_in_scope_with_filters_pages_and_counts(district: Any) -> None:
    d = district
    county_a = d.admin_post("/api/counties", {"name": "甲县"})["id"]
    county_b = d.admin_post("/api/counties", {"name": "乙县"})["id"]

    def school(name: str, county: str, kind: str = "central") -> str:
        return str(
            d.admin_post("/api/schools", {"name": name, "kind": kind, "county_id": county})["id"]
        )

    a1, a2, b1 = (
        school("甲中心校", county_a),
        school("甲教学点", county_a, "teaching_point"),
        school("乙中心校", county_b),
    )
    start = datetime.now(UTC) + timedelta(hours=1)

    def lesson(title: str, lead_school: str, receiving: list[str], subject: str) -> dict[str, Any]:
        return d.admin_post(
            "/api/lessons",
            {
                "title": title,
                "teacher_id": d.ids["teacher"],
                "lead_classroom_id": d.classroom(lead_school, "lead"),
                "receiver_classroom_ids": [d.classroom(s, "receiving") for s in receiving],
                "scheduled_start": start.isoformat(),
                "scheduled_end": (start + timedelta(minutes=45)).isoformat(),
                "subject": subject,
            },
        )

    # Led in A; led in B and received in A; B only; A but never started.
    math = lesson("分数", a1, [a2, a2], "数学")
    chinese = lesson("古诗", b1, [a2], "语文")
    away = lesson("英语对话", b1, [b1], "英语")
    lesson("未开始", a1, [a2], "数学")
    inspector_a = d.admin_post(
        "/api/accounts",
        {"username": "inspector-a", "display_name": "甲县督导", "role": "inspector",
         "password": PASSWORD, "county_id": county_a},
    )  # fmt: skip
    token_a = conftest.login(d.client, "inspector-a", PASSWORD)
    token_all = d.tokens["inspector"]  # a district inspector

    with ExitStack() as stack:
        leads = {}
        for one in (math, chinese, away):
            leads[one["id"]] = ws = connect(d, stack, one, one["lead"]["id"])
            send(ws, {"type": "start_lesson"})
        first_room = math["receivers"][0]["id"]
        connect(d, stack, math, first_room)
        send(leads[math["id"]], {"type": "set_stage", "classroom_id": first_room})
        send(leads[chinese["id"]], {"type": "set_recording", "on": True})

        # County A's inspector: the lesson led in A and the one received in A, not B's own.
        def tiles_a() -> dict[str, Any]:
            answer = wall(d, token_a)
            assert answer.status_code == 200, answer.text
            return {t["id"]: t for t in answer.json()["lessons"]}

        tiles = eventually(lambda: (t := tiles_a()) and t[math["id"]]["present"] == 2 and t)
        assert set(tiles) == {math["id"], chinese["id"]}
        m = tiles[math["id"]]
        assert (m["present"], m["expected"]) == (2, 3)
        assert (m["stage_classroom_id"], m["stage_classroom"]) == (
            first_room,
            math["receivers"][0]["name"],
        )
        assert m["recording"] is False and m["county"] == "甲县" and m["subject"] == "数学"
        c = tiles[chinese["id"]]
        assert (c["present"], c["expected"], c["recording"]) == (1, 2, True)
        assert c["county"] == "乙县" and c["stage_classroom_id"] is None

        body = wall(d, token_a).json()
        assert body["total"] == 2 and (body["page"], body["pages"]) == (1, 1)
        # Facets: what A's lessons touch, with their counts (the B-led lesson counts in B
        # and in A, where it is received).
        assert {f["name"]: f["lessons"] for f in body["counties"]} == {"甲县": 2, "乙县": 1}
        assert {f["name"]: f["lessons"] for f in body["schools"]} == {
            "甲中心校": 1, "甲教学点": 2, "乙中心校": 1,
        }  # fmt: skip
        assert {f["name"]: f["lessons"] for f in body["subjects"]} == {"数学": 1, "语文": 1}

        # Filters.
        ids = lambda **q: [t["id"] for t in wall(d, token_a, **q).json()["lessons"]]  # noqa: E731
        assert ids(county_id=county_b) == [chinese["id"]]
        assert ids(school_id=a1) == [math["id"]]
        assert sorted(ids(school_id=a2)) == sorted([math["id"], chinese["id"]])
        assert ids(subject="语文") == [chinese["id"]]
        assert ids(subject="英语") == []  # B's own lesson stays out of A's reach
        assert ids(school_id=b1, subject="英语") == []

        # The district inspector sees all three; one a page.
        everything = wall(d, token_all).json()
        assert everything["total"] == 3
        pages = [wall(d, token_all, per_page=1, page=n).json() for n in (1, 2, 3)]
        assert [p["pages"] for p in pages] == [3, 3, 3]
        assert sorted(p["lessons"][0]["id"] for p in pages) == sorted(
            t["id"] for t in everything["lessons"]
        )
        assert wall(d, token_all, per_page=1, page=4).json()["lessons"] == []

    # Bad input gets a code; other roles are refused (only inspectors patrol).
    assert wall(d, token_a, per_page=0).status_code == 422
    assert wall(d, token_a, page=0).status_code == 422
    assert wall(d, token_a, per_page=49).status_code == 422
    refused = wall(d, d.tokens["teacher"])
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "forbidden")
    assert d.client.get("/api/patrol/lessons").status_code == 401
    assert inspector_a["id"]
