"""Node B of tests/media/test_cascade.py: a MediaService in its own process, driven over a pipe.

It stands for an edge node: the test process (node A, the lesson's home) sends it relay
offers and subscribers' SDP the way the cluster layer would over Redis. One JSON object per
line each way. Requests: ``{"id": n, "op": name, ...}``; replies: ``{"id": n, "result": ...}``
or ``{"id": n, "error": code, "message": text}``. The service's events arrive as
``{"event": name, ...}`` lines. Run as ``python tests/media/cascade_node.py`` from the
repository root; it exits on ``{"op": "shutdown"}`` or at end of input.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import sys
from typing import Any

from media.cascade import RelayTrack
from media.faults import NO_FAULTS, FaultInjector
from media.sfu import MediaError, MediaService, ProducerInfo

LOOPBACK = ["127.0.0.1"]


def send(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


class Events:
    """The edge service's listener: every event goes to the test process."""

    def producer_added(self, info: ProducerInfo) -> None:
        send({"event": "producer_added", "producer": dataclasses.asdict(info)})

    def producer_removed(self, info: ProducerInfo) -> None:
        send({"event": "producer_removed", "producer": dataclasses.asdict(info)})

    def renegotiation_needed(self, peer_id: str) -> None:
        send({"event": "renegotiation_needed", "peer_id": peer_id})

    def transport_state(self, peer_id: str, direction: str, state: str) -> None:
        send({"event": "transport_state", "peer_id": peer_id, "direction": direction,
              "state": state})  # fmt: skip


class EdgeNode:
    def __init__(self) -> None:
        self.service = MediaService(host_addresses=LOOPBACK, listener=Events())
        self.peers: dict[str, str] = {}  # subscribers seen: peer id -> lesson id

    def local_id(self, origin_id: str) -> str:
        """The local producer relaying the home node's ``origin_id``."""
        for receiver in self.service.cascade.receivers.values():
            info = receiver.origin_ids().get(origin_id)
            if info is not None:
                return info.id
        raise MediaError("unknown_producer", f"No relayed producer for {origin_id}.")

    async def handle(self, op: str, args: dict[str, Any]) -> Any:
        service = self.service
        if op == "relay_accept":
            tracks = [RelayTrack.from_dict(t) for t in args["tracks"]]
            return await service.relay_accept(
                args["relay_id"], args["lesson_id"], args["sdp"], tracks
            )
        if op == "close_relay":
            await service.close_relay(args["relay_id"])
            return None
        if op == "subscribe":
            self.peers[args["peer_id"]] = args["lesson_id"]
            ids = [self.local_id(o) for o in args["origins"]]
            layers = {self.local_id(o): layer for o, layer in args.get("layers", {}).items()}
            result = await service.subscribe(args["lesson_id"], args["peer_id"], ids, layers)
            return None if result is None else result.sdp
        if op == "answer":
            result = await service.answer(args["peer_id"], args["sdp"])
            return None if result is None else result.sdp
        if op == "resync":
            result = await service.resync(args["peer_id"])
            return None if result is None else result.sdp
        if op == "set_layer":
            service.set_layer(args["peer_id"], self.local_id(args["origin"]), args["layer"])
            return None
        if op == "set_faults":
            drop = args.get("drop_rate", 0.0)
            faults = FaultInjector(drop_rate=drop, seed=args.get("seed", 1)) if drop else NO_FAULTS
            service.set_faults(args["peer_id"], faults)
            return None
        if op == "stats":
            return self.stats()
        raise MediaError("bad_op", f"Unknown op {op!r}.")

    def stats(self) -> dict[str, Any]:
        """Relay producers' and consumers' counters, keyed by the home node's producer id."""
        service = self.service
        relayed: dict[str, Any] = {}
        origin_of: dict[str, str] = {}
        receivers = list(service.cascade.receivers.values())
        for receiver in receivers:
            for origin, info in receiver.origin_ids().items():
                origin_of[info.id] = origin
                producer = service.producer(info.id)
                relayed[origin] = dataclasses.asdict(producer.stats())
        consumers: dict[str, dict[str, Any]] = {}
        for peer_id in self.peers:
            for c in service.consumers(peer_id):
                consumer = service.consumer(peer_id, c.producer_id)
                if consumer is not None:
                    key = origin_of.get(c.producer_id, c.producer_id)
                    consumers.setdefault(peer_id, {})[key] = dataclasses.asdict(consumer.stats())
        lessons = sorted({*self.peers.values(), *(r.lesson_id for r in receivers)})
        return {
            "relayed": relayed,
            "consumers": consumers,
            "producers": [dataclasses.asdict(i) for x in lessons for i in service.producers(x)],
            "service": service.stats(),
        }


async def main() -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    node = EdgeNode()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 22, loop=loop)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    tasks: set[asyncio.Task[None]] = set()

    async def serve(request: dict[str, Any]) -> None:
        rid = request.pop("id")
        op = request.pop("op")
        try:
            send({"id": rid, "result": await node.handle(op, request)})
        except MediaError as exc:
            send({"id": rid, "error": exc.code, "message": exc.message})
        except Exception as exc:  # the test should see it, not hang
            logging.exception("op %s failed", op)
            send({"id": rid, "error": "internal", "message": repr(exc)})

    while line := await reader.readline():
        request = json.loads(line)
        if request.get("op") == "shutdown":
            break
        task = asyncio.ensure_future(serve(request))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks, return_exceptions=True)
    await node.service.close()


if __name__ == "__main__":
    asyncio.run(main())
