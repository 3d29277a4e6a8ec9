"""A media worker process: a MediaService served over the media RPC to the service's process.

Started by the service (server/workers/pool.py) as ``python -m server.workers.worker``; what it
needs comes in the environment variable ``TONGKE_WORKER`` (JSON: socket, node id, ICE
servers, media addresses, log level), never on the command line (TURN credentials).
It serves until the service closes its socket (the service stopped or died: no orphan
workers) or SIGTERM. ``--check`` builds the media service and exits: `tongke serve` runs it
before it starts, so a worker that cannot start is one line, not a crash loop.

Bench-only: ``TONGKE_BENCH_FORWARD_PROBE=1``, set by the bench host (tongke_bench/host.py)
and never by `tongke serve`, is not a product setting. With it the worker installs a
forwarding-delay probe before any transport exists and answers the ``bench_probe`` request
(server/workers/bench_probe.py); without it, neither.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

ENV = "TONGKE_WORKER"


def _config() -> dict[str, Any]:
    raw = os.environ.get(ENV)
    if not raw:
        raise SystemExit(f"{ENV} is not set: media workers are started by `tongke serve`")
    config: dict[str, Any] = json.loads(raw)
    return config


def _service(config: dict[str, Any]) -> Any:
    from media.sfu import MediaService

    return MediaService(
        ice_servers=config.get("ice_servers") or (),
        host_addresses=config.get("media_addresses") or None,
    )


async def _serve(config: dict[str, Any]) -> None:
    from media.sfu_types import NullMediaListener
    from server.cluster.media_rpc import ListenerTee, MediaRpc
    from server.workers import bench_probe
    from server.workers.ipc import IpcWorkerBus

    probe = bench_probe.install(os.environ)  # None unless the bench host asked for it
    service = _service(config)
    bus = IpcWorkerBus(str(config["node_id"]))
    rpc = (
        MediaRpc(bus, service) if probe is None else bench_probe.BenchProbeRpc(bus, service, probe)
    )
    service.set_listener(ListenerTee(NullMediaListener(), rpc))
    await rpc.start()
    await bus.connect(Path(config["socket"]), os.getpid())
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, bus.closed.set)
    loop.add_signal_handler(signal.SIGINT, bus.closed.set)  # Ctrl-C reaches the group
    await bus.closed.wait()
    await rpc.close()
    await bus.close()
    await service.close()


async def _check(config: dict[str, Any]) -> None:
    """What a worker needs: its media service, and a UDP port on each media address."""
    service = _service(config)
    await service.close()
    for address in config.get("media_addresses") or ():
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as probe:
                probe.bind((address, 0))
        except OSError as exc:
            raise RuntimeError(
                f"media address {address!r} cannot take UDP here: {exc.strerror or exc}"
            ) from None


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    config = _config()
    logging.basicConfig(
        level=str(config.get("log_level", "info")).upper(),
        format=f"%(levelname)s {config.get('node_id', 'worker')} %(name)s: %(message)s",
    )
    try:
        asyncio.run(_check(config) if "--check" in args else _serve(config))
    except Exception as exc:
        # One line for the service to repeat (pool.py reads the last line of stderr).
        print(str(exc) or repr(exc), file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
