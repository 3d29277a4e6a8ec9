"""The cascade between two real `tongke serve` processes: receivers' media served by node B.

The lesson lives on node A (its room, every peer's signaling). A is set to serve at most one
media peer itself (TONGKE_CASCADE_AFTER_PEERS=1: the lead), so the receivers' media goes to
node B: A relays the lead's producers to B once, B fans them out, the receivers decode them;
a receiver's camera goes back B->A to the lead when it is on stage; stage and hand events
are A's signaling. Counted on /metrics: one relayed stream per producer, however many
receivers B serves.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from cluster_support import (
    MakeBus,
    Node,
    admin_headers,
    codes,
    gauge,
    seed_district,
    start_node,
    until,
)

from media.sfu import MediaError, MediaService
from media.synthetic.peers import SyntheticPublisher, SyntheticReceiver
from media.synthetic.terminal import SyntheticTerminal
from server.cluster.media_port import ClusterMediaPort
from server.cluster.media_rpc import ListenerTee, MediaRpc, request_channel
from server.demo import DemoDistrict
from signaling.grants import Role, Source
from signaling.media_port import PeerInfo, SubscriptionOffer, TrackOffer
from signaling.policy import Layer, ProducerRef
from signaling.sfu_port import SfuMediaPort

pytestmark = [pytest.mark.redis, pytest.mark.timeout(300)]

LOOPBACK = ["127.0.0.1"]


@pytest.fixture
async def district(tmp_path: Path) -> tuple[str, DemoDistrict]:
    return await seed_district(tmp_path)


async def gauge_is(node: Node, name: str, value: float) -> bool:
    return await gauge(node, name) == value


async def test_receivers_get_the_lead_media_through_node_b(
    tmp_path: Path, district: tuple[str, DemoDistrict], prefix: str
) -> None:
    database_url, demo = district
    links = codes(demo)
    a = await start_node(
        "node-a", tmp_path, database_url, prefix, env={"TONGKE_CASCADE_AFTER_PEERS": "1"}
    )
    b = await start_node("node-b", tmp_path, database_url, prefix)
    terminals: list[SyntheticTerminal] = []
    try:
        headers = await admin_headers(b, demo)
        async with httpx.AsyncClient(base_url=b.url, headers=headers) as admin:
            # B drains while the lesson is placed, so its home is A.
            assert (await admin.post("/api/cluster/drain")).json()["draining"] is True
            lead = SyntheticTerminal(a.url, links["lead"][0], host_addresses=LOOPBACK)
            terminals.append(lead)
            await lead.start(start_lesson=True)
            assert (await admin.post("/api/cluster/undrain")).json()["draining"] is False
            assert (await admin.get("/api/cluster")).json()["lessons"] == {demo.lesson_id: "node-a"}

        # Receivers open their links on B: told to connect to A (signaling), media from B.
        receivers = [
            SyntheticTerminal(b.url, code, host_addresses=LOOPBACK, decode=True)
            for code in links["receiver"]
        ]
        terminals.extend(receivers)
        for receiver in receivers:
            await receiver.start()
            assert receiver.joins[-1][1] == a.ws_url
        first = receivers[0]
        await until(
            "video decoded on B's receivers",
            lambda: all(
                r.frames("video") >= 30 and r.receiver.decoded["video"] >= 10  # type: ignore[union-attr]
                for r in receivers
            ),
        )
        assert all(r.frames("audio") > 0 for r in receivers)
        assert first.receiver is not None and first.receiver.decode_errors == 0
        # B serves the receivers' media; A serves only the lead's.
        assert await gauge(a, "tongke_cascade_remote_peers") == 3
        assert await gauge(b, "tongke_media_peers") == 3
        assert await gauge(a, "tongke_media_peers") == 1
        assert await gauge(b, "tongke_media_relays_in") >= 1
        # One stream per relayed producer of the lead (camera main + low, mic), not per
        # receiver: three receivers on B cost A three streams, the same as one would.
        streams = await gauge(a, "tongke_media_relay_streams_out")
        assert streams == 3, streams
        # The lead sees the classrooms: their cameras come back over one relay B->A.
        assert await gauge(a, "tongke_media_relays_in") == 1
        back = await gauge(b, "tongke_media_relay_streams_out")
        assert back >= 3, back
        await until("the receivers' video at the lead", lambda: lead.frames("video") >= 30)
        # B's /metrics label the classrooms it serves as their home told it (quality samples
        # every 2 s).
        wanted = (
            f'peer="{first.joined["peer_id"]}"',
            f'classroom="{first.joined["you"]["classroom_id"]}"',
            'role="receiver"',
        )

        async def labelled_on_b() -> bool:
            async with httpx.AsyncClient() as http:
                text = (await http.get(f"{b.url}/metrics")).text
            return any(
                line.startswith("tongke_peer_quality_level{") and all(w in line for w in wanted)
                for line in text.splitlines()
            )

        await until("B labels its served receiver", labelled_on_b, 10)

        # Stage and hands are A's signaling; the staged classroom's camera goes B->A to
        # the lead (relay into A), and to the other receivers on B directly.
        classroom = str(first.joined["you"]["classroom_id"])
        await lead.request({"type": "set_stage", "classroom_id": classroom})
        for receiver in receivers:
            await receiver.wait_for(
                "stage_changed", lambda m: m["classroom_id"] == classroom, within_s=10
            )
        # B measures its peers' connection quality; the lead hears it through A's room.
        await lead.wait_for("quality", lambda m: m["classroom_id"] == classroom, within_s=15)
        await receivers[1].request({"type": "raise_hand"})
        hand = str(receivers[1].joined["you"]["classroom_id"])
        await lead.wait_for("hand_raised", lambda m: m["classroom_id"] == hand, within_s=10)
        await first.wait_for("hand_raised", lambda m: m["classroom_id"] == hand, within_s=10)

        def offered_to_lead() -> bool:  # the lead's offers name the staged classroom's camera
            return any(
                c["producer"].get("classroom_id") == classroom
                and c["producer"].get("source") == "camera"
                for _, m in lead.events
                if m.get("type") == "subscribe_offer"
                for c in m.get("consumers", [])
            )

        await until("the staged classroom's camera offered to the lead", offered_to_lead)
        # Another receiver on B gets the staged classroom's camera from B itself (B's own
        # producer, not relayed to A and back): two video streams, the lead's and the stage.
        other = receivers[1]
        await until(
            "the stage's video at another receiver on B",
            lambda: len([v for v in other.receiver.of_kind("video") if v.frames > 10]) >= 2,  # type: ignore[union-attr]
        )
        assert await gauge(a, "tongke_media_relay_streams_out") == streams

        # One receiver leaves: the others keep their media and the relay stays as it is.
        await receivers[2].close()
        await until("B serving two peers", lambda: gauge_is(b, "tongke_media_peers", 2))
        assert await gauge(a, "tongke_media_relay_streams_out") == streams
        frames = receivers[0].frames("video")
        await until("video still arriving", lambda: receivers[0].frames("video") > frames + 10)
        # The lesson ends: every peer is closed, and with them both relays on both nodes.
        await lead.send({"type": "end_lesson"})
        for receiver in receivers[:2]:
            await receiver.wait_for("lesson_ended", within_s=10)

        async def relays_closed() -> bool:
            return (
                await gauge(a, "tongke_media_relays_out") == 0
                and await gauge(a, "tongke_media_relays_in") == 0
                and await gauge(b, "tongke_media_relays_in") == 0
                and await gauge(b, "tongke_media_relays_out") == 0
                and await gauge(b, "tongke_media_peers") == 0
                and await gauge(a, "tongke_cascade_remote_peers") == 0
            )

        await until("relays closed", relays_closed, within_s=30)
    finally:
        for terminal in terminals:
            await terminal.close()
        for node in (a, b):
            if node.proc.returncode is None:
                node.proc.terminate()
                try:
                    await asyncio.wait_for(node.proc.wait(), 20)
                except TimeoutError:
                    node.proc.kill()
                    await node.proc.wait()


class CountingRpc(MediaRpc):
    """A node's RPC with one extra op that counts its runs (repeated requests run once)."""

    runs = 0

    async def op_count(self, origin: str) -> int:
        self.runs += 1
        return self.runs


