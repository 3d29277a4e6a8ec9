"""Remote patrol in Chromium over real signaling and the real SFU: focus a lesson, see a
receiving classroom at the main layer, hear it, and talk back to the lead classroom (fake
microphone): only the lead shows the banner and receives the inspector's audio."""

from __future__ import annotations

from typing import Any

import pytest
from browser_harness import District, PageWatch, join_classroom, sign_in, wait_js

pytestmark = pytest.mark.browser

# Bytes of audio the page received from the patrol's mic, from getStats (energy > 0).
PATROL_AUDIO_ENERGY = """async () => {
  const t = window.tongke; const pc = t.media.recvPc; if (!pc) return 0;
  const mids = new Set([...t.media.consumers.values()]
    .filter((c) => c.producer.kind === 'audio' && !c.producer.classroom_id).map((c) => c.mid));
  let energy = 0;
  for (const r of (await pc.getStats()).values()) {
    const ours = r.type === 'inbound-rtp' && r.kind === 'audio' && mids.has(r.mid);
    if (ours) energy += r.totalAudioEnergy ?? 0;
  }
  return energy;
}"""


def focused_patrol(open_page: Any, lesson: District) -> tuple[PageWatch, ...]:
    """Lead, two receiving classrooms, and an inspector focused on the lesson."""
    lead, r1, r2 = (
        join_classroom(open_page(), lesson.links[w]) for w in ("lead", "receiver1", "receiver2")
    )
    lead.page.click("#start-lesson")
    lead.page.wait_for_selector("#start-lesson", state="hidden")
    first = lesson.receivers[0]["id"]
    watch: PageWatch = open_page()
    sign_in(watch, "inspector")
    watch.page.goto("/patrol/")
    watch.page.wait_for_selector(f".tile[data-lesson='{lesson.lesson['id']}']").click()
    watch.page.wait_for_selector("#focus:not(.hidden)")
    watch.page.wait_for_selector(f"#focus-thumbs .thumb[data-classroom='{first}']")
    watch.screenshot("patrol-focus-thumbs-zh-CN")
    return lead, r1, r2, watch


def test_a_clicked_classroom_thumbnail_plays_at_the_main_layer(
    open_page: Any, lesson: District
) -> None:
    _, _, _, watch = focused_patrol(open_page, lesson)
    first = lesson.receivers[0]["id"]
    # One click: that classroom at the main layer.
    watch.page.click(f"#focus-thumbs .thumb[data-classroom='{first}']")
    watch.page.wait_for_selector(f"#focus-video[data-classroom='{first}']")
    try:
        wait_js(watch, "document.querySelector('#focus-video video').videoWidth >= 640", 20_000)
    except AssertionError:
        seen = watch.page.evaluate(
            "[document.querySelector('#focus-video video').videoWidth,"
            " [...window.tongke.focused().media.consumers.values()]"
            ".map((c) => `${c.producer.classroom_id}:${c.producer.source}:${c.producer.layer}`)]"
        )
        raise AssertionError(f"focused classroom not at the main layer: {seen}") from None


