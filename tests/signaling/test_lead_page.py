"""The lead's grid page: it chooses which receiving classrooms' video it gets (set_subscriptions),
so a lesson of hundreds of classrooms never sends it hundreds of videos."""

from __future__ import annotations

from signal_harness import RecordingMedia, Signal
from test_media_port import latest_producers

DUAL_STREAM = [
    {"mid": "0", "source": "camera", "layer": "main"},
    {"mid": "1", "source": "camera", "layer": "low"},
    {"mid": "2", "source": "mic"},
]


async def test_the_lead_chooses_its_page_and_keeps_the_stage(
    lesson: Signal, media: RecordingMedia
) -> None:
    lead = await lesson.live()
    receivers = [await lesson.receiver(r) for r in ("r1", "r2", "r3")]
    for r in receivers:
        await r.request("publish", sdp="v=0", tracks=DUAL_STREAM)
    assert await latest_producers(lead) == {(r, "camera", "main") for r in ("r1", "r2", "r3")}
    await lead.request("set_stage", classroom_id="r1")
    page = [{"source": "camera", "classroom_id": "r3", "layer": "low"}]
    reply = await lead.request("set_subscriptions", wants=page)
    assert reply["type"] == "subscribe_offer" and reply["id"]
    # r3 on the low layer it asked for; r1 on stage (main, heard); r2 off the page.
    assert await latest_producers(lead) == {
        ("r3", "camera", "low"),
        ("r1", "camera", "main"),
        ("r1", "mic", "main"),
    }
    assert {r.classroom_id for r in media.subscriptions[lead.joined["peer_id"]]} == {"r1", "r3"}
    # null: back to the default page (the first classrooms by id).
    await lead.request("set_subscriptions", wants=None)
    assert ("r2", "camera", "main") in await latest_producers(lead)


async def test_the_leads_page_names_receiving_classrooms_video_only(lesson: Signal) -> None:
    lead = await lesson.live()
    for wants in (
        [{"source": "camera"}],  # the lead's own classroom
        [{"source": "camera", "classroom_id": "elsewhere"}],
        [{"source": "mic", "classroom_id": "r1"}],  # audio follows stage and mute
    ):
        reply = await lead.request("set_subscriptions", wants=wants)
        assert reply["code"] == "invalid_target", wants


async def test_a_receiver_still_may_not_choose(lesson: Signal) -> None:
    await lesson.live()
    r1 = await lesson.receiver("r1")
    reply = await r1.request("set_subscriptions", wants=[{"source": "camera"}])
    assert reply["code"] == "forbidden"
