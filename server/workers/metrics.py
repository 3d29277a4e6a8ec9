"""/metrics per media worker: the service's /metrics carries every worker, label ``worker``.

A worker's media figures come from its ``stats`` over the media RPC, read every
``POLL_S`` by one task (a scrape never waits on a worker); CPU time and resident memory
come from /proc for its pid, read at scrape time. The unlabelled ``tongke_media_*`` series
stay the service process's own (the lead's media and the recorder).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from media.sfu import MediaError
from server.cluster.media_rpc import MediaRpc
from server.media_metrics import GAUGES
from server.workers.pool import WorkerPool

log = logging.getLogger("tongke.workers")

POLL_S = 2.0
_TICK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def process_usage(pid: int) -> tuple[float, int] | None:
    """(CPU seconds, resident bytes) of a live process, from /proc; None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        with open(f"/proc/{pid}/statm", "rb") as f:
            resident = int(f.read().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    # Fields after "(comm)": state is index 0, utime 11, stime 12 (man proc, 14 and 15).
    return (int(fields[11]) + int(fields[12])) / _TICK, resident * _PAGE


class WorkerStats:
    """The last ``stats`` each live worker answered, refreshed in the background."""

    def __init__(self, pool: WorkerPool, rpc: MediaRpc) -> None:
        self.pool = pool
        self.rpc = rpc
        self.last: dict[str, dict[str, int]] = {}

    async def run(self) -> None:
        while True:
            live = self.pool.live()
            for node in live:
                try:
                    self.last[node] = await self.rpc.call(node, "stats", within_s=POLL_S)
                except MediaError as exc:
                    log.debug("stats of media worker %s: %s", node, exc.message)
            for node in set(self.last) - set(live):
                del self.last[node]
            await asyncio.sleep(POLL_S)


class WorkersCollector(Collector):
    def __init__(self, stats: WorkerStats) -> None:
        self.stats = stats

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        pool = self.stats.pool
        label = ["worker"]
        up = GaugeMetricFamily("tongke_worker_up", "1 while the media worker runs", labels=label)
        restarts = CounterMetricFamily(
            "tongke_worker_restarts", "Times the media worker was started again", labels=label
        )
        cpu = CounterMetricFamily(
            "tongke_worker_cpu_seconds", "CPU time of the worker's current process", labels=label
        )
        rss = GaugeMetricFamily(
            "tongke_worker_resident_memory_bytes", "Resident memory of the worker", labels=label
        )
        media = {
            key: GaugeMetricFamily(f"tongke_worker_media_{key}", f"{text} (worker)", labels=label)
            for key, text in GAUGES
        }
        live = set(pool.live())
        for index, worker in sorted(pool.workers.items()):
            name = [str(index)]
            up.add_metric(name, 1.0 if worker.node_id in live else 0.0)
            restarts.add_metric(name, pool.restarts.get(index, 0))
            usage = process_usage(worker.process.pid) if worker.node_id in live else None
            if usage is not None:
                cpu.add_metric(name, usage[0])
                rss.add_metric(name, usage[1])
            figures: dict[str, Any] = self.stats.last.get(worker.node_id, {})
            for key, family in media.items():
                family.add_metric(name, float(figures.get(key, 0)))
        yield from (up, restarts, cpu, rss, *media.values())
