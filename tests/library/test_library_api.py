"""The library API on a real app and database: search, filters, sort, paging, access, Range."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from library_support import Library


@pytest.fixture
def catalogue(library: Library) -> dict[str, str]:
    library.clear()
    ids = {
        "circle": library.add_recording(
            title="圆的面积 第一课时", stage="小学", subject="数学", grade="六年级",
            textbook_version="人教版", volume="上册", teacher="李老师", school="城关小学",
            district="示范县", score=8.5, started_at=datetime(2026, 9, 3, 1, tzinfo=UTC),
        ),
        "poem": library.add_recording(
            title="静夜思", stage="小学", subject="语文", grade="一年级",
            textbook_version="部编版", teacher="王老师", school="东山教学点",
            district="山区县", score=9.0, started_at=datetime(2026, 9, 1, 1, tzinfo=UTC),
        ),
        "square": library.add_recording(
            title="正方形的面积", stage="小学", subject="数学", grade="三年级",
            textbook_version="北师大版", teacher="李老师", school="城关小学",
            district="示范县", score=None, interrupted=True, state="interrupted",
            started_at=datetime(2026, 9, 2, 1, tzinfo=UTC),
        ),
    }  # fmt: skip
    return ids


def titles(response) -> list[str]:  # type: ignore[no-untyped-def]
    assert response.status_code == 200, response.text
    return [item["title"] for item in response.json()["items"]]


def test_words_in_the_title_find_the_lessons_that_contain_every_word(
    library: Library, catalogue: dict[str, str]
) -> None:
    assert titles(library.get("/api/library", "teacher", params={"q": "面积"})) == [
        "圆的面积 第一课时",
        "正方形的面积",
    ]
    assert titles(library.get("/api/library", "teacher", params={"q": "面积 第一"})) == [
        "圆的面积 第一课时"
    ]
    assert titles(library.get("/api/library", "teacher", params={"q": "100%"})) == []


def test_filters_select_by_subject_grade_textbook_teacher_and_school(
    library: Library, catalogue: dict[str, str]
) -> None:
    get = lambda **p: titles(library.get("/api/library", "inspector", params=p))  # noqa: E731
    assert get(subject="数学", grade="六年级") == ["圆的面积 第一课时"]
    assert get(textbook_version="部编版") == ["静夜思"]
    assert get(teacher="李", school="城关") == ["圆的面积 第一课时", "正方形的面积"]
    assert get(district="山区县") == ["静夜思"]
    assert get(interrupted="true") == ["正方形的面积"]
    assert get(date_from="2026-09-02", date_to="2026-09-02") == ["正方形的面积"]


def test_sorting_by_date_and_by_score_puts_unscored_lessons_last(
    library: Library, catalogue: dict[str, str]
) -> None:
    by_date = titles(library.get("/api/library", "teacher"))
    assert by_date == ["圆的面积 第一课时", "正方形的面积", "静夜思"]
    oldest = titles(library.get("/api/library", "teacher", params={"order": "asc"}))
    assert oldest == by_date[::-1]
    by_score = titles(library.get("/api/library", "teacher", params={"sort": "score"}))
    assert by_score == ["静夜思", "圆的面积 第一课时", "正方形的面积"]


def test_paging_returns_the_total_and_one_page_at_a_time(
    library: Library, catalogue: dict[str, str]
) -> None:
    first = library.get("/api/library", "teacher", params={"per_page": 2})
    second = library.get("/api/library", "teacher", params={"per_page": 2, "page": 2})
    assert first.json()["total"] == 3 and len(first.json()["items"]) == 2
    assert titles(second) == ["静夜思"]
    bad = library.get("/api/library", "teacher", params={"per_page": 1000})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_request"


def test_the_library_needs_a_signed_in_account(library: Library, catalogue: dict[str, str]) -> None:
    response = library.client.get("/api/library")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    detail = library.client.get(f"/api/library/{catalogue['poem']}")
    assert detail.status_code == 401
    for role in ("admin", "teacher", "inspector"):
        assert library.get(f"/api/library/{catalogue['poem']}", role).status_code == 200


def test_an_unknown_recording_is_a_404_with_a_stable_code(library: Library) -> None:
    response = library.get("/api/library/nope", "teacher")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "recording_not_found"


DATA = bytes(range(256)) * 40  # 10240 bytes


@pytest.fixture
def with_files(library: Library) -> str:
    return library.add_recording(
        title="有文件的课",
        tracks=[{"name": "001-cam.mkv", "mime_type": "video/VP8", "kind": "video"}],
        rendition_files={"video": "rendition/lesson.mp4", "poster": "rendition/lesson-poster.jpg",
                         "thumbnails": []},
        files={"001-cam.mkv": DATA, "rendition/lesson.mp4": DATA, "secret.txt": b"x",
               "rendition/lesson-poster.jpg": b"\xff\xd8"},
    )  # fmt: skip


def test_range_requests_return_the_right_bytes(library: Library, with_files: str) -> None:
    url = f"/api/library/{with_files}/files/rendition/lesson.mp4"
    whole = library.get(url, "teacher")
    assert whole.status_code == 200 and whole.content == DATA
    assert whole.headers["accept-ranges"] == "bytes"
    assert whole.headers["content-type"] == "video/mp4"
    part = library.get(url, "teacher", headers={"Range": "bytes=100-1099"})
    assert part.status_code == 206
    assert part.content == DATA[100:1100]
    assert part.headers["content-range"] == f"bytes 100-1099/{len(DATA)}"
    tail = library.get(url, "teacher", headers={"Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == DATA[-10:]
    open_end = library.get(url, "teacher", headers={"Range": "bytes=10200-"})
    assert open_end.status_code == 206 and open_end.content == DATA[10200:]


def test_a_range_past_the_end_is_416(library: Library, with_files: str) -> None:
    url = f"/api/library/{with_files}/files/rendition/lesson.mp4"
    response = library.get(url, "teacher", headers={"Range": f"bytes={len(DATA)}-"})
    assert response.status_code == 416
    assert response.headers["content-range"] == f"bytes */{len(DATA)}"


def test_track_files_are_served_as_webm_and_other_names_are_refused(
    library: Library, with_files: str
) -> None:
    track = library.get(f"/api/library/{with_files}/files/001-cam.mkv", "inspector")
    assert track.status_code == 200 and track.headers["content-type"] == "video/webm"
    for name in ("secret.txt", "../secret.txt", "rendition/../secret.txt"):
        response = library.get(f"/api/library/{with_files}/files/{name}", "admin")
        assert response.status_code == 404, name
    anonymous = library.client.get(f"/api/library/{with_files}/files/001-cam.mkv")
    assert anonymous.status_code == 401


def test_head_on_a_library_file_answers_like_get_without_a_body(
    library: Library, with_files: str
) -> None:
    url = f"/api/library/{with_files}/files/rendition/lesson.mp4"
    headers = library.headers("teacher")
    head = library.client.head(url, headers=headers)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(DATA))
    assert head.headers["content-type"] == "video/mp4"
    assert head.headers["accept-ranges"] == "bytes"
    assert (
        library.client.head(f"/api/library/{with_files}/files/x.txt", headers=headers).status_code
        == 404
    )
    assert library.client.head(url).status_code == 401


@pytest.fixture
def with_copy(library: Library) -> str:
    """A lesson whose lead camera is H.264 (Matroska) with its MP4 copy, and a WebM mic."""
    return library.add_recording(
        title="有副本的课",
        tracks=[
            {"name": "001-cam.mkv", "mime_type": "video/H264", "kind": "video"},
            {"name": "002-mic.webm", "mime_type": "audio/opus", "kind": "audio"},
        ],
        rendition_files={"video": "rendition/lesson.mp4", "poster": "rendition/lesson-poster.jpg",
                         "thumbnails": [], "tracks": {"001-cam.mkv": "rendition/001-cam.mp4"}},
        files={"001-cam.mkv": DATA, "002-mic.webm": DATA[:100], "rendition/001-cam.mp4": DATA[:200],
               "rendition/lesson.mp4": DATA},
    )  # fmt: skip


def test_an_h264_track_plays_from_its_mp4_copy_and_keeps_its_original(
    library: Library, with_copy: str
) -> None:
    tracks = library.get(f"/api/library/{with_copy}", "teacher").json()["tracks"]
    camera, mic = tracks
    assert camera["url"] == f"/api/library/{with_copy}/files/rendition/001-cam.mp4"
    assert camera["media_type"] == "video/mp4"
    assert camera["original_url"] == f"/api/library/{with_copy}/files/001-cam.mkv"
    assert (mic["url"], mic["media_type"]) == (mic["original_url"], "audio/webm")
    copy = library.get(camera["url"], "teacher", headers={"Range": "bytes=10-19"})
    assert copy.status_code == 206 and copy.content == DATA[10:20]
    assert copy.headers["content-type"] == "video/mp4"
    original = library.get(camera["original_url"], "teacher")
    assert original.status_code == 200 and original.headers["content-type"] == "video/x-matroska"
    assert library.get(mic["url"], "teacher").headers["content-type"] == "audio/webm"


def test_the_detail_lists_tracks_with_urls_and_the_rendition(
    library: Library, with_files: str
) -> None:
    detail = library.get(f"/api/library/{with_files}", "teacher").json()
    assert detail["video_url"] == f"/api/library/{with_files}/files/rendition/lesson.mp4"
    assert detail["tracks"][0]["url"].endswith("/files/001-cam.mkv")
    assert detail["tracks"][0]["media_type"] == "video/webm"
    assert set(detail["rubric"]) == {"goals", "content", "method", "interaction", "effect"}


def test_a_recording_just_after_beijing_midnight_is_found_under_that_beijing_day(
    library: Library,
) -> None:
    """02:56 Beijing time on 12-05 is 18:56 UTC on 12-04: the district's day is 12-05, as
    /api/lessons?date= counts it (the library used to file it under 12-04)."""
    library.clear()
    library.add_recording(title="午夜之后", started_at=datetime(2026, 12, 4, 18, 56, tzinfo=UTC))
    library.add_recording(title="午夜之前", started_at=datetime(2026, 12, 4, 15, 59, tzinfo=UTC))
    get = lambda **p: titles(library.get("/api/library", "teacher", params=p))  # noqa: E731
    assert get(date_from="2026-12-05", date_to="2026-12-05") == ["午夜之后"]
    assert get(date_from="2026-12-04", date_to="2026-12-04") == ["午夜之前"]
    assert get(date_to="2026-12-04") == ["午夜之前"]
    assert get(date_from="2026-12-05") == ["午夜之后"]


def test_the_detail_puts_each_patrol_talk_on_the_recordings_timeline(library: Library) -> None:
    from datetime import timedelta

    from server.db.models import Account, Classroom, Lesson, PatrolTalk, School

    start = datetime(2026, 9, 4, 1, 0, tzinfo=UTC)

    async def lesson_with_talks(state):  # type: ignore[no-untyped-def]
        async with state.db.sessions.begin() as session:
            school = School(name="石门教学点", kind="teaching_point")
            session.add(school)
            await session.flush()
            room = Classroom(school_id=school.id, name="教室1")
            teacher = Account(username=f"t{start.day}", display_name="王老师", role="teacher",
                              password_hash="-")  # fmt: skip
            session.add_all([room, teacher])
            await session.flush()
            end = start + timedelta(minutes=45)
            lesson = Lesson(title="口算乘法", teacher_id=teacher.id, lead_classroom_id=room.id,
                            scheduled_start=start, scheduled_end=end)  # fmt: skip
            session.add(lesson)
            await session.flush()
            session.add_all([
                PatrolTalk(lesson_id=lesson.id, inspector="李巡课", classroom_id=room.id,
                           classroom_name="教室1", started_at=start + timedelta(seconds=90),
                           offset_s=90.0, duration_s=12.5),
                PatrolTalk(lesson_id=lesson.id, inspector="李巡课", classroom_id=None,
                           classroom_name="教室2", started_at=start - timedelta(seconds=30)),
            ])  # fmt: skip
            return lesson.id

    lesson_id = library.run(lesson_with_talks)
    recording = library.add_recording(lesson_id=lesson_id, started_at=start, duration_s=600.0)
    talks = library.get(f"/api/library/{recording}", "teacher").json()["talks"]
    assert [(t["inspector"], t["classroom_name"], t["t_s"], t["in_recording"], t["duration_s"])
            for t in talks] == [
        ("李巡课", "教室2", -30.0, False, None),
        ("李巡课", "教室1", 90.0, True, 12.5),
    ]  # fmt: skip
