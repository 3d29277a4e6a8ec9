"""The screens around a lesson in real Chromium: insecure pages on a LAN name, a tab replaced
by a second one, the end of a lesson on every page (duration, replay link, the lead's summary),
the lead's own devices, the recording notice, the audio sentence, error pages.
Screenshots: test-artifacts/web/lifecycle-*.png."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import closing
from typing import Any

import pytest
from browser_harness import (
    CHROMIUM,
    CHROMIUM_FLAGS,
    District,
    LiveServer,
    PageWatch,
    join_classroom,
    sign_in,
    wait_js,
)

pytestmark = pytest.mark.browser

JOINED = "#conn-state[data-state=joined]"
# What a raw exception looks like: none of it may reach a teacher's screen.
ENGLISH_ERRORS = re.compile(r"TypeError|Cannot read|undefined|getUserMedia|Error:|null")


def no_english_errors(watch: PageWatch) -> None:
    body = watch.page.inner_text("main")
    assert not ENGLISH_ERRORS.search(body), body


def start(lead: PageWatch) -> None:
    lead.page.click("#start-lesson")
    lead.page.wait_for_selector("#live-badge:not(.hidden)")


def end(lead: PageWatch) -> None:
    lead.page.once("dialog", lambda dialog: dialog.accept())
    lead.page.click("#end-lesson")


def devices_released(watch: PageWatch) -> None:
    wait_js(watch, "window.tongke.liveTrackCount() === 0", 5_000)


# Insecure context: a LAN name over plain http --------------------------------------------


@pytest.fixture(scope="module")
def lan_browser(browser: Any) -> Iterator[Any]:
    """Chromium that resolves school.test to loopback: http://school.test is not localhost, so
    it is an insecure context, as a classroom PC opening http://<server-ip> is. (Launched by
    the module's Playwright: one sync Playwright per thread.)"""
    chromium = browser.browser_type.launch(
        executable_path=CHROMIUM,
        args=[*CHROMIUM_FLAGS, "--host-resolver-rules=MAP school.test 127.0.0.1"],
    )
    try:
        yield chromium
    finally:
        chromium.close()


def lan_page(lan_browser: Any, live_server: LiveServer) -> PageWatch:
    context = lan_browser.new_context(
        base_url=f"http://school.test:{live_server.port}", locale="zh-CN"
    )
    return PageWatch(context.new_page())


@pytest.mark.parametrize("who", ["lead", "receiver1"])
def test_a_classroom_over_plain_http_is_told_to_open_the_https_link(
    lan_browser: Any, live_server: LiveServer, lesson: District, who: str
) -> None:
    watch = lan_page(lan_browser, live_server)
    page = watch.page
    # The join page trades the link, then explains instead of opening the classroom.
    page.goto(f"/join/?code={lesson.links[who]}")
    page.wait_for_selector("#insecure-context")
    assert "页面不安全（需要 HTTPS）" in page.inner_text("#insecure-context")
    https = page.get_attribute("#https-link", "href")
    assert https is not None and https.startswith(f"https://school.test:{live_server.port}/join/")
    assert page.get_attribute("#ca-link", "href") == "/ca/"
    no_english_errors(watch)
    # The classroom page itself, opened with the stored join, says the same before any device.
    path = "/lead/" if who == "lead" else "/receiver/"
    page.goto(path)
    page.wait_for_selector("#insecure-context")
    assert page.locator("#start-lesson, #hand, #camera-select").count() == 0
    no_english_errors(watch)
    watch.screenshot(f"lifecycle-insecure-{who}")
    assert watch.errors == []
    page.context.close()


