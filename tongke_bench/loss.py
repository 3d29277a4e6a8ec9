"""`tongke bench --loss 0,2,5,10`: what a receiving classroom gets over a lossy link, and how
fast it recovers from an outage (docs/benchmarks.md "Poor networks").

Each point runs the whole service (uvicorn, in this process, media on loopback, fault
injection on) with the demo lesson: a synthetic lead publishes the clip (main + low camera,
mic), one receiving classroom joins over the real protocol and decodes (aiortc: NACK, PLI,
RR/REMB, decoding in a thread). Loss is injected on everything the server sends that
classroom through the admin faults API (``PUT /api/lessons/{id}/faults/{peer}``). Measured at
the classroom: decoded video frames per second, decode errors, video packets still missing
after NACK repair, the largest gap between audio packets and how many gaps exceed 200 ms,
and the layer it ends on. The outage point drops every media packet in both directions for
3 s (the WebSocket stays up) and times the first decoded video frame and the first audio
packet after the link returns.

``live_service`` and ``LiveService`` are also the harness of tests/media/test_poor_network.py
and tests/media/test_lesson_media.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from sqlalchemy import select

from media import aiortc_hooks as hooks
from media.synthetic.terminal import SyntheticTerminal
from server.settings import Settings

LOOPBACK = ["127.0.0.1"]
WARMUP_S = 4.0
OUTAGE_S = 3.0
GAP_LIMIT_MS = 200


class LossBenchError(RuntimeError):
    """A point could not be measured (the service or a peer did not come up)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveService:
    """The running service: its URL, the demo lesson, join codes by role, an admin token."""

    base_url: str
    lesson_id: str
    codes: dict[str, list[str]]
    admin_token: str
    server: uvicorn.Server
    terminals: list[SyntheticTerminal] = field(default_factory=list)

    @property
    def state(self) -> Any:
        """The app's AppState (same process and event loop)."""
        return self.server.lifespan.state["app"]

    def terminal(self, role: str, index: int = 0, **kwargs: Any) -> SyntheticTerminal:
        kwargs.setdefault("host_addresses", LOOPBACK)
        terminal = SyntheticTerminal(self.base_url, self.codes[role][index], **kwargs)
        self.terminals.append(terminal)
        return terminal

    async def api(self, method: str, path: str, body: Any = None) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.base_url, timeout=30) as http:
            return await http.request(
                method, path, json=body, headers={"Authorization": f"Bearer {self.admin_token}"}
            )

    async def set_faults(self, peer_id: str, body: dict[str, Any]) -> dict[str, Any]:
        response = await self.api("PUT", f"/api/lessons/{self.lesson_id}/faults/{peer_id}", body)
        if response.status_code != 200:
            raise LossBenchError(f"faults refused: {response.status_code} {response.text}")
        return response.json()  # type: ignore[no-any-return]

    async def clear_faults(self, peer_id: str) -> None:
        response = await self.api("DELETE", f"/api/lessons/{self.lesson_id}/faults/{peer_id}")
        if response.status_code != 204:
            raise LossBenchError(f"faults not cleared: {response.status_code} {response.text}")


async def _seed(settings: Settings) -> tuple[str, dict[str, list[str]], tuple[str, str]]:
    from server.db import open_database
    from server.db.models import JoinLink
    from server.demo import seed_demo

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    async with open_database(settings) as db:
        district = await seed_demo(db, settings)
        async with db.sessions.begin() as session:
            links = (await session.scalars(select(JoinLink))).all()
    codes: dict[str, list[str]] = {}
    for link in links:
        if link.lesson_id == district.lesson_id and link.revoked_at is None:
            codes.setdefault(link.role, []).append(link.code)
    (admin,) = [a for a in district.accounts if a.role == "admin"]
    return district.lesson_id, codes, (admin.username, admin.password)


@contextlib.asynccontextmanager
async def live_service(data_dir: Path, **overrides: Any) -> AsyncIterator[LiveService]:
    """The service on a free loopback port, demo lesson seeded, faults on."""
    from server.app import create_app

    port = free_port()
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "host": "127.0.0.1",
        "port": port,
        "seed_demo": False,
        "secret_key": "bench-secret-0123456789abcdef0123456789abcdef",
        "media_addresses": LOOPBACK,
        "faults": True,
    }
    values.update(overrides)
    settings = Settings(**values)
    lesson_id, codes, (username, password) = await _seed(settings)
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            raise LossBenchError("the service did not start")
        await asyncio.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        reply = await http.post(
            "/api/auth/login", json={"username": username, "password": password}
        )
        reply.raise_for_status()
    live = LiveService(base, lesson_id, codes, str(reply.json()["token"]), server)
    try:
        yield live
    finally:
        for terminal in live.terminals:
            with contextlib.suppress(Exception):
                await terminal.close()
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(serving, 15)


