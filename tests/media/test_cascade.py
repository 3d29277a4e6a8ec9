"""Cascade relay between two nodes, over real ICE/DTLS/SRTP on loopback.

Node A (the lesson's home) is a MediaService in this process, with the synthetic lead
publishing to it and the synthetic receivers' own peer connections. Node B (the edge) is a
MediaService in a child process (tests/media/cascade_node.py) driven over a pipe, the way the
cluster layer drives a node over Redis: relay offers, track lists and answers cross as JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sfu_support import LOOPBACK, publish, wait_for

from media.cascade import RelayOffer, RelayTrack
from media.faults import NO_FAULTS, FaultInjector
from media.rtcp import RtcpPliPacket
from media.sfu import MediaError, MediaService, NullMediaListener
from media.synthetic.peers import SyntheticReceiver

ROOT = Path(__file__).resolve().parents[2]
NODE_SCRIPT = Path(__file__).with_name("cascade_node.py")


class EdgeError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


class EdgeNode:
    """The test's handle on node B: requests over the child's stdin, replies and events back."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process
        self._next = 0
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self.events: list[dict[str, Any]] = []
        self._reader = asyncio.ensure_future(self._read())

    @classmethod
    async def start(cls) -> EdgeNode:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(NODE_SCRIPT),
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=1 << 22,
        )
        return cls(process)

    async def _read(self) -> None:
        assert self._process.stdout is not None
        while line := await self._process.stdout.readline():
            message = json.loads(line)
            if "event" in message:
                self.events.append(message)
                continue
            future = self._pending.pop(message["id"], None)
            if future is None or future.done():
                continue
            if "error" in message:
                future.set_exception(EdgeError(message["error"], message["message"]))
            else:
                future.set_result(message["result"])
        for future in self._pending.values():
            if not future.done():
                future.set_exception(EdgeError("node_exited", "the edge node exited"))

    async def request(self, op: str, **args: Any) -> Any:
        assert self._process.stdin is not None
        self._next += 1
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[self._next] = future
        self._process.stdin.write(
            (json.dumps({"id": self._next, "op": op, **args}) + "\n").encode()
        )
        await self._process.stdin.drain()
        return await asyncio.wait_for(future, 30)

    def saw(self, event: str, **fields: Any) -> bool:
        return any(e["event"] == event and _matches(e, fields) for e in self.events)

    async def close(self) -> None:
        assert self._process.stdin is not None
        with contextlib.suppress(ConnectionError):
            self._process.stdin.write(b'{"op": "shutdown"}\n')
            await self._process.stdin.drain()
        try:
            await asyncio.wait_for(self._process.wait(), 15)
        except TimeoutError:
            self._process.kill()
            await self._process.wait()
        await self._reader


def _matches(event: dict[str, Any], fields: dict[str, Any]) -> bool:
    for key, value in fields.items():
        here = event.get(key, event.get("producer", {}).get(key))
        if here != value:
            return False
    return True


class HomeEvents(NullMediaListener):
    """Node A's listener: what the cluster layer would hear."""

    def __init__(self) -> None:
        self.relay_renegotiations: list[str] = []
        self.states: list[tuple[str, str, str]] = []

    def relay_renegotiation_needed(self, relay_id: str) -> None:
        self.relay_renegotiations.append(relay_id)

    def transport_state(self, peer_id: str, direction: str, state: str) -> None:
        self.states.append((peer_id, direction, state))


@pytest.fixture
async def home():  # type: ignore[no-untyped-def]
    svc = MediaService(host_addresses=LOOPBACK, listener=HomeEvents())
    yield svc
    await svc.close()


@pytest.fixture
async def edge():  # type: ignore[no-untyped-def]
    node = await EdgeNode.start()
    yield node
    await node.close()


async def signal(home: MediaService, edge: EdgeNode, relay_id: str, offer: RelayOffer | None):
    """Carry relay offers A -> B and answers B -> A until both agree (the cluster's job)."""
    while offer is not None:
        wire = json.loads(json.dumps(offer.to_dict()))  # as it would cross Redis
        answer = await edge.request("relay_accept", relay_id=relay_id, lesson_id="L", **wire)
        offer = await home.relay_answer(relay_id, answer)


