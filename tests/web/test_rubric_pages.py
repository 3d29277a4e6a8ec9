"""One rubric in Chromium: the district admin defines a 0-100 rubric on the admin page and
puts it in use; the patrol page's live note, the replay evaluation and the exemplary review
show the same items and scale; out-of-range input gets the page's Chinese sentence (no
browser hint, nothing sent); the live note shows in replay under Chinese labels."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from browser_harness import District, LiveServer, PageWatch, join_classroom, sign_in

from server.db import open_database
from server.db.models import LibraryRecording

pytestmark = pytest.mark.browser

ITEMS = [("目标达成", 40), ("学生参与", 30), ("技术融合", 30)]
LABELS = [label for label, _ in ITEMS]


def labels(watch: PageWatch, form: str) -> list[str]:
    return watch.page.eval_on_selector_all(
        f"{form} fieldset.rubric label", "els => els.map(e => e.firstChild.textContent.trim())"
    )


def legend(watch: PageWatch, form: str) -> str:
    return str(watch.page.text_content(f"{form} fieldset.rubric legend"))


def define_rubric(admin: PageWatch) -> None:
    page = admin.page
    page.goto("/admin/")
    page.click("#tab-rubrics")
    page.wait_for_selector("#rubrics tr:has-text('评课量表') .pill:has-text('使用中')")
    page.click("#rubric-new")
    page.fill("#rubric-name", "课堂观察量表（百分制）")
    page.fill("#rubric-scale", "100")
    for n, (label, weight) in enumerate(ITEMS):
        if n:
            page.click("#rubric-add-item")
        row = page.locator("#rubric-items .item").nth(n)
        row.locator(".item-label").fill(label)
        row.locator(".item-weight").fill(str(weight if n else 0))
    page.click("#rubric-form button[type=submit]")
    # Weight 0: the page's own sentence, nothing created.
    page.wait_for_selector("#rubric-error:not(.hidden):has-text('目标达成')")
    assert "1 到 100" in str(page.text_content("#rubric-error"))
    page.locator("#rubric-items .item").nth(0).locator(".item-weight").fill("40")
    page.click("#rubric-form button[type=submit]")
    row = "#rubrics tr:has-text('课堂观察量表（百分制）')"
    page.wait_for_selector(f"{row} button.use")
    page.click(f"{row} button.use")
    page.wait_for_selector(f"{row} .pill:has-text('使用中')")
    admin.screenshot("admin-rubrics-zh-CN")


def add_recording(server: LiveServer, lesson: District, started_at: datetime) -> str:
    """A finished library entry of the lesson (as the recorder would file it)."""

    async def insert() -> str:
        async with open_database(server.settings) as db:
            async with db.sessions.begin() as session:
                row = LibraryRecording(
                    lesson_id=lesson.lesson["id"],
                    teacher_id=lesson.teacher_id,
                    directory=f"lesson-{lesson.lesson['id']}/1",
                    state="finished",
                    title=lesson.lesson["title"],
                    started_at=started_at,
                    duration_s=3600.0,
                    rendition_state="done",
                    tracks=[],
                )
                session.add(row)
            return row.id

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, insert()).result()


def test_the_same_rubric_in_patrol_replay_and_review(
    open_page: Any, lesson: District, live_server: LiveServer
) -> None:
    admin = open_page()
    sign_in(admin, "admin")
    define_rubric(admin)

    # Patrol: a live note on the rubric in use.
    lead = join_classroom(open_page(), lesson.links["lead"])
    lead.page.click("#start-lesson")
    lead.page.wait_for_selector("#start-lesson", state="hidden")
    watch = open_page()
    sign_in(watch, "inspector")
    watch.page.goto("/patrol/")
    watch.page.wait_for_selector(f".tile[data-lesson='{lesson.lesson['id']}']").click()
    watch.page.wait_for_selector("#note-form fieldset.rubric")
    assert labels(watch, "#note-form") == LABELS
    assert "0–100" in legend(watch, "#note-form")
    watch.page.fill("#note-text", "学生参与积极")
    watch.page.fill("#score-item1", "150")
    watch.page.click("#note-form button[type=submit]")
    watch.page.wait_for_selector("#score-error:not(.hidden)")
    said = str(watch.page.text_content("#score-error"))
    assert "“目标达成”的分数应为 0 到 100 之间的整数" in said
    assert watch.page.locator("#notes li").count() == 0  # nothing was sent
    watch.screenshot("patrol-rubric-error-zh-CN")
    watch.page.fill("#score-item1", "88")
    watch.page.fill("#score-item2", "76")
    watch.page.click("#note-form button[type=submit]")
    watch.page.wait_for_selector("#notes li:has-text('目标达成 88 · 学生参与 76（满分 100）')")
    assert watch.page.input_value("#score-item1") == ""  # cleared after the saved note
    assert watch.page.input_value("#note-text") == ""
    watch.screenshot("patrol-rubric-note-zh-CN")

    # Replay: the same items and scale; the live note under its Chinese labels.
    rid = add_recording(live_server, lesson, datetime.now(UTC) - timedelta(minutes=2))
    teacher = open_page()
    sign_in(teacher, "teacher")
    teacher.page.goto(f"/replay/?id={rid}")
    teacher.page.wait_for_selector("#evaluation-form fieldset.rubric")
    assert labels(teacher, "#evaluation-form") == LABELS
    assert "0–100" in legend(teacher, "#evaluation-form")
    teacher.page.wait_for_selector(".notes li:has-text('目标达成 88 · 学生参与 76（满分 100）')")
    notes = str(teacher.page.text_content(".notes"))
    assert "item1" not in notes and "goal" not in notes
    teacher.page.fill("#s-item2", "101")
    teacher.page.click("#evaluation-form button[type=submit]")
    teacher.page.wait_for_selector("#s-error:not(.hidden):has-text('学生参与')")
    teacher.page.click("#nominate")
    teacher.page.wait_for_selector("#workflow:has-text('王老师')")
    teacher.screenshot("replay-rubric-zh-CN")

    # Exemplary review: every item, same scale.
    watch.page.goto(f"/replay/?id={rid}")
    watch.page.wait_for_selector("#review-form fieldset.rubric")
    assert labels(watch, "#review-form") == LABELS
    assert "0–100" in legend(watch, "#review-form")
    watch.page.fill("#r-item1", "90")
    watch.page.click("#review-form button[type=submit]")
    watch.page.wait_for_selector("#r-error:not(.hidden):has-text('请为“学生参与”打分')")
    watch.page.fill("#r-item2", "80")
    watch.page.fill("#r-item3", "70")
    watch.page.click("#review-form button[type=submit]")
    watch.page.wait_for_selector("#workflow li:has-text('李督导')")
    watch.screenshot("review-rubric-zh-CN")
    for page in (admin, lead, watch, teacher):
        assert [e for e in page.errors if "media" not in e.lower()] == []