def test_inspector_focuses_a_lesson_and_talks_to_the_lead_only(
    open_page: Any, lesson: District
) -> None:
    lead, r1, r2, watch = focused_patrol(open_page, lesson)
    first = lesson.receivers[0]["id"]
    watch.page.click(f"#focus-thumbs .thumb[data-classroom='{first}']")
    watch.page.wait_for_selector(f"#focus-video[data-classroom='{first}']")
    watch.page.select_option("#audio-choice", first)
    wait_js(
        watch,
        "window.tongke.focused().media"
        f".find({{classroomId: '{first}', source: 'mic'}}).length === 1",
    )
    watch.screenshot("patrol-focus-classroom-zh-CN")

    # Talk to the lead: press and hold.
    watch.page.select_option("#talk-target", "")
    watch.page.hover("#talk")
    watch.page.mouse.down()
    watch.page.wait_for_selector("#talk-state[data-state=talking]")
    lead.page.wait_for_selector("#talk-banner:has-text('巡课员')")
    wait_js(lead, f"({PATROL_AUDIO_ENERGY})().then((e) => e > 0)", 20_000)
    lead.screenshot("lead-hears-patrol-zh-CN")
    r1.screenshot("receiver-not-addressed-zh-CN")
    watch.screenshot("patrol-talking-zh-CN")
    lead.page.wait_for_selector("#talk-banner:has-text('巡课员')")
    assert r1.page.locator("#talk-banner:not(.hidden)").count() == 0
    assert r2.page.locator("#talk-banner:not(.hidden)").count() == 0
    assert r1.page.evaluate(PATROL_AUDIO_ENERGY) == 0

    watch.page.mouse.up()
    watch.page.wait_for_selector("#talk-state[data-state=idle]")
    lead.page.wait_for_selector("#talk-banner.hidden", state="attached")
    wait_js(
        lead,
        "![...window.tongke.media.consumers.values()]"
        ".some((c) => c.producer.kind === 'audio' && !c.producer.classroom_id)",
    )
    roles = lead.page.evaluate("[...window.tongke.state.participants.values()].map((p) => p.role)")
    assert "patrol" not in roles
    for page in (lead, r1, r2, watch):
        assert [e for e in page.errors if "media" not in e.lower()] == []


def test_a_talk_appears_on_the_replay_timeline_with_the_inspectors_name(
    open_page: Any, lesson: District
) -> None:
    """A recorded lesson, a patrol from its link (not signed in: the rubric still scores
    its note), a talk of about 2 s to the lead; the replay shows the band and the line."""
    lead = join_classroom(open_page(), lesson.links["lead"])
    lead.page.click("#start-lesson")
    lead.page.wait_for_selector("#start-lesson", state="hidden")
    lead.page.click("#toggle-recording")
    lead.page.wait_for_selector("#rec-indicator:not(.hidden)")
    watch: PageWatch = open_page()
    watch.page.goto(f"/patrol/?link={lesson.links['patrol']}")
    watch.page.wait_for_selector(f".tile[data-lesson='{lesson.lesson['id']}']").click()
    watch.page.wait_for_selector("#focus:not(.hidden)")
    # Read with the link (GET /api/rubrics/for-link): the seeded 0-10 rubric.
    watch.page.wait_for_selector("#note-form fieldset.rubric")
    watch.page.fill("#note-text", "巡课员提醒注意坐姿")
    watch.page.fill("#score-goals", "8")
    watch.page.click("#note-form button[type=submit]")
    watch.page.wait_for_selector("#notes li:has-text('教学目标 8（满分 10）')")
    watch.page.select_option("#talk-target", "")
    watch.page.hover("#talk")
    watch.page.mouse.down()
    watch.page.wait_for_selector("#talk-state[data-state=talking]")
    lead.page.wait_for_selector("#talk-banner:has-text('巡课员')")
    watch.page.wait_for_timeout(2500)
    watch.page.mouse.up()
    watch.page.wait_for_selector("#talk-state[data-state=idle]")
    lead.page.wait_for_selector("#talk-banner.hidden", state="attached")
    lead.page.wait_for_timeout(1000)
    lead.page.once("dialog", lambda dialog: dialog.accept())
    lead.page.click("#end-lesson")
    link = lead.page.wait_for_selector(".replay-link", timeout=30_000)
    href = link.get_attribute("href") or ""

    teacher = open_page()
    sign_in(teacher, "teacher")
    teacher.page.goto(href)
    band = teacher.page.wait_for_selector("#timeline .marker.talk", timeout=20_000)
    title = band.get_attribute("title") or ""
    assert "巡课员 李督导 对" in title and "讲话" in title, title
    seconds = int(title.split("讲话 ")[1].split(" 秒")[0])
    assert 2 <= seconds <= 5, title
    line = teacher.page.wait_for_selector(".notes li.talk")
    assert "李督导" in line.inner_text() and "巡课讲话" in line.inner_text()
    # The live note's scores under the rubric's Chinese label, as given from the link.
    teacher.page.wait_for_selector(".notes li:has-text('教学目标 8（满分 10）')")
    teacher.screenshot("replay-talk-band-zh-CN")
    for page in (lead, watch, teacher):
        assert [e for e in page.errors if "media" not in e.lower()] == []