async def relay(home: MediaService, edge: EdgeNode, producer_ids: list[str]) -> None:
    await signal(home, edge, "r1", await home.relay_offer("r1", "L", producer_ids))
    await wait_for(lambda: home.stats()["relay_streams_out"] == len(producer_ids))


async def subscribe_on_edge(
    edge: EdgeNode, peer: str, origins: list[str], layers: dict[str, str] | None = None
) -> SyntheticReceiver:
    receiver = SyntheticReceiver(host_addresses=LOOPBACK, decode=True)
    sdp = await edge.request(
        "subscribe", lesson_id="L", peer_id=peer, origins=origins, layers=layers or {}
    )
    while sdp is not None:
        sdp = await edge.request("answer", peer_id=peer, sdp=await receiver.accept_offer(sdp))
    return receiver


def relay_consumer(home: MediaService, producer_id: str) -> Any:
    return home.cascade.senders["r1"].streams[producer_id].consumer


def video(receiver: SyntheticReceiver) -> Any:
    (stream,) = receiver.of_kind("video")
    return stream


async def until(predicate: Callable[[], bool], within: float = 20.0) -> None:
    await wait_for(predicate, within)


async def test_edge_receivers_decode_the_relayed_lead_and_cost_the_home_node_one_stream(
    home, edge, clip_cache
) -> None:
    lead, producers = await publish(home, "L", "lead", clip_cache, layers=("main", "low"))
    main, low, mic = producers
    await relay(home, edge, [main.id, low.id, mic.id])
    for p in producers:  # B's producers carry the origin's metadata
        assert edge.saw("producer_added", peer_id="lead", source=p.source, layer=p.layer)
    receivers = [await subscribe_on_edge(edge, f"rx{i}", [main.id, mic.id]) for i in range(3)]
    try:
        await until(lambda: all(r.decoded["video"] >= 20 for r in receivers))
        await until(lambda: all(r.decoded["audio"] >= 20 for r in receivers))
        for r in receivers:
            assert video(r).first_frame_keyframe is True
            assert r.decode_errors == 0
        out = relay_consumer(home, main.id)

        # Both layers are relayed: B switches its own receivers between them.
        await edge.request("set_layer", peer_id="rx1", origin=main.id, layer="low")
        await until(lambda: receivers[1].video_sizes[-1] == (320, 240))
        await edge.request("set_layer", peer_id="rx1", origin=main.id, layer="main")
        await until(lambda: receivers[1].video_sizes[-1] == (640, 480), within=30)
        count = receivers[1].decoded["video"]
        await until(lambda: receivers[1].decoded["video"] >= count + 10)
        assert receivers[1].decode_errors == 0

        # A PLI from a receiver on B crosses the hop and reaches the publisher.
        requests = lead.keyframe_requests
        crossed = out.stats().key_frame_requests_received
        ssrc = next(s for s, c in receivers[0].streams.items() if c.kind == "video")
        await receivers[0].send_rtcp(bytes(RtcpPliPacket(sender_ssrc=1, media_ssrc=ssrc)))
        await until(lambda: out.stats().key_frame_requests_received > crossed)
        await until(lambda: lead.keyframe_requests > requests)
        stats = await edge.request("stats")
        assert stats["consumers"]["rx0"][main.id]["key_frame_requests_received"] >= 1
        assert stats["relayed"][main.id]["key_frame_requests_sent"] >= 1

        # One stream per relayed producer leaves A, however many receivers B serves.
        assert home.stats()["relay_streams_out"] == 3 and home.stats()["consumers"] == 0
        sent0, got0 = out.stats().packets_sent, [video(r).packets for r in receivers]

        def got() -> list[int]:
            return [video(r).packets - g for r, g in zip(receivers, got0, strict=True)]

        await until(lambda: min(got()) >= 100)
        home.set_producer_paused(main.id, True)  # freeze A's count; let B's deliveries land
        sent = out.stats().packets_sent - sent0
        await until(lambda: min(got()) >= 0.95 * sent)  # each receiver got the one stream
        assert out.stats().packets_sent - sent0 == sent
        assert out.stats().packets_sent <= home.producer(main.id).stats().packets_received
        assert all(r.decode_errors == 0 for r in receivers)
    finally:
        for r in receivers:
            await r.close()
        await lead.close()


