"""Bench-only: a media worker's forwarding-delay probe, asked for by the bench host alone.

``TONGKE_BENCH_FORWARD_PROBE=1`` in a worker's environment is **not a product setting** (it
is no field of ``Settings``, and `tongke serve` never sets it): the bench host
(tongke_bench/host.py) sets it in its own environment before the app starts, and the
workers it starts inherit it. A worker that finds it, at start and before any transport
exists, installs a :class:`media.forward_probe.ForwardProbe` as
``media.aiortc_hooks.forward_probe`` and serves the media RPC with :class:`BenchProbeRpc`,
which answers one more request, ``bench_probe``. Without it (the product) the worker has no
probe, its datagram path no check per packet, and ``bench_probe`` is an unknown request.

``bench_probe`` (from the service's process, over the workers' socket): ``watch_relayed``
samples the relayed camera main and mic arriving from the service from now on (the streams
every receiver of the worker consumes); ``reset`` drops the samples after the summary is
taken. It answers ``{"pid", "peers", "watching", "probe"}``, ``probe`` being the probe's
summary (:meth:`ForwardProbe.summary`), read off the hot path.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from media import aiortc_hooks as hooks
from media.forward_probe import ForwardProbe, relayed_main_ssrcs
from media.sfu import MediaService
from server.cluster.media_rpc import MediaRpc, RpcBus

ENV = "TONGKE_BENCH_FORWARD_PROBE"


def install(environ: Mapping[str, str]) -> ForwardProbe | None:
    """The worker's probe, installed when the bench host asked for one; else None."""
    if environ.get(ENV) != "1":
        return None
    probe = ForwardProbe()
    hooks.forward_probe = probe  # before the media service creates any transport
    return probe


class BenchProbeRpc(MediaRpc):
    """The media RPC of a probed worker: ``bench_probe`` besides the product's requests."""

    def __init__(self, bus: RpcBus, service: MediaService, probe: ForwardProbe) -> None:
        super().__init__(bus, service)
        self.probe = probe

    async def op_bench_probe(
        self, origin: str, watch_relayed: bool = False, reset: bool = False
    ) -> dict[str, Any]:
        if watch_relayed:
            self.probe.watch(relayed_main_ssrcs(self.service))
        summary = self.probe.summary()
        if reset:
            self.probe.reset()
        return {
            "pid": os.getpid(),
            "peers": self.service.stats()["peers"],
            "watching": len(self.probe.ssrcs),
            "probe": summary,
        }
