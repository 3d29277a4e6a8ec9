"""Request/reply between nodes' media services over the Redis bus (the cascade's signaling).

A lesson's room lives on its home node; a peer whose media is served by another node (an
edge node, or any node when the home is full) is driven from the home through this RPC
(server/cluster/media_port.py). Each node listens on two bus channels:

- ``media-rpc:{node}``: requests ``{"kind": "req", "id", "from", "op", "args"}``, served
  by :class:`MediaRpc` on the local ``MediaService``;
- ``media-reply:{node}``: replies ``{"kind": "rep", "id", "result" | "error", "message"}``
  and events a serving node sends to the home node driving it
  ``{"kind": "evt", "from", "event", ...}`` (a served peer's own renegotiation, a relay
  to renegotiate).

The bus delivers at least once (a retried publish may repeat a message), so a request id
seen again gets the first answer, never a second execution. A request unanswered within
``timeout_s`` (the node is gone, Redis is away) raises ``MediaError("media_unavailable")``.
Ids of producers and consumers are node-local: every call names the serving node's ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import logging
import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol

from media.relay import RelayOffer
from media.sfu import MediaError, MediaService, SubscribeResult, TrackSpec
from signaling.bus import GAP_TYPE, Subscription
from signaling.grants import Role
from signaling.media_port import PeerInfo
from signaling.redis_bus import BusUnavailable
from signaling.sfu_port import quality_report

log = logging.getLogger("tongke.cluster.media")

UNAVAILABLE = "media_unavailable"
# Answers kept for repeated request ids (at-least-once delivery); far more than in flight.
_SEEN_MAX = 1024

EventHandler = Callable[[str, str, dict[str, Any]], None]


class RpcBus(Protocol):
    """What the RPC needs of a bus: the Redis bus across machines, or the unix socket
    between the service and its media workers (server/workers/ipc.py). ``publish`` raises
    ``BusUnavailable`` when the message cannot leave."""

    node_id: str

    async def publish(self, channel: str, message: dict[str, Any]) -> Any: ...

    def subscribe(self, channel: str, maxsize: int = 256) -> Subscription: ...


def request_channel(node_id: str) -> str:
    return f"media-rpc:{node_id}"


def reply_channel(node_id: str) -> str:
    return f"media-reply:{node_id}"


def offer_dict(service: MediaService, lesson_id: str, result: SubscribeResult | None) -> Any:
    """A subscription offer in plain JSON, each consumer with its producer's metadata."""
    if result is None:
        return None
    infos = {i.id: i for i in service.producers(lesson_id)}
    consumers = []
    for c in result.consumers:
        info = infos.get(c.producer_id)
        if info is None:
            continue
        consumers.append(
            {"consumer_id": c.id, "mid": c.mid, "producer_id": info.id,
             "peer_id": info.peer_id, "source": info.source, "layer": info.layer}
        )  # fmt: skip
    return {"sdp": result.sdp, "consumers": consumers}


