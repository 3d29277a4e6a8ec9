"""The district's calendar: days, weeks and terms are counted in one time zone.

Everything is stored in UTC (server/db/models.py); a "day" (a lesson's date, a library
search's date_from/date_to, a timetable period's 08:00) means a day on the wall clocks of
the district, Asia/Shanghai unless the `timezone` setting says otherwise. Converting in
one place keeps a recording made at 02:56 Beijing time on 12-05 under 12-05 everywhere.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_ZONE = "Asia/Shanghai"


def load_zone(name: str) -> ZoneInfo:
    """The zone called `name`, or ValueError with a sentence an operator can act on."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"timezone: {name!r} is not an IANA time zone (e.g. Asia/Shanghai, Asia/Urumqi)"
        ) from None


def at_local(day: date, clock: time, zone: tzinfo) -> datetime:
    """The UTC instant of `clock` on `day` in the district."""
    return datetime.combine(day, clock, tzinfo=zone).astimezone(UTC)


def day_start(day: date, zone: tzinfo) -> datetime:
    """The UTC instant the district's `day` begins."""
    return at_local(day, time(), zone)


def days_span(first: date, last: date, zone: tzinfo) -> tuple[datetime, datetime]:
    """[start of `first`, start of the day after `last`) in UTC: inclusive local days."""
    return day_start(first, zone), day_start(last + timedelta(days=1), zone)


def local_day(at: datetime, zone: tzinfo) -> date:
    """The district's date at the (aware) instant `at`."""
    return at.astimezone(zone).date()