def test_the_device_check_over_plain_http_says_insecure_not_broken(
    lan_browser: Any, live_server: LiveServer
) -> None:
    watch = lan_page(lan_browser, live_server)
    page = watch.page
    page.goto("/check/")
    page.wait_for_selector("#insecure-context")
    page.click("#check-start")
    page.wait_for_selector("#check-verdict[data-result=insecure]", timeout=30_000)
    assert "页面不安全（需要 HTTPS）" in page.inner_text("#check-camera")
    assert "页面不安全（需要 HTTPS）" in page.inner_text("#check-verdict")
    assert "设备有问题" not in page.inner_text("main")
    no_english_errors(watch)
    watch.screenshot("lifecycle-insecure-check")
    assert watch.errors == []
    page.context.close()


def test_each_device_failure_and_an_unexpected_error_read_as_chinese(open_page: Any) -> None:
    watch = open_page()
    watch.page.goto("/check/")
    watch.page.wait_for_selector(".topbar")
    texts = watch.page.evaluate(
        """async () => {
          const ui = await import('/js/ui.js');
          const names = ['NotAllowedError', 'NotFoundError', 'NotReadableError',
                         'OverconstrainedError', 'InsecureContextError'];
          const out = names.map((name) => ui.userMessage(Object.assign(new Error('x'), {name})));
          const box = ui.errorBanner(new TypeError(
            "Cannot read properties of undefined (reading 'getUserMedia')"));
          return {out, banner: box.innerText, detail: box.querySelector('details pre').textContent,
                  open: box.querySelector('details').open};
        }"""
    )
    assert len(set(texts["out"])) == 5
    assert all(re.search(r"[\u4e00-\u9fff]", text) for text in texts["out"])
    assert "意外问题" in texts["banner"] and "详细信息" in texts["banner"]
    # The raw text is kept behind the closed toggle, not in the sentence.
    assert "Cannot read" in texts["detail"] and texts["open"] is False
    assert "Cannot read" not in watch.page.inner_text("#page-banner")
    watch.screenshot("lifecycle-unexpected-error")


# Replaced tab -----------------------------------------------------------------------------


def test_opening_the_lead_link_twice_moves_the_lead_to_the_second_tab(
    open_page: Any, lesson: District
) -> None:
    first = join_classroom(open_page(), lesson.links["lead"])
    wait_js(first, "window.tongke.liveTrackCount() > 0")
    second = join_classroom(open_page(), lesson.links["lead"])
    first.page.wait_for_selector("#replaced")
    devices_released(first)
    # One explanation: no banner besides it, no classroom controls left.
    assert first.page.locator(".banner:not(.hidden)").count() == 0
    assert first.page.locator("#start-lesson, #receivers").count() == 0
    assert "在此处继续上课" in first.page.inner_text("#take-back")
    first.screenshot("lifecycle-replaced")
    second.page.wait_for_selector("#start-lesson:not(.hidden)")
    assert second.page.locator("#replaced").count() == 0
    # Taking it back: the first tab joins again and the second is the replaced one now.
    first.page.click("#take-back")
    first.page.wait_for_selector(JOINED)
    second.page.wait_for_selector("#replaced")
    devices_released(second)
    for watch in (first, second):
        assert [e for e in watch.errors if "media" not in e.lower()] == []


# End of lesson ----------------------------------------------------------------------------


