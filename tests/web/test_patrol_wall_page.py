"""The patrol wall in Chromium: two live lessons in two counties, their classrooms synthetic
terminals (real signaling, real SFU, the clip published at main and low). The inspector sees
both tiles playing with classrooms present / expected and a health badge; the county filter
leaves one (the other tile leaves its lesson); stage and recording marks follow the lead;
a tile scrolled out of view receives no video until it is seen again."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
from browser_harness import LiveServer, PageWatch, sign_in, wait_js

from media.synthetic.terminal import SyntheticTerminal

pytestmark = pytest.mark.browser
T = TypeVar("T")
LOOPBACK = ["127.0.0.1"]


class Terminals:
    """Synthetic terminals on an event loop of their own (Playwright's sync API holds this
    thread's)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.all: list[SyntheticTerminal] = []

    def run(self, coro: Coroutine[Any, Any, T], timeout_s: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    def join(self, code: str, *, lead: bool = False) -> SyntheticTerminal:
        terminal = SyntheticTerminal(self.base_url, code, host_addresses=LOOPBACK)
        self.all.append(terminal)
        self.run(terminal.start(start_lesson=lead))
        return terminal

    def close(self) -> None:
        for terminal in self.all:
            try:
                self.run(terminal.close(), 30)
            except Exception:
                pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def two_lessons(live_server: LiveServer, district: Any) -> Iterator[dict[str, Any]]:
    """Two live lessons, one led in 甲县 and one in 乙县, each lead + one receiving classroom."""
    terminals = Terminals(live_server.api_url)
    made: dict[str, Any] = {"terminals": terminals}
    now = datetime.now(UTC)
    with closing(live_server.http("admin")) as admin:
        for key, county, subject in (("east", "甲县", "数学"), ("west", "乙县", "语文")):
            county_id = live_server.post(admin, "/api/counties", {"name": county})["id"]
            school = live_server.post(
                admin,
                "/api/schools",
                {"name": f"{county}中心校", "kind": "central", "county_id": county_id},
            )
            rooms = [
                live_server.post(
                    admin,
                    "/api/classrooms",
                    {"school_id": school["id"], "name": name, "kind": kind},
                )
                for name, kind in (("录播教室", "lead"), (f"{county}接收教室", "receiving"))
            ]
            lesson = live_server.post(
                admin,
                "/api/lessons",
                {
                    "title": f"{subject}示范课",
                    "teacher_id": district.teacher_id,
                    "lead_classroom_id": rooms[0]["id"],
                    "receiver_classroom_ids": [rooms[1]["id"]],
                    "scheduled_start": (now + timedelta(minutes=5)).isoformat(),
                    "scheduled_end": (now + timedelta(minutes=50)).isoformat(),
                    "subject": subject,
                    "grade": "三年级",
                },
            )
            links = live_server.post(admin, f"/api/lessons/{lesson['id']}/links/roster", {})
            codes = {link["role"]: link["code"] for link in links}
            made[key] = {
                "lesson": lesson,
                "county_id": county_id,
                "receiver": rooms[1],
                "lead": terminals.join(codes["lead"], lead=True),
                "classroom": terminals.join(codes["receiver"]),
            }
    try:
        yield made
    finally:
        terminals.close()
        # The lessons end, so other tests of the module see only their own on the wall.
        with closing(live_server.http("admin")) as admin:
            for key in ("east", "west"):
                admin.post(f"/api/lessons/{made[key]['lesson']['id']}/end")


def tile(lesson: dict[str, Any]) -> str:
    return f"#wall .tile[data-lesson='{lesson['id']}']"


def test_the_wall_shows_two_live_lessons_filters_by_county_and_subscribes_only_what_is_seen(
    open_page: Any, two_lessons: dict[str, Any]
) -> None:
    east, west = two_lessons["east"], two_lessons["west"]
    terminals: Terminals = two_lessons["terminals"]
    watch: PageWatch = open_page()
    sign_in(watch, "inspector")
    watch.page.goto("/patrol/")
    for one in (east, west):
        selector = tile(one["lesson"])
        watch.page.wait_for_selector(selector)
        wait_js(watch, f'document.querySelector("{selector} video")?.videoWidth > 0', 30_000)
        watch.page.wait_for_selector(f"{selector} .count[data-present='2']")
        assert "2/2 个教室在线" in watch.page.inner_text(f"{selector} .count")
        # Health from the classrooms' quality reports (not 检测中 once they arrive).
        watch.page.wait_for_selector(
            f"{selector}[data-health=good], {selector}[data-health=fair], "
            f"{selector}[data-health=poor]",
            timeout=20_000,
        )
    assert "甲县" in watch.page.inner_text(tile(east["lesson"]))
    # Stage and recording marks follow the lead.
    terminals.run(
        east["lead"].request({"type": "set_stage", "classroom_id": east["receiver"]["id"]})
    )
    terminals.run(west["lead"].request({"type": "set_recording", "on": True}))
    watch.page.wait_for_selector(
        f"{tile(east['lesson'])} .pill.stage:has-text('上台：甲县中心校 甲县接收教室')"
    )
    watch.page.wait_for_selector(f"{tile(west['lesson'])} .recording-notice:not(.hidden)")
    assert watch.page.locator(f"{tile(east['lesson'])} .recording-notice.hidden").count() == 1
    assert "共 2 节直播课" in watch.page.inner_text("#wall-total")
    watch.screenshot("patrol-wall-two-lessons-zh-CN")

    # Filter by county: 乙县 only; the other tile leaves its lesson.
    options = watch.page.eval_on_selector_all(
        "#filter-county option", "os => os.map(o => o.textContent)"
    )
    assert options[0] == "全部" and sorted(options[1:]) == ["乙县（1 节）", "甲县（1 节）"]
    watch.page.select_option("#filter-county", west["county_id"])
    watch.page.wait_for_selector(tile(east["lesson"]), state="detached")
    watch.page.wait_for_selector(tile(west["lesson"]))
    assert "county=" in watch.page.url
    assert watch.page.evaluate("window.tongke.wall.tiles.size") == 1
    watch.page.select_option("#filter-subject", "数学")  # 乙县 has no 数学 lesson
    watch.page.wait_for_selector("#no-lessons:not(.hidden):has-text('没有符合筛选条件的直播课')")
    watch.screenshot("patrol-wall-filtered-zh-CN")

    # A narrow screen: the second tile is below the fold and receives no video until seen.
    narrow = open_page(width=420, height=700)
    sign_in(narrow, "inspector")
    narrow.page.goto("/patrol/")
    second = tile(west["lesson"])
    narrow.page.wait_for_selector(second, state="attached")
    video_of = (
        "((id) => { const e = window.tongke.lessons.get(id);"
        " return e ? [...e.media.consumers.values()]"
        ".filter((c) => c.producer.kind === 'video').length : -1; })"
    )
    wait_js(
        narrow, f'document.querySelector("{tile(east["lesson"])} video")?.videoWidth > 0', 30_000
    )
    wait_js(narrow, f"{video_of}({west['lesson']['id']!r}) === 0")
    narrow.page.wait_for_timeout(1500)
    assert narrow.page.evaluate(f"{video_of}({west['lesson']['id']!r})") == 0
    narrow.page.locator(second).scroll_into_view_if_needed()
    wait_js(narrow, f"{video_of}({west['lesson']['id']!r}) > 0", 20_000)
    wait_js(narrow, f'document.querySelector("{second} video")?.videoWidth > 0', 30_000)
    for page in (watch, narrow):
        assert [e for e in page.errors if "media" not in e.lower()] == []