async def test_media_rpc_answers_errors_repeats_and_timeouts(make_bus: MakeBus) -> None:
    service_a, service_b = MediaService(), MediaService()
    a = MediaRpc(await make_bus(node_id="rpc-a"), service_a, timeout_s=1.0)
    b = CountingRpc(await make_bus(node_id="rpc-b"), service_b)
    await a.start()
    await b.start()
    try:
        assert (await a.call("rpc-b", "stats"))["peers"] == 0
        # The serving node's MediaError code comes back as it is.
        with pytest.raises(MediaError) as refused:
            await a.call("rpc-b", "answer", lesson_id="l1", peer_id="p1", sdp="v=0")
        assert refused.value.code == "unknown_peer"
        with pytest.raises(MediaError) as bad:
            await a.call("rpc-b", "no_such_op")
        assert bad.value.code == "bad_request"
        with pytest.raises(MediaError) as bad:
            await a.call("rpc-b", "answer", peer_id="p1")  # no lesson_id, no sdp
        assert bad.value.code == "bad_request" and "missing" in bad.value.message
        # At least once: a request delivered twice runs once, and both copies are answered.
        request = {"kind": "req", "id": "same-id", "from": "rpc-a", "op": "count", "args": {}}
        await a.bus.publish(request_channel("rpc-b"), request)
        await a.bus.publish(request_channel("rpc-b"), request)
        assert await a.call("rpc-b", "count") == 2
        assert b.runs == 2
        # Nobody serves "rpc-gone": media_unavailable after the timeout, not a hang.
        with pytest.raises(MediaError) as gone:
            await a.call("rpc-gone", "stats")
        assert gone.value.code == "media_unavailable"
        assert a.timeouts == 1
    finally:
        await a.close()
        await b.close()
        await service_a.close()
        await service_b.close()


