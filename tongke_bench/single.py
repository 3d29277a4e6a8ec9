"""`tongke bench`: the real service (its own process) against synthetic peers on loopback.

Per point, a fresh server process serves one lead and N receivers over real ICE/DTLS/SRTP on
127.0.0.1, and this process runs the peers:

- ``sfu``: ``python -m tongke_bench.host`` runs the tongke app (``create_app`` under uvicorn,
  as ``tongke serve``) with a bench lesson; every peer is a :class:`SyntheticTerminal` that
  joins through the real signaling protocol (join link, WebSocket, publish, subscribe). The
  host's :class:`media.forward_probe.ForwardProbe` stamps forwarding delay at its socket.
- ``naive``: ``benchmarks/naive_relay.py`` (aiortc MediaRelay, decode + re-encode per
  receiver) behind a JSON-lines control port that stands in for signaling.

Server CPU and RSS come from ``/proc/<pid>`` of the server process. ``--nodes N``
(tongke_bench/nodes.py) runs each point on N such processes joined into one cluster.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import statistics
import sys
import tempfile
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from media.aiortc_hooks import now_ms, sender_ssrcs
from media.synthetic.peers import SyntheticPublisher, SyntheticReceiver
from media.synthetic.terminal import SyntheticTerminal, TerminalError

LOOPBACK = ["127.0.0.1"]
ROOT = Path(__file__).resolve().parent.parent
NAIVE_SCRIPT = ROOT / "benchmarks" / "naive_relay.py"
WARMUP_S = 1.0
JOIN_TIMEOUT_S = 30.0
CALL_TIMEOUT_S = 60.0  # a host request (the naive relay's subscribe answers slowest)
CLOSE_TIMEOUT_S = 30.0  # closing a point's peers; past it the harness moves on
HOST_START_S = 90.0  # the app migrates a fresh SQLite database first; slow on a busy machine
DECODERS = 2  # receivers that also decode (aiortc's full pipeline), to time a decoded frame
KEPT_UP_FPS = 27.0  # a point below this mean is saturated: its CPU is not a per-receiver cost


class BenchError(RuntimeError):
    """The harness could not run a point (host failed, peers did not connect)."""


@dataclass
class Host:
    process: asyncio.subprocess.Process
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    info: dict[str, Any]
    log: IO[bytes]
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def call(self, **request: Any) -> dict[str, Any]:
        async with self.lock:
            self.writer.write(json.dumps(request).encode() + b"\n")
            await self.writer.drain()
            try:
                line = await asyncio.wait_for(self.reader.readline(), CALL_TIMEOUT_S)
            except TimeoutError:
                raise BenchError(f"the host did not answer {request['op']}") from None
        if not line:
            raise BenchError(f"the host process closed the connection{self.log_tail()}")
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

    def log_tail(self) -> str:
        return _tail(self.log)

    async def stop(self) -> None:
        self.writer.close()
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            await asyncio.wait_for(self.process.wait(), 15)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
        self.log.close()


def _tail(log: IO[bytes]) -> str:
    log.seek(0)
    tail = log.read().decode(errors="replace").strip().splitlines()[-15:]
    return (":\n  " + "\n  ".join(tail)) if tail else ""


async def start_host(kind: str, receivers: int, nice: int = 0, extra: Sequence[str] = ()) -> Host:
    """``extra``: more arguments of ``tongke_bench.host`` (a node of a many-nodes bench)."""
    if kind == "sfu":
        script = ["-m", "tongke_bench.host", "--receivers", str(receivers), *extra]
    else:
        script = [str(NAIVE_SCRIPT)]
    log = tempfile.TemporaryFile()  # the server's stderr, shown when it fails
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *script,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=log,
        cwd=str(ROOT),
    )
    assert process.stdout is not None
    if nice:
        # Set before the child starts any thread (later threads inherit it). CPU-seconds do
        # not depend on it; it keeps a shared machine's other work from starving the server.
        try:
            os.setpriority(os.PRIO_PROCESS, process.pid, nice)
        except OSError as exc:
            process.kill()
            await process.wait()
            log.close()
            raise BenchError(
                f"cannot run the server at nice {nice} ({exc}); below 0 needs CAP_SYS_NICE"
            ) from None
    try:
        line = (await asyncio.wait_for(process.stdout.readline(), HOST_START_S)).decode()
    except TimeoutError:
        line = ""
    if not line.startswith("READY "):
        if process.returncode is None:
            process.kill()
        await process.wait()
        tail = _tail(log)
        log.close()
        raise BenchError(f"the {kind} server process did not start{tail}")
    info: dict[str, Any] = json.loads(line[len("READY ") :])
    reader, writer = await asyncio.open_connection("127.0.0.1", info["control_port"], limit=1 << 22)
    return Host(process, reader, writer, info, log)


@dataclass
class Joined:
    """One receiver and when its join began (``now_ms``)."""

    get: Callable[[], SyntheticReceiver | None]
    started_ms: int
    decode: bool = False

    @property
    def receiver(self) -> SyntheticReceiver | None:
        return self.get()

    def first_frame_ms(self) -> int:
        receiver = self.get()
        if receiver is None:
            return -1
        done = [s.first_frame_ms for s in receiver.of_kind("video") if s.first_frame_ms >= 0]
        return min(done) if done else -1

    def first_decoded_ms(self) -> int:
        receiver = self.get()
        return -1 if receiver is None else receiver.first_decoded_ms["video"]


def _totals(receiver: SyntheticReceiver | None) -> tuple[int, int, int, int, int]:
    """(video frames, bytes of all streams, expected packets, lost packets, decoded frames)."""
    if receiver is None:
        return 0, 0, 0, 0, 0
    frames = sum(s.frames for s in receiver.of_kind("video"))
    size = sum(s.bytes for s in receiver.streams.values())
    expected = sum(s.expected for s in receiver.streams.values())
    lost = sum(s.lost for s in receiver.streams.values())
    return frames, size, expected, lost, receiver.decoded["video"]


def _percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None  # JSON has no NaN
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _peers_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _wait_for_first_frames(kind: str, joined: list[Joined]) -> None:
    """Until every receiver has a complete (and, if it decodes, a decoded) video frame.

    Past ``JOIN_TIMEOUT_S`` the point is measured anyway and the stragglers are reported as
    ``missing``; when no receiver got a frame the point fails.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + JOIN_TIMEOUT_S

    def waiting() -> int:
        return sum(
            1 for j in joined if j.first_frame_ms() < 0 or (j.decode and j.first_decoded_ms() < 0)
        )

    while waiting():
        if loop.time() > deadline:
            break
        await asyncio.sleep(0.05)  # polled: the counters are plain fields, with no event
    if all(j.first_frame_ms() < 0 for j in joined):
        raise BenchError(f"{kind}: no receiver had a complete video frame in {JOIN_TIMEOUT_S}s")