class MediaRpc:
    """This node's end of the media RPC: calls other nodes, serves their calls."""

    def __init__(self, bus: RpcBus, service: MediaService, *, timeout_s: float = 10.0) -> None:
        self.bus = bus
        self.node_id = bus.node_id
        self.service = service
        self.timeout_s = timeout_s
        # Home node side: events from serving nodes (node, event name, message).
        self.on_event: EventHandler = lambda node, name, message: None
        # relay_renegotiation_needed for relays this node's own port drives.
        self.on_local_relay: Callable[[str], None] = lambda relay_id: None
        self.on_local_relay_failed: Callable[[str], None] = lambda relay_id: None
        self._pending: dict[str, asyncio.Future[Any]] = {}
        self._seen: OrderedDict[str, asyncio.Future[dict[str, Any]]] = OrderedDict()
        # Serving side: peers served for another node (peer -> (home node, lesson)), and
        # relays whose home end is here but driven by another node (relay -> that node).
        self.served: dict[str, tuple[str, str]] = {}
        self.labels: dict[str, tuple[str, str]] = {}  # served peer -> (role, classroom)
        self.drivers: dict[str, str] = {}
        self.accepted: dict[str, str] = {}  # edge ends here: relay -> the home driving it
        self._tasks: set[asyncio.Task[Any]] = set()
        self._readers: list[asyncio.Task[None]] = []
        self.timeouts = 0
        self._closed = False

    async def start(self) -> None:
        requests = self.bus.subscribe(request_channel(self.node_id), maxsize=1024)
        replies = self.bus.subscribe(reply_channel(self.node_id), maxsize=1024)
        loop = asyncio.get_running_loop()
        self._readers = [
            loop.create_task(self._read(requests, self._request), name="media-rpc-requests"),
            loop.create_task(self._read(replies, self._reply), name="media-rpc-replies"),
        ]

    async def forget_nodes(self, live: set[str]) -> int:
        """Closes what homes that are gone drove here (their peers' media, their relays):
        nobody would close it otherwise. Returns how many things it closed. The cluster's
        heartbeat calls it with the live node ids."""
        closed = 0
        for peer_id, (home, _) in list(self.served.items()):
            if home not in live:
                log.info("home %s is gone: closing its peer %s here", home, peer_id)
                self.served.pop(peer_id, None)
                self.labels.pop(peer_id, None)
                await self.service.close_peer(peer_id)
                closed += 1
        for ends in (self.drivers, self.accepted):
            for relay_id, home in list(ends.items()):
                if home not in live:
                    log.info("home %s is gone: closing its relay %s here", home, relay_id)
                    ends.pop(relay_id, None)
                    await self.service.close_relay(relay_id)
                    closed += 1
        return closed

    async def close(self) -> None:
        self._closed = True
        for task in (*self._readers, *self._tasks):
            task.cancel()
        for task in (*self._readers, *self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for future in self._pending.values():
            if not future.done():
                future.set_exception(MediaError(UNAVAILABLE, "This node is shutting down."))
        self._pending.clear()

    async def _read(self, sub: Any, handle: Callable[[dict[str, Any]], None]) -> None:
        try:
            while True:
                message = await sub.get()
                if message.get("type") == GAP_TYPE:
                    # Lost requests or replies surface as the caller's timeout.
                    log.warning("media rpc lost messages: %s", message)
                    continue
                try:
                    handle(message)
                except Exception:
                    log.exception("media rpc message failed: %s", message.get("kind"))
        finally:
            sub.close()

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- calling -----------------------------------------------------------------------------

    async def call(
        self, node_id: str, op: str, *, within_s: float | None = None, **args: Any
    ) -> Any:
        """Runs ``op`` on ``node_id``'s media service; its MediaError codes come back as
        MediaError; no answer within ``within_s`` (default ``timeout_s``) or no bus is
        MediaError media_unavailable."""
        timeout_s = self.timeout_s if within_s is None else within_s
        if self._closed:
            raise MediaError(UNAVAILABLE, "This node's media rpc is closed.")
        rid = uuid.uuid4().hex
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[rid] = future
        try:
            await self.bus.publish(
                request_channel(node_id),
                {"kind": "req", "id": rid, "from": self.node_id, "op": op, "args": args},
            )
            return await asyncio.wait_for(future, timeout_s)
        except BusUnavailable as exc:
            raise MediaError(UNAVAILABLE, f"Node {node_id} is out of reach: {exc}") from None
        except TimeoutError:
            self.timeouts += 1
            raise MediaError(
                UNAVAILABLE, f"Node {node_id} did not answer {op} within {timeout_s:g}s."
            ) from None
        finally:
            self._pending.pop(rid, None)

    def _reply(self, message: dict[str, Any]) -> None:
        kind = message.get("kind")
        if kind == "evt":
            self.on_event(str(message.get("from")), str(message.get("event")), message)
            return
        future = self._pending.get(str(message.get("id")))
        if kind != "rep" or future is None or future.done():
            return  # late (timed out) or repeated
        if "error" in message:
            future.set_exception(MediaError(str(message["error"]), str(message.get("message"))))
        else:
            future.set_result(message.get("result"))

    async def send_event(self, node_id: str, event: str, **data: Any) -> None:
        try:
            await self.bus.publish(
                reply_channel(node_id),
                {"kind": "evt", "from": self.node_id, "event": event, **data},
            )
        except BusUnavailable as exc:
            log.warning("media event %s to %s lost: %s", event, node_id, exc)

    # -- serving -----------------------------------------------------------------------------

    def _request(self, message: dict[str, Any]) -> None:
        rid = str(message.get("id"))
        origin = str(message.get("from"))
        seen = self._seen.get(rid)
        if seen is None:
            seen = self._spawn(self._serve(origin, str(message.get("op")), message.get("args")))
            self._seen[rid] = seen
            while len(self._seen) > _SEEN_MAX:
                self._seen.popitem(last=False)
        self._spawn(self._answer(origin, rid, seen))

    async def _answer(self, origin: str, rid: str, outcome: asyncio.Future[dict[str, Any]]) -> None:
        reply = {"kind": "rep", "id": rid, **(await outcome)}
        try:
            await self.bus.publish(reply_channel(origin), reply)
        except BusUnavailable as exc:
            log.warning("media rpc reply to %s lost: %s", origin, exc)

    async def _serve(self, origin: str, op: str, args: Any) -> dict[str, Any]:
        handler = getattr(self, f"op_{op}", None)
        if handler is None or not isinstance(args, dict):
            return {"error": "bad_request", "message": f"Unknown media rpc {op!r}."}
        try:
            inspect.signature(handler).bind(origin, **args)
        except TypeError as exc:  # missing or unknown arguments
            return {"error": "bad_request", "message": f"{op}: {exc}"}
        try:
            return {"result": await handler(origin, **args)}
        except MediaError as exc:
            return {"error": exc.code, "message": exc.message}
        except Exception as exc:
            log.exception("media rpc %s from %s failed", op, origin)
            return {"error": "internal_error", "message": f"{op} failed: {exc!r}"}

    # Peers served here for a lesson homed on `origin`.

    async def op_publish(
        self,
        origin: str,
        lesson_id: str,
        peer_id: str,
        sdp: str,
        tracks: list[dict[str, str]],
        role: str = "",
        classroom: str = "",
    ) -> dict[str, Any]:
        self._remember_served(origin, lesson_id, peer_id, role, classroom)
        specs = [TrackSpec(t["mid"], t["source"], t.get("layer", "main")) for t in tracks]
        result = await self.service.publish(lesson_id, peer_id, sdp, specs)
        return {"sdp": result.sdp, "producers": [p.id for p in result.producers]}

    async def op_subscribe(
        self,
        origin: str,
        lesson_id: str,
        peer_id: str,
        items: list[dict[str, str]],
        role: str = "",
        classroom: str = "",
    ) -> Any:
        """``items``: {"id": producer id here, "layer"}; or {"relay", "origin", "layer"}: the
        producer relaying the home node's ``origin`` over ``relay`` (skipped if not there)."""
        self._remember_served(origin, lesson_id, peer_id, role, classroom)
        ids: list[str] = []
        layers: dict[str, str] = {}
        for item in items:
            pid: str | None = item.get("id")
            if pid is None:
                info = self.service.relay_producers(item["relay"]).get(item["origin"])
                pid = None if info is None else info.id
            if pid is None:
                continue
            ids.append(pid)
            layers[pid] = item.get("layer", "main")
        result = await self.service.subscribe(lesson_id, peer_id, ids, layers)
        return offer_dict(self.service, lesson_id, result)

    async def op_answer(self, origin: str, lesson_id: str, peer_id: str, sdp: str) -> Any:
        return offer_dict(self.service, lesson_id, await self.service.answer(peer_id, sdp))

    def _remember_served(
        self, origin: str, lesson_id: str, peer_id: str, role: str, classroom: str
    ) -> None:
        # role/classroom: for this node's metrics (a home of an older version sends none).
        self.served[peer_id] = (origin, lesson_id)
        if role:
            self.labels[peer_id] = (role, classroom)

    def peer_info(self, peer_id: str) -> PeerInfo | None:
        """Who a peer served here for another node is, as far as its home said."""
        served, labels = self.served.get(peer_id), self.labels.get(peer_id)
        if served is None or labels is None:
            return None
        try:
            role = Role(labels[0])
        except ValueError:
            return None
        return PeerInfo(served[1], peer_id, role, labels[1] or None)

    async def op_close_peer(self, origin: str, peer_id: str) -> None:
        self.served.pop(peer_id, None)
        self.labels.pop(peer_id, None)
        await self.service.close_peer(peer_id)

    # Relays: this node as the home end driven by `origin`, or as the edge end.

    async def op_relay_offer(
        self, origin: str, relay_id: str, lesson_id: str, producer_ids: list[str]
    ) -> Any:
        self.drivers[relay_id] = origin
        known = {p.id for p in self.service.producers(lesson_id)}
        offer = await self.service.relay_offer(
            relay_id, lesson_id, [p for p in producer_ids if p in known]
        )
        return None if offer is None else offer.to_dict()

    async def op_relay_answer(self, origin: str, relay_id: str, sdp: str) -> Any:
        offer = await self.service.relay_answer(relay_id, sdp)
        return None if offer is None else offer.to_dict()

    async def op_relay_resync(self, origin: str, relay_id: str) -> Any:
        offer = await self.service.relay_resync(relay_id)
        return None if offer is None else offer.to_dict()

    async def op_relay_accept(
        self, origin: str, relay_id: str, lesson_id: str, offer: dict[str, Any]
    ) -> dict[str, Any]:
        parsed = RelayOffer.from_dict(offer)
        self.accepted[relay_id] = origin
        answer = await self.service.relay_accept(relay_id, lesson_id, parsed.sdp, parsed.tracks)
        return {"sdp": answer}

    async def op_close_relay(self, origin: str, relay_id: str) -> None:
        self.drivers.pop(relay_id, None)
        self.accepted.pop(relay_id, None)
        await self.service.close_relay(relay_id)

    async def op_stats(self, origin: str) -> dict[str, int]:
        return self.service.stats()

    # -- the local service's events (through ListenerTee) -----------------------------------

    def renegotiation_needed(self, peer_id: str) -> None:
        served = self.served.get(peer_id)
        if served is not None:  # a producer a served peer consumes went away: re-offer
            self._spawn(self._resync(peer_id, *served))

    async def _resync(self, peer_id: str, home: str, lesson_id: str) -> None:
        try:
            offer = offer_dict(self.service, lesson_id, await self.service.resync(peer_id))
        except MediaError as exc:
            log.warning("resync of served peer %s failed: %s", peer_id, exc.message)
            return
        if offer is not None:
            await self.send_event(home, "subscription_offer", peer_id=peer_id, offer=offer)

    def relay_renegotiation_needed(self, relay_id: str) -> None:
        driver = self.drivers.get(relay_id)
        if driver is None:
            self.on_local_relay(relay_id)
        else:
            self._spawn(self.send_event(driver, "relay_renegotiation_needed", relay_id=relay_id))

    def peer_quality(self, lesson_id: str, peer_id: str, quality: Any) -> None:
        served = self.served.get(peer_id)
        if served is not None:  # the home's room tells the lead (every quality interval)
            report = dataclasses.asdict(quality_report(quality))
            self._spawn(self.send_event(served[0], "quality", peer_id=peer_id, report=report))

    def producer_added(self, info: Any) -> None:
        served = self.served.get(info.peer_id)
        if served is not None:  # its transport connected (AnnounceGate): the home may relay it
            self._spawn(
                self.send_event(served[0], "producer_ready", peer_id=info.peer_id,
                                producer_id=info.id)
            )  # fmt: skip

    def publish_failed(self, lesson_id: str, peer_id: str, reason: str) -> None:
        served = self.served.get(peer_id)
        if served is not None:  # the home's room tells the publisher (transport_failed)
            self._spawn(
                self.send_event(served[0], "publish_failed", peer_id=peer_id, reason=reason)
            )

    def subscribe_refused(self, lesson_id: str, peer_id: str, reason: str) -> None:
        served = self.served.get(peer_id)
        if served is not None:  # the home's room tells the subscriber (unsupported_codec)
            self._spawn(
                self.send_event(served[0], "subscribe_refused", peer_id=peer_id, reason=reason)
            )

    def transport_state(self, peer_id: str, direction: str, state: str) -> None:
        # A relay end this node's port drives failed (the other node closed it or vanished).
        if direction == "relay" and state == "failed" and peer_id not in self.drivers:
            self.on_local_relay_failed(peer_id)


class ListenerTee:
    """The media service's listener on a cluster node: every event goes to the room's
    adapter (SfuMediaPort) first, then to the RPC for what concerns other nodes."""

    _EXTRA = frozenset(
        {
            "renegotiation_needed",
            "relay_renegotiation_needed",
            "peer_quality",
            "transport_state",
            "publish_failed",
            "subscribe_refused",
            "producer_added",
        }
    )

    def __init__(self, primary: Any, rpc: MediaRpc) -> None:
        self._primary = primary
        self._rpc = rpc

    def __getattr__(self, name: str) -> Callable[..., None]:
        first = getattr(self._primary, name, None)
        extra = getattr(self._rpc, name) if name in self._EXTRA else None
        if first is None and extra is None:
            raise AttributeError(name)

        def both(*args: Any) -> None:
            if first is not None:
                first(*args)
            if extra is not None:
                extra(*args)

        return both
