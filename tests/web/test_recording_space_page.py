"""The lead page warns before recording when the recording folder is nearly full."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from browser_harness import District, LiveServer, join_classroom


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    # No disk has a million GiB free: the threshold says "low" on any machine.
    server = LiveServer(tmp_path_factory.mktemp("web-data"), min_free_disk_mb=1 << 30)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_the_lead_is_warned_that_little_room_is_left_for_recordings(
    open_page: Any, lesson: District
) -> None:
    lead = join_classroom(open_page(), lesson.links["lead"])
    warning = lead.page.wait_for_selector("#space-low:not(.hidden)", timeout=15_000)
    text = warning.inner_text()
    assert "录像存储空间不足" in text and "MB" in text
    lead.screenshot("lead-recording-space-low")
    # A receiving classroom never sees it (its link may not read the lead's status).
    receiver = join_classroom(open_page(), lesson.links["receiver1"])
    assert receiver.page.locator("#space-low").count() == 0
