"""Recording never fails silently (issue 17, findings 9 and 10): a recording root that
cannot be written refuses the switch with recording_unavailable and the lesson stays off.

The roots are real filesystems (tests/fs_support.py): a read-only tmpfs gives EROFS.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from app_support import make_settings
from fs_support import tmpfs
from sqlalchemy import update
from starlette.testclient import WebSocketTestSession

from server.db.models import Lesson
from server.state import AppState


def _server_conftest() -> Any:
    """tests/server/conftest.py by path (a bare `from conftest import` may find another
    folder's conftest when several folders run together)."""
    spec = importlib.util.spec_from_file_location(
        "server_conftest_for_recording_failures", Path(__file__).with_name("conftest.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


district_app = _server_conftest().district_app


@pytest.fixture
def readonly_district(tmp_path: Path, database_url: str) -> Iterator[Any]:
    """A district whose recording root is a read-only filesystem."""
    with tmpfs(tmp_path / "recordings", readonly=True) as root:
        settings = make_settings(tmp_path / "data", database_url, recording_root=root)
        with district_app(settings) as district:
            yield district


def answer(ws: WebSocketTestSession, message_id: str) -> tuple[dict[str, Any], list[str]]:
    """The reply to `message_id`, and the types of the events that came before it."""
    events = []
    while True:
        message = json.loads(ws.receive_text())
        if message.get("id") == message_id:
            return message, events
        events.append(message["type"])


def lead_socket(district: Any, lesson: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    code = district.link(lesson)["code"]
    token = district.client.post(f"/api/join/{code}").json()["token"]
    ws = district.client.websocket_connect("/ws")
    session = ws.__enter__()
    session.send_json({"type": "join", "id": "j", "version": 1, "token": token})
    joined, _ = answer(session, "j")
    assert joined["type"] == "joined", joined
    return ws, session


def lesson_recording(district: Any, lesson_id: str) -> bool:
    async def read(state: AppState) -> bool:
        async with state.db.sessions.begin() as session:
            row = await session.get(Lesson, lesson_id)
            assert row is not None
            return row.recording

    return bool(district.run(read))


def test_a_read_only_recording_root_refuses_set_recording_and_stays_off(
    readonly_district: Any,
) -> None:
    district = readonly_district
    lesson = district.lesson()
    ws, lead = lead_socket(district, lesson)
    try:
        lead.send_json({"type": "start_lesson", "id": "s"})
        assert answer(lead, "s")[0]["type"] == "ok"
        lead.send_json({"type": "set_recording", "id": "r", "on": True})
        refused, _ = answer(lead, "r")
        assert (refused["type"], refused["code"]) == ("error", "recording_unavailable")
        assert "cannot be written" in refused["message"] and "Read-only" in refused["message"]
        # Nobody was told it records, and the lesson stays off.
        lead.send_json({"type": "ping", "id": "p"})
        assert "recording_changed" not in answer(lead, "p")[1]
        assert not lesson_recording(district, lesson["id"])
        assert district.state.recording.status(lesson["id"])["recording"] is False
    finally:
        ws.__exit__(None, None, None)


def test_an_always_recorded_lesson_starts_unrecorded_and_tells_the_lead_why(
    readonly_district: Any,
) -> None:
    district = readonly_district
    lesson = district.lesson()

    async def always(state: AppState) -> None:
        async with state.db.sessions.begin() as session:
            await session.execute(
                update(Lesson).where(Lesson.id == lesson["id"]).values(recording_policy="always")
            )

    district.run(always)
    ws, lead = lead_socket(district, lesson)
    try:
        lead.send_json({"type": "start_lesson", "id": "s"})
        seen = []
        while not seen or seen[-1].get("id") != "s":
            seen.append(json.loads(lead.receive_text()))
        types = [m["type"] for m in seen]
        # The lesson is live; the lead hears why it is not recorded, before its ok.
        assert seen[-1]["type"] == "ok"
        assert "lesson_started" in types and "recording_changed" not in types
        error = next(m for m in seen if m["type"] == "error")
        assert error["code"] == "recording_unavailable" and error.get("id") is None
        assert not lesson_recording(district, lesson["id"])
    finally:
        ws.__exit__(None, None, None)
