"""Active-speaker events: the media plane's loudest publisher reaches the lead and patrol.

The media plane is the RecordingMedia stand-in here (its listener is the RoomManager);
tests/media/test_lesson_media.py drives the same path from real audio levels.
"""

from __future__ import annotations

from signal_harness import LESSON_ID, RecordingMedia, Signal


def speakers(messages: list[dict]) -> list[tuple[str | None, str | None]]:
    return [(m["peer_id"], m["classroom_id"]) for m in messages if m["type"] == "active_speaker"]


async def test_the_lead_and_patrol_hear_who_speaks_and_receivers_do_not(
    lesson: Signal, media: RecordingMedia
) -> None:
    lead = await lesson.live()
    r1 = await lesson.receiver("r1")
    r2 = await lesson.receiver("r2")
    patrol = await lesson.patrol()
    assert media.listener is not None
    r1_id = r1.joined["peer_id"]

    media.listener.active_speaker_changed(LESSON_ID, r1_id)
    for client in (lead, patrol):
        message = await client.expect("active_speaker")
        assert (message["peer_id"], message["classroom_id"]) == (r1_id, "r1")

    media.listener.active_speaker_changed(LESSON_ID, r1_id)  # unchanged: nothing new
    media.listener.active_speaker_changed(LESSON_ID, lead.joined["peer_id"])
    message = await lead.expect("active_speaker")
    assert message["classroom_id"] == "lead-room"  # the lead's own voice is marked too
    media.listener.active_speaker_changed(LESSON_ID, None)
    assert (await lead.expect("active_speaker"))["peer_id"] is None

    for client in (lead, patrol, r1, r2):
        await client.settle()
    assert speakers(lead.pending()) == []  # the repeat above sent nothing
    assert speakers(r1.pending()) == speakers(r2.pending()) == []
    assert "active_speaker" not in r1.types() + r2.types()


async def test_a_speaker_that_is_no_participant_reads_as_silence(
    lesson: Signal, media: RecordingMedia
) -> None:
    lead = await lesson.live()
    r1 = await lesson.receiver("r1")
    assert media.listener is not None
    media.listener.active_speaker_changed(LESSON_ID, "no-such-peer")  # already silent: nothing
    media.listener.active_speaker_changed("another-lesson", r1.joined["peer_id"])  # no room
    await lead.settle()
    assert "active_speaker" not in lead.types()

    media.listener.active_speaker_changed(LESSON_ID, r1.joined["peer_id"])
    assert (await lead.expect("active_speaker"))["classroom_id"] == "r1"
    media.listener.active_speaker_changed(LESSON_ID, "no-such-peer")
    assert (await lead.expect("active_speaker"))["peer_id"] is None


async def test_a_lead_or_patrol_joining_mid_sentence_is_told_after_joined(
    lesson: Signal, media: RecordingMedia
) -> None:
    await lesson.live()
    r1 = await lesson.receiver("r1")
    assert media.listener is not None
    media.listener.active_speaker_changed(LESSON_ID, r1.joined["peer_id"])

    patrol = await lesson.patrol()
    message = await patrol.expect("active_speaker")
    assert message["classroom_id"] == "r1"

    r2 = await lesson.receiver("r2")  # receivers are not told, not even on join
    await r2.settle()
    assert "active_speaker" not in r2.types()

    # A resumed patrol is told again (its page starts from the joined reply).
    patrol.drop()
    again = lesson.connect()
    joined = await again.request("resume", version=1, resume_token=patrol.joined["resume_token"])
    assert joined["type"] == "joined" and joined["resumed"] is True
    assert (await again.expect("active_speaker"))["classroom_id"] == "r1"
