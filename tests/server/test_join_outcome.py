"""GET /api/join/{code}/outcome: the ended screens' facts, with the join link as credential."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import update

from server.db.models import JoinLink, Lesson, LibraryRecording, utcnow
from server.state import AppState

if TYPE_CHECKING:
    from conftest import District


def _error(response: Any) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


def _set_times(district: District, lesson_id: str, started: datetime, ended: datetime) -> None:
    async def write(state: AppState) -> None:
        async with state.db.sessions.begin() as session:
            await session.execute(
                update(Lesson)
                .where(Lesson.id == lesson_id)
                .values(state="ended", started_at=started, ended_at=ended)
            )

    district.run(write)


def _recording(district: District, lesson_id: str, **values: Any) -> str:
    async def insert(state: AppState) -> str:
        async with state.db.sessions.begin() as session:
            row = LibraryRecording(
                lesson_id=lesson_id,
                directory=f"{lesson_id}/{values.pop('stamp')}",
                title="t",
                tracks=[],
                **values,
            )
            session.add(row)
        return row.id

    return district.run(insert)


def test_a_scheduled_lesson_has_no_times_and_no_recordings(district: District) -> None:
    lesson = district.lesson()
    link = district.link(lesson, lesson["receivers"][0]["id"])
    response = district.client.get(f"/api/join/{link['code']}/outcome")
    assert response.status_code == 200
    body = response.json()
    assert body["lesson"]["id"] == lesson["id"] and body["lesson"]["title"] == lesson["title"]
    assert body["state"] == "scheduled"
    assert (body["started_at"], body["ended_at"], body["duration_s"]) == (None, None, None)
    assert body["recordings"] == []


def test_an_ended_lesson_answers_its_duration_and_recordings_in_order(
    district: District,
) -> None:
    lesson = district.lesson()
    link = district.link(lesson)
    started = datetime(2026, 9, 1, 1, 0, tzinfo=UTC)
    _set_times(district, lesson["id"], started, started + timedelta(minutes=40, seconds=5))
    second = _recording(
        district,
        lesson["id"],
        stamp="b",
        state="finished",
        started_at=started + timedelta(minutes=20),
        rendition_state="running",
        rendition_progress=0.25,
    )
    first = _recording(
        district,
        lesson["id"],
        stamp="a",
        state="interrupted",
        started_at=started,
        rendition_state="done",
        rendition_progress=1.0,
    )
    # A join of the ended lesson is refused; its outcome is what the page shows instead.
    assert _error(district.client.post(f"/api/join/{link['code']}")) == (409, "lesson_ended")
    body = district.client.get(f"/api/join/{link['code']}/outcome").json()
    assert body["state"] == "ended" and body["lesson"]["state"] == "ended"
    assert body["duration_s"] == 2405.0
    assert datetime.fromisoformat(body["started_at"]).replace(tzinfo=UTC) == started
    assert body["recordings"] == [
        {
            "recording_id": first,
            "state": "interrupted",
            "rendition_state": "done",
            "rendition_progress": 1.0,
            "replay_url": f"/replay/?id={first}",
        },
        {
            "recording_id": second,
            "state": "finished",
            "rendition_state": "running",
            "rendition_progress": 0.25,
            "replay_url": f"/replay/?id={second}",
        },
    ]


def test_the_outcome_refuses_links_as_join_does(district: District) -> None:
    assert _error(district.client.get("/api/join/no-such-code/outcome")) == (
        404,
        "link_not_found",
    )
    lesson = district.lesson()
    revoked = district.link(lesson)
    path = f"/api/lessons/{lesson['id']}/links/{revoked['id']}/revoke"
    district.client.post(path, headers=district.headers("admin"))
    assert _error(district.client.get(f"/api/join/{revoked['code']}/outcome")) == (
        410,
        "link_revoked",
    )
    expired = district.link(lesson, lesson["receivers"][0]["id"])

    async def expire(state: AppState) -> None:
        async with state.db.sessions.begin() as session:
            await session.execute(
                update(JoinLink)
                .where(JoinLink.id == expired["id"])
                .values(expires_at=utcnow() - timedelta(seconds=1))
            )

    district.run(expire)
    assert _error(district.client.get(f"/api/join/{expired['code']}/outcome")) == (
        410,
        "link_expired",
    )


def test_the_outcome_needs_no_account(district: District) -> None:
    lesson = district.lesson()
    link = district.link(lesson)
    district.client.cookies.clear()
    response = district.client.get(f"/api/join/{link['code']}/outcome", headers={})
    assert response.status_code == 200


# The lead's warning before recording: GET /api/join/{code}/recording-space ------------------


def test_the_lead_link_reads_the_room_left_for_recordings(district: District) -> None:
    lesson = district.lesson()
    body = district.client.get(f"/api/join/{district.link(lesson)['code']}/recording-space").json()
    assert body["free_bytes"] > 0 and body["min_free_bytes"] == 1024 * 1024 * 1024
    assert body["space_low"] is (body["free_bytes"] < body["min_free_bytes"])


def test_recording_space_is_for_the_lead_link_only(district: District) -> None:
    lesson = district.lesson()
    receiver = district.link(lesson, lesson["receivers"][0]["id"])
    response = district.client.get(f"/api/join/{receiver['code']}/recording-space")
    assert _error(response) == (403, "forbidden")
    assert _error(district.client.get("/api/join/nope/recording-space")) == (
        404,
        "link_not_found",
    )