def _join_times(joined: list[Joined]) -> tuple[list[int], list[int]]:
    """Join to first complete frame (every receiver that has one), and to first decoded frame
    (the decoders that have one), in ms."""
    joins = [j.first_frame_ms() - j.started_ms for j in joined if j.first_frame_ms() >= 0]
    decoded = [
        j.first_decoded_ms() - j.started_ms
        for j in joined
        if j.decode and j.first_decoded_ms() >= 0
    ]
    return joins, decoded


Totals = tuple[int, int, int, int, int]


def _receiver_figures(
    joined: list[Joined],
    before: list[Totals],
    after: list[Totals],
    elapsed: float,
    joins: list[int],
    decoded_joins: list[int],
) -> dict[str, Any]:
    """What the receivers saw over the window: fps, kbit/s, loss, join times, decoding."""
    fps, kbps, loss, decoded_fps = [], [], [], []
    for j, (f0, b0, e0, l0, d0), (f1, b1, e1, l1, d1) in zip(joined, before, after, strict=True):
        fps.append((f1 - f0) / elapsed)
        kbps.append((b1 - b0) * 8 / 1000 / elapsed)
        loss.append(100.0 * (l1 - l0) / (e1 - e0) if e1 > e0 else 100.0)
        if j.decode:
            decoded_fps.append((d1 - d0) / elapsed)
    figures: dict[str, Any] = {
        "fps": {"min": round(min(fps), 2), "mean": round(statistics.fmean(fps), 2)},
        "kbps": {"min": round(min(kbps), 1), "mean": round(statistics.fmean(kbps), 1)},
        "loss_pct": {"max": round(max(loss), 3), "mean": round(statistics.fmean(loss), 3)},
        "join_to_first_frame_ms": {
            "p50": _percentile(joins, 0.5),
            "p99": _percentile(joins, 0.99),
            # Receivers without a complete frame JOIN_TIMEOUT_S after the last join.
            "missing": len(joined) - len(joins),
        },
        "join_to_first_decoded_frame_ms": None,
    }
    decoders = [j for j in joined if j.decode]
    if decoders:
        figures["join_to_first_decoded_frame_ms"] = {
            "receivers": len(decoders),
            "missing": len(decoders) - len(decoded_joins),
            "p50": _percentile(decoded_joins, 0.5),
            "p99": _percentile(decoded_joins, 0.99),
            "decoded_fps_mean": round(statistics.fmean(decoded_fps), 2),
            "decode_errors": sum(
                j.receiver.decode_errors for j in decoders if j.receiver is not None
            ),
        }
    return figures


