"""The classroom pages over real signaling: lead, two receiving classrooms and a patrol page,
each in its own browser context. Media assertions live in test_media.py."""

from __future__ import annotations

from typing import Any

import pytest
from browser_harness import District, PageWatch, join_classroom, sign_in, wait_js

pytestmark = pytest.mark.browser

JOINED = "#conn-state[data-state=joined]"


def open_lesson(
    open_page: Any, lesson: District, *who: str, lang: str = "zh-CN"
) -> list[PageWatch]:
    return [join_classroom(open_page(lang), lesson.links[w]) for w in who]


def start(lead: PageWatch) -> None:
    lead.page.click("#start-lesson")
    lead.page.wait_for_selector("#start-lesson", state="hidden")


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_lead_page_lists_both_receiving_classrooms(
    open_page: Any, lesson: District, lang: str
) -> None:
    lead, r1, r2 = open_lesson(open_page, lesson, "lead", "receiver1", "receiver2", lang=lang)
    for room in lesson.receivers:
        lead.page.wait_for_selector(f".tile[data-classroom='{room['id']}']")
    assert lead.page.locator("#receivers .tile").count() == 2
    start(lead)
    lead.screenshot(f"lead-{lang}")
    r1.screenshot(f"receiver-{lang}")
    # The only error the pages show here is the media plane's, when none is wired in.
    for watch in (lead, r1, r2):
        assert [e for e in watch.errors if "media" not in e.lower()] == []


def test_stage_switching_on_the_lead_page_is_visible_on_a_receiver_page(
    open_page: Any, lesson: District
) -> None:
    lead, r1, r2 = open_lesson(open_page, lesson, "lead", "receiver1", "receiver2")
    start(lead)
    first, second = (room["id"] for room in lesson.receivers)
    lead.page.click(f".tile[data-classroom='{first}'] .stage-btn")
    r2.page.wait_for_selector(f"#stage-box[data-classroom='{first}']:not(.hidden)")
    assert "台上" in r1.page.inner_text("#receiver-status")
    lead.page.click(f".tile[data-classroom='{second}'] .stage-btn")
    r1.page.wait_for_selector(f"#stage-box[data-classroom='{second}']:not(.hidden)")
    r2.page.wait_for_selector("#stage-box.hidden", state="attached")
    lead.page.click(f".tile[data-classroom='{second}'] .stage-btn")
    r1.page.wait_for_selector("#stage-box.hidden", state="attached")


def test_raised_hands_reach_the_lead_in_order(open_page: Any, lesson: District) -> None:
    lead, r1, r2 = open_lesson(open_page, lesson, "lead", "receiver1", "receiver2")
    start(lead)
    r2.page.wait_for_selector("#hand:not([disabled])")
    r2.page.click("#hand")
    r2.page.wait_for_selector("#hand[data-state=up]")
    r1.page.click("#hand")
    wait_js(lead, "window.tongke.state.hands.length === 2")
    names = lead.page.locator("#hands li").all_inner_texts()
    assert "二年级" in names[0] and "一年级" in names[1]
    r2.page.click("#hand")
    wait_js(lead, "window.tongke.state.hands.length === 1")


def test_patrol_sees_the_lesson_is_not_listed_and_cannot_publish(
    open_page: Any, lesson: District
) -> None:
    lead, _r1 = open_lesson(open_page, lesson, "lead", "receiver1")
    patrol = open_page()
    patrol.page.goto(f"/patrol/?link={lesson.links['patrol']}")
    tile = patrol.page.wait_for_selector(f".tile[data-lesson='{lesson.lesson['id']}']")
    assert "分数的初步认识" in tile.inner_text()
    wait_js(patrol, "document.querySelector('.tile').dataset.participants === '2'")
    patrol.screenshot("patrol-zh-CN")
    roles = lead.page.evaluate("[...window.tongke.state.participants.values()].map(p => p.role)")
    assert "patrol" not in roles
    assert "李督导" not in lead.page.inner_text("body")
    # The page offers nothing to publish with, and the server refuses a publish anyway.
    controls = "#camera-select, #mic-select, #share-screen, #hand, #start-lesson"
    assert patrol.page.locator(controls).count() == 0
    refused = patrol.page.evaluate(
        """() => window.tongke.entry.client.request({type: 'publish', sdp: 'v=0\\r\\n',
              tracks: [{mid: '0', source: 'camera', layer: 'main'}]})
            .then(() => 'accepted', (e) => e.code)"""
    )
    assert refused == "forbidden"


