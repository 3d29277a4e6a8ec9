"""The district's calendar: local days in Asia/Shanghai (or the configured zone), UTC stored."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import pytest

from server.district_time import at_local, day_start, days_span, load_zone, local_day
from server.settings import Settings

SHANGHAI = load_zone("Asia/Shanghai")


def test_a_beijing_day_starts_at_16_utc_the_day_before() -> None:
    assert day_start(date(2026, 12, 5), SHANGHAI) == datetime(2026, 12, 4, 16, tzinfo=UTC)
    first, after = days_span(date(2026, 12, 5), date(2026, 12, 6), SHANGHAI)
    assert (first, after) == (
        datetime(2026, 12, 4, 16, tzinfo=UTC),
        datetime(2026, 12, 6, 16, tzinfo=UTC),
    )


def test_the_instant_of_beijing_midnight_is_the_new_day() -> None:
    midnight = datetime(2026, 12, 4, 16, tzinfo=UTC)
    assert local_day(midnight, SHANGHAI) == date(2026, 12, 5)
    assert local_day(datetime(2026, 12, 4, 15, 59, 59, tzinfo=UTC), SHANGHAI) == date(2026, 12, 4)


def test_a_period_clock_time_becomes_utc() -> None:
    assert at_local(date(2026, 9, 1), time(8, 0), SHANGHAI) == datetime(2026, 9, 1, 0, tzinfo=UTC)
    urumqi = load_zone("Asia/Urumqi")
    assert at_local(date(2026, 9, 1), time(8, 0), urumqi) == datetime(2026, 9, 1, 2, tzinfo=UTC)


def test_the_setting_defaults_to_shanghai_and_refuses_unknown_zones(tmp_path: object) -> None:
    assert Settings().zone.key == "Asia/Shanghai"
    with pytest.raises(ValueError, match="not an IANA time zone"):
        Settings(timezone="China/Beijing")
