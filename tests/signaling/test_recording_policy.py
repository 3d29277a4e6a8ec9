"""The timetable slot's recording policy, applied when the lesson goes live."""

from __future__ import annotations

from dataclasses import replace

from signal_harness import LESSON_ID, Signal, lesson_info

from signaling.hooks import NullLessonHooks


def _policy(signal: Signal, policy: str) -> NullLessonHooks:
    hooks = NullLessonHooks({LESSON_ID: replace(lesson_info(), recording_policy=policy)})
    signal.rooms.hooks = signal.hooks = hooks
    return hooks


async def test_an_always_recorded_lesson_records_from_the_moment_it_goes_live(
    signal: Signal,
) -> None:
    hooks = _policy(signal, "always")
    lead = await signal.lead()
    assert lead.joined["lesson"]["recording_policy"] == "always"
    r1 = await signal.receiver("r1")
    await lead.request("start_lesson")
    await r1.expect("lesson_started")
    assert (await r1.expect("recording_changed"))["on"] is True
    assert hooks.lessons[LESSON_ID].recording is True
    # The lead may still stop it (a privacy moment); the policy only starts it.
    assert (await lead.request("set_recording", on=False))["type"] == "ok"


async def test_a_never_recorded_lesson_refuses_the_recording_switch(signal: Signal) -> None:
    hooks = _policy(signal, "never")
    lead = await signal.lead()
    await lead.request("start_lesson")
    refused = await lead.request("set_recording", on=True)
    assert (refused["type"], refused["code"]) == ("error", "recording_not_allowed")
    assert hooks.lessons[LESSON_ID].recording is False


async def test_the_teacher_decides_by_default(signal: Signal) -> None:
    _policy(signal, "teacher")
    lead = await signal.lead()
    await lead.request("start_lesson")
    assert lead.joined["recording"] is False
    assert (await lead.request("set_recording", on=True))["type"] == "ok"
