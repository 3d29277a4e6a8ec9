"""Cascade relay: a lesson's producers relayed from its home node to an edge node, once.

::

    publisher ──► node A (home) ══ one WebRTC connection per edge node ══► node B ──► receivers

On A, a :class:`RelaySender` is a subscriber like any other, except that it is a node: a
receive-direction ``WebRtcTransport`` with one sendonly m-line and one ``SimpleConsumer``
per relayed producer (the main and low layers of a dual stream travel separately, so layer
choice stays with B's receivers). On B, a :class:`RelayReceiver` is a publisher like any
other: a send-direction ``WebRtcTransport`` whose m-lines become ``Producer`` s on B's
``Router`` with the origin's metadata (peer, kind, source, layer), so B's receivers consume
them exactly like local producers. Packets are forwarded, never decoded nor re-encoded.

Feedback crosses the hop on its own, because each side is an ordinary producer/consumer:
a PLI from a receiver on B reaches B's relay producer (aggregated, rate limited), which
sends one PLI to A's relay consumer, which asks A's producer (aggregated again), which
asks the publisher. NACKs from B's receivers are answered from B's relay producer's cache;
B's relay producer NACKs what the A->B hop lost, answered from A's producer's cache (RTX).

Signaling is the cluster layer's: A's :class:`RelayOffer` (SDP + :class:`RelayTrack` list,
both JSON-able) goes to B, B's answer SDP comes back. Every (re)offer carries the complete
track list; an m-line missing from it (inactive in the SDP) closes B's producer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from aiortc import RTCIceServer

from media.faults import NO_FAULTS, AnyFaults
from media.relay import Producers, RelayOffer, RelayReceiver, RelaySender, RelayTrack
from media.sfu_types import MediaError
from media.transport import TransportError, TransportState, WebRtcTransport, add_counts

__all__ = ["Cascade", "RelayOffer", "RelayReceiver", "RelaySender", "RelayTrack"]


class Cascade:
    """Both ends of every relay of one media service (MediaService delegates here)."""

    def __init__(
        self,
        *,
        producers: Producers,
        routers: Mapping[str, Any],
        router_for: Callable[[str], Any],
        new_id: Callable[[str], str],
        emit: Callable[..., None],
        ice_servers: Sequence[RTCIceServer],
        host_addresses: Sequence[str] | None,
    ) -> None:
        self._producers = producers
        self._routers = routers
        self._router_for = router_for
        self._new_id = new_id
        self._emit = emit
        self._ice_servers = ice_servers
        self._host_addresses = host_addresses
        self.senders: dict[str, RelaySender] = {}
        self.receivers: dict[str, RelayReceiver] = {}
        # Packet counters of relay transports closed so far (WebRtcTransport.stats).
        self.closed_counts: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def _transport(self, relay_id: str, direction: str) -> WebRtcTransport:
        def on_state(transport: WebRtcTransport, state: TransportState) -> None:
            self._emit("transport_state", relay_id, "relay", state.value)
            if state is TransportState.FAILED and direction == "send":
                # The home node closed the relay or vanished: B's receivers must see its
                # producers go, as when a publisher leaves.
                self._spawn(self.close_receiver(relay_id, transport))

        return WebRtcTransport(
            f"relay-{direction}-{relay_id}",
            direction,
            ice_servers=self._ice_servers,
            host_addresses=self._host_addresses,
            on_state=on_state,
        )

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- home node -------------------------------------------------------------------------

    async def offer(
        self, relay_id: str, lesson_id: str, producer_ids: Sequence[str]
    ) -> RelayOffer | None:
        """Make ``producer_ids`` the complete set relayed over ``relay_id``."""
        for pid in producer_ids:
            entry = self._producers.get(pid)
            if entry is None or entry[0].lesson_id != lesson_id:
                raise MediaError("unknown_producer", f"Lesson {lesson_id} has no producer {pid}.")
        sender = self.senders.get(relay_id)
        if sender is None:
            if relay_id in self.receivers:
                raise MediaError("relay_exists", f"Relay {relay_id} is this node's edge end.")
            sender = RelaySender(relay_id, lesson_id, self._transport(relay_id, "recv"))
            self._router_for(lesson_id)
            self.senders[relay_id] = sender
        elif sender.lesson_id != lesson_id:
            raise MediaError(
                "wrong_lesson", f"Relay {relay_id} belongs to lesson {sender.lesson_id}."
            )
        sender.wanted = tuple(dict.fromkeys(producer_ids))
        async with sender.lock:
            return await self._renegotiate(sender)

    async def resync(self, relay_id: str) -> RelayOffer | None:
        """The follow-up offer after ``relay_renegotiation_needed`` (a producer closed)."""
        sender = self._sender(relay_id)
        async with sender.lock:
            return await self._renegotiate(sender)

    async def _renegotiate(self, sender: RelaySender) -> RelayOffer | None:
        try:
            return await sender.renegotiate(self._producers, self._new_id)
        except TransportError as exc:
            raise MediaError(exc.code, exc.message) from exc

    async def answer(self, relay_id: str, sdp: str) -> RelayOffer | None:
        """Apply the edge node's answer; returns a follow-up offer if the set changed."""
        sender = self._sender(relay_id)
        async with sender.lock:
            if not sender.transport.awaiting_answer:
                raise MediaError("no_offer", f"No relay offer of {relay_id} awaits an answer.")
            try:
                await sender.accept_answer(sdp)
            except TransportError as exc:
                raise MediaError(exc.code, exc.message) from exc
            sender.transport.when_connected(lambda: sender.start_consumers(self._routers))
            return await self._renegotiate(sender)

    def _sender(self, relay_id: str) -> RelaySender:
        sender = self.senders.get(relay_id)
        if sender is None:
            raise MediaError("unknown_relay", f"There is no relay {relay_id} from this node.")
        return sender

    def producer_closed(self, producer_id: str) -> None:
        """A home producer closed: each relay carrying it must renegotiate."""
        for sender in self.senders.values():
            if sender.producer_closed(producer_id):
                self._emit("relay_renegotiation_needed", sender.id)

    # -- edge node -------------------------------------------------------------------------

    async def accept(
        self, relay_id: str, lesson_id: str, sdp: str, tracks: Sequence[RelayTrack]
    ) -> str:
        """Answer the home node's (re)offer; new m-lines become local producers."""
        receiver = self.receivers.get(relay_id)
        fresh = receiver is None
        if receiver is None:
            if relay_id in self.senders:
                raise MediaError("relay_exists", f"Relay {relay_id} is this node's home end.")
            receiver = RelayReceiver(relay_id, lesson_id, self._transport(relay_id, "send"))
            self.receivers[relay_id] = receiver  # now: a second offer waits for the lock
        elif receiver.lesson_id != lesson_id:
            raise MediaError(
                "wrong_lesson", f"Relay {relay_id} belongs to lesson {receiver.lesson_id}."
            )
        async with receiver.lock:
            try:
                answer, created, gone = await receiver.accept(
                    sdp, tracks, lambda: self._router_for(lesson_id), self._new_id
                )
            except MediaError:
                if fresh:  # a refused first offer leaves nothing behind
                    if self.receivers.get(relay_id) is receiver:
                        del self.receivers[relay_id]
                    await receiver.transport.close()
                raise
        for _, producer in gone:
            producer.close()  # the service drops it and tells B's subscribers
        for info, producer in created:
            self._producers[info.id] = (info, producer)
            self._emit("producer_added", info)
        return answer

    async def close_receiver(self, relay_id: str, transport: WebRtcTransport | None = None) -> None:
        receiver = self.receivers.get(relay_id)
        if receiver is None or (transport is not None and receiver.transport is not transport):
            return
        del self.receivers[relay_id]
        add_counts(self.closed_counts, receiver.transport)
        for mid in list(receiver.producers):
            entry = receiver.forget(mid)
            if entry is not None:
                entry[1].close()
        await receiver.transport.close()

    # -- both ------------------------------------------------------------------------------

    async def close(self, relay_id: str) -> None:
        """Close either end (idempotent). Closing A's end makes B's close too (DTLS close)."""
        sender = self.senders.pop(relay_id, None)
        if sender is not None:
            add_counts(self.closed_counts, sender.transport)
            await sender.close()
        await self.close_receiver(relay_id)

    async def close_lesson(self, lesson_id: str) -> None:
        ends = [*self.senders.values(), *self.receivers.values()]
        for relay_id in {end.id for end in ends if end.lesson_id == lesson_id}:
            await self.close(relay_id)

    async def close_all(self) -> None:
        for relay_id in [*self.senders, *self.receivers]:
            await self.close(relay_id)
        for task in tuple(self._tasks):
            task.cancel()

    def transport(self, relay_id: str) -> WebRtcTransport | None:
        """Either end's transport (stats, tests)."""
        end = self.senders.get(relay_id) or self.receivers.get(relay_id)
        return None if end is None else end.transport

    def set_faults(
        self, relay_id: str, outgoing: AnyFaults, incoming: AnyFaults = NO_FAULTS
    ) -> None:
        """Tests and drills: faults on what this end sends over the relay and on what it
        receives (media/faults.py); NO_FAULTS restores the plain path."""
        transport = self.transport(relay_id)
        if transport is None:
            raise MediaError("unknown_relay", f"There is no relay {relay_id}.")
        transport.set_faults(outgoing, incoming)

    def stats(self) -> dict[str, int]:
        """Relays by end, and the streams this node sends over them (one per relayed
        producer, however many receivers the edge nodes serve)."""
        return {
            "relays_out": len(self.senders),
            "relays_in": len(self.receivers),
            "relay_streams_out": sum(
                1 for r in self.senders.values() for s in r.streams.values() if s.consumer
            ),
        }