def _delay_figures(delay: dict[str, Any] | None) -> dict[str, Any] | None:
    """The host probe's summary as the report's ``forwarding_delay_ms`` (None: no samples)."""
    if delay is None or delay["total_ms"] is None:
        return None
    return {
        "p50": delay["total_ms"]["p50"],
        "p99": delay["total_ms"]["p99"],
        "max": delay["total_ms"]["max"],
        "socket_wait_p50": delay["socket_wait_ms"]["p50"],
        "socket_wait_p99": delay["socket_wait_ms"]["p99"],
        "handling_p50": delay["handling_ms"]["p50"],
        "handling_p99": delay["handling_ms"]["p99"],
        "handling_cpu_p50": delay["handling_cpu_ms"]["p50"],
        "handling_cpu_p99": delay["handling_cpu_ms"]["p99"],
        # Arrival to the average of the packet's copies leaving: what a receiver sees.
        "mean_copy_p50": delay["mean_copy_ms"]["p50"],
        "mean_copy_p99": delay["mean_copy_ms"]["p99"],
        "samples": delay["samples"],
        "sampled_every": delay["every"],
    }


async def _measure(
    kind: str, host: Host, joined: list[Joined], seconds: float, probe: bool
) -> dict[str, Any]:
    """Counters differenced over ``seconds`` after a warm-up; ``probe``: read the host's probe."""
    loop = asyncio.get_running_loop()
    await _wait_for_first_frames(kind, joined)
    joins, decoded_joins = _join_times(joined)

    await asyncio.sleep(WARMUP_S)
    if probe:
        await host.call(op="probe_read", reset=True)  # samples from the joins are dropped
    before = [_totals(j.receiver) for j in joined]
    cpu0, peers0, t0 = host.cpu_seconds(), _peers_cpu_seconds(), loop.time()
    await asyncio.sleep(seconds)
    after = [_totals(j.receiver) for j in joined]
    cpu1, peers1, t1 = host.cpu_seconds(), _peers_cpu_seconds(), loop.time()
    delay = await host.call(op="probe_read", reset=True) if probe else None
    elapsed = t1 - t0
    figures = _receiver_figures(joined, before, after, elapsed, joins, decoded_joins)
    delivered = sum(f1 - f0 for (f0, *_), (f1, *_) in zip(before, after, strict=True)) / elapsed
    cpu = (cpu1 - cpu0) / elapsed
    point: dict[str, Any] = {
        "server": kind,
        "receivers": len(joined),
        "seconds": round(elapsed, 2),
        "server_cpu_s_per_s": round(cpu, 3),
        # Normalizes for a server that cannot keep up and delivers fewer frames.
        "server_cpu_ms_per_delivered_frame": round(1000 * cpu / delivered, 3)
        if delivered
        else None,
        "server_rss_mib": round(host.rss_mib(), 1),
        "peers_cpu_s_per_s": round((peers1 - peers0) / elapsed, 3),
        "load_average_1m": round(os.getloadavg()[0], 2),
        **figures,
        "forwarding_delay_ms": _delay_figures(delay),
    }
    return point


