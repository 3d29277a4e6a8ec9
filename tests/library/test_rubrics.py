"""The district's evaluation rubric (评课量表): defined by admins, one scale per rubric,
versions kept, used by replay evaluations, reviews and live notes (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from library_support import Library

from server.lesson_hooks import DatabaseLessonHooks
from signaling.errors import SignalingError
from signaling.hooks import Note

DEFAULT_KEYS = ["goals", "content", "method", "interaction", "effect"]
DEFAULT_LABELS = ["教学目标", "教学内容", "教学方法", "师生互动", "教学效果"]
HUNDRED = {
    "name": "课堂观察量表（百分制）",
    "scale_max": 100,
    "items": [
        {"label": "目标达成", "weight": 40},
        {"label": "学生参与", "weight": 30},
        {"label": "技术融合", "weight": 30},
    ],
}


def code(response: Any) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


def put(library: Library, path: str, role: str, body: dict[str, Any]) -> Any:
    return library.client.put(path, json=body, headers=library.headers(role))


@pytest.fixture
def default_in_use(library: Library) -> Iterator[dict[str, Any]]:
    """The seeded rubric, in use again after the test whatever the test chose."""
    current = library.get("/api/rubrics/current", "teacher").json()
    yield current
    library.post(f"/api/rubrics/{current['rubric_id']}/use", "admin", {})


def hundred(library: Library) -> dict[str, Any]:
    """The 0-100 rubric (created once per module and backend)."""
    listed = library.get("/api/rubrics", "admin").json()
    found = [r for r in listed if r["name"] == HUNDRED["name"]]
    if found:
        return found[0]  # type: ignore[no-any-return]
    created = library.post("/api/rubrics", "admin", HUNDRED)
    assert created.status_code == 201, created.text
    return created.json()  # type: ignore[no-any-return]


def test_the_seeded_rubric_is_in_use_with_the_five_items_on_0_to_10(
    library: Library, default_in_use: dict[str, Any]
) -> None:
    current = default_in_use
    assert current["name"] == "评课量表" and current["in_use"] is True
    assert (current["scale_min"], current["scale_max"], current["version"]) == (0, 10, 1)
    assert [i["key"] for i in current["items"]] == DEFAULT_KEYS
    assert [i["label"] for i in current["items"]] == DEFAULT_LABELS
    assert {i["weight"] for i in current["items"]} == {20}
    # Every signed-in account reads it; nobody else.
    assert library.get("/api/rubrics/current", "inspector").status_code == 200
    assert library.get("/api/rubrics/current", "anonymous").status_code == 401


def test_only_admins_define_rubrics_and_bad_definitions_get_a_code(library: Library) -> None:
    assert code(library.post("/api/rubrics", "teacher", HUNDRED)) == (403, "forbidden")
    created = hundred(library)
    assert [i["key"] for i in created["items"]] == ["item1", "item2", "item3"]
    assert (created["scale_max"], created["in_use"], created["version"]) == (100, False, 1)
    taken = library.post("/api/rubrics", "admin", HUNDRED)
    assert code(taken) == (409, "rubric_name_taken")
    twice = {**HUNDRED, "name": "重复", "items": [{"label": "互动"}, {"label": "互动"}]}
    assert code(library.post("/api/rubrics", "admin", twice)) == (422, "rubric_duplicate_item")
    for bad in (
        {**HUNDRED, "name": "x", "scale_max": 0},
        {**HUNDRED, "name": "x", "scale_max": 101},
        {**HUNDRED, "name": "x", "items": []},
        {**HUNDRED, "name": "x", "items": [{"label": "a", "weight": 0}]},
        {**HUNDRED, "name": "x", "items": [{"label": "a", "key": "Bad Key"}]},
        {**HUNDRED, "name": ""},
    ):
        assert code(library.post("/api/rubrics", "admin", bad)) == (422, "invalid_request"), bad
    assert code(library.post("/api/rubrics/nope/use", "admin", {})) == (404, "rubric_not_found")
    missing = library.get("/api/rubrics/versions/nope", "teacher")
    assert code(missing) == (404, "unknown_rubric_version")


def test_evaluations_keep_the_version_they_were_scored_on(
    library: Library, default_in_use: dict[str, Any]
) -> None:
    rid = library.add_recording(teacher_id=library.ids["teacher"], district="示范县")
    path = f"/api/library/{rid}/evaluations"
    old = library.post(path, "teacher", {"t_s": 5, "text": "目标清楚", "scores": {"goals": 8}})
    assert old.status_code == 201, old.text
    assert old.json()["rubric_version_id"] == default_in_use["version_id"]
    # Out of range on 0-10 and an item of no rubric: 422 with a code, nothing stored.
    assert code(library.post(path, "teacher", {"t_s": 6, "scores": {"goals": 88}})) == (
        422,
        "bad_score",
    )
    assert code(library.post(path, "teacher", {"t_s": 6, "scores": {"charm": 5}})) == (
        422,
        "unknown_rubric_item",
    )

    # The district switches to its 0-100 rubric.
    other = hundred(library)
    used = library.post(f"/api/rubrics/{other['rubric_id']}/use", "admin", {})
    assert used.status_code == 200 and used.json()["in_use"] is True
    current = library.get("/api/rubrics/current", "inspector").json()
    assert current["version_id"] == other["version_id"]
    assert code(library.post(path, "teacher", {"t_s": 7, "scores": {"goals": 8}})) == (
        422,
        "unknown_rubric_item",
    )
    new = library.post(path, "inspector", {"t_s": 7, "scores": {"item1": 88, "item2": 70}})
    assert new.status_code == 201, new.text
    assert code(library.post(path, "inspector", {"t_s": 8, "scores": {"item1": 101}})) == (
        422,
        "bad_score",
    )
    # An older version named explicitly is still scored on its own items and scale.
    named = {"t_s": 9, "scores": {"effect": 10}, "rubric_version_id": default_in_use["version_id"]}
    assert library.post(path, "teacher", named).status_code == 201

    # Editing writes version 2; the evaluations keep version 1 and its labels.
    kept = [{k: i[k] for k in ("key", "label", "weight")} for i in other["items"]]
    edited = {**HUNDRED, "items": [*kept, {"label": "板书设计", "weight": 10}]}
    v2 = put(library, f"/api/rubrics/{other['rubric_id']}", "admin", edited)
    assert v2.status_code == 200, v2.text
    assert [v["version"] for v in v2.json()["versions"]] == [1, 2]
    assert [i["key"] for i in v2.json()["items"]] == ["item1", "item2", "item3", "item4"]
    same = put(library, f"/api/rubrics/{other['rubric_id']}", "admin", edited)
    assert [v["version"] for v in same.json()["versions"]] == [1, 2]  # no change, no version
    assert code(put(library, f"/api/rubrics/{other['rubric_id']}", "teacher", edited)) == (
        403,
        "forbidden",
    )

    detail = library.get(f"/api/library/{rid}", "teacher").json()
    assert detail["rubric_version"]["version_id"] == v2.json()["version_id"]
    assert list(detail["rubric"].values()) == ["目标达成", "学生参与", "技术融合", "板书设计"]
    by_text = {e["t_s"]: e["rubric_version_id"] for e in detail["evaluations"]}
    assert by_text == {
        5.0: default_in_use["version_id"],
        7.0: other["version_id"],
        9.0: default_in_use["version_id"],
    }
    versions = detail["rubric_versions"]
    labels = [i["label"] for i in versions[default_in_use["version_id"]]["items"]]
    assert labels == DEFAULT_LABELS
    assert versions[other["version_id"]]["scale_max"] == 100
    assert len(versions[other["version_id"]]["items"]) == 3
    # The score: each evaluation's weighted mean in percent, then their mean:
    # 8/10 = 80; (40*88 + 30*70) / 70 = 80.29; 10/10 = 100.
    assert detail["score"] == pytest.approx((80 + (40 * 88 + 30 * 70) / 70 + 100) / 3, abs=0.01)


def test_a_review_scores_every_item_of_the_rubric_in_use(
    library: Library, default_in_use: dict[str, Any]
) -> None:
    rid = library.add_recording(
        teacher_id=library.ids["teacher"], started_at=datetime(2026, 9, 2, tzinfo=UTC)
    )
    assert library.post(f"/api/library/{rid}/nominate", "teacher", {}).status_code == 200
    other = hundred(library)
    library.post(f"/api/rubrics/{other['rubric_id']}/use", "admin", {})
    current = library.get("/api/rubrics/current", "teacher").json()
    partial = {"decision": "exemplary", "scores": {"item1": 90}}
    assert code(library.post(f"/api/library/{rid}/review", "inspector", partial)) == (
        422,
        "rubric_incomplete",
    )
    full = {"decision": "exemplary", "scores": {i["key"]: 90 for i in current["items"]}}
    done = library.post(f"/api/library/{rid}/review", "inspector", full)
    assert done.status_code == 200, done.text
    assert done.json()["step"]["rubric_version_id"] == current["version_id"]
    assert done.json()["score"] == 90.0


def test_live_notes_are_checked_against_the_rubric(
    library: Library, default_in_use: dict[str, Any]
) -> None:
    def note(**values: Any) -> Note:
        base: dict[str, Any] = {
            "id": "n1",
            "lesson_id": "no-such-lesson",
            "author": "李巡课员",
            "author_role": "patrol",
            "at": datetime.now(UTC),
            "offset_s": 12.0,
            "text": "互动充分",
        }
        return Note(**{**base, **values})

    async def add(state: Any, n: Note) -> Note | str:
        try:
            return await DatabaseLessonHooks(state.db).note_added(n)
        except SignalingError as exc:
            return exc.code.value

    def run(n: Note) -> Note | str:
        return library.run(lambda state: add(state, n))

    stored = run(note(scores={"interaction": 9}))
    assert isinstance(stored, Note)
    assert stored.rubric_version_id == default_in_use["version_id"]
    assert run(note(scores={"interaction": 11})) == "bad_score"
    assert run(note(scores={"互动": 4})) == "unknown_rubric_item"
    assert run(note(scores={"goals": 1}, rubric_version_id="nope")) == "unknown_rubric_version"
    plain = run(note())
    assert isinstance(plain, Note) and plain.rubric_version_id is None


def test_a_patrol_link_reads_the_rubric_without_an_account(
    library: Library, default_in_use: dict[str, Any]
) -> None:
    """A patrol opened from its link (nobody signed in) scores its notes on the rubric too;
    a classroom's link, a revoked one and an unknown code read nothing."""
    school = library.post("/api/schools", "admin", {"name": "巡课链接校", "kind": "central"})
    rooms = [
        library.post(
            "/api/classrooms", "admin", {"school_id": school.json()["id"], "name": n, "kind": k}
        ).json()["id"]
        for n, k in (("录播教室", "lead"), ("接收教室", "receiving"))
    ]
    start = datetime.now(UTC)
    lesson = library.post(
        "/api/lessons",
        "admin",
        {
            "title": "巡课链接",
            "teacher_id": library.ids["teacher"],
            "lead_classroom_id": rooms[0],
            "receiver_classroom_ids": rooms[1:],
            "scheduled_start": start.isoformat(),
            "scheduled_end": start.replace(year=start.year + 1).isoformat(),
        },
    ).json()
    links = f"/api/lessons/{lesson['id']}/links"
    patrol = library.post(links, "admin", {"account_id": library.ids["inspector"]}).json()
    lead = library.post(links, "admin", {"classroom_id": rooms[0]}).json()

    read = library.get(f"/api/rubrics/for-link/{patrol['code']}", "anonymous")
    assert read.status_code == 200, read.text
    assert read.json() == default_in_use
    # An older version a note names, by id.
    old = hundred(library)
    by_id = library.get(
        f"/api/rubrics/for-link/{patrol['code']}?version_id={old['version_id']}", "anonymous"
    )
    assert by_id.status_code == 200 and by_id.json()["scale_max"] == 100
    nope = f"/api/rubrics/for-link/{patrol['code']}?version_id=nope"
    assert code(library.get(nope, "anonymous")) == (404, "unknown_rubric_version")

    assert code(library.get(f"/api/rubrics/for-link/{lead['code']}", "anonymous")) == (
        403,
        "forbidden",
    )
    assert code(library.get("/api/rubrics/for-link/no-such-code", "anonymous")) == (
        404,
        "link_not_found",
    )
    library.post(f"{links}/{patrol['id']}/revoke", "admin", {})
    assert code(library.get(f"/api/rubrics/for-link/{patrol['code']}", "anonymous")) == (
        410,
        "link_revoked",
    )
