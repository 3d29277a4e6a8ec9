"""Real media between browsers through the SFU: each page's getStats shows frames decoded and
audio packets arriving. Lead, two receiving classrooms and a patrol page in separate contexts.
"""

from __future__ import annotations

from typing import Any

import pytest
from browser_harness import (
    MEDIA_MS,
    District,
    frames_rise,
    started,
    video_plays,
    wait_js,
)

pytestmark = pytest.mark.browser


def test_receivers_decode_the_lead_and_hear_it_and_the_lead_sees_both(
    open_page: Any, lesson: District
) -> None:
    lead, r1, r2 = started(open_page, lesson, "lead", "receiver1", "receiver2")
    for receiver in (r1, r2):
        video_plays(receiver, "#lead-video video")
        frames_rise(receiver)
        wait_js(receiver, "window.tongke.media.stats().then(s => s.audioPackets > 0)", MEDIA_MS)
        wait_js(receiver, "document.querySelector('#quality').dataset.quality !== 'unknown'")
    for room in lesson.receivers:
        video_plays(lead, f".tile[data-classroom='{room['id']}'] video")
    frames_rise(lead)
    for name, watch in (("lead", lead), ("receiver1", r1)):
        watch.screenshot(f"media-{name}-zh-CN")


def test_stage_switching_brings_the_stage_classroom_to_other_receivers(
    open_page: Any, lesson: District
) -> None:
    lead, _r1, r2 = started(open_page, lesson, "lead", "receiver1", "receiver2")
    first = lesson.receivers[0]["id"]
    lead.page.wait_for_selector(f".tile[data-classroom='{first}'] .stage-btn:not([disabled])")
    lead.page.click(f".tile[data-classroom='{first}'] .stage-btn")
    r2.page.wait_for_selector(f"#stage-box[data-classroom='{first}']:not(.hidden)")
    video_plays(r2, "#stage-video video")
    r2.screenshot("media-stage-receiver2-zh-CN")


def test_patrol_wall_shows_the_lesson_picture_without_publishing(
    open_page: Any, lesson: District
) -> None:
    lead, _r1 = started(open_page, lesson, "lead", "receiver1")
    patrol = open_page()
    patrol.page.goto(f"/patrol/?link={lesson.links['patrol']}")
    video_plays(patrol, ".wall .tile video")
    patrol.page.click(".wall .tile")
    video_plays(patrol, "#focus-video video")
    patrol.screenshot("media-patrol-focus-zh-CN")
    senders = patrol.page.evaluate("window.tongke.entry.media.sendPc === null")
    assert senders is True
    roles = lead.page.evaluate("[...window.tongke.state.participants.values()].map(p => p.role)")
    assert "patrol" not in roles


def test_receiver_video_resumes_after_a_network_drop(open_page: Any, lesson: District) -> None:
    _lead, r1 = started(open_page, lesson, "lead", "receiver1")
    video_plays(r1, "#lead-video video")
    r1.page.context.set_offline(True)
    r1.page.evaluate("window.tongke.client.dropConnection()")
    r1.page.wait_for_selector("#conn-state[data-state=reconnecting]")
    r1.page.wait_for_timeout(2000)
    r1.page.context.set_offline(False)
    r1.page.wait_for_selector("#conn-state[data-state=joined]", timeout=20_000)
    video_plays(r1, "#lead-video video")
    wait_js(
        r1,
        """(async () => { const a = (await window.tongke.media.stats()).framesDecoded;
            await new Promise(r => setTimeout(r, 1000));
            return (await window.tongke.media.stats()).framesDecoded > a; })()""",
        MEDIA_MS,
    )


def test_screen_share_from_the_lead_becomes_the_receivers_big_picture(
    open_page: Any, lesson: District
) -> None:
    lead, r1 = started(open_page, lesson, "lead", "receiver1")
    video_plays(r1, "#lead-video video")
    camera_mid = r1.page.get_attribute("#lead-video", "data-mid")
    lead.page.click("#share-screen")
    wait_js(
        r1,
        "[...window.tongke.media.consumers.values()].some(c => c.producer.source === 'screen')",
        MEDIA_MS,
    )
    wait_js(r1, f"document.querySelector('#lead-video').dataset.mid !== {camera_mid!r}")
    video_plays(r1, "#lead-video video")
    video_plays(r1, "#lead-small video")  # the lead's camera moves to the small tile
    r1.screenshot("media-screen-share-receiver-zh-CN")
