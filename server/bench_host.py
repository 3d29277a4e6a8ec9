"""The SFU host process for `tongke bench`: one MediaService behind a JSON-lines TCP port.

Run as ``python -m server.bench_host``; it prints ``PORT <n>`` once it listens. Requests,
one JSON object per line, answered in order on the same connection:

- ``{"op": "publish", "lesson", "peer", "sdp", "tracks": [[mid, source, layer], ...]}``
  -> ``{"sdp", "producers": [id, ...]}``
- ``{"op": "subscribe", "lesson", "peer", "producers": [id, ...]}`` -> ``{"sdp": str | null}``
- ``{"op": "answer", "peer", "sdp"}`` -> ``{"sdp": str | null}``

Errors come back as ``{"error": code, "message": text}``. A bench harness, not a product API.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from media.sfu import MediaService, TrackSpec

LOOPBACK = ["127.0.0.1"]


async def _handle(service: MediaService, request: dict[str, Any]) -> dict[str, Any]:
    op = request.get("op")
    if op == "publish":
        specs = [TrackSpec(mid, source, layer) for mid, source, layer in request["tracks"]]
        result = await service.publish(request["lesson"], request["peer"], request["sdp"], specs)
        return {"sdp": result.sdp, "producers": [p.id for p in result.producers]}
    if op == "subscribe":
        sub = await service.subscribe(request["lesson"], request["peer"], request["producers"])
        return {"sdp": sub.sdp if sub is not None else None}
    if op == "answer":
        follow = await service.answer(request["peer"], request["sdp"])
        return {"sdp": follow.sdp if follow is not None else None}
    return {"error": "bad_op", "message": f"Unknown op {op!r}."}


async def serve(service: MediaService, reader: Any, writer: Any) -> None:
    while line := await reader.readline():
        try:
            reply = await _handle(service, json.loads(line))
        except Exception as exc:  # reported to the harness, which fails loudly
            reply = {"error": getattr(exc, "code", "failed"), "message": str(exc)}
        writer.write(json.dumps(reply).encode() + b"\n")
        await writer.drain()
    writer.close()


async def main() -> None:
    service = MediaService(host_addresses=LOOPBACK)
    server = await asyncio.start_server(
        lambda r, w: serve(service, r, w), "127.0.0.1", 0, limit=1 << 22
    )
    port = server.sockets[0].getsockname()[1]
    print(f"PORT {port}", flush=True)
    # Runs until the harness closes our stdin (or kills us).
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)
    server.close()
    await service.close()


if __name__ == "__main__":
    asyncio.run(main())