async def unpaced_delays(
    hosts: Sequence[Host], lead: SyntheticTerminal, seconds: float
) -> list[dict[str, Any] | None]:
    """Each host's forwarding delay with the lead's pacer off: aiortc sends a frame's packets
    back to back, so each waits at the server behind the whole fan-out of those before it (a
    keyframe is ~14 packets). Browsers pace (media/aiortc_hooks.py VideoPacer): the worst case."""
    pacer = lead.publisher.pacer if lead.publisher is not None else None
    if pacer is None:
        return [None for _ in hosts]
    pacer.enabled = False
    try:
        for host in hosts:
            await host.call(op="probe_read", reset=True)
        await asyncio.sleep(seconds)
        return [_delay_figures(await host.call(op="probe_read", reset=True)) for host in hosts]
    finally:
        pacer.enabled = True


def _watched_ssrcs(publisher: SyntheticPublisher) -> list[int]:
    """The lead's main camera and mic SSRCs: the streams every receiver is sent."""
    by_mid = {str(t.mid): t for t in publisher.pc.getTransceivers()}
    return [
        sender_ssrcs(by_mid[t.mid].sender)[0]
        for t in publisher.tracks
        if t.layer == "main" and t.mid in by_mid
    ]


async def start_lead(
    host: Host, base: str, terminals: list[SyntheticTerminal]
) -> SyntheticTerminal:
    """The synthetic lead on ``base`` (kept in ``terminals`` to close): it starts the lesson
    and publishes; the host's probe watches its main camera and mic."""
    lead = SyntheticTerminal(base, host.info["lead"], host_addresses=LOOPBACK)
    terminals.append(lead)
    await lead.start(start_lesson=True)
    assert lead.publisher is not None
    await host.call(op="probe_watch", ssrcs=_watched_ssrcs(lead.publisher))
    return lead


async def join_receiver(
    base: str, code: str, decode: bool, terminals: list[SyntheticTerminal]
) -> Joined:
    """A receiver (no publishing) joined with ``code`` on ``base``, timed from the start of
    its join; kept in ``terminals`` to close."""
    terminal = SyntheticTerminal(base, code, host_addresses=LOOPBACK, publish=False, decode=decode)
    terminals.append(terminal)
    started = now_ms()
    await terminal.start()
    return Joined(lambda: terminal.receiver, started, decode)


async def _sfu_point(receivers: int, seconds: float, decoders: int, nice: int) -> dict[str, Any]:
    host = await start_host("sfu", receivers, nice)
    base = f"http://127.0.0.1:{host.info['http_port']}"
    terminals: list[SyntheticTerminal] = []
    try:
        lead = await start_lead(host, base, terminals)
        joined: list[Joined] = []
        codes: list[str] = host.info["receivers"]
        for index, code in enumerate(codes):
            # The last receivers to join decode: their first frame is timed under full load.
            decode = index >= len(codes) - decoders
            joined.append(await join_receiver(base, code, decode, terminals))
        point = await _measure("sfu", host, joined, seconds, probe=True)
        (point["forwarding_delay_unpaced_ms"],) = await unpaced_delays([host], lead, seconds)
        point["server_loop"] = host.info["loop"]
        if point["fps"]["min"] == 0 or point["join_to_first_frame_ms"]["missing"]:
            print(
                f"bench: receivers without video at N={receivers}; the server's log",
                end="",
                file=sys.stderr,
            )
            print(host.log_tail() or ": empty", file=sys.stderr)
            kinds = [m.get("type") for _, m in lead.events[-8:]]
            print(
                f"bench: the lead's WebSocket close code {lead.closed_code}, "
                f"its last events {kinds}",
                file=sys.stderr,
            )
        return point
    except TerminalError as exc:
        raise BenchError(f"sfu: the service refused a synthetic terminal: {exc}") from exc
    finally:
        await _close_all([t.close() for t in terminals])
        await host.stop()