@pytest.fixture(scope="module")
def clip_cache() -> Path:
    """The synthetic clip cache (encoded once per machine, reused across runs)."""
    from media.synthetic import clip

    path = clip.default_cache_dir()
    clip.load_video(clip.MAIN, path)
    clip.load_video(clip.LOW, path)
    return path


class RoomStandIn:
    """What the room does with the port's callbacks: answers every unsolicited offer."""

    def __init__(self, port: ClusterMediaPort) -> None:
        self.port = port
        self.receivers: dict[str, tuple[PeerInfo, SyntheticReceiver]] = {}
        self.locks: dict[str, asyncio.Lock] = {}
        self.tracks: dict[str, tuple[Any, ...]] = {}
        self.offers = 0
        self.tasks: set[asyncio.Task[None]] = set()

    async def negotiate(self, peer_id: str, offer: SubscriptionOffer | None) -> None:
        info, receiver = self.receivers[peer_id]
        async with self.locks.setdefault(peer_id, asyncio.Lock()):
            while offer is not None:
                offer = await self.port.subscribe_answer(
                    info, await receiver.accept_offer(offer.sdp)
                )

    def producers_changed(self, lesson_id: str, peer_id: str, tracks: tuple[Any, ...]) -> None:
        self.tracks[peer_id] = tracks

    def quality_changed(self, lesson_id: str, peer_id: str, report: Any) -> None:
        return None

    def active_speaker_changed(self, lesson_id: str, peer_id: str | None) -> None:
        return None

    def subscription_offer(self, lesson_id: str, peer_id: str, offer: SubscriptionOffer) -> None:
        self.offers += 1
        task = asyncio.get_running_loop().create_task(self.negotiate(peer_id, offer))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