def test_the_end_of_a_recorded_lesson_on_lead_receiver_and_patrol(
    open_page: Any, lesson: District
) -> None:
    lead = join_classroom(open_page(), lesson.links["lead"])
    receiver = join_classroom(open_page(), lesson.links["receiver1"])
    patrol = open_page()
    patrol.page.goto(f"/patrol/?link={lesson.links['patrol']}")
    tile = f".tile[data-lesson='{lesson.lesson['id']}']"
    patrol.page.wait_for_selector(tile)
    start(lead)
    lead.page.wait_for_selector("#lesson-timer:not(.hidden)")
    assert re.search(r"已上课 \d+:\d\d", lead.page.inner_text("#lesson-timer"))
    lead.page.click("#toggle-recording")
    lead.page.wait_for_selector("#rec-indicator:not(.hidden)")
    receiver.page.wait_for_selector("#recording-notice:not(.hidden)")
    assert receiver.page.inner_text("#recording-notice") == "本课正在录制"
    patrol.page.wait_for_selector(f"{tile} .recording-notice:not(.hidden)")
    receiver.screenshot("lifecycle-receiver-recording")
    receiver.page.click("#hand")
    wait_js(lead, "window.tongke.state.hands.length === 1")
    lead.page.wait_for_timeout(1500)  # some lesson time, some media in the recording
    end(lead)

    for watch in (lead, receiver):
        watch.page.wait_for_selector("#lesson-ended")
        assert "本节课已结束" in watch.page.inner_text("#lesson-ended")
        watch.page.wait_for_selector("#ended-duration[data-seconds]")
        assert "上课时长" in watch.page.inner_text("#ended-duration")
        devices_released(watch)
        # Nothing of the classroom is left: no start button, no stage/hand marks.
        assert watch.page.locator("#start-lesson, #hand, .pill.stage, .pill.hand").count() == 0
        link = watch.page.wait_for_selector(".replay-link", timeout=30_000)
        assert re.fullmatch(r"/replay/\?id=\w+", link.get_attribute("href") or "")
    assert "不能再次开始" in lead.page.inner_text("#lesson-ended")
    summary = lead.page.inner_text("#lesson-summary")  # from lesson_ended's report
    assert "1/2 个接收教室参加" in summary and "举手 1 次" in summary
    assert lead.page.locator("#lesson-summary li[data-came=true]").count() == 1
    assert "未参加" in lead.page.inner_text("#lesson-summary li[data-came=false]")
    assert lead.page.locator("#toast:not(.hidden)").count() == 0
    patrol.page.wait_for_selector(f"{tile} #lesson-ended .replay-link", timeout=30_000)
    lead.screenshot("lifecycle-ended-lead")
    receiver.screenshot("lifecycle-ended-receiver")
    patrol.screenshot("lifecycle-ended-patrol")
    for watch in (lead, receiver, patrol):
        assert [e for e in watch.errors if "media" not in e.lower()] == []


def test_an_ended_lesson_cannot_be_started_again_from_its_lead_tab(
    open_page: Any, lesson: District
) -> None:
    lead = join_classroom(open_page(), lesson.links["lead"])
    start(lead)
    end(lead)
    lead.page.wait_for_selector("#lesson-ended")
    # Reopening the classroom page (a refresh) lands on the ended screen again, no button.
    lead.page.goto("/lead/")
    lead.page.wait_for_selector("#lesson-ended")
    assert lead.page.locator("#start-lesson").count() == 0
    assert "本节课没有录制" in lead.page.inner_text("#ended-replay")


# Lead devices and what receivers see ------------------------------------------------------


def test_the_leads_mute_and_camera_off_show_on_the_receiver(
    open_page: Any, lesson: District
) -> None:
    lead = join_classroom(open_page(), lesson.links["lead"])
    receiver = join_classroom(open_page(), lesson.links["receiver1"])
    start(lead)
    wait_js(lead, "window.tongke.liveTrackCount() >= 3")  # camera, its low copy, mic
    lead.page.click("#mic-toggle")
    lead.page.wait_for_selector("#mic-toggle[data-on=false]")
    assert wait_js(lead, "window.tongke.media.tracks.mic.enabled === false")
    lead.page.click("#camera-toggle")
    lead.page.wait_for_selector("#camera-toggle[data-on=false]")
    # Camera off: its tracks are stopped (the light goes off), the senders send nothing.
    wait_js(lead, "window.tongke.liveTrackCount() === 1")
    senders = "window.tongke.media.sendPc.getSenders().filter(s => s.track?.kind === 'video')"
    assert lead.page.evaluate(f"{senders}.length") == 0
    supported = lead.page.evaluate(
        """() => window.tongke.client.request({type: 'set_media_state', mic_on: false,
              camera_on: false}).then(() => true, (e) => e.code)"""
    )
    if supported is not True:
        pytest.skip(f"the server does not know set_media_state yet ({supported})")
    receiver.page.wait_for_selector("#lead-mic-off")
    receiver.page.wait_for_selector("#lead-video[data-camera=off]")
    assert "关闭了摄像头" in receiver.page.inner_text("#lead-video")
    receiver.screenshot("lifecycle-receiver-lead-muted")
    lead.screenshot("lifecycle-lead-self-muted")
    # Camera on again: the same senders carry a new track (replaceTrack, no new m-line).
    mids = lead.page.evaluate("window.tongke.media.sendPc.getTransceivers().length")
    lead.page.click("#camera-toggle")
    lead.page.wait_for_selector("#camera-toggle[data-on=true]")
    wait_js(lead, f"{senders}.length === 2")
    assert lead.page.evaluate("window.tongke.media.sendPc.getTransceivers().length") == mids
    receiver.page.wait_for_selector("#lead-video[data-camera=on]")