async def wait_until(
    condition: Callable[[], bool | Awaitable[bool]], within: float = 10.0, step: float = 0.05
) -> float:
    """Wait until ``condition()`` holds; the seconds it took (AssertionError after ``within``)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return loop.time() - start
        if loop.time() - start > within:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(step)


class Arrivals:
    """Arrival times (now_ms) of one decoding receiver's audio and video RTP packets."""

    def __init__(self, terminal: SyntheticTerminal) -> None:
        receiver = terminal.receiver
        assert receiver is not None
        self.audio: list[int] = []
        self.video: list[int] = []
        kinds = {ssrc: s.kind for ssrc, s in receiver.streams.items()}
        dtls = hooks.dtls_transport_of(receiver.pc)
        assert dtls is not None

        def record(data: bytes) -> None:
            kind = kinds.get(int.from_bytes(data[8:12], "big"))
            if kind == "audio":
                self.audio.append(hooks.now_ms())
            elif kind == "video":
                self.video.append(hooks.now_ms())

        hooks.tap_incoming_rtp(dtls, record)


def _gaps(times: Sequence[int]) -> list[int]:
    return [b - a for a, b in itertools.pairwise(times)]


async def _lesson(live: LiveService) -> tuple[SyntheticTerminal, SyntheticTerminal, Arrivals]:
    lead = live.terminal("lead")
    await lead.start(start_lesson=True)
    receiver = live.terminal("receiver", 0, decode=True, publish=False)
    await receiver.start()
    assert receiver.receiver is not None
    try:
        await wait_until(lambda: receiver.receiver.decoded["video"] >= 15, within=30)  # type: ignore[union-attr]
        await wait_until(lambda: len(receiver.receiver.of_kind("audio")) > 0, within=10)  # type: ignore[union-attr]
    except AssertionError as exc:
        raise LossBenchError("the receiving classroom got no media") from exc
    return lead, receiver, Arrivals(receiver)


def _layer(live: LiveService, lead: SyntheticTerminal, peer_id: str) -> str | None:
    media = live.state.media
    lead_id = lead.joined["peer_id"]
    for info in media.producers(live.lesson_id):
        if info.peer_id == lead_id and info.source == "camera":
            consumer = media.consumer(peer_id, info.id)
            if consumer is not None:
                return getattr(consumer, "current_layer", None)
    return None


async def run_loss_point(loss_pct: float, seconds: float, data_dir: Path) -> dict[str, Any]:
    """One loss level: ``seconds`` measured after the loss has run for WARMUP_S."""
    async with live_service(data_dir) as live:
        lead, terminal, arrivals = await _lesson(live)
        receiver = terminal.receiver
        assert receiver is not None
        peer_id = terminal.joined["peer_id"]
        if loss_pct:
            await live.set_faults(peer_id, {"to_peer": {"media": {"drop": loss_pct / 100}}})
        await asyncio.sleep(WARMUP_S)
        (video,) = receiver.of_kind("video")
        frames0, errors0 = receiver.decoded["video"], receiver.decode_errors
        expected0, lost0, repairs0 = video.expected, video.lost, video.retransmissions
        audio_from, started = len(arrivals.audio), hooks.now_ms()
        await asyncio.sleep(seconds)
        elapsed = (hooks.now_ms() - started) / 1000
        audio = arrivals.audio[audio_from:]
        gaps = _gaps([started, *audio])
        expected = video.expected - expected0
        return {
            "loss_pct": loss_pct,
            "seconds": round(elapsed, 2),
            "fps": round((receiver.decoded["video"] - frames0) / elapsed, 1),
            "decode_errors": receiver.decode_errors - errors0,
            "video_missing_pct": round(100 * (video.lost - lost0) / expected, 2)
            if expected > 0
            else None,
            # Over the window like every other figure (the warm-up's repairs left out).
            "video_retransmissions": video.retransmissions - repairs0,
            "audio_packets_per_s": round(len(audio) / elapsed, 1),
            "audio_max_gap_ms": max(gaps) if gaps else None,
            "audio_gaps_over_200ms": sum(1 for g in gaps if g > GAP_LIMIT_MS),
            "layer": _layer(live, lead, peer_id),
        }


