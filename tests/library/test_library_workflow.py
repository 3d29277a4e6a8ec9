"""Evaluations (评课) during replay and the exemplary workflow: order, roles, counts."""

from __future__ import annotations

from datetime import UTC, datetime

from library_support import Library

FULL = {"goals": 9, "content": 8, "method": 9, "interaction": 7, "effect": 8}


def code(response) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    return response.status_code, response.json()["error"]["code"]


def entry(library: Library, **values: object) -> str:
    values.setdefault("teacher_id", library.ids["teacher"])
    values.setdefault("district", "示范县")
    return library.add_recording(**values)


def test_a_nomination_is_reviewed_into_an_exemplary_lesson_with_who_and_when(
    library: Library,
) -> None:
    rid = entry(library)
    nominated = library.post(f"/api/library/{rid}/nominate", "teacher", {"comment": "推荐"})
    assert nominated.status_code == 200, nominated.text
    assert nominated.json()["exemplary_state"] == "nominated"
    review = {"decision": "exemplary", "scores": FULL, "comment": "优秀"}
    reviewed = library.post(f"/api/library/{rid}/review", "inspector", review)
    assert reviewed.status_code == 200, reviewed.text
    assert reviewed.json()["exemplary_state"] == "exemplary"
    assert reviewed.json()["score"] == 82.0  # percent of the 0-10 scale
    steps = library.get(f"/api/library/{rid}", "teacher").json()["steps"]
    assert [(s["action"], s["actor"]) for s in steps] == [
        ("nominate", "王老师"),
        ("exemplary", "李巡课员"),
    ]
    assert all(s["at"] for s in steps)


def test_out_of_order_steps_are_refused_with_409(library: Library) -> None:
    rid = entry(library)
    review = {"decision": "exemplary", "scores": FULL}
    assert code(library.post(f"/api/library/{rid}/review", "inspector", review)) == (
        409,
        "exemplary_out_of_order",
    )
    assert library.post(f"/api/library/{rid}/nominate", "teacher", {}).status_code == 200
    assert code(library.post(f"/api/library/{rid}/nominate", "teacher", {})) == (
        409,
        "exemplary_out_of_order",
    )
    returned = {"decision": "returned", "scores": FULL, "comment": "再打磨"}
    assert library.post(f"/api/library/{rid}/review", "inspector", returned).status_code == 200
    assert code(library.post(f"/api/library/{rid}/review", "inspector", review)) == (
        409,
        "exemplary_out_of_order",
    )
    # A returned lesson may be nominated again.
    assert library.post(f"/api/library/{rid}/nominate", "teacher", {}).status_code == 200


def test_a_lesson_is_nominated_only_once_its_rendition_is_done(library: Library) -> None:
    rid = entry(library, rendition_state="running")
    assert code(library.post(f"/api/library/{rid}/nominate", "teacher", {})) == (
        409,
        "rendition_not_ready",
    )


def test_foreign_accounts_may_not_nominate_or_review(library: Library) -> None:
    rid = entry(library)
    for role in ("other_teacher", "inspector"):
        assert code(library.post(f"/api/library/{rid}/nominate", role, {})) == (403, "forbidden")
    assert library.post(f"/api/library/{rid}/nominate", "admin", {}).status_code == 200
    review = {"decision": "exemplary", "scores": FULL}
    for role in ("teacher", "other_teacher"):
        assert code(library.post(f"/api/library/{rid}/review", role, review)) == (403, "forbidden")
    # The admin nominated, so the admin may not review its own nomination.
    assert code(library.post(f"/api/library/{rid}/review", "admin", review)) == (
        403,
        "own_nomination",
    )
    state = library.get(f"/api/library/{rid}", "admin").json()["exemplary_state"]
    assert state == "nominated"
    assert library.post(f"/api/library/{rid}/review", "other_inspector", review).status_code == 200


def test_a_review_must_score_every_rubric_item(library: Library) -> None:
    rid = entry(library)
    library.post(f"/api/library/{rid}/nominate", "teacher", {})
    partial = {"decision": "exemplary", "scores": {"goals": 9}}
    assert code(library.post(f"/api/library/{rid}/review", "inspector", partial)) == (
        422,
        "rubric_incomplete",
    )
    bad = {"decision": "exemplary", "scores": {**FULL, "goals": 11}}
    assert code(library.post(f"/api/library/{rid}/review", "inspector", bad)) == (422, "bad_score")


def test_replay_evaluations_are_timestamped_and_move_the_score(library: Library) -> None:
    rid = entry(library, duration_s=600.0)
    note = {"t_s": 125.5, "text": "提问有层次", "scores": {"interaction": 9, "method": 8}}
    created = library.post(f"/api/library/{rid}/evaluations", "inspector", note)
    assert created.status_code == 201, created.text
    assert created.json()["author"] == "李巡课员" and created.json()["t_s"] == 125.5
    detail = library.get(f"/api/library/{rid}", "teacher").json()
    assert [e["text"] for e in detail["evaluations"]] == ["提问有层次"]
    assert detail["score"] == 85.0
    refusals = [
        ("admin", note, (403, "forbidden")),
        ("teacher", {"t_s": 10, "scores": {"charm": 5}}, (422, "unknown_rubric_item")),
        ("teacher", {"t_s": 10}, (422, "empty_evaluation")),
        ("teacher", {"t_s": 9999, "text": "x"}, (422, "outside_recording")),
    ]
    for role, body, expected in refusals:
        assert code(library.post(f"/api/library/{rid}/evaluations", role, body)) == expected


def test_counts_per_county_and_year(library: Library) -> None:
    library.clear()
    review = {"decision": "exemplary", "scores": FULL}
    for district, year in (("示范县", 2026), ("示范县", 2026), ("山区县", 2026), ("示范县", 2025)):
        rid = entry(library, district=district, started_at=datetime(year, 10, 1, 2, tzinfo=UTC))
        library.post(f"/api/library/{rid}/nominate", "teacher", {})
        if district == "示范县":
            library.post(f"/api/library/{rid}/review", "inspector", review)
    entry(library)  # never nominated: not counted
    counts = library.get("/api/library/exemplary/counts", "admin").json()["counts"]
    assert counts == [
        {"district": "山区县", "year": 2026, "nominated": 1, "exemplary": 0, "returned": 0},
        {"district": "示范县", "year": 2026, "nominated": 0, "exemplary": 2, "returned": 0},
        {"district": "示范县", "year": 2025, "nominated": 0, "exemplary": 1, "returned": 0},
    ]
    only = library.get("/api/library/exemplary/counts", "admin", params={"year": 2025}).json()
    assert [c["year"] for c in only["counts"]] == [2025]


def test_a_zero_score_counts_in_the_mean(library: Library) -> None:
    rid = entry(library, duration_s=600.0)
    for value in (0, 10):
        body = {"t_s": 1, "text": "x", "scores": dict.fromkeys(FULL, value)}
        assert library.post(f"/api/library/{rid}/evaluations", "teacher", body).status_code == 201
    assert library.get(f"/api/library/{rid}", "teacher").json()["score"] == 50.0
