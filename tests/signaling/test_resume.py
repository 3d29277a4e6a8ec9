"""Heartbeat, lost peers and resume within and after the window."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from signal_harness import Client, RecordingMedia, Signal

from signaling.errors import CloseCode
from signaling.rooms import RoomConfig


@contextlib.asynccontextmanager
async def keepalive(*clients: Client) -> AsyncIterator[None]:
    """Pings like a healthy client would, so only the silent peer times out."""

    async def beat() -> None:
        while True:
            for client in clients:
                client.send(type="ping")
            await asyncio.sleep(0.05)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()


async def test_a_silent_peer_is_marked_lost_then_removed_after_the_window(
    make_signal: Callable[..., Signal],
) -> None:
    signal = make_signal(
        RoomConfig(heartbeat_interval_s=0.1, heartbeat_timeout_s=0.3, resume_window_s=0.3)
    )
    lead = await signal.lead()
    async with keepalive(lead):
        r1 = await signal.receiver("r1")
        error = await r1.expect("error")
        assert error["code"] == "heartbeat_timeout"
        assert await r1.wait_closed() == CloseCode.TIMEOUT
        lost = await lead.expect("participant_lost")
        assert lost["participant"]["classroom_id"] == "r1"
        assert lost["participant"]["state"] == "lost"
        left = await lead.expect("participant_left")
        assert left["reason"] == "gone" and left["peer_id"] == r1.joined["peer_id"]
    assert signal.rooms.stats.peers["receiver"] == 0


async def test_the_server_sends_heartbeats_every_interval(
    make_signal: Callable[..., Signal],
) -> None:
    signal = make_signal(RoomConfig(heartbeat_interval_s=0.05))
    lead = await signal.lead()
    heartbeat = await asyncio.wait_for(lead.conn.outbox.get(), 1.0)
    while '"heartbeat"' not in heartbeat:
        heartbeat = await asyncio.wait_for(lead.conn.outbox.get(), 1.0)
    assert lead.joined["heartbeat_interval_s"] == 0.05


async def test_other_peers_see_a_lost_classroom_as_updated_not_lost(signal: Signal) -> None:
    lead = await signal.lead()
    r1 = await signal.receiver("r1")
    r2 = await signal.receiver("r2")
    r1.drop()
    updated = await r2.expect("participant_updated")
    assert updated["participant"]["state"] == "lost"
    await lead.expect("participant_lost")
    await r2.settle()
    assert "participant_lost" not in r2.types()


async def test_resume_within_the_window_restores_identity_and_hand(signal: Signal) -> None:
    lead = await signal.live()
    r1 = await signal.receiver("r1")
    await r1.request("raise_hand")
    r1.drop()
    await lead.expect("participant_lost")
    lead.clear()
    again = signal.connect()
    joined = await again.request("resume", version=1, resume_token=r1.joined["resume_token"])
    assert joined["type"] == "joined" and joined["resumed"] is True
    assert joined["peer_id"] == r1.joined["peer_id"]
    assert joined["role"] == "receiver" and joined["you"]["classroom_id"] == "r1"
    assert joined["hands"] == ["r1"]
    assert joined["resume_token"] != r1.joined["resume_token"]
    updated = await lead.expect("participant_updated")
    assert updated["participant"]["state"] == "connected"
    await lead.settle()
    assert "participant_joined" not in lead.types()
    # The resumed peer is fully usable.
    assert (await again.request("lower_hand"))["type"] == "ok"


async def test_a_resume_token_works_once(signal: Signal) -> None:
    await signal.lead()
    r1 = await signal.receiver("r1")
    r1.drop()
    token = r1.joined["resume_token"]
    assert (await signal.connect().request("resume", version=1, resume_token=token))["resumed"]
    reply = await signal.connect().request("resume", version=1, resume_token=token)
    assert reply["code"] == "resume_failed"


async def test_resume_after_the_window_fails_and_the_peer_is_gone(
    make_signal: Callable[..., Signal],
) -> None:
    signal = make_signal(RoomConfig(resume_window_s=0.2))
    lead = await signal.lead()
    r1 = await signal.receiver("r1")
    r1.drop()
    await lead.expect("participant_left")
    reply = await signal.connect().request(
        "resume", version=1, resume_token=r1.joined["resume_token"]
    )
    assert reply["type"] == "error" and reply["code"] == "resume_failed"


async def test_resuming_a_still_connected_peer_takes_over_its_old_connection(
    signal: Signal,
) -> None:
    lead = await signal.lead()
    r1 = await signal.receiver("r1")
    again = signal.connect()
    joined = await again.request("resume", version=1, resume_token=r1.joined["resume_token"])
    assert joined["peer_id"] == r1.joined["peer_id"]
    assert (await r1.expect("error"))["code"] == "replaced"
    assert await r1.wait_closed() == CloseCode.REPLACED
    await lead.settle()
    assert not {"participant_lost", "participant_left"} & set(lead.types())
    assert (await again.request("ping"))["type"] == "pong"


async def test_a_resumed_patrol_gets_its_chosen_subscriptions_back(
    make_signal: Callable[..., Signal],
) -> None:
    media = RecordingMedia()
    signal = make_signal(media=media)
    await signal.lead()
    r1 = await signal.receiver("r1")
    await r1.request(
        "publish", sdp="v=0 r1", tracks=[{"mid": "0", "source": "camera", "layer": "main"}]
    )
    patrol = await signal.patrol()
    wants = [{"source": "camera", "classroom_id": "r1", "layer": "low"}]
    offer = await patrol.request("set_subscriptions", wants=wants)
    assert offer["type"] == "subscribe_offer"
    assert [c["producer"]["classroom_id"] for c in offer["consumers"]] == ["r1"]
    patrol.drop()
    await asyncio.sleep(0.05)
    again = signal.connect()
    await again.request("resume", version=1, resume_token=patrol.joined["resume_token"])
    changed = await again.expect("producers_changed")
    assert [(p["classroom_id"], p["source"]) for p in changed["producers"]] == [("r1", "camera")]
    assert (await again.expect("subscribe_offer"))["consumers"]


async def test_a_cancelled_connection_task_still_tells_the_room(signal: Signal) -> None:
    """The server cancelling a connection (shutdown, a harness) must not skip session_ended."""
    lead = await signal.lead()
    async with keepalive(lead):
        r1 = await signal.receiver("r1")
        await lead.expect("participant_joined")
        r1.task.cancel()
        await asyncio.sleep(0)
        r1.task.cancel()  # a second cancellation while the session cleans up
        with contextlib.suppress(asyncio.CancelledError):
            await r1.task
        lost = await lead.expect("participant_lost")
        assert lost["participant"]["peer_id"] == r1.joined["peer_id"]
