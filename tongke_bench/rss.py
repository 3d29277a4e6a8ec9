"""Baseline memory of `tongke serve`: resident set size with one lesson and one receiver.

    .venv/bin/python -m tongke_bench.rss

Starts ``tongke serve`` (``python -m server.cli serve``) in its own process on a fresh SQLite
data folder seeded with one lesson (a lead classroom, one receiving classroom), reads its
RSS from /proc once it is ready (idle), then while a synthetic lead publishes the clip to
one synthetic receiver (real ICE/DTLS/SRTP on loopback), and prints one JSON line. The figure
is summed over the service process and any children it has.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

import httpx

from media.synthetic.terminal import SyntheticTerminal
from server.settings import Settings
from tongke_bench.host import seed_bench_lesson

LOOPBACK = ["127.0.0.1"]
SETTLE_S = 5.0  # media flowing this long before the figure is read


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    with contextlib.suppress(OSError):
        return [int(p) for p in path.read_text().split()]
    return []


def rss_mib(pid: int) -> float:
    """Resident set size of a process and its children, in MiB (from /proc/<pid>/status)."""
    total = 0
    for each in (pid, *_children(pid)):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{each}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return round(total / 1024, 1)


async def measure() -> dict[str, float | int]:
    with tempfile.TemporaryDirectory(prefix="tongke-rss-") as folder:
        settings = Settings(
            data_dir=Path(folder), seed_demo=False, media_addresses=LOOPBACK, log_level="warning"
        )
        codes = await seed_bench_lesson(settings, 1)
        port = _free_port()
        env = {
            **os.environ,
            "TONGKE_DATA_DIR": folder,
            "TONGKE_SECRET_KEY": settings.secret_key,
            "TONGKE_MEDIA_ADDRESSES": "127.0.0.1",
            "TONGKE_LOG_LEVEL": "warning",
        }
        args = ["serve", "--no-demo", "--host", "127.0.0.1", "--port", str(port)]
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "server.cli", *args, env=env, stdout=asyncio.subprocess.DEVNULL
        )
        base = f"http://127.0.0.1:{port}"
        lead = SyntheticTerminal(base, codes.lead, host_addresses=LOOPBACK)
        receiver = SyntheticTerminal(base, codes.receivers[0], host_addresses=LOOPBACK)
        try:
            async with httpx.AsyncClient(base_url=base) as http:
                deadline = time.monotonic() + 60
                while True:
                    with contextlib.suppress(httpx.TransportError):
                        if (await http.get("/readyz")).status_code == 200:
                            break
                    if process.returncode is not None or time.monotonic() > deadline:
                        raise RuntimeError("tongke serve did not start")
                    await asyncio.sleep(0.1)
            await asyncio.sleep(1.0)
            idle = rss_mib(process.pid)
            await lead.start(start_lesson=True)
            await receiver.start()
            deadline = time.monotonic() + 30
            while receiver.frames("video") < 30:
                if time.monotonic() > deadline:
                    raise RuntimeError("the receiver got no video")
                await asyncio.sleep(0.1)
            await asyncio.sleep(SETTLE_S)
            return {
                "rss_idle_mib": idle,
                "rss_one_lesson_one_receiver_mib": rss_mib(process.pid),
                "receiver_video_frames": receiver.frames("video"),
                "load_average_1m": round(os.getloadavg()[0], 2),
            }
        finally:
            await asyncio.gather(lead.close(), receiver.close(), return_exceptions=True)
            if process.returncode is None:
                process.terminate()
                await process.wait()


def main() -> None:
    argparse.ArgumentParser(prog="python -m tongke_bench.rss", description=__doc__).parse_args()
    print(json.dumps(asyncio.run(measure())))


if __name__ == "__main__":
    main()
