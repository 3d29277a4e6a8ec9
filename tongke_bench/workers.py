"""One big lesson on media workers: ``python -m tongke_bench.workers``.

A bench host (tongke_bench/host.py: the real app under uvicorn, a seeded lesson, loopback
media) with ``TONGKE_WORKERS`` set, one synthetic lead publishing, and hundreds of receiving
classrooms that count what arrives from the clear SRTP header only (marker bits = frames,
sequence numbers = loss; media/aiortc_hooks.count_srtp_headers), so one 2-core machine can
drive them. Per point it reports: classrooms joined and receiving video, each classroom's
mean video frame rate and loss over the measuring window, server CPU per receiver (the
service's process and its workers summed, from /proc) with each process's share, and with
``--kill``, the time from a kill -9 of worker 1 until every classroom it served has video
again (each joins again after close 4301 and counts packets on its new media session).

Forwarding delay per process (``forwarding_delay_ms``, then ``forwarding_delay_unpaced_ms``
over a second window as long with the lead's pacer off; the figures of `tongke bench`,
tongke_bench/single.py ``_delay_figures``), keyed like ``cpu_by_process``: the service's
probe samples the lead's camera main and mic (with workers, its fan-out is the relay legs,
one per worker), each worker's probe the relayed camera main and mic it receives from the
service (its fan-out: its classrooms; the host's ``workers_probe``). ``peers_by_process``:
the media peers each process serves at the end (the service's count includes the lead).
docs/benchmarks.md "Media workers". A bench harness, not a product API.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import signal
import statistics
import time
from pathlib import Path
from typing import Any

from media.aiortc_hooks import now_ms
from media.synthetic.peers import StreamCounters
from media.synthetic.terminal import SyntheticTerminal
from tongke_bench.single import LOOPBACK, Host, _delay_figures, _watched_ssrcs, start_host

JOIN_CONCURRENCY = 16
TICK = os.sysconf("SC_CLK_TCK")


def _cpu(pid: int) -> float:
    with contextlib.suppress(OSError, IndexError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK
    return 0.0


def _children(pid: int) -> list[int]:
    with contextlib.suppress(OSError):
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return []


def _worker_pids(host_pid: int) -> list[int]:
    found = []
    for pid in _children(host_pid):
        with contextlib.suppress(OSError):
            if b"server.workers.worker" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
    return sorted(found)


def label_of(index: int, pid: int) -> str:
    return f"worker {index} (pid {pid})"


def _cpu_by_process(host_pid: int) -> dict[str, float]:
    figures = {"service": _cpu(host_pid)}
    for i, pid in enumerate(_worker_pids(host_pid), 1):
        figures[label_of(i, pid)] = _cpu(pid)
    return figures


def _video(terminal: SyntheticTerminal) -> StreamCounters | None:
    receiver = terminal.receiver
    if receiver is None:
        return None
    return next((s for s in receiver.streams.values() if s.kind == "video"), None)


def _mark(terminal: SyntheticTerminal) -> tuple[int, int, int, int]:
    """(frames, highest extended seq, packets received, receiver identity) of its video."""
    video = _video(terminal)
    if video is None or video.highest_seq is None:
        return (0, 0, 0, id(terminal.receiver))
    return (video.frames, video.cycles * 65536 + video.highest_seq, len(video.seqs),
            id(terminal.receiver))  # fmt: skip


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


async def _join_all(base: str, codes: list[str], reconnect: bool) -> list[SyntheticTerminal]:
    gate = asyncio.Semaphore(JOIN_CONCURRENCY)
    terminals = [
        SyntheticTerminal(
            base,
            code,
            host_addresses=LOOPBACK,
            publish=False,
            header_only=True,
            auto_reconnect=reconnect,
            connect_timeout_s=60,
        )
        for code in codes
    ]

    async def join(terminal: SyntheticTerminal) -> None:
        async with gate:
            with contextlib.suppress(Exception):
                await terminal.start()

    await asyncio.gather(*(join(t) for t in terminals))
    return terminals


async def _delays(host: Host, labels: dict[int, str]) -> dict[str, Any]:
    """Each process's forwarding delay figures since the last read (None: no samples)."""
    figures = {"service": _delay_figures(await host.call(op="probe_read", reset=True))}
    answers = await host.call(op="workers_probe", reset=True)
    for answer in answers["workers"].values():
        label = labels.get(answer["pid"], f"worker (pid {answer['pid']})")
        figures[label] = _delay_figures(answer["probe"])
    return figures


async def _peers(host: Host, labels: dict[int, str]) -> dict[str, int]:
    peers = {"service": int((await host.call(op="media_stats"))["peers"])}
    answers = await host.call(op="workers_probe")
    for answer in answers["workers"].values():
        peers[labels.get(answer["pid"], f"worker (pid {answer['pid']})")] = int(answer["peers"])
    return peers


async def _unpaced(
    host: Host, lead: SyntheticTerminal, labels: dict[int, str], seconds: float
) -> dict[str, Any] | None:
    """Every process's delay with the lead's pacer off (a frame's packets back to back: each
    waits behind the whole fan-out of those before it), as single.py ``unpaced_delays``."""
    pacer = lead.publisher.pacer if lead.publisher is not None else None
    if pacer is None:
        return None
    pacer.enabled = False
    try:
        await _delays(host, labels)  # drops the paced samples
        await asyncio.sleep(seconds)
        return await _delays(host, labels)
    finally:
        pacer.enabled = True


