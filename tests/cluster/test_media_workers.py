"""Media workers (server/workers/): one real `tongke serve --workers 2` process, no Redis.

- a lesson spread over both workers (one classroom per worker here): each receiver decodes
  the lead's video, the lead's streams leave the service's process once per worker;
- kill -9 of a worker: its classroom is asked to join again (close 4301), gets its media
  from a live worker and decodes again, the other classroom never notices, the recording
  (in the service's process) goes on, and the worker is started again;
- a worker that cannot start: `tongke serve` stops with one line and exit status 6.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from cluster_support import Node, admin_headers, codes, seed_district, start_node, until

from media.synthetic.terminal import SyntheticTerminal
from server.demo import DemoDistrict

pytestmark = pytest.mark.timeout(240)

LOOPBACK = ["127.0.0.1"]
ROOT = Path(__file__).resolve().parents[2]
# One classroom of a lesson per worker: the demo lesson's two receivers spread over both.
ENV = {"TONGKE_WORKERS": "2", "TONGKE_WORKER_LESSON_PEERS": "1", "TONGKE_RESUME_WINDOW_S": "10"}


def decoded(terminal: SyntheticTerminal) -> int:
    return terminal.receiver.decoded["video"] if terminal.receiver is not None else 0


def worker_pids(parent: int) -> list[int]:
    """The service's media worker processes (its children running server.workers.worker)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError):
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes()
            if int(stat[1]) == parent and b"server.workers.worker" in cmdline:
                found.append(int(entry.name))
    return sorted(found)


async def metric(node: Node, name: str, labels: str = "") -> float:
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"{node.url}/metrics")).text
    found = re.search(rf"^{name}{re.escape(labels)} (\S+)$", text, re.MULTILINE)
    assert found is not None, f"{name}{labels} missing from /metrics"
    return float(found.group(1))


def recorded_bytes(data_dir: Path) -> int:
    return sum(p.stat().st_size for p in (data_dir / "recordings").rglob("*.webm"))


@pytest.fixture
async def district(tmp_path: Path) -> tuple[str, DemoDistrict]:
    return await seed_district(tmp_path)


@pytest.fixture
async def service(tmp_path: Path, district: tuple[str, DemoDistrict]) -> AsyncIterator[Node]:
    node = await start_node("svc", tmp_path, district[0], "", redis_url="", env=ENV)
    yield node
    if node.proc.returncode is None:
        node.proc.terminate()
        await node.proc.wait()


@pytest.fixture
async def terminals() -> AsyncIterator[list[SyntheticTerminal]]:
    made: list[SyntheticTerminal] = []
    yield made
    for terminal in made:
        with contextlib.suppress(Exception):
            await terminal.close()


async def test_a_lesson_across_two_workers_survives_the_kill_of_one(
    service: Node,
    district: tuple[str, DemoDistrict],
    terminals: list[SyntheticTerminal],
    tmp_path: Path,
) -> None:
    _, demo = district
    links = codes(demo)
    await until("both workers up", lambda: len(worker_pids(service.proc.pid)) == 2, 30)
    lead = SyntheticTerminal(service.url, links["lead"][0], host_addresses=LOOPBACK)
    terminals.append(lead)
    await lead.start(start_lesson=True)
    await lead.request({"type": "set_recording", "on": True})
    receivers = []
    for code in links["receiver"][:2]:
        receiver = SyntheticTerminal(
            service.url, code, host_addresses=LOOPBACK, decode=True, publish=False,
            auto_reconnect=True,
        )  # fmt: skip
        terminals.append(receiver)
        await receiver.start()
        receivers.append(receiver)
    for receiver in receivers:
        await until("each receiver decodes the lead", lambda r=receiver: decoded(r) >= 10, 60)

    # One classroom on each worker; the lead's camera (main and low) and mic leave the
    # service's process once per worker.
    for worker in ("1", "2"):
        await until(
            f"worker {worker} serves one classroom",
            lambda w=worker: _equals(service, "tongke_worker_media_peers", w, 1.0),
            10,
        )
    assert await metric(service, "tongke_media_relay_streams_out") == 6
    assert await metric(service, "tongke_media_peers") == 1  # the lead, in the service

    data_dir = tmp_path / "svc"
    await until("the recording grows", lambda: recorded_bytes(data_dir) > 0, 20)
    pids = worker_pids(service.proc.pid)
    os.kill(pids[0], signal.SIGKILL)
    killed = time.monotonic()
    before = [decoded(r) for r in receivers]
    recorded = recorded_bytes(data_dir)

    await until(
        "one classroom was asked to join again",
        lambda: sum(any(code == 4301 for _, code in r.drops) for r in receivers) == 1,
        10,
    )
    asked_s = time.monotonic() - killed
    moved = next(r for r in receivers if r.drops)
    still = next(r for r in receivers if not r.drops)
    mark = before[receivers.index(moved)]
    await until("the moved classroom decodes again", lambda: decoded(moved) >= mark + 10, 20)
    media_s = time.monotonic() - killed
    print(f"kill -9 of a worker: 4301 after {asked_s:.1f}s, video again after {media_s:.1f}s")
    assert moved.receiver is not None and moved.receiver.decode_errors == 0
    # The other classroom's worker, and the lead, never noticed.
    other = before[receivers.index(still)]
    await until("the other classroom kept decoding", lambda: decoded(still) >= other + 30, 10)
    assert still.drops == [] and lead.drops == []
    # The recording is in the service's process (where the lead's media is): it went on.
    await until("the recording went on", lambda: recorded_bytes(data_dir) > recorded, 10)
    headers = await admin_headers(service, demo)
    async with httpx.AsyncClient(base_url=service.url, headers=headers) as admin:
        status = (await admin.get(f"/api/library/recording-status/{demo.lesson_id}")).json()
    assert status["recording"] is True, status
    # The dead worker was started again; both serve now.
    await until(
        "the worker was restarted",
        lambda: len(worker_pids(service.proc.pid)) == 2 and worker_pids(service.proc.pid) != pids,
        15,
    )
    assert sum([await metric(service, "tongke_worker_restarts_total", f'{{worker="{w}"}}')
                for w in ("1", "2")]) == 1  # fmt: skip

    # Stopping the service stops its workers.
    children = worker_pids(service.proc.pid)
    service.proc.terminate()
    # uvicorn shuts down gracefully and then re-raises SIGTERM: -15 is a clean stop.
    assert await service.proc.wait() in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in service.log.read_text()
    await until("no worker is left", lambda: not any(Path(f"/proc/{p}").exists()
                                                     for p in children), 10)  # fmt: skip