async def test_an_h264_lead_is_relayed_as_it_is(home, edge, clip_cache) -> None:
    lead, producers = await publish(home, "L", "lead", clip_cache, codec="h264")
    main, mic = producers
    await relay(home, edge, [main.id, mic.id])
    assert edge.saw("producer_added", source="camera", mime_type="video/H264")
    receiver = await subscribe_on_edge(edge, "rx", [main.id, mic.id])
    try:
        await until(lambda: receiver.decoded["video"] >= 20 and receiver.decoded["audio"] >= 20)
        assert video(receiver).first_frame_keyframe is True
        assert receiver.decode_errors == 0
    finally:
        await receiver.close()
        await lead.close()


async def test_loss_on_the_relay_hop_is_repaired_by_the_edge_node(home, edge, clip_cache) -> None:
    lead, producers = await publish(home, "L", "lead", clip_cache)
    main, mic = producers
    await relay(home, edge, [main.id, mic.id])
    receiver = await subscribe_on_edge(edge, "rx", [main.id, mic.id])
    try:
        await until(lambda: receiver.decoded["video"] >= 10)
        faults = FaultInjector(drop_rate=0.05, seed=7)
        home.cascade.set_faults("r1", faults)
        start = receiver.decoded["video"]
        await until(lambda: receiver.decoded["video"] >= start + 90, within=30)
        home.cascade.set_faults("r1", NO_FAULTS)
        await until(lambda: receiver.decoded["video"] >= start + 100)
        assert faults.dropped > 10
        # B's relay producer NACKed the hop's losses; A answered from its producer's cache.
        stats = await edge.request("stats")
        assert stats["relayed"][main.id]["nacks_sent"] > 0
        assert stats["relayed"][main.id]["packets_retransmitted"] > 0
        assert relay_consumer(home, main.id).stats().packets_retransmitted > 0
        assert receiver.decode_errors == 0
        assert video(receiver).lost <= 2  # at most the newest, in flight

        # Loss between B and its receiver is repaired from B's cache: nothing asks A.
        asked = relay_consumer(home, main.id).stats().nacks_received
        await edge.request("set_faults", peer_id="rx", drop_rate=0.05, seed=3)
        start = receiver.decoded["video"]
        await until(lambda: receiver.decoded["video"] >= start + 60, within=30)
        await edge.request("set_faults", peer_id="rx", drop_rate=0.0)
        stats = await edge.request("stats")
        assert stats["consumers"]["rx"][main.id]["packets_retransmitted"] > 0
        assert relay_consumer(home, main.id).stats().nacks_received == asked
        assert receiver.decode_errors == 0
    finally:
        await receiver.close()
        await lead.close()


async def test_ended_tracks_and_a_closed_relay_remove_the_edge_producers(
    home, edge, clip_cache
) -> None:
    events: HomeEvents = home._listener  # type: ignore[assignment]
    lead, producers = await publish(home, "L", "lead", clip_cache, layers=("main", "low"))
    main, low, mic = producers
    await relay(home, edge, [main.id, low.id, mic.id])
    receiver = await subscribe_on_edge(edge, "rx", [main.id, mic.id])
    try:
        await until(lambda: receiver.decoded["video"] >= 10)
        # The cluster layer stops relaying the low layer: a renegotiation ends it on B.
        await signal(home, edge, "r1", await home.relay_offer("r1", "L", [main.id, mic.id]))
        await until(lambda: edge.saw("producer_removed", layer="low"))
        assert home.stats()["relay_streams_out"] == 2
        count = receiver.decoded["video"]
        await until(lambda: receiver.decoded["video"] >= count + 10)

        # The lead stops its microphone on A: B's copy goes, B's subscriber renegotiates.
        await home.unpublish("lead", mic.id)
        assert events.relay_renegotiations == ["r1"]
        await signal(home, edge, "r1", await home.relay_resync("r1"))
        await until(lambda: edge.saw("producer_removed", source="mic"))
        await until(lambda: edge.saw("renegotiation_needed", peer_id="rx"))
        sdp = await edge.request("resync", peer_id="rx")
        while sdp is not None:
            sdp = await edge.request("answer", peer_id="rx", sdp=await receiver.accept_offer(sdp))
        count = receiver.decoded["video"]
        await until(lambda: receiver.decoded["video"] >= count + 10)

        # Closing A's end closes B's: its producers are removed, as when a publisher leaves.
        await home.close_relay("r1")
        await until(lambda: edge.saw("producer_removed", source="camera", layer="main"))
        stats = await edge.request("stats")
        assert stats["producers"] == [] and stats["service"]["relays_in"] == 0

        # Closing B's end of a new relay: A hears its relay transport end.
        await signal(home, edge, "r2", await home.relay_offer("r2", "L", [main.id]))
        await until(lambda: home.stats()["relay_streams_out"] == 1)  # connected
        await edge.request("close_relay", relay_id="r2")
        await until(lambda: ("r2", "relay", "failed") in events.states)
        stats = await edge.request("stats")
        assert stats["producers"] == []
        assert receiver.decode_errors == 0
    finally:
        await receiver.close()
        await lead.close()


