"""Half-sent requests against `tongke serve` with a small open-file limit (issue 17).

    .venv/bin/python -m tongke_bench.slowloris [--half-open 1100] [--joins 5] [--nofile 1024]
                                                [--unguarded]

Loopback only. Seeds the demo district into a fresh data folder, starts `tongke serve` under
`ulimit -n NOFILE` (or, with --unguarded, the same app under plain uvicorn, as before
server/http_guard.py), opens HALF_OPEN connections that each send half a request and then
nothing, and then makes JOINS normal joins (POST /api/join/{code}, then the WebSocket join)
while they are held. Prints how many joins were answered and how long each took.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "server"))
from served_support import RawWebSocket, free_port  # noqa: E402

JOIN_TIMEOUT_S = 30.0
UNGUARDED = (
    "import uvicorn; from server.app import create_app; from server.settings import load_settings;"
    "s = load_settings(); uvicorn.run(create_app(s), host='127.0.0.1', port=s.port, "
    "log_level='warning', ws_max_size=s.ws_max_frame_bytes)"
)


def _codes(data_dir: Path, env: dict[str, str]) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-m", "server.cli", "seed-demo"],
        env=env, cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return re.findall(r"/join/([A-Za-z0-9_-]{8,})", out)


def _join(base: str, port: int, code: str) -> float:
    """Seconds until the WebSocket join is answered `joined`; raises when it is not."""
    started = time.monotonic()
    reply = httpx.post(f"{base}/api/join/{code}", timeout=JOIN_TIMEOUT_S)
    reply.raise_for_status()
    token = reply.json()["token"]
    ws = RawWebSocket(port)
    try:
        ws.sock.settimeout(JOIN_TIMEOUT_S)
        ws.send_json({"type": "join", "id": "j", "version": 1, "token": token})
        message = ws.receive_message()
        while message.get("id") != "j":
            message = ws.receive_message()
        if message["type"] != "joined":
            raise RuntimeError(json.dumps(message))
    finally:
        ws.close()
    return time.monotonic() - started


def run(half_open: int, joins: int, nofile: int, unguarded: bool) -> int:
    data_dir = Path(tempfile.mkdtemp(prefix="tongke-slowloris-"))
    port = free_port()
    env = {
        "PATH": "/usr/bin:/bin",
        "TONGKE_DATA_DIR": str(data_dir),
        "TONGKE_PORT": str(port),
        "TONGKE_MEDIA_ADDRESSES": "127.0.0.1",
        "TONGKE_LOG_LEVEL": "warning",
        "TONGKE_SEED_DEMO": "false",
    }
    codes = _codes(data_dir, env)
    if not codes:
        print("error: the demo district printed no join links")
        return 1
    serve = (
        f'{sys.executable} -c "{UNGUARDED}"'
        if unguarded
        else f"{sys.executable} -m server.cli serve --host 127.0.0.1 --port {port}"
    )
    log = (data_dir / "service.log").open("wb")
    process = subprocess.Popen(
        ["bash", "-c", f"ulimit -n {nofile} && exec {serve}"],
        env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    held: list[socket.socket] = []
    try:
        for _ in range(100):
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            time.sleep(0.2)
        else:
            print("error: the service did not start; see", log.name)
            return 1
        opened = refused = 0
        for _ in range(half_open):
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=5)
                sock.sendall(b"POST /api/auth/login HTTP/1.1\r\nHost: school.test\r\nContent-Le")
                held.append(sock)
                opened += 1
            except OSError:
                refused += 1
        print(f"half-sent requests: {opened} opened, {refused} refused by the kernel")
        answered = 0
        for n in range(joins):  # the demo has 4 links: a fifth join replaces the first
            code = codes[n % len(codes)]
            try:
                took = _join(base, port, code)
                answered += 1
                print(f"  join {code[:6]}…: joined in {took:.2f} s")
            except Exception as exc:  # the figure is what failed, whatever it was
                print(f"  join {code[:6]}…: NOT answered ({type(exc).__name__}: {exc})"[:200])
        print(f"normal joins answered: {answered} of {joins}")
        if not unguarded:
            metrics = httpx.get(f"{base}/metrics", timeout=JOIN_TIMEOUT_S).text
            for line in metrics.splitlines():
                if line.startswith(("tongke_http_connections_", "tongke_http_read_timeouts")):
                    if not line.startswith("#") and "_created" not in line:
                        print("  " + line)
        return 0 if answered == joins else 1
    finally:
        for sock in held:
            sock.close()
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--half-open", type=int, default=1100)
    parser.add_argument("--joins", type=int, default=5)
    parser.add_argument("--nofile", type=int, default=1024)
    parser.add_argument("--unguarded", action="store_true", help="plain uvicorn, as before")
    args = parser.parse_args()
    return run(args.half_open, args.joins, args.nofile, args.unguarded)


if __name__ == "__main__":
    sys.exit(main())
