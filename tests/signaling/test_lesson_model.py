"""Model-based test of one lesson's room (hypothesis RuleBasedStateMachine).

A lead, two receiving classrooms and a patrol join, join again as the same classroom,
resume, drop, are lost for good, leave; the lead starts, stages, mutes, publishes and ends.
After every step the room is checked against a small model and against what each connected
peer was told:
- one room per lesson, and every present peer (connected or lost) is in it, nobody else;
- the lesson is ended only after an end, and then nobody gets in;
- every connected receiver is offered the lead's live producers;
- every connected peer's picture (participants and their state, stage, hands, muted), built
  from the messages it received, equals the room's;
- talkback: the patrol talks to at most one classroom, the one the model says (a talk ends
  when the patrol or that classroom drops, leaves, is replaced, or the lesson ends); it is
  visible (`talk_started`) to that classroom only, only that classroom is offered its mic,
  and it never appears as a participant.
The same machine runs on the in-process bus and on Redis (there the directory must name this
node as the lesson's home while its room exists). Interleavings that examples miss, such as a
lone lead joining again before anyone else, are what this finds (issue 13).
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from signal_harness import LEAD_ROOM, LESSON_ID, Client, RecordingMedia, Signal

from signaling.grants import Role
from signaling.peer import PeerState
from signaling.rooms import RoomConfig

REDIS_URL = "redis://127.0.0.1:6379/0"
# Long windows: expiry is a rule of its own (`gone`), never a race with the clock. No rate
# limit: a history sends far more than a person would (each step also pings every peer).
CONFIG = RoomConfig(
    heartbeat_interval_s=30.0,
    heartbeat_timeout_s=60.0,
    resume_window_s=60.0,
    rate_per_s=10_000.0,
    rate_burst=10_000,
)
ACTORS = ("lead", "r1", "r2", "patrol")
RECEIVERS = ("r1", "r2")
PUBLISHERS = ("lead", *RECEIVERS)
TRACKS = [{"mid": "0", "source": "camera"}, {"mid": "1", "source": "mic"}]


@dataclass
class View:
    """What one connected peer was told, folded message by message."""

    # peer id -> (state, mic_on, camera_on)
    participants: dict[str, tuple[str, bool, bool]] = field(default_factory=dict)
    stage: str | None = None
    hands: list[str] = field(default_factory=list)
    muted: list[str] = field(default_factory=list)
    producers: set[str] = field(default_factory=set)  # peer ids of offered producers
    talker: str | None = None  # the patrol peer talking to this peer's classroom

    @classmethod
    def of_joined(cls, joined: dict[str, Any]) -> View:
        return cls(
            participants={p["peer_id"]: _seen(p) for p in joined["participants"]},
            stage=joined["stage"],
            hands=list(joined["hands"]),
            muted=list(joined["muted"]),
        )

    def apply(self, m: dict[str, Any]) -> None:
        match m["type"]:
            case "participant_joined" | "participant_updated" | "participant_lost":
                self.participants[m["participant"]["peer_id"]] = _seen(m["participant"])
            case "participant_left":
                self.participants.pop(m["peer_id"], None)
            case "stage_changed":
                self.stage, self.muted = m["classroom_id"], m["muted"]
            case "muted_changed":
                self.muted = m["all_muted"]
            case "hand_raised" | "hand_lowered":
                self.hands = m["hands"]
            case "producers_changed":
                self.producers = {p["peer_id"] for p in m["producers"]}
            case "talk_started":
                self.talker = m["peer_id"]
            case "talk_stopped":
                assert self.talker == m["peer_id"], m
                self.talker = None


def _seen(participant: dict[str, Any]) -> tuple[str, bool, bool]:
    return participant["state"], participant["mic_on"], participant["camera_on"]


@dataclass
class Actor:
    status: str = "absent"  # absent | connected | lost
    client: Client | None = None
    peer_id: str = ""
    resume_token: str = ""
    published: bool = False
    view: View = field(default_factory=View)


class LessonMachine(RuleBasedStateMachine):
    redis = False

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.media = RecordingMedia()
        self.cleanup: list[Any] = []
        self.node_id = ""
        self.placement: Any = None
        self.signal = self.run(self._make_signal())
        self.actors = {name: Actor() for name in ACTORS}
        self.state = "scheduled"
        # Which actor's classroom the patrol talks to (None: it does not talk).
        self.talking: str | None = None
        # Resume tokens of peers that are gone (left, lost for good, replaced, ended).
        self.stale: list[str] = []

    # Plumbing ----------------------------------------------------------------------------

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    async def _make_signal(self) -> Signal:
        if not self.redis:
            return Signal(CONFIG, self.media)
        return await self._signal_on_redis()

    async def _signal_on_redis(self) -> Signal:
        from server.cluster import ClusterNode
        from signaling.redis_bus import RedisBus, connect_redis

        prefix = f"tongke-test:{uuid.uuid4().hex[:10]}:"
        client = connect_redis(REDIS_URL, socket_timeout=2.0)
        reader = connect_redis(REDIS_URL, socket_timeout=3.0)
        self.node_id = uuid.uuid4().hex[:8]
        bus = RedisBus(client, reader, node_id=self.node_id, prefix=prefix, block_ms=200)
        await bus.start()
        signal = Signal(CONFIG, self.media, bus=bus)
        node = ClusterNode(
            client,
            prefix=prefix,
            node_id=self.node_id,
            url="http://model.test:8000",
            max_peers=100,
            local_lessons=lambda: set(signal.rooms.rooms),
        )
        await node.start()
        bus.directory = node.placement
        self.placement = node.placement
        self.cleanup = [node.close, bus.close, client.aclose, lambda: _delete(client, prefix)]
        return signal

    def teardown(self) -> None:
        async def close() -> None:
            await self.signal.aclose()
            for step in reversed(self.cleanup):
                await step()

        self.run(close())
        self.loop.close()

    def token(self, name: str) -> str:
        if name == "lead":
            return self.signal.token(Role.LEAD, LEAD_ROOM)
        if name == "patrol":
            return self.signal.token(Role.PATROL)
        return self.signal.token(Role.RECEIVER, name)

    async def settle(self) -> None:
        """Lets every side job run (media syncs, closes), then a ping round trip each."""
        for _ in range(5):
            await asyncio.sleep(0)
        for actor in self.actors.values():
            if actor.status == "connected" and actor.client is not None:
                await actor.client.settle()
        for _ in range(5):
            await asyncio.sleep(0)
        for actor in self.actors.values():
            if actor.status == "connected" and actor.client is not None:
                for message in actor.client.pending():
                    actor.view.apply(message)
                actor.client.clear()

    def named(self, *statuses: str, among: tuple[str, ...] = ACTORS) -> list[str]:
        return [n for n in among if self.actors[n].status in statuses]

    def present(self) -> dict[str, Actor]:
        return {n: a for n, a in self.actors.items() if a.status != "absent"}

    def left(self, name: str) -> None:
        """The model's side of a classroom removed for good (left, gone)."""
        self.talk_over(name)
        if self.actors[name].resume_token:
            self.stale.append(self.actors[name].resume_token)
        self.actors[name] = Actor()

    def talk_over(self, name: str) -> None:
        """The actor dropped, left or was replaced: a talk it was part of ends."""
        if name == "patrol" or name == self.talking:
            self.talking = None

    async def expect_replaced(self, old: Client | None) -> None:
        if old is not None:
            assert (await old.expect("error"))["code"] == "replaced"
            await old.wait_closed()

    # Rules -------------------------------------------------------------------------------

    async def enter(self, name: str) -> None:
        """One actor joins (a classroom again: it replaces its old connection)."""
        actor = self.actors[name]
        client = self.signal.connect()
        reply = await client.request("join", version=1, token=self.token(name))
        if self.state == "ended":
            assert reply["type"] == "error" and reply["code"] == "lesson_ended", reply
            client.drop()
            return
        assert reply["type"] == "joined", reply
        assert reply["lesson"]["state"] == self.state
        if actor.status != "absent":
            self.talk_over(name)
        if name != "patrol" and actor.status != "absent":
            self.stale.append(actor.resume_token)
        if name != "patrol" and actor.status == "connected":
            await self.expect_replaced(actor.client)
        elif name == "patrol" and actor.client is not None and actor.status == "connected":
            actor.client.send(type="leave")  # one patrol in the model: the old one leaves
            await actor.client.wait_closed()
        self.actors[name] = Actor(
            "connected", client, reply["peer_id"], reply["resume_token"], False,
            View.of_joined(reply),
        )  # fmt: skip
        await self.settle()

    @rule(data=st.data())
    def join(self, data: st.DataObject) -> None:
        # A patrol is no classroom: a second one never replaces a lost one, it joins beside
        # it; the model has one patrol, so it joins again only once the lost one is gone.
        lost_patrol = self.actors["patrol"].status == "lost"
        name = data.draw(st.sampled_from([n for n in ACTORS if n != "patrol" or not lost_patrol]))

        self.run(self.enter(name))

    @rule(name=st.sampled_from(ACTORS))
    def resume(self, name: str) -> None:
        """Resume with the actor's last token (none: a made-up one, refused)."""

        async def go() -> None:
            actor = self.actors[name]
            client = self.signal.connect()
            token = actor.resume_token or "never-issued-resume-token-0000"
            reply = await client.request("resume", version=1, resume_token=token)
            if actor.status == "absent":
                assert reply["type"] == "error" and reply["code"] == "resume_failed", reply
                client.drop()
                return
            assert reply["type"] == "joined" and reply["resumed"], reply
            assert reply["peer_id"] == actor.peer_id
            if actor.status == "connected":
                await self.expect_replaced(actor.client)
            actor.status, actor.client, actor.published = "connected", client, False
            actor.resume_token, actor.view = reply["resume_token"], View.of_joined(reply)
            await self.settle()

        self.run(go())

    @precondition(lambda self: self.stale)
    @rule(data=st.data())
    def resume_stale(self, data: st.DataObject) -> None:
        """A peer that is gone for good cannot be resumed."""
        token = data.draw(st.sampled_from(self.stale))

        async def go() -> None:
            client = self.signal.connect()
            reply = await client.request("resume", version=1, resume_token=token)
            assert reply["type"] == "error" and reply["code"] == "resume_failed", reply
            client.drop()

        self.run(go())

    @precondition(lambda self: self.named("connected"))
    @rule(data=st.data())
    def drop(self, data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(self.named("connected")))
        actor = self.actors[name]

        async def go() -> None:
            assert actor.client is not None
            actor.client.drop()
            await asyncio.wait_for(actor.client.task, 3.0)
            actor.status, actor.client, actor.published = "lost", None, False
            self.talk_over(name)
            await self.settle()

        self.run(go())

    @precondition(lambda self: self.named("lost"))
    @rule(data=st.data())
    def gone(self, data: st.DataObject) -> None:
        """The resume window of a lost peer closes (the timer's own call, run now)."""
        name = data.draw(st.sampled_from(self.named("lost")))
        actor = self.actors[name]

        async def go() -> None:
            room = self.signal.rooms.rooms[LESSON_ID]
            peer = room.peers[actor.peer_id]
            assert peer.expiry is not None
            peer.expiry.cancel()
            room.remove(peer, "gone")
            self.left(name)
            await self.settle()

        self.run(go())

    @precondition(lambda self: self.named("connected"))
    @rule(data=st.data())
    def leave(self, data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(self.named("connected")))
        actor = self.actors[name]

        async def go() -> None:
            assert actor.client is not None
            assert (await actor.client.request("leave"))["type"] == "ok"
            await actor.client.wait_closed()
            self.left(name)
            await self.settle()

        self.run(go())

    def lead_request(self, type: str, **fields: Any) -> dict[str, Any] | None:
        lead = self.actors["lead"]
        if lead.status != "connected" or lead.client is None:
            return None

        async def go() -> dict[str, Any]:
            assert lead.client is not None
            reply = await lead.client.request(type, **fields)
            await self.settle()
            return reply

        return self.run(go())

    @precondition(lambda self: self.actors["lead"].status == "connected")
    @rule()
    def start(self) -> None:
        reply = self.lead_request("start_lesson")
        if reply is not None:
            assert reply["type"] == "ok", reply
            self.state = "live"

    @precondition(lambda self: self.actors["lead"].status == "connected")
    @rule(classroom=st.sampled_from((*RECEIVERS, None)))
    def stage(self, classroom: str | None) -> None:
        reply = self.lead_request("set_stage", classroom_id=classroom)
        if reply is None:
            return
        if self.state != "live":
            assert reply.get("code") == "lesson_not_live", reply
        elif classroom is not None and self.actors[classroom].status == "absent":
            assert reply.get("code") == "invalid_target", reply
        else:
            assert reply["type"] == "ok", reply

    @precondition(lambda self: self.actors["lead"].status == "connected")
    @rule(classroom=st.sampled_from(RECEIVERS), muted=st.booleans())
    def mute(self, classroom: str, muted: bool) -> None:
        reply = self.lead_request("mute", classroom_id=classroom, muted=muted)
        assert reply is None or reply["type"] == "ok", reply

    @precondition(lambda self: self.named("connected", among=RECEIVERS))
    @rule(data=st.data())
    def raise_hand(self, data: st.DataObject) -> None:
        actor = self.actors[data.draw(st.sampled_from(self.named("connected", among=RECEIVERS)))]

        async def go() -> None:
            assert actor.client is not None
            reply = await actor.client.request("raise_hand")
            expected = "ok" if self.state == "live" else "error"
            assert reply["type"] == expected, reply
            await self.settle()

        self.run(go())

    @precondition(lambda self: self.named("connected", among=PUBLISHERS))
    @rule(data=st.data(), mic_on=st.booleans(), camera_on=st.booleans())
    def devices(self, data: st.DataObject, mic_on: bool, camera_on: bool) -> None:
        actor = self.actors[data.draw(st.sampled_from(self.named("connected", among=PUBLISHERS)))]

        async def go() -> None:
            assert actor.client is not None
            reply = await actor.client.request(
                "set_media_state", mic_on=mic_on, camera_on=camera_on
            )
            assert reply["type"] == "ok", reply
            await self.settle()

        self.run(go())

    @precondition(lambda self: self.named("connected", among=PUBLISHERS))
    @rule(data=st.data())
    def publish(self, data: st.DataObject) -> None:
        actor = self.actors[data.draw(st.sampled_from(self.named("connected", among=PUBLISHERS)))]

        async def go() -> None:
            assert actor.client is not None
            reply = await actor.client.request("publish", sdp="v=0", tracks=TRACKS)
            assert reply["type"] == "publish_answer", reply
            actor.published = True
            await self.settle()

        self.run(go())

    @precondition(lambda self: self.actors["lead"].status == "connected")
    @rule(chance=st.integers(0, 5))
    def end(self, chance: int) -> None:
        """Ends the lesson, one time in six: an ended lesson refuses everything after, so a
        frequent end would leave most histories short."""
        lead = self.actors["lead"]
        if chance or lead.client is None:
            return

        async def go() -> None:
            connected = [a.client for a in self.actors.values() if a.status == "connected"]
            assert lead.client is not None
            assert (await lead.client.request("end_lesson"))["type"] == "ok"
            for client in connected:
                assert client is not None
                await client.expect("lesson_ended")
                await client.wait_closed()
            self.state = "ended"
            self.talking = None
            for name in ACTORS:
                self.left(name)
            await self.settle()

        self.run(go())

    def patrol_request(self, type: str, **fields: Any) -> dict[str, Any]:
        patrol = self.actors["patrol"]

        async def go() -> dict[str, Any]:
            assert patrol.client is not None
            reply = await patrol.client.request(type, **fields)
            await self.settle()
            return reply

        return self.run(go())

    @precondition(lambda self: self.actors["patrol"].status == "connected")
    @rule(to=st.sampled_from(("lead", *RECEIVERS)))
    def talk_start(self, to: str) -> None:
        """The inspector presses to talk to the lead classroom or a receiving one."""
        reply = self.patrol_request("talk_start", classroom_id=None if to == "lead" else to)
        if self.state != "live":
            assert reply.get("code") == "lesson_not_live", reply
        elif self.actors[to].status != "connected":
            assert reply.get("code") == "invalid_target", reply
        else:
            assert reply["type"] == "ok", reply
            self.talking = to

    @precondition(lambda self: self.actors["patrol"].status == "connected")
    @rule()
    def talk_stop(self) -> None:
        assert self.patrol_request("talk_stop")["type"] == "ok"
        self.talking = None

    @precondition(lambda self: self.actors["patrol"].status == "connected")
    @rule()
    def patrol_publish(self) -> None:
        """The patrol's mic: accepted only while it talks (kept, but forwarded only then)."""
        reply = self.patrol_request("publish", sdp="v=0", tracks=[{"mid": "0", "source": "mic"}])
        if self.talking is None:
            assert reply.get("code") == "forbidden", reply
        else:
            assert reply["type"] == "publish_answer", reply
            self.actors["patrol"].published = True

    # Invariants --------------------------------------------------------------------------

    @invariant()
    def the_patrol_is_visible_only_to_the_classroom_it_talks_to(self) -> None:
        room = self.signal.rooms.rooms.get(LESSON_ID)
        patrol = self.actors["patrol"]
        if room is None:
            assert self.talking is None
            return
        expected = set()
        if self.talking is not None:
            target = LEAD_ROOM if self.talking == "lead" else self.talking
            expected = {(patrol.peer_id, target)}
        assert set(room.talkback.pairs()) == expected
        for name in ("lead", *RECEIVERS):
            actor = self.actors[name]
            if actor.status != "connected":
                continue
            addressed = name == self.talking
            assert actor.view.talker == (patrol.peer_id if addressed else None), name
            hears = {r.peer_id for r in self.media.subscriptions.get(actor.peer_id, frozenset())}
            if patrol.peer_id and not addressed:
                assert patrol.peer_id not in hears, f"{name} hears a patrol it was not addressed by"
            if addressed and patrol.published:
                assert patrol.peer_id in hears, f"{name} is addressed but not offered the mic"
            assert patrol.peer_id not in actor.view.participants, name

    @invariant()
    def one_room_holding_every_present_peer(self) -> None:
        rooms = self.signal.rooms.rooms
        assert set(rooms) <= {LESSON_ID}
        present = self.present()
        if not present:
            return
        room = rooms.get(LESSON_ID)
        assert room is not None and not room.closed, "present peers but no room"
        assert set(room.peers) == {a.peer_id for a in present.values()}
        for actor in present.values():
            assert room.peers[actor.peer_id].state.value == actor.status
        if self.redis:
            home = self.run(self.placement.home_id(LESSON_ID))
            assert home == self.node_id, f"directory names {home}, room is here"

    @invariant()
    def ended_only_after_an_end(self) -> None:
        room = self.signal.rooms.rooms.get(LESSON_ID)
        if self.state == "ended":
            assert room is None
            assert LESSON_ID in self.signal.rooms._ended
        elif room is not None:
            assert room.state.value == self.state

    @invariant()
    def every_connected_receiver_is_offered_the_leads_producers(self) -> None:
        lead = self.actors["lead"]
        if lead.status != "connected" or not lead.published:
            return
        for name in RECEIVERS:
            actor = self.actors[name]
            if actor.status != "connected":
                continue
            refs = self.media.subscriptions.get(actor.peer_id, frozenset())
            assert any(r.peer_id == lead.peer_id for r in refs), f"{name} not offered the lead"
            assert lead.peer_id in actor.view.producers

    @invariant()
    def every_peer_sees_the_room_as_it_is(self) -> None:
        room = self.signal.rooms.rooms.get(LESSON_ID)
        if room is None:
            return
        truth = {
            p.peer_id: ("lost" if p.state is PeerState.LOST else "connected", p.mic_on, p.camera_on)
            for p in room.peers.values()
            if p.visible
        }
        for name, actor in self.actors.items():
            if actor.status != "connected":
                continue
            view = actor.view
            assert view.participants == truth, f"{name} sees {view.participants}, not {truth}"
            assert view.stage == room.stage, name
            assert view.hands == room.hands, name
            assert view.muted == room.muted(), name


async def _delete(client: Any, prefix: str) -> None:
    keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
    if keys:
        await client.delete(*keys)


class RedisLessonMachine(LessonMachine):
    redis = True


class LiveLessonMachine(LessonMachine):
    """The same rules from a live lesson with everyone present, so that histories reach
    deep into talkback (started from scratch, few histories get that far)."""

    @initialize()
    def everyone_in_a_live_lesson(self) -> None:
        for name in ACTORS:
            self.run(self.enter(name))
        self.start()


SETTINGS = settings(
    max_examples=100,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestLessonModel = LessonMachine.TestCase
TestLessonModel.settings = SETTINGS
TestLiveLessonModel = LiveLessonMachine.TestCase
TestLiveLessonModel.settings = SETTINGS
TestLessonModelOnRedis = RedisLessonMachine.TestCase
TestLessonModelOnRedis.settings = settings(SETTINGS, max_examples=30)


@pytest.fixture(autouse=True, scope="module")
def _redis_reachable() -> None:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_timeout=2.0).ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis at {REDIS_URL} is needed by the lesson model test: {exc}")