async def point(receivers: int, workers: int, seconds: float, kill: bool) -> dict[str, Any]:
    os.environ["TONGKE_WORKERS"] = str(workers)
    os.environ["TONGKE_WORKER_LESSON_PEERS"] = str(math.ceil(receivers / max(workers, 1)))
    host = await start_host("sfu", receivers)
    base = f"http://127.0.0.1:{host.info['http_port']}"
    terminals: list[SyntheticTerminal] = []
    lead = SyntheticTerminal(base, host.info["lead"], host_addresses=LOOPBACK)
    report: dict[str, Any] = {"receivers": receivers, "workers": workers, "load_start": _load()}
    try:
        await lead.start(start_lesson=True)
        assert lead.publisher is not None
        await host.call(op="probe_watch", ssrcs=_watched_ssrcs(lead.publisher))
        started = time.monotonic()
        terminals = await _join_all(base, host.info["receivers"], reconnect=kill)
        report["joined"] = sum(1 for t in terminals if t.joins)
        report["join_s"] = round(time.monotonic() - started, 1)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if all(_video(t) is not None for t in terminals if t.joins):
                break
            await asyncio.sleep(0.5)
        report["receiving_video"] = sum(1 for t in terminals if _video(t) is not None)
        await asyncio.sleep(3.0)  # settle: joins' keyframes, layer choices
        # The relays to the workers exist now: each worker samples what they bring.
        await host.call(op="workers_probe", watch_relayed=True)
        labels = {pid: label_of(i, pid) for i, pid in enumerate(_worker_pids(host.process.pid), 1)}
        await _delays(host, labels)  # samples from the joins are dropped
        before = [_mark(t) for t in terminals]
        cpu_before, t0 = _cpu_by_process(host.process.pid), time.monotonic()
        driver_before = _cpu(os.getpid())
        await asyncio.sleep(seconds)
        after = [_mark(t) for t in terminals]
        cpu_after, elapsed = _cpu_by_process(host.process.pid), time.monotonic() - t0
        delays = await _delays(host, labels)
        # The load generator's own core: near 1.0 means the receivers, not the server, lag.
        report["driver_cpu"] = round((_cpu(os.getpid()) - driver_before) / elapsed, 3)
        fps, losses = [], []
        for b, a in zip(before, after, strict=True):
            if a[3] != b[3] or a[1] <= b[1]:
                fps.append(0.0)
                continue
            fps.append((a[0] - b[0]) / elapsed)
            expected = a[1] - b[1]
            losses.append(max(0.0, 1 - (a[2] - b[2]) / expected))
        cpu = {k: round((cpu_after.get(k, 0) - v) / elapsed, 3) for k, v in cpu_before.items()}
        total = sum(cpu.values())
        report.update(
            fps_mean=round(statistics.fmean(fps), 2) if fps else None,
            fps_min=round(min(fps), 2) if fps else None,
            below_29=sum(1 for f in fps if f < 29.0),
            loss_mean_pct=round(100 * statistics.fmean(losses), 3) if losses else None,
            loss_max_pct=round(100 * max(losses), 3) if losses else None,
            cpu_by_process=cpu,
            cpu_total=round(total, 3),
            cpu_per_receiver=round(total / max(receivers, 1), 5),
            seconds=round(elapsed, 1),
            load_end=_load(),
            peers_by_process=await _peers(host, labels),
            forwarding_delay_ms=delays,
        )
        report["forwarding_delay_unpaced_ms"] = await _unpaced(host, lead, labels, seconds)
        report["load_end_unpaced"] = _load()
        if kill and workers > 1:
            report["kill"] = await _kill_one(host.process.pid, terminals)
    finally:
        await asyncio.gather(*(_close(t) for t in (*terminals, lead)))
        await host.stop()
    return report


async def _kill_one(host_pid: int, terminals: list[SyntheticTerminal]) -> dict[str, Any]:
    pid = _worker_pids(host_pid)[0]
    drops_before = [len(t.drops) for t in terminals]
    os.kill(pid, signal.SIGKILL)
    killed_ms = now_ms()
    start = time.monotonic()
    back: dict[int, float] = {}
    while time.monotonic() - start < 60:
        affected = [i for i, t in enumerate(terminals) if len(t.drops) > drops_before[i]]
        for i in affected:
            video = _video(terminals[i])
            if i not in back and video is not None and video.first_packet_ms > killed_ms:
                back[i] = (video.first_packet_ms - killed_ms) / 1000
        # Every classroom of the dead worker has its 4301 within a second: after 3 s, the
        # affected set is complete.
        if affected and len(back) == len(affected) and time.monotonic() - start > 3:
            break
        await asyncio.sleep(0.1)
    affected = [i for i, t in enumerate(terminals) if len(t.drops) > drops_before[i]]
    times = sorted(back.values())
    return {
        "worker_pid": pid,
        "affected": len(affected),
        "video_again": len(times),
        "all_back_s": round(times[-1], 2) if times and len(times) == len(affected) else None,
        "median_back_s": round(statistics.median(times), 2) if times else None,
        "load": _load(),
    }


async def _close(terminal: SyntheticTerminal) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(terminal.close(), 20)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tongke_bench.workers")
    parser.add_argument("--receivers", type=int, default=300)
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--seconds", type=float, default=20.0, help="measuring window")
    parser.add_argument("--kill", action="store_true", help="then kill -9 worker 1")
    args = parser.parse_args()
    import logging

    logging.basicConfig(level=logging.ERROR)
    for workers in (int(w) for w in args.workers.split(",")):
        report = asyncio.run(point(args.receivers, workers, args.seconds, args.kill))
        print(json.dumps(report, ensure_ascii=False), flush=True)


if __name__ == "__main__":
    main()