async def _naive_point(
    receivers: int, seconds: float, cache_dir: Path | None, nice: int
) -> dict[str, Any]:
    host = await start_host("naive", receivers, nice)
    publisher = SyntheticPublisher(host_addresses=LOOPBACK, layers=("main",), cache_dir=cache_dir)
    peers: list[SyntheticReceiver] = []
    try:
        offer = await publisher.create_offer()
        tracks = [[t.mid, t.source, t.layer] for t in publisher.tracks]
        reply = await host.call(op="publish", lesson="bench", peer="lead", sdp=offer, tracks=tracks)
        await publisher.accept_answer(reply["sdp"])
        joined: list[Joined] = []
        for index in range(receivers):
            receiver = SyntheticReceiver(host_addresses=LOOPBACK)
            peers.append(receiver)
            started = now_ms()
            peer = f"receiver-{index}"
            sub = await host.call(
                op="subscribe", lesson="bench", peer=peer, producers=reply["producers"]
            )
            while sub["sdp"] is not None:
                answer = await receiver.accept_offer(sub["sdp"])
                sub = await host.call(op="answer", peer=peer, sdp=answer)
            joined.append(Joined(lambda r=receiver: r, started))
        point = await _measure("naive", host, joined, seconds, probe=False)
        point["server_loop"] = host.info["loop"]
        return point
    finally:
        await _close_all([r.close() for r in peers] + [publisher.close()])
        await host.stop()


async def _close_all(closing: list[Coroutine[Any, Any, None]]) -> None:
    try:
        await asyncio.wait_for(asyncio.gather(*closing, return_exceptions=True), CLOSE_TIMEOUT_S)
    except TimeoutError:
        print(f"bench: peers still closing after {CLOSE_TIMEOUT_S}s; moving on", file=sys.stderr)


async def run_point(
    kind: str,
    receivers: int,
    seconds: float,
    cache_dir: Path | None = None,
    decoders: int = DECODERS,
    nice: int = 0,
) -> dict[str, Any]:
    """One measurement: a fresh server process, one lead, ``receivers`` receivers."""
    if kind == "sfu":
        return await _sfu_point(receivers, seconds, decoders, nice)
    return await _naive_point(receivers, seconds, cache_dir, nice)


def format_point(p: dict[str, Any]) -> str:
    text = (
        f"{p['server']:5} N={p['receivers']:<3} cpu={p['server_cpu_s_per_s']:.3f} s/s "
        f"({p['server_cpu_ms_per_delivered_frame']} ms/frame) rss={p['server_rss_mib']:.0f} MiB "
        f"fps min/mean={p['fps']['min']}/{p['fps']['mean']} "
        f"kbit/s min/mean={p['kbps']['min']}/{p['kbps']['mean']} "
        f"loss% max/mean={p['loss_pct']['max']}/{p['loss_pct']['mean']} "
        f"join->first frame p50/p99={p['join_to_first_frame_ms']['p50']}/"
        f"{p['join_to_first_frame_ms']['p99']} ms"
    )
    if p["join_to_first_frame_ms"]["missing"]:
        text += f" ({p['join_to_first_frame_ms']['missing']} without a complete frame)"
    decoded = p.get("join_to_first_decoded_frame_ms")
    if decoded:
        text += (
            f" (decoded, {decoded['receivers']} rx: {decoded['p50']}/{decoded['p99']} ms, "
            f"{decoded['decode_errors']} errors)"
        )
    delay = p.get("forwarding_delay_ms")
    if delay:
        text += (
            f" fwd delay (last copy) p50/p99={delay['p50']}/{delay['p99']} ms "
            f"(mean copy {delay['mean_copy_p50']}/{delay['mean_copy_p99']}, "
            f"socket wait {delay['socket_wait_p50']}/{delay['socket_wait_p99']}, "
            f"handling {delay['handling_p50']}/{delay['handling_p99']}, "
            f"of it CPU {delay['handling_cpu_p50']}/{delay['handling_cpu_p99']})"
        )
    unpaced = p.get("forwarding_delay_unpaced_ms")
    if unpaced:
        text += (
            f" unpaced lead: p50/p99={unpaced['p50']}/{unpaced['p99']} ms "
            f"(socket wait {unpaced['socket_wait_p50']}/{unpaced['socket_wait_p99']})"
        )
    return text + f" load={p['load_average_1m']}"
