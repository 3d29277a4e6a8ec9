"""POST /api/lessons/{id}/end ends a live lesson for the classrooms in it, as its lead would.

Found with the classroom terminals: the admin's 结束课程 only marked the lesson ended in the
database, so connected classrooms never got lesson_ended and went on playing.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from starlette.testclient import WebSocketTestSession
from starlette.websockets import WebSocketDisconnect

if TYPE_CHECKING:
    from conftest import District


def next_of(ws: WebSocketTestSession, wanted: str) -> dict[str, Any]:
    while True:
        message = json.loads(ws.receive_text())
        if message["type"] == wanted:
            return message


def test_an_admin_ending_a_live_lesson_ends_it_for_every_classroom(district: District) -> None:
    lesson = district.lesson()
    lead_code = district.link(lesson)["code"]
    receiver_code = district.link(lesson, lesson["receivers"][0]["id"])["code"]
    client = district.client
    with client.websocket_connect("/ws") as lead, client.websocket_connect("/ws") as receiver:
        for ws, code in ((lead, lead_code), (receiver, receiver_code)):
            token = client.post(f"/api/join/{code}").json()["token"]
            ws.send_json({"type": "join", "id": "j", "version": 1, "token": token})
            assert next_of(ws, "joined")["role"] in ("lead", "receiver")
        lead.send_json({"type": "start_lesson", "id": "s"})
        next_of(lead, "lesson_started")
        response = client.post(
            f"/api/lessons/{lesson['id']}/end", headers=district.headers("admin")
        )
        assert response.status_code == 200, response.text
        assert response.json()["state"] == "ended"
        for ws in (lead, receiver):
            ended = next_of(ws, "lesson_ended")
            assert ended["started_at"] is not None and ended["duration_s"] >= 0
            try:
                ws.receive_text()
                raise AssertionError("the connection stayed open after lesson_ended")
            except WebSocketDisconnect as closed:
                assert closed.code == 4410
    # Ended for good: a second end is the same conflict as before, and joins are refused.
    again = client.post(f"/api/lessons/{lesson['id']}/end", headers=district.headers("admin"))
    assert again.status_code == 409
    assert client.post(f"/api/join/{lead_code}").status_code == 409
