"""The real WebSocket endpoint (server/ws.py) through create_app: Origin, tokens, hostile input.

Lessons come from NullLessonHooks set on the app's RoomManager, so these tests do not
depend on the database models (the lifespan still opens the real database).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shared_support import fresh_postgres_database
from signal_harness import LEAD_ROOM, LESSON_ID, lesson_info
from starlette.testclient import WebSocketTestSession
from starlette.websockets import WebSocketDisconnect

from server.app import create_app
from server.settings import Settings
from server.state import AppState
from signaling.errors import CloseCode, ErrorCode
from signaling.grants import Role, default_grant
from signaling.hooks import NullLessonHooks
from signaling.protocol import CLIENT_TYPES

CODES = {c.value for c in ErrorCode}

# Starlette's TestClient cancels the app's task right after the client's disconnect; about one
# full run in four, that cancellation escapes as CancelledError from the session's teardown
# (seen only under this harness, never as an assertion failure). Rerun on that error alone;
# every assertion still fails the test. To investigate: Session.run's cleanup under anyio.
pytestmark = pytest.mark.flaky(reruns=2, only_rerun=["CancelledError"])


@dataclass
class App:
    client: TestClient
    state: AppState

    def token(self, role: Role, classroom_id: str | None = None, **grant: Any) -> str:
        ttl_s = grant.pop("ttl_s", None)
        base = default_grant(grant.pop("lesson_id", LESSON_ID), role, str(role), classroom_id)
        return self.state.tokens.issue(replace(base, **grant), ttl_s=ttl_s)

    def connect(self, **headers: str) -> Any:
        return self.client.websocket_connect("/ws", headers=headers)


def reply(ws: WebSocketTestSession) -> dict[str, Any]:
    """The next message that is not a server heartbeat."""
    while True:
        message = json.loads(ws.receive_text())
        if message["type"] != "heartbeat":
            return message


def join(ws: WebSocketTestSession, token: str) -> dict[str, Any]:
    ws.send_json({"type": "join", "id": "j", "version": 1, "token": token})
    return reply(ws)


@contextlib.contextmanager
def _database(backend: str, data_dir: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield ""  # the default: SQLite in the data folder
        return
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[App]:
    """The app on SQLite and on PostgreSQL: three faults of issue 17 showed only there."""
    with _database(request.param, tmp_path) as url, _app(tmp_path, url) as made:
        yield made


@contextlib.contextmanager
def _app(tmp_path: Path, database_url: str) -> Iterator[App]:
    config = Settings(
        data_dir=tmp_path,
        database_url=database_url,
        secret_key="ws-tests-secret-0123456789-0123456789-abcdef",
        seed_demo=False,
        ws_max_message_bytes=4096,
        ws_rate_per_s=10_000,
        ws_rate_burst=10_000,
        heartbeat_timeout_s=600,
    )
    with TestClient(create_app(config)) as client:
        state: AppState = client.app_state["app"]
        # The lessons of these tests; the database-backed hooks are tested by the server.
        state.rooms.hooks = NullLessonHooks({LESSON_ID: lesson_info()})
        yield App(client, state)


def test_a_lead_and_a_receiver_join_over_the_websocket(app: App) -> None:
    with app.connect() as lead, app.connect() as r1:
        joined = join(lead, app.token(Role.LEAD, LEAD_ROOM))
        assert joined["type"] == "joined" and joined["id"] == "j"
        assert join(r1, app.token(Role.RECEIVER, "r1"))["type"] == "joined"
        # Both follow the receiver's join; their order is not part of the contract.
        events = {m["type"]: m for m in (reply(lead), reply(lead))}
        assert set(events) == {"producers_changed", "participant_joined"}
        assert events["participant_joined"]["participant"]["classroom_id"] == "r1"
    assert app.state.rooms.stats.messages["join"] == 2


def test_an_allowed_origin_is_accepted(app: App) -> None:
    with app.connect(origin="http://127.0.0.1:8000") as ws:
        ws.send_json({"type": "ping", "id": "p"})
        assert reply(ws) == {"type": "pong", "id": "p"}


def test_a_foreign_origin_is_refused_with_4403_before_accept(app: App) -> None:
    with pytest.raises(WebSocketDisconnect) as info, app.connect(origin="https://evil.example"):
        pass
    assert info.value.code == CloseCode.ORIGIN_FORBIDDEN


def test_an_expired_token_is_refused(app: App) -> None:
    with app.connect() as ws:
        error = join(ws, app.token(Role.RECEIVER, "r1", ttl_s=-1))
        assert error["code"] == "token_expired" and error["id"] == "j"


def test_a_token_for_another_lesson_cannot_join_this_one(app: App) -> None:
    with app.connect() as ws:
        token = app.token(Role.LEAD, LEAD_ROOM, lesson_id="lesson-b")
        ws.send_json({"type": "join", "version": 1, "token": token, "lesson_id": LESSON_ID})
        assert reply(ws)["code"] == "wrong_lesson"
        assert join(ws, token)["code"] == "lesson_not_found"


def test_an_oversize_frame_is_refused_and_the_connection_keeps_working(app: App) -> None:
    with app.connect() as ws:
        ws.send_text(json.dumps({"type": "ping", "pad": "x" * 5000}))
        assert reply(ws)["code"] == "message_too_large"
        ws.send_json({"type": "ping"})
        assert reply(ws)["type"] == "pong"


def test_a_lesson_end_closes_the_websocket_with_4410(app: App) -> None:
    with app.connect() as lead, app.connect() as r1:
        join(lead, app.token(Role.LEAD, LEAD_ROOM))
        join(r1, app.token(Role.RECEIVER, "r1"))
        lead.send_json({"type": "end_lesson"})
        types = []
        with pytest.raises(WebSocketDisconnect) as info:
            while True:
                types.append(reply(r1)["type"])
        assert info.value.code == CloseCode.LESSON_ENDED
        assert types[-1] == "lesson_ended"


# Hostile input ---------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
known_types = st.sampled_from(sorted(CLIENT_TYPES - {"leave", "end_lesson"}))


@st.composite
def hostile_frames(draw: st.DrawFn) -> str | bytes:
    choice = draw(st.integers(0, 6))
    if choice == 0:  # any JSON at all
        return json.dumps(draw(json_values))
    if choice == 1:  # a known type with random fields
        fields = draw(st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=4))
        return json.dumps({"type": draw(known_types), **fields})
    if choice == 2:  # an unknown type
        return json.dumps({"type": draw(st.text(max_size=30)), "id": draw(json_values)})
    if choice == 3:  # huge strings
        return json.dumps({"type": draw(known_types), "text": "字" * draw(st.integers(0, 3000))})
    if choice == 4:  # deep nesting
        depth = draw(st.integers(10, 3000))
        return '{"type": "ping", "x": ' + "[" * depth + "]" * depth + "}"
    if choice == 5:  # binary frames
        return draw(st.binary(max_size=200))
    return draw(st.text(max_size=200))  # not JSON, usually


FIELDS = [
    "id",
    "version",
    "token",
    "resume_token",
    "classroom_id",
    "muted",
    "on",
    "text",
    "scores",
    "sdp",
    "tracks",
    "wants",
    "lesson_id",
]


class Attackers:
    """Long-lived hostile connections (one not joined, one joined as patrol), reopened
    when the server closes one for abuse."""

    def __init__(self, app: App, stack: contextlib.ExitStack) -> None:
        self.app = app
        self.stack = stack
        self.open: dict[bool, WebSocketTestSession] = {}

    def get(self, joined: bool) -> WebSocketTestSession:
        if joined not in self.open:
            ws = self.stack.enter_context(self.app.connect())
            if joined:
                assert join(ws, self.app.token(Role.PATROL))["type"] == "joined"
            self.open[joined] = ws
        return self.open[joined]


def test_hostile_frames_get_errors_and_never_disturb_another_peer(app: App) -> None:
    with contextlib.ExitStack() as stack:
        lead = stack.enter_context(app.connect())
        join(lead, app.token(Role.LEAD, LEAD_ROOM))
        assert reply(lead)["type"] == "producers_changed"
        attackers = Attackers(app, stack)

        @settings(
            max_examples=80,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(frame=hostile_frames(), joined=st.booleans())
        def throw(frame: str | bytes, joined: bool) -> None:
            attacker = attackers.get(joined)
            if isinstance(frame, bytes):
                attacker.send_bytes(frame)
            else:
                attacker.send_text(frame)
            try:
                answer = reply(attacker)
                while answer["type"] in ("producers_changed", "subscribe_offer", "note_added"):
                    answer = reply(attacker)
            except WebSocketDisconnect as exc:
                # Closed for repeated abuse, after its error replies: open a new one.
                assert exc.code == CloseCode.ABUSE
                del attackers.open[joined]
                return
            if answer["type"] == "error":
                assert answer["code"] in CODES
            else:
                assert answer["type"] in {"pong", "ok"}

        throw()
        lead.send_json({"type": "ping", "id": "still-there"})
        seen = [reply(lead)]
        while seen[-1]["type"] != "pong":
            seen.append(reply(lead))
        assert seen[-1] == {"type": "pong", "id": "still-there"}
        # The patrol attackers were never announced to the lead (notes may reach it).
        assert {m["type"] for m in seen} <= {"pong", "note_added"}
    assert app.state.rooms.stats.errors["internal_error"] == 0


def test_text_with_nul_is_refused_naming_the_field_and_the_connection_kept(app: App) -> None:
    """A note with U+0000 answered internal_error on PostgreSQL (issue 17)."""
    with app.connect() as lead:
        join(lead, app.token(Role.LEAD, LEAD_ROOM))
        lead.send_text(json.dumps({"type": "add_note", "id": "n", "text": "好\u0000课"}))
        error = reply(lead)
        while error["id"] != "n":  # events the join caused
            error = reply(lead)
        assert (error["code"], error["id"]) == ("invalid_message", "n")
        assert error["message"].startswith("text:") and "U+0000" in error["message"]
        lead.send_json({"type": "ping", "id": "p"})
        pong = reply(lead)
        while pong["id"] != "p":
            pong = reply(lead)
        assert pong["type"] == "pong"