def test_receiver_page_reconnects_by_itself_and_says_so(open_page: Any, lesson: District) -> None:
    lead, r1 = open_lesson(open_page, lesson, "lead", "receiver1")
    start(lead)
    first = lesson.receivers[0]["id"]
    lead.page.click(f".tile[data-classroom='{first}'] .stage-btn")
    r1.page.wait_for_selector("#receiver-status:has-text('台上')")
    r1.page.context.set_offline(True)
    r1.page.evaluate("window.tongke.client.dropConnection()")
    r1.page.wait_for_selector("#conn-state[data-state=reconnecting]")
    assert "重新连接" in r1.page.inner_text("#conn-banner")
    r1.screenshot("receiver-reconnecting-zh-CN")
    r1.page.context.set_offline(False)
    r1.page.wait_for_selector(JOINED, timeout=20_000)
    r1.page.wait_for_selector("#conn-banner.hidden", state="attached")
    assert "台上" in r1.page.inner_text("#receiver-status")
    assert wait_js(r1, "window.tongke.client.joined.resumed === true || 'rejoined'")


def test_ending_the_lesson_tells_every_classroom(open_page: Any, lesson: District) -> None:
    lead, r1 = open_lesson(open_page, lesson, "lead", "receiver1")
    start(lead)
    lead.page.once("dialog", lambda dialog: dialog.accept())
    lead.page.click("#end-lesson")
    r1.page.wait_for_selector("#lesson-ended:has-text('本节课已结束')")
    r1.screenshot("receiver-ended-zh-CN")


def test_classroom_page_without_a_join_link_says_how_to_get_one(open_page: Any) -> None:
    watch = open_page()
    watch.page.goto("/receiver/")
    watch.page.wait_for_selector("#no-link:has-text('加入链接')")
    assert watch.errors == []


def test_teacher_opens_the_lead_classroom_from_the_home_page(
    open_page: Any, lesson: District
) -> None:
    watch = open_page()
    sign_in(watch, "teacher")
    card = f"#today .card[data-lesson='{lesson.lesson['id']}']"
    watch.page.click(f"{card} button.primary")
    watch.page.wait_for_url("**/lead/")
    watch.page.wait_for_selector(JOINED)
    assert "分数的初步认识" in watch.page.inner_text("#page-title")


def test_signed_in_inspector_sees_every_live_lesson_on_the_wall(
    open_page: Any, lesson: District
) -> None:
    (lead,) = open_lesson(open_page, lesson, "lead")
    start(lead)
    watch = open_page()
    sign_in(watch, "inspector")
    watch.page.goto("/patrol/")
    tile = watch.page.wait_for_selector(f".tile[data-lesson='{lesson.lesson['id']}']")
    tile.click()
    watch.page.wait_for_selector("#focus:not(.hidden)")
    watch.page.fill("#note-text", "导入环节清楚，学生参与积极。")
    watch.page.fill("#score-goals", "9")  # the seeded rubric: 教学目标 ... on 0-10
    watch.page.click("#note-form button[type=submit]")
    saved = "#notes li:has-text('导入环节清楚'):has-text('教学目标 9（满分 10）')"
    watch.page.wait_for_selector(saved)
    watch.screenshot("patrol-focus-zh-CN")
