"""Report periods: a week, a month, a term or custom days, as district days and UTC instants."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from enum import StrEnum

from server.district_time import days_span


class PeriodKind(StrEnum):
    WEEK = "week"  # the Monday-to-Sunday week holding `day`
    MONTH = "month"  # the calendar month holding `day`
    TERM = "term"  # a term's first to last day
    CUSTOM = "custom"  # date_from to date_to


# A custom period longer than this is refused (a report is about a term, not a decade).
MAX_DAYS = 400


@dataclass(frozen=True, slots=True)
class Period:
    kind: PeriodKind
    first_day: date
    last_day: date
    # [starts, ends) in UTC: local midnight of first_day to local midnight after last_day.
    starts: datetime
    ends: datetime

    def weeks(self, zone: tzinfo) -> list[tuple[date, datetime, datetime]]:
        """Each Monday-to-Sunday week touching the period: (its Monday, start, end) in UTC,
        clipped to the period."""
        monday = self.first_day - timedelta(days=self.first_day.weekday())
        out = []
        while monday <= self.last_day:
            first = max(monday, self.first_day)
            last = min(monday + timedelta(days=6), self.last_day)
            start, end = days_span(first, last, zone)
            out.append((monday, start, end))
            monday += timedelta(days=7)
        return out


def make_period(kind: PeriodKind, first: date, last: date, zone: tzinfo) -> Period:
    if last < first:
        raise ValueError("invalid_period", "The period's last day is before its first.")
    if (last - first).days + 1 > MAX_DAYS:
        raise ValueError("invalid_period", f"A report covers at most {MAX_DAYS} days.")
    starts, ends = days_span(first, last, zone)
    return Period(kind, first, last, starts, ends)


def week_of(day: date, zone: tzinfo) -> Period:
    monday = day - timedelta(days=day.weekday())
    return make_period(PeriodKind.WEEK, monday, monday + timedelta(days=6), zone)


def month_of(day: date, zone: tzinfo) -> Period:
    first = day.replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    return make_period(PeriodKind.MONTH, first, following - timedelta(days=1), zone)
