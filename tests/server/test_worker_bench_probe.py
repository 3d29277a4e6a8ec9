"""The workers bench's forwarding-delay probe (server/workers/bench_probe.py), loopback only.

- `python -m tongke_bench.workers` with 2 workers reports each worker's forwarding delay,
  sampled in the worker where its classrooms' fan-out happens, and the service's;
- a worker started without the bench-only variable (as `tongke serve` starts it) installs
  no probe and does not know the ``bench_probe`` request.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from media import aiortc_hooks as hooks
from media.sfu import MediaError, MediaService
from server.cluster.media_rpc import MediaRpc
from server.workers import bench_probe
from server.workers.ipc import IpcHub
from server.workers.pool import WorkerPool, socket_path
from tongke_bench.workers import point

pytestmark = pytest.mark.timeout(120)


async def test_the_workers_bench_reports_each_workers_forwarding_delay(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # point() sets these for its host; monkeypatch restores them after the test.
    monkeypatch.setenv("TONGKE_WORKERS", "")
    monkeypatch.setenv("TONGKE_WORKER_LESSON_PEERS", "")
    report = await point(receivers=2, workers=2, seconds=1.5, kill=False)
    assert report["receiving_video"] == 2, report
    workers = [k for k in report["cpu_by_process"] if k.startswith("worker ")]
    assert len(workers) == 2
    # One classroom per worker; the service serves the lead only.
    assert report["peers_by_process"] == {"service": 1, **dict.fromkeys(workers, 1)}
    for window in ("forwarding_delay_ms", "forwarding_delay_unpaced_ms"):
        delays = report[window]
        assert set(delays) == {"service", *workers}, window
        for process, figures in delays.items():
            assert figures is not None, f"{window}: no samples in {process}"
            assert figures["samples"] > 0
            assert 0 < figures["handling_p50"] <= figures["max"]
            assert 0 < figures["p50"] <= figures["p99"] <= figures["max"]


@pytest.fixture
async def hub() -> AsyncIterator[IpcHub]:
    folder = Path(tempfile.mkdtemp(prefix="tk-probe-"))  # short: a unix socket's path
    hub = IpcHub("main", socket_path(folder))
    await hub.start()
    yield hub
    await hub.close()
    shutil.rmtree(folder, ignore_errors=True)


async def test_without_the_bench_variable_a_worker_has_no_probe(
    monkeypatch: pytest.MonkeyPatch, hub: IpcHub
) -> None:
    monkeypatch.delenv(bench_probe.ENV, raising=False)
    assert bench_probe.install({}) is None and bench_probe.install({bench_probe.ENV: ""}) is None
    assert hooks.forward_probe is None

    # A real worker, started as `tongke serve` starts it: the probe's request is unknown.
    service = MediaService(host_addresses=["127.0.0.1"])
    rpc = MediaRpc(hub, service)
    await rpc.start()

    async def gone(nodes: set[str]) -> None:
        return None

    pool = WorkerPool(1, hub, {"socket": str(hub.path), "log_level": "warning"}, gone)
    try:
        await pool.start()
        (node,) = pool.live()
        assert (await rpc.call(node, "stats"))["peers"] == 0  # the worker serves the RPC
        with pytest.raises(MediaError) as refused:
            await rpc.call(node, "bench_probe", reset=True)
        assert refused.value.code == "bad_request"
    finally:
        await pool.close()
        await rpc.close()
        await service.close()


async def test_with_the_bench_variable_a_worker_answers_its_probe(
    monkeypatch: pytest.MonkeyPatch, hub: IpcHub
) -> None:
    monkeypatch.setenv(bench_probe.ENV, "1")  # inherited by the worker, as from the bench host
    service = MediaService(host_addresses=["127.0.0.1"])
    rpc = MediaRpc(hub, service)
    await rpc.start()

    async def gone(nodes: set[str]) -> None:
        return None

    pool = WorkerPool(1, hub, {"socket": str(hub.path), "log_level": "warning"}, gone)
    try:
        await pool.start()
        (node,) = pool.live()
        answer = await rpc.call(node, "bench_probe", watch_relayed=True)
        assert answer["pid"] == pool.pid_of(node)
        assert answer["peers"] == 0 and answer["watching"] == 0  # no relay yet
        assert answer["probe"]["samples"] == 0 and answer["probe"]["total_ms"] is None
    finally:
        await pool.close()
        await rpc.close()
        await service.close()