async def _equals(node: Node, name: str, worker: str, value: float) -> bool:
    return await metric(node, name, f'{{worker="{worker}"}}') == value


def test_a_worker_that_cannot_start_stops_serve_with_one_line(tmp_path: Path) -> None:
    # A media address that is not this machine's: the worker's media service refuses it.
    env = {**os.environ, "TONGKE_MEDIA_ADDRESSES": "not an address"}
    done = subprocess.run(
        [sys.executable, "-m", "server.cli", "serve", "--no-demo", "--workers", "2",
         "--data-dir", str(tmp_path), "--port", "1"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 6, done.stderr
    assert lines == [lines[-1]] and lines[-1].startswith("error: media worker could not start: ")


async def test_a_classroom_whose_published_media_fails_on_a_worker_is_told_why(
    service: Node,
    district: tuple[str, DemoDistrict],
    terminals: list[SyntheticTerminal],
) -> None:
    """A receiving classroom's media lives on a worker; its send transport failing there
    (here: its offer names another certificate, so DTLS fails) reaches it through the
    service as error transport_failed, and its tracks are never offered to the lead: the
    worker tells the service of a producer only once its transport connected (as
    media/announce.py does in one process), so the service never relays a dead one."""
    from media.synthetic.peers import SyntheticPublisher

    _, demo = district
    links = codes(demo)
    await until("both workers up", lambda: len(worker_pids(service.proc.pid)) == 2, 30)
    lead = SyntheticTerminal(service.url, links["lead"][0], host_addresses=LOOPBACK)
    terminals.append(lead)
    await lead.start(start_lesson=True)
    receiver = SyntheticTerminal(
        service.url, links["receiver"][0], host_addresses=LOOPBACK, publish=False
    )
    terminals.append(receiver)
    await receiver.start()
    publisher = SyntheticPublisher(host_addresses=LOOPBACK, layers=("main",))
    try:
        offer = await publisher.create_offer()
        wrong = "a=fingerprint:sha-256 " + ":".join(["EF"] * 32)
        offer = "\r\n".join(
            wrong if line.startswith("a=fingerprint:sha-256") else line
            for line in offer.split("\r\n")
        )
        tracks = [{"mid": t.mid, "source": t.source, "layer": t.layer} for t in publisher.tracks]
        reply = await receiver.request({"type": "publish", "sdp": offer, "tracks": tracks})
        await publisher.accept_answer(reply["sdp"])
        error = await receiver.wait_for(
            "error", lambda m: m["code"] == "transport_failed", within_s=30
        )
        assert "fingerprint" in error["message"]
        room = receiver.joined["you"]["classroom_id"]

        # Never offered, not even briefly: no producers_changed the lead got names them.
        ever = [p["source"] for m in lead.of_type("producers_changed")
                for p in m["producers"] if p["classroom_id"] == room]  # fmt: skip
        assert ever == []
    finally:
        await publisher.close()
