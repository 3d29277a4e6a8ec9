"""Naive baseline for `tongke bench`: aiortc MediaRelay, decode once + re-encode per receiver.

A JSON-lines control port (publish, subscribe, answer; it prints ``READY {json}`` with its
``control_port``) lets `tongke bench` drive the same synthetic peers against it. This stands
in for signaling: the baseline is about media CPU, and aiortc's MediaRelay has no 1+N
signaling of its own. Not part of the product.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaRelay

from media import aiortc_hooks as hooks

LOOPBACK = ["127.0.0.1"]


class NaiveRelay:
    def __init__(self) -> None:
        self.relay = MediaRelay()
        self.tracks: list[MediaStreamTrack] = []
        self.pcs: dict[str, RTCPeerConnection] = {}

    async def publish(self, request: dict[str, Any]) -> dict[str, Any]:
        pc = self.pcs[request["peer"]] = RTCPeerConnection()
        pc.on("track", self.tracks.append)
        hooks.use_host_addresses(pc, LOOPBACK)
        await pc.setRemoteDescription(RTCSessionDescription(request["sdp"], "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        return {"sdp": pc.localDescription.sdp, "producers": [t.id for t in self.tracks]}

    async def subscribe(self, request: dict[str, Any]) -> dict[str, Any]:
        pc = self.pcs[request["peer"]] = RTCPeerConnection()
        for track in self.tracks:
            # Each sender owns an encoder: this is the per-receiver re-encode.
            pc.addTrack(self.relay.subscribe(track))
        hooks.use_host_addresses(pc, LOOPBACK)
        await pc.setLocalDescription(await pc.createOffer())
        return {"sdp": pc.localDescription.sdp}

    async def answer(self, request: dict[str, Any]) -> dict[str, Any]:
        pc = self.pcs[request["peer"]]
        await pc.setRemoteDescription(RTCSessionDescription(request["sdp"], "answer"))
        return {"sdp": None}

    async def serve(self, reader: Any, writer: Any) -> None:
        while line := await reader.readline():
            request = json.loads(line)
            try:
                reply = await getattr(self, request["op"])(request)
            except Exception as exc:  # reported to the harness
                reply = {"error": "failed", "message": str(exc)}
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
        writer.close()


async def main() -> None:
    relay = NaiveRelay()
    server = await asyncio.start_server(relay.serve, "127.0.0.1", 0, limit=1 << 22)
    port = server.sockets[0].getsockname()[1]
    print("READY " + json.dumps({"control_port": port, "loop": "asyncio"}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    server.close()
    for pc in relay.pcs.values():
        await pc.close()


if __name__ == "__main__":
    asyncio.run(main())
