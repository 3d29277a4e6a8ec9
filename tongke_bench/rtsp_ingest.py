"""RTSP ingest bench: the CPU of pulling one 录播 host (1080p30 H.264 ~4 Mbit/s + AAC) and
the delay the service adds between the host and a receiver.

    python -m tongke_bench.rtsp_ingest [--seconds 30] [--kbps 4000] [--width 1920 --height 1080]

The host is media/synthetic/rtsp_source.py (a GStreamer RTSP server, system python3, in
its own process: its x264 is not counted). This process is the service's media side only:
a MediaService with one RtspIngest (the pull thread: FFmpeg demux, H.264 repacketizing,
AAC -> Opus) and, in the second phase, one non-decoding aiortc receiver over real
ICE/DTLS/SRTP on loopback.

- CPU: this process's CPU seconds per wall second while pulling with no subscriber (phase 1:
  the ingest alone), from getrusage; the pull thread's share from /proc/self/task.
- Added delay (phase 2): from the moment FFmpeg hands over an access unit to the moment
  the receiver's socket gets that frame's last packet, per frame (frames matched by RTP
  timestamp; the consumer's timestamp offset found from the first frame). Not included:
  the host's own encode and send, and FFmpeg's wait for a frame's last packet (the RTSP
  demuxer returns a frame once its marker packet is in).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import time
from pathlib import Path
from typing import Any

from media import aiortc_hooks as hooks
from media.rtsp_ingest import RtspIngest, RtspState, RtspStatus
from media.sfu import MediaService
from media.sfu_types import LocalTrack
from media.synthetic.peers import SyntheticReceiver

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "media" / "synthetic" / "rtsp_source.py"
LOOPBACK = ["127.0.0.1"]


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def thread_cpu_s(native_id: int | None) -> float:
    """CPU seconds of one thread of this process (/proc/self/task/<tid>/stat)."""
    if native_id is None:
        return 0.0
    fields = Path(f"/proc/self/task/{native_id}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run(args: argparse.Namespace) -> dict[str, Any]:
    port = args.port
    source = await asyncio.create_subprocess_exec(
        "/usr/bin/python3", str(SOURCE), "--port", str(port), "--width", str(args.width),
        "--height", str(args.height), "--fps", "30", "--kbps", str(args.kbps),
        "--gop", "60", "--profile", "baseline", "--pattern", args.pattern,
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert source.stdout is not None
    assert (await source.stdout.readline()).strip() == b"ready"
    service = MediaService(host_addresses=LOOPBACK, quality_interval_s=0)
    statuses: list[RtspStatus] = []
    arrivals_in: dict[int, float] = {}
    keyframes: list[int] = []

    def handed(ts: int, at: float, key: bool) -> None:
        arrivals_in[ts] = at
        if key:
            keyframes.append(ts)

    async def setup(tracks: list[LocalTrack]) -> list[Any]:
        return [p for _, p in service.publish_local("bench", "rtsp-bench", tracks)]

    ingest = RtspIngest(
        f"rtsp://127.0.0.1:{port}/live/main", setup=setup, on_status=statuses.append
    )
    ingest.on_access_unit = handed
    ingest.start()
    receiver: SyntheticReceiver | None = None
    try:
        while ingest.status.state is not RtspState.LIVE:  # noqa: ASYNC110 (a thread sets it)
            await asyncio.sleep(0.1)
        await asyncio.sleep(3)  # past the start-up (the first keyframe, JIT of the loop)
        # Phase 1: the ingest alone.
        pull_id = ingest._thread.native_id if ingest._thread is not None else None
        units0, wall0, cpu0, pull0 = (
            ingest.access_units,
            time.monotonic(),
            cpu_s(),
            thread_cpu_s(pull_id),
        )
        bytes0 = sum(p.stats().bytes_received for p in _producers(service))
        await asyncio.sleep(args.seconds)
        wall = time.monotonic() - wall0
        cpu = (cpu_s() - cpu0) / wall
        pull = (thread_cpu_s(pull_id) - pull0) / wall
        fps = (ingest.access_units - units0) / wall
        kbps = (
            (sum(p.stats().bytes_received for p in _producers(service)) - bytes0) * 8 / wall / 1000
        )
        # Phase 2: one receiver; per-frame delay from FFmpeg's hand-over to its arrival.
        receiver = SyntheticReceiver(host_addresses=LOOPBACK, decode=False)
        delays = await _delays(service, receiver, arrivals_in, keyframes, args.seconds)
    finally:
        await ingest.close()
        if receiver is not None:
            await receiver.close()
        await service.close()
        source.kill()
        await source.wait()
    return {
        "source": f"{args.width}x{args.height}@30 H.264 {args.kbps} kbit/s + AAC 64 kbit/s",
        "seconds": round(wall, 1),
        "fps_pulled": round(fps, 1),
        "media_kbps": round(kbps),
        "cpu_core_fraction_process": round(cpu, 4),
        "cpu_core_fraction_pull_thread": round(pull, 4),
        "delay_ms_p50": round(statistics.median(delays), 1) if delays else None,
        "delay_ms_p95": round(statistics.quantiles(delays, n=20)[18], 1)
        if len(delays) > 20
        else None,
        "frames_matched": len(delays),
        "load_average": os.getloadavg(),
    }


def _producers(service: MediaService) -> list[Any]:
    return [service.producer(p.id) for p in service.producers("bench")]


async def _delays(
    service: MediaService,
    receiver: SyntheticReceiver,
    arrivals_in: dict[int, float],
    keyframes: list[int],
    seconds: float,
) -> list[float]:
    marks: list[tuple[int, float]] = []  # (RTP ts as received, monotonic arrival)
    video = {p.id for p in service.producers("bench") if p.kind == "video"}

    def on_rtp(data: bytes) -> None:
        if data[1] & 0x80 and (data[1] & 0x7F) != 111:  # a video frame's last packet
            marks.append((int.from_bytes(data[4:8], "big"), time.monotonic()))

    result = await service.subscribe("bench", "r", list(video))
    while result is not None:
        answer = await receiver.accept_offer(result.sdp)
        result = await service.answer("r", answer)
    dtls = hooks.dtls_transport_of(receiver.pc)
    assert dtls is not None
    link = receiver._link
    assert link is not None
    link.attach(lambda data, arrival_ms: on_rtp(data), lambda data: None)
    await asyncio.sleep(seconds)
    if not marks:
        return []
    # The consumer shifts timestamps by a constant: its first frame is the last keyframe
    # handed over before that frame arrived.
    first_ts, first_at = marks[0]
    before = [ts for ts in keyframes if arrivals_in[ts] <= first_at]
    offset = (first_ts - before[-1]) & 0xFFFFFFFF
    if os.environ.get("RTSP_BENCH_DEBUG"):
        print("keyframes", [(k, round(arrivals_in[k] - first_at, 3)) for k in keyframes[-6:]])
        print("marks", [(t, round(a - first_at, 3)) for t, a in marks[:3]], "offset", offset)
    delays = []
    for ts, at in marks:
        source_ts = (ts - offset) & 0xFFFFFFFF
        handed = arrivals_in.get(source_ts)
        if handed is not None:
            delays.append((at - handed) * 1000)
    return delays


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--kbps", type=int, default=4000)
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--port", type=int, default=18655)
    parser.add_argument("--pattern", default="snow", help="the test picture (snow: fills 4 Mbit/s)")
    result = asyncio.run(run(parser.parse_args()))
    print(json.dumps(result, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
