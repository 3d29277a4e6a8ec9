"""`tongke serve` in a child process on a free loopback port, and a raw WebSocket client.

Some failures only show through the real HTTP server (uvicorn's frame limit, its handling of
invalid UTF-8, half-sent requests), so these tests talk to the real thing over sockets. The
raw client writes frames byte by byte: no WebSocket library would send an invalid text frame.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
SECRET = "served-tests-secret-0123456789-0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Served:
    base: str
    port: int
    log: Path
    process: subprocess.Popen[bytes]

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@contextlib.contextmanager
def served(
    data_dir: Path, env: dict[str, str] | None = None, args: tuple[str, ...] = ()
) -> Iterator[Served]:
    """`tongke serve --no-demo` with its log in data_dir/service.log; stopped after."""
    port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    full_env = {
        **os.environ,
        "TONGKE_DATA_DIR": str(data_dir),
        "TONGKE_SECRET_KEY": SECRET,
        "TONGKE_MEDIA_ADDRESSES": "127.0.0.1",
        "TONGKE_LOG_LEVEL": "info",
        **(env or {}),
    }
    log = data_dir / "service.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "serve", "--no-demo", "--host", "127.0.0.1",
             "--port", str(port), *args],
            env=full_env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, log.read_text(errors="replace")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            assert time.monotonic() < deadline, "the service did not start"
            time.sleep(0.2)
        yield Served(base, port, log, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class RawWebSocket:
    """A minimal client over a plain socket: handshake, masked frames, unmasked replies."""

    def __init__(self, port: int, path: str = "/ws") -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            assert chunk, "closed during the handshake"
            head += chunk
        status, _, rest = head.partition(b"\r\n\r\n")
        assert status.startswith(b"HTTP/1.1 101"), status
        self.buffer = rest

    def send_frame(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        size = len(payload)
        if size < 126:
            header = struct.pack("!BB", 0x80 | opcode, 0x80 | size)
        elif size < 65536:
            header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, size)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, size)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def send_json(self, message: dict[str, Any]) -> None:
        self.send_frame(0x1, json.dumps(message).encode())

    def _read(self, n: int) -> bytes:
        while len(self.buffer) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buffer += chunk
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def receive(self) -> tuple[int, bytes]:
        """The next frame: (opcode, payload); 8 is a close frame (code in the payload)."""
        first, second = self._read(2)
        size = second & 0x7F
        if size == 126:
            (size,) = struct.unpack("!H", self._read(2))
        elif size == 127:
            (size,) = struct.unpack("!Q", self._read(8))
        return first & 0x0F, self._read(size)

    def receive_message(self, skip: tuple[str, ...] = ("heartbeat",)) -> dict[str, Any]:
        while True:
            opcode, payload = self.receive()
            if opcode == 0x8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                raise ConnectionError(f"closed with {code}")
            if opcode == 0x1:
                message = json.loads(payload)
                if message.get("type") not in skip:
                    return dict(message)

    def close_code(self) -> int:
        """Reads until the server's close frame; its code."""
        while True:
            opcode, payload = self.receive()
            if opcode == 0x8:
                return int(struct.unpack("!H", payload[:2])[0]) if len(payload) >= 2 else 1005

    def close(self) -> None:
        self.sock.close()
