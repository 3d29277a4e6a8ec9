"""Room logic: join, participants, stage, hands, mute, recording, notes, lesson end, replace."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st
from signal_harness import FAST, LEAD_ROOM, LESSON_ID, Client, Signal, lesson_info

from signaling.errors import CloseCode
from signaling.grants import Role
from signaling.hooks import LessonInfo, LessonState, NullLessonHooks


async def test_joined_describes_the_lesson_the_peer_and_its_grants(signal: Signal) -> None:
    lead = await signal.lead()
    joined = lead.joined
    assert joined["role"] == "lead"
    assert joined["lesson"]["id"] == LESSON_ID
    assert joined["lesson"]["subject"] == "数学"
    assert joined["lesson"]["state"] == "scheduled"
    assert joined["you"]["classroom_id"] == LEAD_ROOM
    assert set(joined["you"]["publish"]) == {"camera", "board", "screen", "mic"}
    assert "stage" in joined["you"]["controls"]
    assert joined["stage"] is None and joined["hands"] == [] and joined["recording"] is False
    assert joined["muted"] == ["r1", "r2", "r3"]
    assert joined["resume_token"] and joined["peer_id"]
    assert [p["classroom_id"] for p in joined["participants"]] == [LEAD_ROOM]


async def test_a_receiver_joining_is_announced_to_the_lead(signal: Signal) -> None:
    lead = await signal.lead()
    r1 = await signal.receiver("r1")
    event = await lead.expect("participant_joined")
    assert event["participant"]["classroom_id"] == "r1"
    assert event["participant"]["school"] == "石门教学点"
    assert {p["classroom_id"] for p in r1.joined["participants"]} == {LEAD_ROOM, "r1"}


async def test_a_patrol_peer_is_invisible_to_everyone_else(signal: Signal) -> None:
    lead = await signal.lead()
    r1 = await signal.receiver("r1")
    patrol = await signal.patrol()
    await lead.settle()
    await r1.settle()
    for client in (lead, r1):
        assert "participant_joined" not in [
            m["type"] for m in client.pending() if m.get("participant", {}).get("role") == "patrol"
        ]
    r2 = await signal.receiver("r2")
    assert all(p["role"] != "patrol" for p in r2.joined["participants"])
    # The patrol sees the visible participants, not itself in the list.
    assert {p["classroom_id"] for p in patrol.joined["participants"]} == {LEAD_ROOM, "r1"}
    patrol.send(type="leave")
    assert await patrol.wait_closed() == CloseCode.NORMAL
    await lead.settle()
    assert not [m for m in lead.pending() if m["type"] == "participant_left"]


async def test_the_lead_puts_a_present_receiver_on_stage_and_everyone_hears_of_it(
    signal: Signal,
) -> None:
    lead = await signal.live()
    r1 = await signal.receiver("r1")
    r2 = await signal.receiver("r2")
    reply = await lead.request("set_stage", classroom_id="r1")
    assert reply == {"type": "ok", "id": reply["id"], "of": "set_stage"}
    for client in (lead, r1, r2):
        event = await client.expect("stage_changed")
        assert event["classroom_id"] == "r1" and event["previous"] is None
        # On stage, the lead hears the classroom.
        assert event["muted"] == ["r2", "r3"]
    await lead.request("set_stage", classroom_id=None)
    event = await r2.expect(lambda m: m["type"] == "stage_changed" and m["classroom_id"] is None)
    assert event["previous"] == "r1" and event["muted"] == ["r1", "r2", "r3"]


async def test_stage_refuses_a_classroom_that_is_absent_or_not_in_the_lesson(
    signal: Signal,
) -> None:
    lead = await signal.live()
    assert (await lead.request("set_stage", classroom_id="r2"))["code"] == "invalid_target"
    assert (await lead.request("set_stage", classroom_id="nowhere"))["code"] == "invalid_target"
    assert (await lead.request("set_stage", classroom_id=LEAD_ROOM))["code"] == "invalid_target"


async def test_stage_needs_a_live_lesson(signal: Signal) -> None:
    lead = await signal.lead()
    await signal.receiver("r1")
    assert (await lead.request("set_stage", classroom_id="r1"))["code"] == "lesson_not_live"


async def test_hands_queue_in_order_and_going_on_stage_lowers_a_hand(signal: Signal) -> None:
    lead = await signal.live()
    r1 = await signal.receiver("r1")
    r2 = await signal.receiver("r2")
    await r2.request("raise_hand")
    await r1.request("raise_hand")
    raised = await lead.expect(lambda m: m["type"] == "hand_raised" and m["classroom_id"] == "r1")
    assert raised["hands"] == ["r2", "r1"]
    # Raising twice changes nothing.
    assert (await r1.request("raise_hand"))["type"] == "ok"
    await lead.request("set_stage", classroom_id="r2")
    lowered = await lead.expect("hand_lowered")
    assert lowered == {"type": "hand_lowered", "id": None, "classroom_id": "r2", "hands": ["r1"]}
    await r1.request("lower_hand")
    lowered = await r2.expect(lambda m: m["type"] == "hand_lowered" and m["classroom_id"] == "r1")
    assert lowered["hands"] == []
    lead.clear()
    assert (await r1.request("lower_hand"))["type"] == "ok"
    await lead.settle()
    assert "hand_lowered" not in lead.types()


async def test_a_hand_is_lowered_when_its_classroom_leaves(signal: Signal) -> None:
    lead = await signal.live()
    r1 = await signal.receiver("r1")
    await r1.request("raise_hand")
    r1.send(type="leave")
    lowered = await lead.expect("hand_lowered")
    assert lowered["hands"] == []
    left = await lead.expect("participant_left")
    assert left["reason"] == "left" and left["classroom_id"] == "r1"


async def test_the_lead_unmutes_an_off_stage_classroom_and_mutes_the_on_stage_one(
    signal: Signal,
) -> None:
    lead = await signal.live()
    r1 = await signal.receiver("r1")
    await signal.receiver("r2")
    await lead.request("mute", classroom_id="r2", muted=False)
    event = await r1.expect("muted_changed")
    assert event["classroom_id"] == "r2" and event["muted"] is False
    assert event["all_muted"] == ["r1", "r3"]
    await lead.request("set_stage", classroom_id="r1")
    assert (await lead.expect("stage_changed"))["muted"] == ["r3"]
    await lead.request("mute", classroom_id="r1", muted=True)
    event = await lead.expect(lambda m: m["type"] == "muted_changed" and m["classroom_id"] == "r1")
    assert event == {
        "type": "muted_changed",
        "id": None,
        "classroom_id": "r1",
        "muted": True,
        "all_muted": ["r1", "r3"],
    }
    # Muting an already muted classroom sends nothing.
    lead.clear()
    await lead.request("mute", classroom_id="r3", muted=True)
    assert "muted_changed" not in lead.types()


async def test_taking_a_classroom_off_stage_forgets_the_leads_choice_for_it(
    signal: Signal,
) -> None:
    lead = await signal.live()
    await signal.receiver("r1")
    await lead.request("mute", classroom_id="r1", muted=False)
    await lead.request("set_stage", classroom_id="r1")
    await lead.request("set_stage", classroom_id=None)
    event = await lead.expect(lambda m: m["type"] == "stage_changed" and m["classroom_id"] is None)
    assert "r1" in event["muted"]


async def test_mute_refuses_a_classroom_outside_the_lesson(signal: Signal) -> None:
    lead = await signal.lead()
    reply = await lead.request("mute", classroom_id="elsewhere", muted=True)
    assert reply["code"] == "invalid_target"


async def test_recording_is_switched_by_the_lead_while_live(signal: Signal) -> None:
    lead = await signal.lead()
    r1 = await signal.receiver("r1")
    assert (await lead.request("set_recording", on=True))["code"] == "lesson_not_live"
    await lead.request("start_lesson")
    assert (await r1.expect("lesson_started"))["at"]
    assert (await lead.request("set_recording", on=True))["type"] == "ok"
    assert (await r1.expect("recording_changed"))["on"] is True
    await lead.request("set_recording", on=False)
    assert (await r1.expect("recording_changed"))["on"] is False


class RestoreHooks(NullLessonHooks):
    def __init__(self, info: LessonInfo) -> None:
        super().__init__({info.id: info})
        self.restored: list[tuple[str, str | None, bool]] = []

    async def lesson_restored(self, lesson_id: str, stage: str | None, recording: bool) -> None:
        self.restored.append((lesson_id, stage, recording))


async def test_a_live_lessons_room_built_again_carries_on_with_stage_and_recording(
    make_signal: Callable[..., Signal],
) -> None:
    """After a restart or a fail-over the room is built from the database: the lesson records
    on and its stage stays, the staged classroom having the resume window to come back."""
    signal = make_signal(replace(FAST, resume_window_s=0.6))
    info = replace(lesson_info(state=LessonState.LIVE), stage="r2", recording=True)
    signal.rooms.hooks = signal.hooks = hooks = RestoreHooks(info)
    lead = await signal.lead()
    assert (lead.joined["stage"], lead.joined["recording"]) == ("r2", True)
    await lead.settle()  # the hook runs beside the join
    assert hooks.restored == [(LESSON_ID, "r2", True)]
    r2 = await signal.receiver("r2")  # back within the window: still on stage
    assert r2.joined["stage"] == "r2"
    await asyncio.sleep(0.8)
    assert signal.rooms.rooms[LESSON_ID].stage == "r2"
    assert (await lead.request("set_recording", on=False))["type"] == "ok"


async def test_a_restored_stage_whose_classroom_never_comes_back_is_cleared(
    make_signal: Callable[..., Signal],
) -> None:
    signal = make_signal(replace(FAST, resume_window_s=0.3))
    info = replace(lesson_info(state=LessonState.LIVE), stage="r3")
    signal.rooms.hooks = signal.hooks = hooks = RestoreHooks(info)
    lead = await signal.lead()
    assert (lead.joined["stage"], lead.joined["recording"]) == ("r3", False)
    changed = await lead.expect("stage_changed", wait_s=2.0)
    assert (changed["classroom_id"], changed["previous"]) == (None, "r3")
    assert hooks.restored == [(LESSON_ID, "r3", False)]


async def test_a_scheduled_lessons_room_starts_clean(make_signal: Callable[..., Signal]) -> None:
    signal = make_signal()
    info = replace(lesson_info(), stage="r2", recording=True)  # stale facts, not live
    signal.rooms.hooks = signal.hooks = hooks = RestoreHooks(info)
    lead = await signal.lead()
    assert (lead.joined["stage"], lead.joined["recording"]) == (None, False)
    assert hooks.restored == []


async def test_notes_reach_the_lead_and_patrol_only_with_an_offset_since_start(
    signal: Signal,
) -> None:
    lead = await signal.live()
    r1 = await signal.receiver("r1")
    patrol = await signal.patrol()
    reply = await patrol.request("add_note", text="板书清晰", scores={"互动": 4})
    assert reply["type"] == "ok"
    for client in (lead, patrol):
        note = (await client.expect("note_added"))["note"]
        assert note["text"] == "板书清晰" and note["author_role"] == "patrol"
        assert note["offset_s"] is not None and note["offset_s"] >= 0
        assert note["scores"] == {"互动": 4}
    await r1.settle()
    assert "note_added" not in r1.types()
    (stored,) = signal.hooks.notes
    assert stored.lesson_id == LESSON_ID and stored.text == "板书清晰"


async def test_ending_the_lesson_closes_every_peer_after_a_final_message(signal: Signal) -> None:
    lead = await signal.live()
    r1 = await signal.receiver("r1")
    patrol = await signal.patrol()
    reply = await lead.request("end_lesson")
    assert reply["type"] == "ok"
    for client in (lead, r1, patrol):
        assert await client.wait_closed() == CloseCode.LESSON_ENDED
        assert client.types()[-1] == "lesson_ended"
    assert signal.rooms.stats.live_lessons == 0
    again = signal.connect()
    reply = await again.request("join", version=1, token=signal.token(Role.RECEIVER, "r2"))
    assert reply["code"] == "lesson_ended"


async def test_a_second_join_for_the_same_classroom_replaces_the_first(signal: Signal) -> None:
    lead = await signal.live()
    first = await signal.receiver("r1")
    await lead.request("set_stage", classroom_id="r1")
    second = await signal.receiver("r1")
    error = await first.expect("error")
    assert error["code"] == "replaced"
    assert await first.wait_closed() == CloseCode.REPLACED
    left = await lead.expect("participant_left")
    assert left["reason"] == "replaced" and left["peer_id"] == first.joined["peer_id"]
    joined = await lead.expect(
        lambda m: (
            m["type"] == "participant_joined"
            and m["participant"]["peer_id"] == second.joined["peer_id"]
        )
    )
    assert joined["participant"]["classroom_id"] == "r1"
    # The classroom keeps its place on stage.
    assert second.joined["stage"] == "r1"
    assert signal.rooms.stats.peers["receiver"] == 1


async def test_stats_count_peers_messages_errors_and_live_lessons(signal: Signal) -> None:
    lead = await signal.live()
    await signal.receiver("r1")
    await lead.request("mute", classroom_id="nowhere", muted=True)
    stats = signal.rooms.stats
    assert stats.peers["lead"] == 1 and stats.peers["receiver"] == 1
    assert stats.live_lessons == 1
    assert stats.messages["join"] == 2 and stats.messages["start_lesson"] == 1
    assert stats.errors["invalid_target"] == 1


# Patrol invisibility over random lesson histories -----------------------------------------

OPS = st.lists(
    st.tuples(
        st.sampled_from(["receiver", "patrol", "leave", "drop", "note", "stage"]),
        st.sampled_from(["r1", "r2", "r3"]),
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=25, deadline=None)
@given(ops=OPS)
def test_no_history_ever_shows_a_patrol_peer_to_anyone_else(ops: list[tuple[str, str]]) -> None:
    async def scenario() -> None:
        signal = Signal(FAST)
        try:
            lead = await signal.live()
            clients: dict[str, Client] = {}
            patrols: list[Client] = []
            for op, room in ops:
                if op == "receiver":
                    clients[room] = await signal.receiver(room)
                elif op == "patrol":
                    patrols.append(await signal.patrol())
                elif op in ("leave", "drop") and patrols:
                    patrol = patrols.pop()
                    patrol.send(type="leave") if op == "leave" else patrol.drop()
                elif op == "note" and patrols:
                    await patrols[-1].request("add_note", text="记录")
                elif op == "stage" and room in clients:
                    await lead.request("set_stage", classroom_id=room)
            await lead.settle()
            hidden = {
                p.joined["peer_id"] for p in signal.clients if p.joined.get("role") == "patrol"
            }
            for client in [lead, *clients.values(), *patrols]:
                await client.settle()
                text = json.dumps([m for m in client.pending() if m["type"] != "joined"])
                text += json.dumps(client.joined.get("participants", []))
                mine = client.joined.get("peer_id")
                assert not any(pid in text for pid in hidden - {mine})
        finally:
            await signal.aclose()

    asyncio.run(scenario())


# One room per lesson whatever the order of joins ------------------------------------------


async def test_a_lone_lead_joining_again_before_the_start_gets_a_live_room(signal: Signal) -> None:
    first = await signal.lead()
    second = await signal.lead()
    assert (await first.expect("error"))["code"] == "replaced"
    assert (await second.request("start_lesson"))["type"] == "ok"
    receiver = await signal.receiver("r1")
    assert receiver.joined["lesson"]["state"] == "live"
    assert [p["peer_id"] for p in receiver.joined["participants"]] == [
        second.joined["peer_id"],
        receiver.joined["peer_id"],
    ]
    assert len(signal.rooms.rooms) == 1


async def test_a_lone_lead_that_dropped_and_joins_again_keeps_the_lesson(signal: Signal) -> None:
    first = await signal.live()
    first.drop()
    await asyncio.sleep(0.05)
    second = await signal.lead()
    assert second.joined["lesson"]["state"] == "live"
    assert (await second.request("add_note", text="板书"))["type"] == "ok"
    assert (await second.request("set_recording", on=True))["type"] == "ok"
    receiver = await signal.receiver("r2")
    assert (await second.request("set_stage", classroom_id="r2"))["type"] == "ok"
    assert (await receiver.expect("stage_changed"))["classroom_id"] == "r2"


# Own devices and the end of a lesson ---------------------------------------------------------


async def test_a_classroom_turning_its_camera_off_is_shown_to_everyone_else(
    signal: Signal,
) -> None:
    lead = await signal.live()
    r1 = await signal.receiver("r1")
    patrol = await signal.patrol()
    reply = await lead.request("set_media_state", mic_on=False, camera_on=False)
    assert reply["type"] == "ok"
    for client in (lead, r1, patrol):
        updated = await client.expect("participant_updated")
        assert updated["participant"]["peer_id"] == lead.joined["peer_id"]
        assert (updated["participant"]["mic_on"], updated["participant"]["camera_on"]) == (
            False,
            False,
        )
    # The same state again changes nothing; a newcomer sees it in joined.
    await lead.request("set_media_state", mic_on=False, camera_on=False)
    await r1.settle()
    assert "participant_updated" not in r1.types()
    r2 = await signal.receiver("r2")
    seen = {p["peer_id"]: p for p in r2.joined["participants"]}
    assert seen[lead.joined["peer_id"]]["camera_on"] is False


async def test_the_lead_is_told_who_came_how_long_hands_and_notes_when_the_lesson_ends(
    signal: Signal,
) -> None:
    lead = await signal.live()
    r1 = await signal.receiver("r1")
    patrol = await signal.patrol()
    await r1.request("raise_hand")
    await patrol.request("add_note", text="导入自然")
    await lead.request("set_recording", on=True)
    await lead.request("set_recording", on=False)
    await asyncio.sleep(0.2)
    await lead.request("end_lesson")
    mine = await lead.expect("lesson_ended")
    theirs = await r1.expect("lesson_ended")
    assert theirs["report"] is None and (await patrol.expect("lesson_ended"))["report"] is None
    assert mine["recorded"] is True and theirs["recorded"] is True
    assert mine["duration_s"] >= 0.2 and mine["started_at"] == theirs["started_at"]
    report = mine["report"]
    assert report["hands_raised"] == 1 and report["notes"] == 1
    rows = {row["classroom_id"]: row for row in report["classrooms"]}
    assert set(rows) == {"r1", "r2", "r3"}
    assert rows["r1"]["joins"] == 1 and 0.1 < rows["r1"]["present_s"] <= mine["duration_s"]
    assert rows["r2"] == {**rows["r2"], "joins": 0, "present_s": 0.0}


async def test_a_lesson_that_never_started_ends_without_a_duration(signal: Signal) -> None:
    lead = await signal.lead()
    await lead.request("end_lesson")
    ended = await lead.expect("lesson_ended")
    assert ended["duration_s"] is None and ended["started_at"] is None
    assert ended["recorded"] is False
    assert all(row["present_s"] == 0 for row in ended["report"]["classrooms"])


async def test_the_roll_call_timer_flags_missing_classrooms_even_if_it_fires_a_hair_early(
    make_signal: Callable[..., Signal],
) -> None:
    signal = make_signal(replace(FAST, late_after_s=60.0))
    lead = await signal.live()
    await signal.receiver("r1")
    room = signal.rooms.rooms[LESSON_ID]
    assert room.started_at is not None
    # What the loop's timer does: it may run before the wall clock reaches the deadline.
    room.roll_call(not_before=room.started_at + timedelta(seconds=60))
    flags = await lead.expect("attendance_flags")
    assert [(f["classroom_id"], f["status"]) for f in flags["classrooms"]] == [
        ("r2", "missing"),
        ("r3", "missing"),
    ]
