"""`tongke bench`: the SFU (in its own process) against synthetic peers over real ICE/DTLS/SRTP.

Per point, a fresh host process (``server.bench_host``, or the naive MediaRelay baseline in
``benchmarks/naive_relay.py``) serves one lead publisher and N receivers from this process,
all on 127.0.0.1. Server CPU and RSS come from ``/proc/<pid>`` of the host process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from media.aiortc_hooks import now_ms
from media.synthetic.peers import SyntheticPublisher, SyntheticReceiver

LOOPBACK = ["127.0.0.1"]
ROOT = Path(__file__).resolve().parent.parent
NAIVE_SCRIPT = ROOT / "benchmarks" / "naive_relay.py"
WARMUP_S = 1.0
JOIN_TIMEOUT_S = 30.0


class BenchError(RuntimeError):
    """The harness could not run a point (host failed, peers did not connect)."""


@dataclass
class Host:
    process: asyncio.subprocess.Process
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def call(self, **request: Any) -> dict[str, Any]:
        async with self.lock:
            self.writer.write(json.dumps(request).encode() + b"\n")
            await self.writer.drain()
            line = await self.reader.readline()
        if not line:
            raise BenchError("the host process closed the connection")
        reply: dict[str, Any] = json.loads(line)
        if "error" in reply:
            raise BenchError(f"host refused {request['op']}: {reply['error']}: {reply['message']}")
        return reply

    def cpu_seconds(self) -> float:
        stat = Path(f"/proc/{self.process.pid}/stat").read_text()
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    async def stop(self) -> None:
        self.writer.close()
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            await asyncio.wait_for(self.process.wait(), 5)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()


async def start_host(kind: str) -> Host:
    script = ["-m", "server.bench_host"] if kind == "sfu" else [str(NAIVE_SCRIPT)]
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *script,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        cwd=str(ROOT),
    )
    assert process.stdout is not None
    line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
    if not line.startswith("PORT "):
        process.kill()
        raise BenchError(f"the {kind} host did not start")
    reader, writer = await asyncio.open_connection("127.0.0.1", int(line.split()[1]), limit=1 << 22)
    return Host(process, reader, writer)


def _totals(receiver: SyntheticReceiver) -> tuple[int, int, int, int]:
    """(video frames, bytes of all streams, expected packets, lost packets)."""
    frames = sum(s.frames for s in receiver.of_kind("video"))
    size = sum(s.bytes for s in receiver.streams.values())
    expected = sum(s.expected for s in receiver.streams.values())
    lost = sum(s.lost for s in receiver.streams.values())
    return frames, size, expected, lost


def _percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _join(host: Host, index: int, producers: list[str]) -> tuple[SyntheticReceiver, int]:
    receiver = SyntheticReceiver(host_addresses=LOOPBACK)
    started = now_ms()
    peer = f"receiver-{index}"
    reply = await host.call(op="subscribe", lesson="bench", peer=peer, producers=producers)
    while reply["sdp"] is not None:
        answer = await receiver.accept_offer(reply["sdp"])
        reply = await host.call(op="answer", peer=peer, sdp=answer)
    return receiver, started


async def run_point(
    kind: str, receivers: int, seconds: float, cache_dir: Path | None = None
) -> dict[str, Any]:
    """One measurement: a fresh host, one lead, ``receivers`` receivers, ``seconds`` of media."""
    host = await start_host(kind)
    publisher = SyntheticPublisher(host_addresses=LOOPBACK, layers=("main",), cache_dir=cache_dir)
    peers: list[tuple[SyntheticReceiver, int]] = []
    try:
        offer = await publisher.create_offer()
        tracks = [[t.mid, t.source, t.layer] for t in publisher.tracks]
        reply = await host.call(op="publish", lesson="bench", peer="lead", sdp=offer, tracks=tracks)
        await publisher.accept_answer(reply["sdp"])
        for index in range(receivers):
            peers.append(await _join(host, index, reply["producers"]))

        def first_ms(receiver: SyntheticReceiver) -> int:
            video = [s.first_packet_ms for s in receiver.of_kind("video") if s.packets]
            return min(video) if video else -1

        loop = asyncio.get_running_loop()
        deadline = loop.time() + JOIN_TIMEOUT_S
        while any(first_ms(r) < 0 for r, _ in peers):
            if loop.time() > deadline:
                raise BenchError(f"{kind}: not every receiver got video within {JOIN_TIMEOUT_S}s")
            await asyncio.sleep(0.05)
        joins = [first_ms(r) - started for r, started in peers]

        await asyncio.sleep(WARMUP_S)
        before = [_totals(r) for r, _ in peers]
        cpu0, t0 = host.cpu_seconds(), loop.time()
        await asyncio.sleep(seconds)
        after = [_totals(r) for r, _ in peers]
        cpu1, t1 = host.cpu_seconds(), loop.time()
        elapsed = t1 - t0
        fps, kbps, loss = [], [], []
        for (f0, b0, e0, l0), (f1, b1, e1, l1) in zip(before, after, strict=True):
            fps.append((f1 - f0) / elapsed)
            kbps.append((b1 - b0) * 8 / 1000 / elapsed)
            loss.append(100.0 * (l1 - l0) / (e1 - e0) if e1 > e0 else 100.0)
        delivered = sum(fps)
        cpu = (cpu1 - cpu0) / elapsed
        return {
            "server": kind,
            "receivers": receivers,
            "seconds": round(elapsed, 2),
            "server_cpu_s_per_s": round(cpu, 3),
            # Normalizes for a server that cannot keep up and delivers fewer frames.
            "server_cpu_ms_per_delivered_frame": round(1000 * cpu / delivered, 3)
            if delivered
            else None,
            "server_rss_mib": round(host.rss_mib(), 1),
            "fps": {"min": round(min(fps), 2), "mean": round(statistics.fmean(fps), 2)},
            "kbps": {"min": round(min(kbps), 1), "mean": round(statistics.fmean(kbps), 1)},
            "loss_pct": {"max": round(max(loss), 3), "mean": round(statistics.fmean(loss), 3)},
            "join_to_first_frame_ms": {
                "p50": _percentile(joins, 0.5),
                "p99": _percentile(joins, 0.99),
            },
        }
    finally:
        for receiver, _ in peers:
            with contextlib.suppress(Exception):
                await receiver.close()
        with contextlib.suppress(Exception):
            await publisher.close()
        await host.stop()


def _per_receiver(points: list[dict[str, Any]]) -> float | None:
    """CPU-seconds per second added by each receiver: slope between the smallest and largest N."""
    if len(points) < 2:
        return None
    low, high = points[0], points[-1]
    if high["receivers"] == low["receivers"]:
        return None
    added = high["server_cpu_s_per_s"] - low["server_cpu_s_per_s"]
    return added / (high["receivers"] - low["receivers"])


async def run_bench(
    receivers: Sequence[int],
    seconds: float,
    naive: Sequence[int] = (1, 2),
    cache_dir: Path | None = None,
    log: Any = None,
) -> dict[str, Any]:
    points: list[dict[str, Any]] = []
    baseline: list[dict[str, Any]] = []
    for kind, counts, out in (("sfu", receivers, points), ("naive", naive, baseline)):
        if kind == "naive" and counts and not NAIVE_SCRIPT.exists():
            break
        for n in sorted(counts):
            point = await run_point(kind, n, seconds, cache_dir)
            out.append(point)
            if log is not None:
                print(format_point(point), file=log, flush=True)
    sfu_slope, naive_slope = _per_receiver(points), _per_receiver(baseline)
    ratio = None
    if sfu_slope and naive_slope and sfu_slope > 0:
        ratio = round(naive_slope / sfu_slope, 1)
    return {
        "points": points,
        "naive": baseline,
        "cpu_per_receiver": {
            "sfu": None if sfu_slope is None else round(sfu_slope, 4),
            "naive": None if naive_slope is None else round(naive_slope, 4),
            "naive_over_sfu": ratio,
        },
        "forwarding_delay_ms": None,  # not measured yet (needs stamping at the server socket)
    }


def format_point(p: dict[str, Any]) -> str:
    return (
        f"{p['server']:5} N={p['receivers']:<3} cpu={p['server_cpu_s_per_s']:.3f} s/s "
        f"({p['server_cpu_ms_per_delivered_frame']} ms/frame) rss={p['server_rss_mib']:.0f} MiB "
        f"fps min/mean={p['fps']['min']}/{p['fps']['mean']} "
        f"kbit/s min/mean={p['kbps']['min']}/{p['kbps']['mean']} "
        f"loss% max/mean={p['loss_pct']['max']}/{p['loss_pct']['mean']} "
        f"join->first frame p50/p99={p['join_to_first_frame_ms']['p50']}/"
        f"{p['join_to_first_frame_ms']['p99']} ms"
    )


def format_summary(report: dict[str, Any]) -> str:
    c = report["cpu_per_receiver"]
    return (
        f"CPU per added receiver: sfu={c['sfu']} naive={c['naive']} s/s; "
        f"naive/sfu ratio={c['naive_over_sfu']}; forwarding delay: not measured"
    )


def parse_counts(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(
            f"Receiver counts must be comma-separated integers, got {text!r}."
        ) from None
    if any(n < 1 for n in counts):
        raise ValueError(f"Receiver counts must be at least 1, got {text!r}.")
    return counts