async def test_bad_relay_requests_are_refused_with_a_code_and_change_nothing(
    home, clip_cache
) -> None:
    # In-process edge: these checks exchange SDP only, no media flows.
    other = MediaService(host_addresses=LOOPBACK)
    lead, producers = await publish(home, "L", "lead", clip_cache)
    main, mic = producers
    try:
        with pytest.raises(MediaError) as err:
            await home.relay_offer("r1", "L", ["nope"])
        assert err.value.code == "unknown_producer"
        with pytest.raises(MediaError) as err:
            await home.relay_offer("r1", "other-lesson", [main.id])
        assert err.value.code == "unknown_producer"
        with pytest.raises(MediaError) as err:
            await home.relay_answer("r9", "v=0")
        assert err.value.code == "unknown_relay"
        offer = await home.relay_offer("r1", "L", [main.id, mic.id])
        assert offer is not None and [t.mid for t in offer.tracks] == ["0", "1"]
        assert await home.relay_offer("r1", "L", [main.id]) is None  # waits for the answer

        video_track, audio_track = offer.tracks
        wrong_kind = RelayTrack("1", mic.id, "lead", "audio", "camera", "main")
        twice = RelayTrack("1", mic.id, "lead", "video", "camera", "main")
        cases = [
            ("not sdp", offer.tracks, "bad_offer"),
            (offer.sdp, (video_track,), "bad_track"),  # m-line 1 undescribed
            (offer.sdp, (video_track, wrong_kind), "bad_track"),
            (offer.sdp, (video_track, twice), "bad_track"),  # video track on an audio m-line
            (offer.sdp, (video_track, audio_track, audio_track), "bad_track"),
        ]
        for sdp, tracks, code in cases:
            with pytest.raises(MediaError) as err:
                await other.relay_accept("r1", "L", sdp, tracks)
            assert err.value.code == code, (tracks, err.value.message)
            assert other.stats()["relays_in"] == 0 and other.router("L") is None
        with pytest.raises(MediaError) as err:
            RelayTrack.from_dict({"mid": "0", "kind": "video"})
        assert err.value.code == "bad_track"
        with pytest.raises(MediaError) as err:
            RelayOffer.from_dict({"sdp": offer.sdp})
        assert err.value.code == "bad_track"

        answer = await other.relay_accept("r1", "L", offer.sdp, offer.tracks)
        assert [(p.peer_id, p.source, p.layer) for p in other.producers("L")] == [
            ("lead", "camera", "main"),
            ("lead", "mic", "main"),
        ]
        with pytest.raises(MediaError) as err:
            await other.relay_accept("r1", "L2", offer.sdp, offer.tracks)
        assert err.value.code == "wrong_lesson"
        follow = await home.relay_answer("r1", answer)  # the set shrank meanwhile
        assert follow is not None and [t.source for t in follow.tracks] == ["camera"]
        answer = await other.relay_accept("r1", "L", follow.sdp, follow.tracks)
        assert [p.source for p in other.producers("L")] == ["camera"]
        assert await home.relay_answer("r1", answer) is None
        with pytest.raises(MediaError) as err:
            await home.relay_answer("r1", answer)  # nothing awaits an answer now
        assert err.value.code == "no_offer"
    finally:
        await lead.close()
        await other.close()