async def run_outage_point(outage_s: float, data_dir: Path) -> dict[str, Any]:
    """Every media packet to and from the classroom dropped for ``outage_s``; time to recover."""
    async with live_service(data_dir) as live:
        lead, terminal, arrivals = await _lesson(live)
        receiver = terminal.receiver
        assert receiver is not None
        peer_id = terminal.joined["peer_id"]
        await asyncio.sleep(WARMUP_S)
        dead = {"media": {"drop": 1.0}}
        await live.set_faults(peer_id, {"to_peer": dead, "from_peer": dead})
        await asyncio.sleep(outage_s)
        (video,) = receiver.of_kind("video")
        frames, errors, keyframes = (
            receiver.decoded["video"],
            receiver.decode_errors,
            video.keyframes,
        )
        audio_from, video_from = len(arrivals.audio), len(arrivals.video)
        restored = hooks.now_ms()  # the DELETE takes effect before its reply comes back
        await live.clear_faults(peer_id)
        checks: dict[str, Callable[[], bool]] = {
            "decoded": lambda: receiver.decoded["video"] > frames,
            "keyframe": lambda: video.keyframes > keyframes,
            "audio": lambda: len(arrivals.audio) > audio_from,
            "video": lambda: len(arrivals.video) > video_from,
        }
        first: dict[str, float] = {}
        while len(first) < len(checks):
            now = hooks.now_ms()
            for name, check in checks.items():
                if name not in first and check():
                    first[name] = (now - restored) / 1000
            if now - restored > 30_000:
                raise LossBenchError(f"no media within 30 s after a {outage_s:g} s outage")
            await asyncio.sleep(0.01)
        await asyncio.sleep(max(0.0, 2.0 - (hooks.now_ms() - restored) / 1000))
        return {
            "outage_s": outage_s,
            # Arrival times are exact; the others are polled every 10 ms.
            "first_video_packet_s": round((arrivals.video[video_from] - restored) / 1000, 2),
            "first_audio_packet_s": round((arrivals.audio[audio_from] - restored) / 1000, 2),
            "first_decoded_frame_s": round(first["decoded"], 2),
            "first_keyframe_s": round(first["keyframe"], 2),
            "frames_decoded_in_2s": receiver.decoded["video"] - frames,
            "decode_errors": receiver.decode_errors - errors,
            "layer": _layer(live, lead, peer_id),
        }


async def run_loss_bench(
    losses: Sequence[float], seconds: float, outage_s: float = OUTAGE_S, log: Any = None
) -> dict[str, Any]:
    points = []
    with tempfile.TemporaryDirectory(prefix="tongke-bench-loss-") as tmp:
        for n, loss in enumerate(losses):
            point = await run_loss_point(loss, seconds, Path(tmp) / f"p{n}")
            points.append(point)
            if log is not None:
                print(format_loss_point(point), file=log, flush=True)
        outage = await run_outage_point(outage_s, Path(tmp) / "outage")
        if log is not None:
            print(format_outage(outage), file=log, flush=True)
    return {"points": points, "outage": outage}


def format_loss_point(p: dict[str, Any]) -> str:
    return (
        f"loss {p['loss_pct']:>4g}%: {p['fps']} fps decoded, {p['decode_errors']} decode errors, "
        f"video missing after repair {p['video_missing_pct']}%, audio {p['audio_packets_per_s']} "
        f"pkt/s, largest audio gap {p['audio_max_gap_ms']} ms, "
        f"{p['audio_gaps_over_200ms']} gaps > 200 ms, layer {p['layer']}"
    )


def format_outage(o: dict[str, Any]) -> str:
    return (
        f"outage {o['outage_s']:g} s, after the link returned: first video packet "
        f"{o['first_video_packet_s']} s, first audio packet {o['first_audio_packet_s']} s, "
        f"first decoded frame {o['first_decoded_frame_s']} s, first keyframe "
        f"{o['first_keyframe_s']} s, {o['frames_decoded_in_2s']} frames decoded in 2 s, "
        f"{o['decode_errors']} decode errors, layer {o['layer']}"
    )


def parse_losses(text: str) -> list[float]:
    try:
        losses = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(
            f"Loss levels must be comma-separated percentages, got {text!r}."
        ) from None
    if not losses or any(not 0 <= x < 100 for x in losses):
        raise ValueError(f"Loss levels must be percentages in [0, 100), got {text!r}.")
    return losses


def quiet_logs() -> None:
    """The bench prints its own lines. (aiortc's logger stays: its "failed to decode" warnings
    are how decode errors are counted.)"""
    for noisy in ("aioice", "httpx", "uvicorn", "tongke"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
