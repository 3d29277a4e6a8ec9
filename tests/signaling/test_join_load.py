"""Load: 100 peers join one lesson at once through the real service, and capacity refusals.

The whole service runs in this process (uvicorn on a free loopback port, SQLite), and every
peer is a SyntheticTerminal speaking the real protocol: POST /api/join/{code}, WebSocket
join. A lead and a few receiving classrooms publish and subscribe real media before the
burst, so media keeps flowing while the joins land; the burst's peers are signaling-only.
The node's capacity (``max_peers``) is set to exactly 100 peers, and the burst asks for more:
the extra joins must get the ``capacity`` error while nobody else is hurt.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
from signal_harness import LEAD_ROOM, LESSON_ID, Signal, lesson_info

from media.synthetic.terminal import SyntheticTerminal, TerminalError
from server.settings import Settings
from signaling.grants import Role
from signaling.hooks import LessonInfo
from signaling.rooms import RoomConfig
from tongke_bench.host import seed_bench_lesson

ROOT = Path(__file__).resolve().parents[2]
LOOPBACK = ["127.0.0.1"]
CAPACITY = 100
MEDIA_RECEIVERS = 4  # publish and subscribe real media through the burst
RECEIVERS = 64  # the API's roster limit; the rest of the burst are patrol peers
EXTRA = 10  # joins past the capacity
# All joins start at the same instant. Answering 105 joins took 4.1 s of wall time (3.6 s of
# CPU, service and clients together) in one process, and 8-33 s in this test with other suites
# running (load average 4-7): the bound is loose, outcomes are what is checked, the figure is
# printed (docs/benchmarks.md, "Join burst").
ANSWER_WITHIN_S = 60.0
# The longest gap in video at the media receivers that the service may cause while the joins
# land: under 1 s on a quiet machine, 2-4 s at load average 6-7 (the service is one process
# starved of CPU then; no single callback of it runs over 100 ms, PYTHONASYNCIODEBUG=1 shows).
# The receivers share this process's event loop with the burst's 105 clients (and the lead's
# sender), so this loop's own lag is added on top: that part is this process's doing.
MAX_MEDIA_GAP_S = 5.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def _service(settings: Settings) -> AsyncIterator[tuple[str, int]]:
    """`tongke serve` in its own process, as deployed: the burst's clients in this process
    must not share an event loop (and its delays) with the service they measure."""
    port = _free_port()
    env = {
        **os.environ,
        "TONGKE_DATA_DIR": str(settings.data_dir),
        "TONGKE_SECRET_KEY": settings.secret_key,
        "TONGKE_MEDIA_ADDRESSES": ",".join(settings.media_addresses),
        "TONGKE_MAX_PEERS": str(settings.max_peers),
        "TONGKE_LOG_LEVEL": "warning",
    }
    log = settings.data_dir / "service.log"
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "server.cli", "serve", "--no-demo",
            "--host", "127.0.0.1", "--port", str(port),
            env=env, cwd=ROOT, stdout=out, stderr=out,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base) as http:
            deadline = time.monotonic() + 30
            while True:
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get("/readyz")).status_code == 200:
                        break
                assert process.returncode is None, log.read_text()[-3000:]
                assert time.monotonic() < deadline, "the service did not start"
                await asyncio.sleep(0.1)
        yield base, process.pid
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 15)
            except TimeoutError:
                process.kill()
                await process.wait()
    # Whatever the service logged above WARNING would be a failure; show it.
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _metric(text: str, name: str, labels: str = "") -> dict[str, float]:
    """Samples of one metric: {label text: value}."""
    pattern = re.compile(rf"^{re.escape(name)}(\{{[^}}]*\}})? (\S+)$", re.M)
    return {m.group(1) or "": float(m.group(2)) for m in pattern.finditer(text)}


async def _wait(condition, within_s: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + within_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, what
        await asyncio.sleep(0.05)


async def _join(terminal: SyntheticTerminal) -> tuple[str, float]:
    """'joined' or the error code, and when the answer came."""
    try:
        await terminal.connect()
        outcome = "joined"
    except TerminalError as exc:
        outcome = exc.code
    return outcome, time.monotonic()


async def test_a_hundred_peers_join_at_once_and_the_node_refuses_past_capacity(
    tmp_path: Path,
) -> None:
    settings = Settings(
        data_dir=tmp_path,
        seed_demo=False,
        secret_key="test-secret-0123456789abcdef0123456789abcdef",
        media_addresses=LOOPBACK,
        max_peers=CAPACITY,
    )
    burst_size = CAPACITY - 1 - MEDIA_RECEIVERS + EXTRA
    # One lesson: a lead classroom, RECEIVERS receiving classrooms, the rest patrol links.
    codes = await seed_bench_lesson(
        settings, RECEIVERS, patrols=burst_size - (RECEIVERS - MEDIA_RECEIVERS)
    )
    async with _service(settings) as (base, pid), httpx.AsyncClient(base_url=base) as http:

        async def metrics(name: str) -> dict[str, float]:
            return _metric((await http.get("/metrics")).text, name)

        lead = SyntheticTerminal(base, codes.lead, host_addresses=LOOPBACK)
        media = [
            SyntheticTerminal(base, code, host_addresses=LOOPBACK)
            for code in codes.receivers[:MEDIA_RECEIVERS]
        ]
        burst = [
            SyntheticTerminal(base, code, publish=False, connect_timeout_s=ANSWER_WITHIN_S)
            for code in codes.receivers[MEDIA_RECEIVERS:] + codes.patrols
        ]
        try:
            await lead.start(start_lesson=True)
            await asyncio.gather(*(m.start() for m in media))
            await _wait(
                lambda: all(m.frames("video") >= 10 for m in media),
                30,
                "media receivers got no video before the burst",
            )

            # Media keeps flowing during the burst: the longest gap between new video frames
            # at any media receiver, sampled every 50 ms.
            stalls = [0.0] * len(media)
            lag = [0.0]  # this process's longest event-loop delay

            async def watch_media() -> None:
                last = [(m.frames("video"), time.monotonic()) for m in media]
                before = time.monotonic()
                while True:
                    await asyncio.sleep(0.05)
                    now = time.monotonic()
                    lag[0] = max(lag[0], now - before - 0.05)
                    before = now
                    for n, m in enumerate(media):
                        frames = m.frames("video")
                        if frames != last[n][0]:
                            last[n] = (frames, now)
                        stalls[n] = max(stalls[n], now - last[n][1])

            watcher = asyncio.create_task(watch_media())
            frames_before = [m.frames("video") for m in media]
            started, server_cpu, own_cpu = time.monotonic(), _cpu_s(pid), time.process_time()
            outcomes = await asyncio.gather(*(_join(t) for t in burst))
            burst_s = max(at for _, at in outcomes) - started
            server_cpu, own_cpu = _cpu_s(pid) - server_cpu, time.process_time() - own_cpu
            await asyncio.sleep(1.0)  # media after the burst, too
            watcher.cancel()
            frames_after = [m.frames("video") for m in media]

            # Every join answered: joined, or refused for capacity; nothing else.
            kinds = [o for o, _ in outcomes]
            joined = [t for t, o in zip(burst, kinds, strict=True) if o == "joined"]
            refused = [t for t, o in zip(burst, kinds, strict=True) if o != "joined"]
            assert {o for o in kinds if o != "joined"} <= {"capacity"}, kinds
            assert len(joined) == CAPACITY - 1 - MEDIA_RECEIVERS and len(refused) == EXTRA
            print(
                f"\n{len(burst)} joins answered in {burst_s:.2f} s "
                f"(service CPU {server_cpu:.2f} s, "
                f"clients CPU {own_cpu:.2f} s); longest media gap {max(stalls):.2f} s "
                f"(clients' event loop lag {lag[0]:.2f} s)"
            )
            assert burst_s < ANSWER_WITHIN_S, f"the burst took {burst_s:.1f} s"

            # No one half-joined: the node counts exactly the answered peers, and the lead's
            # roster (joined + participant_joined) is exactly the visible ones among them.
            members = [lead, *media, *joined]
            by_role: dict[str, int] = {}
            for t in members:
                by_role[t.joined["role"]] = by_role.get(t.joined["role"], 0) + 1
            peers = await metrics("tongke_peers")
            assert {k: v for k, v in peers.items() if v} == {
                f'{{role="{role}"}}': n for role, n in by_role.items()
            }
            assert sum(peers.values()) == CAPACITY
            visible = {t.joined["peer_id"] for t in members if t.joined["role"] != "patrol"}
            await _wait(
                lambda: _seen_by(lead) == visible - {lead.joined["peer_id"]},
                10,
                "the lead's roster differs from the joined peers",
            )

            assert all(a - b >= 15 for a, b in zip(frames_after, frames_before, strict=True))
            assert max(stalls) < MAX_MEDIA_GAP_S + lag[0], f"media stalled {max(stalls):.2f} s"

            # The service's error count: the refusals and nothing else.
            errors = await metrics("tongke_signaling_errors_total")
            assert {k: v for k, v in errors.items() if v} == {'{code="capacity"}': EXTRA}
            assert not any((await metrics("tongke_errors_logged_total")).values())
            statuses = await metrics("tongke_http_requests_total")
            assert not [k for k, v in statuses.items() if 'status="5' in k and v], statuses

            # Everyone leaves at once (a leave, not a dropped socket that stays resumable).
            left = await asyncio.gather(
                *(t.request({"type": "leave"}) for t in [*joined, *media, lead]),
                return_exceptions=True,
            )
            assert all(isinstance(r, dict) and r["type"] == "ok" for r in left), left
            await _wait_async(
                lambda: _all_zero(metrics("tongke_peers")), 10, "peers outlived their leave"
            )
            assert (await metrics("tongke_live_lessons")) == {"": 0}

            # A refused terminal tries again once there is room, and gets in.
            again = SyntheticTerminal(base, refused[0].code, publish=False)
            burst.append(again)
            assert (await again.connect())["type"] == "joined"
            assert not any((await metrics("tongke_errors_logged_total")).values())
        finally:
            await _close_all([*burst, *media, lead])


async def _close_all(terminals: list[SyntheticTerminal]) -> None:
    """Closes every terminal; a close stuck past 30 s fails here (not at pytest's timeout),
    naming the terminals and what every task still waits on."""
    closing = {asyncio.ensure_future(t.close()): t for t in terminals}
    _, stuck = await asyncio.wait(closing, timeout=30)
    if stuck:
        lines = [f"{len(stuck)} of {len(closing)} terminals did not close in 30 s:"]
        lines += [
            f"  {closing[task].code} (joined: {bool(closing[task].joined)})" for task in stuck
        ]
        for task in asyncio.all_tasks():
            if task is not asyncio.current_task():
                frames = task.get_stack(limit=3)
                where = " <- ".join(f"{f.f_code.co_name}:{f.f_lineno}" for f in frames)
                lines.append(f"  task {task.get_name()}: {where}")
        print("\n".join(lines))
        raise AssertionError("\n".join(lines[:5]))


async def _all_zero(samples: Awaitable[dict[str, float]]) -> bool:
    return not any((await samples).values())


async def _wait_async(condition, within_s: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + within_s
    while not await condition():
        assert asyncio.get_running_loop().time() < deadline, what
        await asyncio.sleep(0.1)


def _seen_by(terminal: SyntheticTerminal) -> set[str]:
    """The visible participants a terminal knows of, from joined and later events."""
    seen = {p["peer_id"] for p in terminal.joined["participants"]}
    for _, message in terminal.events:
        if message["type"] == "participant_joined":
            seen.add(message["participant"]["peer_id"])
        elif message["type"] == "participant_left":
            seen.discard(message["peer_id"])
    seen.discard(terminal.joined["peer_id"])
    return seen


async def test_a_full_node_refuses_a_new_lesson_before_loading_or_claiming_it(
    make_signal: Callable[..., Signal],
) -> None:
    signal = make_signal(RoomConfig(max_peers=2))
    other = lesson_info("lesson-2")
    signal.hooks.lessons[other.id] = other
    loaded: list[str] = []
    claimed: list[str] = []
    lesson_info_of, claim = signal.hooks.lesson_info, signal.rooms.bus.claim_lesson

    async def counting_info(lesson_id: str) -> LessonInfo | None:
        loaded.append(lesson_id)
        return await lesson_info_of(lesson_id)

    async def counting_claim(lesson_id: str) -> None:
        claimed.append(lesson_id)
        await claim(lesson_id)

    signal.hooks.lesson_info = counting_info  # type: ignore[method-assign]
    signal.rooms.bus.claim_lesson = counting_claim  # type: ignore[method-assign]
    await signal.lead()
    await signal.receiver("r1")
    assert loaded == claimed == [LESSON_ID]
    token = signal.token(Role.LEAD, LEAD_ROOM, lesson_id=other.id)
    reply = await signal.connect().request("join", version=1, token=token)
    assert reply["code"] == "capacity"
    # Refused with no database lookup, no bus claim and no room left behind.
    assert loaded == claimed == [LESSON_ID]
    assert set(signal.rooms.rooms) == {LESSON_ID}