async def test_port_serves_receivers_on_b_and_recovers_a_lost_relay(
    make_bus: MakeBus, clip_cache: Path
) -> None:
    """In one process (both services on loopback, the RPC over the real Redis): the port
    relays the lead's producers to B once for two receivers; when B's end of the relay goes
    away, A offers it again and subscribes B's receivers anew, and their video resumes."""
    service_a = MediaService(host_addresses=LOOPBACK)
    service_b = MediaService(host_addresses=LOOPBACK)
    sfu_a, sfu_b = SfuMediaPort(service_a), SfuMediaPort(service_b)
    rpc_a = MediaRpc(await make_bus(node_id="node-a"), service_a)
    rpc_b = MediaRpc(await make_bus(node_id="node-b"), service_b)
    port = ClusterMediaPort(sfu_a)
    room = RoomStandIn(port)
    port.set_listener(room)
    for service, sfu, rpc in ((service_a, sfu_a, rpc_a), (service_b, sfu_b, rpc_b)):
        await rpc.start()
        service.set_listener(ListenerTee(sfu, rpc))

    async def pick(peer: PeerInfo) -> str | None:
        return None if peer.role is Role.LEAD else "node-b"

    port.attach(rpc_a, pick)
    publisher = SyntheticPublisher(
        host_addresses=LOOPBACK, layers=("main", "low"), cache_dir=clip_cache
    )
    lead = PeerInfo("lesson-1", "lead", Role.LEAD, "c0")
    try:
        sdp = await publisher.create_offer()
        tracks = [TrackOffer(t.mid, Source(t.source), Layer(t.layer)) for t in publisher.tracks]
        await publisher.accept_answer(await port.publish(lead, sdp, tracks))
        refs = frozenset(
            {ProducerRef("lead", Source.CAMERA, Layer.MAIN, "c0"),
             ProducerRef("lead", Source.MIC, Layer.MAIN, "c0")}
        )  # fmt: skip
        await until("the lead's producers", lambda: len(service_a.producers("lesson-1")) == 3)
        # Offered (producers_changed, what set_subscriptions resolves) once its transport
        # is connected, never before (docs/protocol.md "Publish").
        await until(
            "the lead's producers announced", lambda: all(sfu_a.producer_for(r) for r in refs)
        )
        receivers = []
        for n in (1, 2):
            info = PeerInfo("lesson-1", f"r{n}", Role.RECEIVER, f"c{n}")
            receiver = SyntheticReceiver(host_addresses=LOOPBACK, decode=True)
            room.receivers[info.peer_id] = (info, receiver)
            receivers.append(receiver)
            await room.negotiate(info.peer_id, await port.set_subscriptions(info, refs))
        assert port.media_node("r1") == "node-b" and port.media_node("lead") is None
        await until(
            "video at both receivers on B",
            lambda: all(r.decoded["video"] >= 10 for r in receivers),
        )
        assert service_a.stats()["relay_streams_out"] == 3  # camera main + low, mic: once
        assert service_b.stats()["peers"] == 2 and service_a.stats()["peers"] == 1

        # B's end of the relay goes (as if B dropped it): A offers the relay again and
        # subscribes B's receivers anew; their video resumes.
        ids = port.relay_ids("lesson-1", "node-b")
        assert ids is not None
        relay_id = ids[0]
        await service_b.close_relay(relay_id)
        assert not service_b.relay_producers(relay_id)
        before = [r.decoded["video"] for r in receivers]
        await until(
            "video resumed at both receivers",
            lambda: all(
                r.decoded["video"] >= b + 30 for r, b in zip(receivers, before, strict=True)
            ),
        )
        assert len(service_b.relay_producers(relay_id)) == 3
        assert service_a.stats()["relay_streams_out"] == 3

        # One receiver leaves: the relay stays for the other.
        await port.close_peer(room.receivers["r1"][0])
        assert service_a.stats()["relays_out"] == 1 and service_b.stats()["peers"] == 1
        # Node A vanishes (B's registry reads lack it): B closes what A drove there.
        assert await rpc_b.forget_nodes({"node-b"}) == 2  # r2 and B's end of the relay
        assert service_b.stats()["peers"] == 0
        assert service_b.stats()["relays_in"] == 0 and service_b.stats()["relays_out"] == 0
        # The last receiver leaves on A: A's relay ends close too.
        await port.close_peer(room.receivers["r2"][0])
        assert service_a.stats()["relays_out"] == 0 and service_a.stats()["relays_in"] == 0
    finally:
        for task in tuple(room.tasks):
            task.cancel()
        for _, receiver in room.receivers.values():
            await receiver.close()
        await publisher.close()
        await port.close()
        for rpc in (rpc_a, rpc_b):
            await rpc.close()
        await service_a.close()
        await service_b.close()
