"""Model-based test of the term timetable (hypothesis RuleBasedStateMachine) over HTTP.

Slots are added, edited and deleted, exceptions put and removed, and the term generated
again, in any order. A small reference model (written here, not the planner) predicts which
changes are refused as double booking and which lessons the term must have. After every step:
- the term's lessons are exactly the model's (slot, regular day, actual day, period, teacher);
- no classroom and no teacher is in two lessons at once;
- every lesson lies inside the term on a teaching day (no holiday; a weekend only as 调休);
- generating again changes nothing (idempotence), and exceptions are still applied.
"""

from __future__ import annotations

import importlib.util
import itertools
import sys
import tempfile
from contextlib import ExitStack
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from app_support import make_settings
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from timetable_support import period_times, slot_body, term_lessons

SHANGHAI = ZoneInfo("Asia/Shanghai")


def _server_conftest() -> Any:
    """tests/server/conftest.py by path: `from conftest import` finds another folder's
    conftest when several test folders run together (see app_support.py)."""
    spec = importlib.util.spec_from_file_location(
        "server_conftest_for_timetable_model", Path(__file__).with_name("conftest.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


_conftest = _server_conftest()
District = _conftest.District
district_app = _conftest.district_app
_years = itertools.count(2100)
_stack = ExitStack()
_district: Any = None


def shared_district() -> Any:
    """One app for every example (each example makes a term of its own, in its own year)."""
    global _district
    if _district is None:
        data_dir = Path(_stack.enter_context(tempfile.TemporaryDirectory()))
        _district = _stack.enter_context(district_app(make_settings(data_dir)))
        school = _district.school()
        _district.ids["rooms"] = ",".join(_district.classroom(school) for _ in range(3))
    return _district


def teaching_days(first: date, last: date, holiday: date, makeup: date) -> dict[date, int]:
    days = {}
    day = first
    while day <= last:
        if day == makeup:
            days[day] = 1  # the Saturday runs Monday's slots
        elif day != holiday and day.isoweekday() <= 5:
            days[day] = day.isoweekday()
        day += timedelta(days=1)
    return days


class TimetableMachine(RuleBasedStateMachine):
    @initialize()
    def make_term(self) -> None:
        self.d = shared_district()
        self.rooms = self.d.ids["rooms"].split(",")
        self.teachers = [self.d.ids["teacher"], self.d.ids["other_teacher"]]
        year = next(_years)
        # Two weeks from a Monday; Tuesday of week one is a holiday, Saturday a make-up day.
        self.first = date(year, 3, 1) + timedelta(days=(7 - date(year, 3, 1).weekday()) % 7)
        self.last = self.first + timedelta(days=11)
        self.holiday = self.first + timedelta(days=1)
        self.makeup = self.first + timedelta(days=5)
        body = {
            "name": f"{year}春季学期",
            "first_day": self.first.isoformat(),
            "last_day": self.last.isoformat(),
            "holidays": [{"first_day": str(self.holiday), "last_day": str(self.holiday)}],
            "makeup_days": [{"day": self.makeup.isoformat(), "follows_weekday": 1}],
        }  # fmt: skip
        self.term = self.d.admin_post("/api/terms", body)["id"]
        self.days = teaching_days(self.first, self.last, self.holiday, self.makeup)
        # slot id -> (weekday, period, lead, receivers, teacher)
        self.slots: dict[str, tuple[int, int, str, tuple[str, ...], str]] = {}
        # (slot id, day) -> (action, new day, teacher)
        self.exceptions: dict[tuple[str, date], tuple[str, date | None, str | None]] = {}

    # The reference model ------------------------------------------------------------------

    def expected(
        self,
        slots: dict[str, tuple[int, int, str, tuple[str, ...], str]],
        exceptions: dict[tuple[str, date], tuple[str, date | None, str | None]],
    ) -> set[tuple[str, date, date, int, str]]:
        lessons = set()
        for day, weekday in self.days.items():
            for sid, (wd, period, _, _, teacher) in slots.items():
                if wd != weekday:
                    continue
                action, new_day, sub = exceptions.get((sid, day), ("", None, None))
                if action == "cancel":
                    continue
                lessons.add((sid, day, new_day or day, period, sub or teacher))
        return lessons

    def clashes(
        self,
        slots: dict[str, tuple[int, int, str, tuple[str, ...], str]],
        exceptions: dict[tuple[str, date], tuple[str, date | None, str | None]],
    ) -> bool:
        def needs(sid: str, teacher: str) -> set[str]:
            _, _, lead, receivers, _ = slots[sid]
            return {lead, *receivers, "teacher:" + teacher}

        weekly = list(slots.items())
        for (a, sa), (b, sb) in itertools.combinations(weekly, 2):
            if sa[:2] == sb[:2] and needs(a, sa[4]) & needs(b, sb[4]):
                return True
        lessons = list(self.expected(slots, exceptions))
        for x, y in itertools.combinations(lessons, 2):
            if x[2:4] == y[2:4] and needs(x[0], x[4]) & needs(y[0], y[4]):
                return True
        return False

    def apply(
        self,
        response: Any,
        slots: dict[str, tuple[int, int, str, tuple[str, ...], str]],
        exceptions: dict[tuple[str, date], tuple[str, date | None, str | None]],
        ok: tuple[int, ...] = (200, 201, 204),
    ) -> str | None:
        """Check the answer against the model; keep the candidate state when accepted."""
        if self.clashes(slots, exceptions):
            assert response.status_code == 409, response.text
            assert response.json()["error"]["code"] == "timetable_conflict"
            return None
        assert response.status_code in ok, response.text
        self.slots, self.exceptions = slots, exceptions
        return response.json().get("id") if response.status_code != 204 else None

    # Rules --------------------------------------------------------------------------------

    @rule(
        weekday=st.integers(1, 2),
        period=st.integers(1, 2),
        lead=st.integers(0, 2),
        receivers=st.sets(st.integers(0, 2), max_size=2),
        teacher=st.integers(0, 1),
    )
    def add_slot(
        self, weekday: int, period: int, lead: int, receivers: set[int], teacher: int
    ) -> None:
        receiver_ids = tuple(self.rooms[i] for i in sorted(receivers - {lead}))
        body = slot_body(
            weekday, period, self.rooms[lead], self.teachers[teacher], list(receiver_ids)
        )
        response = self.d.client.post(
            f"/api/terms/{self.term}/slots", json=body, headers=self.d.headers("admin")
        )
        if response.status_code == 201:
            sid = response.json()["id"]
            candidate = {
                **self.slots,
                sid: (weekday, period, self.rooms[lead], receiver_ids, self.teachers[teacher]),
            }
            assert self.apply(response, candidate, self.exceptions) == sid
        else:
            # Refused: the model must agree it would clash (with a placeholder id).
            candidate = {
                **self.slots,
                "new": (weekday, period, self.rooms[lead], receiver_ids, self.teachers[teacher]),
            }
            self.apply(response, candidate, self.exceptions)

    @precondition(lambda self: bool(self.slots))
    @rule(data=st.data(), teacher=st.integers(0, 1), weekday=st.integers(1, 2))
    def edit_slot(self, data: st.DataObject, teacher: int, weekday: int) -> None:
        sid = data.draw(st.sampled_from(sorted(self.slots)))
        _, period, lead, receivers, _ = self.slots[sid]
        response = self.d.client.patch(
            f"/api/slots/{sid}",
            json={"teacher_id": self.teachers[teacher], "weekday": weekday},
            headers=self.d.headers("admin"),
        )
        candidate = {**self.slots, sid: (weekday, period, lead, receivers, self.teachers[teacher])}
        # Exceptions stay stored; a day that is no longer the slot's just stops applying.
        self.apply(response, candidate, self.exceptions)

    @precondition(lambda self: bool(self.slots))
    @rule(data=st.data())
    def delete_slot(self, data: st.DataObject) -> None:
        sid = data.draw(st.sampled_from(sorted(self.slots)))
        response = self.d.client.delete(f"/api/slots/{sid}", headers=self.d.headers("admin"))
        assert response.status_code == 204, response.text
        self.slots = {k: v for k, v in self.slots.items() if k != sid}
        self.exceptions = {k: v for k, v in self.exceptions.items() if k[0] != sid}

    @precondition(lambda self: bool(self.slots))
    @rule(
        data=st.data(),
        action=st.sampled_from(["cancel", "move", "substitute"]),
        teacher=st.integers(0, 1),
    )
    def put_exception(self, data: st.DataObject, action: str, teacher: int) -> None:
        sid = data.draw(st.sampled_from(sorted(self.slots)))
        weekday = self.slots[sid][0]
        day = data.draw(st.sampled_from(sorted(d for d, w in self.days.items() if w == weekday)))
        body: dict[str, Any] = {"action": action}
        new_day = None
        sub = None
        if action == "move":
            new_day = data.draw(st.sampled_from(sorted(self.days)))
            body["new_day"] = new_day.isoformat()
        if action == "substitute":
            sub = self.teachers[teacher]
            body["teacher_id"] = sub
        response = self.d.client.put(
            f"/api/slots/{sid}/exceptions/{day}", json=body, headers=self.d.headers("admin")
        )
        candidate = {**self.exceptions, (sid, day): (action, new_day, sub)}
        self.apply(response, self.slots, candidate)

    @precondition(lambda self: bool(self.exceptions))
    @rule(data=st.data())
    def delete_exception(self, data: st.DataObject) -> None:
        sid, day = data.draw(st.sampled_from(sorted(self.exceptions)))
        response = self.d.client.delete(
            f"/api/slots/{sid}/exceptions/{day}", headers=self.d.headers("admin")
        )
        candidate = {k: v for k, v in self.exceptions.items() if k != (sid, day)}
        self.apply(response, self.slots, candidate)

    @rule()
    def generate_again(self) -> None:
        result = self.d.admin_post(f"/api/terms/{self.term}/generate", {})
        assert (result["created"], result["updated"], result["removed"]) == (0, 0, 0)

    # Invariants -----------------------------------------------------------------------------

    @invariant()
    def lessons_match_the_model(self) -> None:
        if not hasattr(self, "term"):
            return
        lessons = term_lessons(self.d, self.first.isoformat(), self.last.isoformat())
        seen = set()
        for lesson in lessons:
            start = datetime.fromisoformat(lesson["scheduled_start"]).astimezone(SHANGHAI)
            period = next(p for p in (1, 2) if period_times(p)[0] == f"{start:%H:%M}")
            seen.add((lesson["slot_id"], date.fromisoformat(lesson["slot_day"]), start.date(),
                      period, lesson["teacher_id"]))  # fmt: skip
            assert start.date() in self.days, f"{start.date()} is no teaching day"
        assert seen == self.expected(self.slots, self.exceptions)
        # No double booking among what the server holds.
        for a, b in itertools.combinations(lessons, 2):
            if a["scheduled_start"] != b["scheduled_start"]:
                continue
            rooms_a = {a["lead"]["id"], *(r["id"] for r in a["receivers"])}
            rooms_b = {b["lead"]["id"], *(r["id"] for r in b["receivers"])}
            assert not rooms_a & rooms_b and a["teacher_id"] != b["teacher_id"]


TestTimetableModel = TimetableMachine.TestCase
TestTimetableModel.settings = settings(
    max_examples=25,
    stateful_step_count=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def teardown_module() -> None:
    _stack.close()