def test_a_muted_on_stage_classroom_is_told_the_lead_cannot_hear_it(
    open_page: Any, lesson: District
) -> None:
    lead = join_classroom(open_page(), lesson.links["lead"])
    receiver = join_classroom(open_page(), lesson.links["receiver1"])
    start(lead)
    room = lesson.receivers[0]["id"]
    lead.page.click(f".tile[data-classroom='{room}'] .stage-btn")
    receiver.page.wait_for_selector("#receiver-status[data-heard=true]")
    assert "主讲老师能听到" in receiver.page.inner_text("#receiver-status")
    lead.page.click(f".tile[data-classroom='{room}'] .mute-btn")
    receiver.page.wait_for_selector("#receiver-status[data-heard=false]")
    text = receiver.page.inner_text("#receiver-status")
    assert "听不到" in text and "能听到" not in text
    assert "已静音" in lead.page.inner_text(f".tile[data-classroom='{room}']")
    receiver.screenshot("lifecycle-receiver-muted-on-stage")


# Error pages ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/lead/", "/receiver/"])
def test_a_classroom_page_without_a_link_explains_and_offers_no_controls(
    open_page: Any, path: str
) -> None:
    watch = open_page()
    watch.page.goto(path)
    watch.page.wait_for_selector("#no-link")
    assert "加入链接" in watch.page.inner_text("#no-link")
    assert watch.page.locator("main button, main select, video").count() == 0
    watch.screenshot(f"lifecycle-no-link{path.strip('/').replace('/', '-')}")
    assert watch.errors == []


def test_the_link_of_an_ended_lesson_opens_the_ended_screen(
    open_page: Any, live_server: LiveServer, lesson: District
) -> None:
    with closing(live_server.http("admin")) as admin:
        live_server.post(admin, f"/api/lessons/{lesson.lesson['id']}/end", {})
    watch = open_page()
    watch.page.goto(f"/join/?code={lesson.links['receiver2']}")
    watch.page.wait_for_selector("#lesson-ended")
    assert "本节课已结束" in watch.page.inner_text("#lesson-ended")
    watch.page.wait_for_selector("#not-recorded")
    assert "正在进入课堂" not in watch.page.inner_text("main")
    watch.screenshot("lifecycle-ended-link")
    assert [e for e in watch.errors if "409" not in e] == []


def test_a_bad_replay_id_says_so_and_stops_loading(open_page: Any, district: District) -> None:
    watch = open_page()
    sign_in(watch, "teacher")
    watch.page.goto("/replay/?id=no-such-recording")
    watch.page.wait_for_selector("#replay-error")
    assert "课例不存在" in watch.page.inner_text("#replay-error")
    assert "正在加载" not in watch.page.inner_text("main")
    watch.screenshot("lifecycle-bad-replay")
    assert [e for e in watch.errors if "404" not in e] == []
