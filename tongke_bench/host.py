"""The server process of `tongke bench`: the real tongke app, plus a probe and a control port.

Run as ``python -m tongke_bench.host --receivers N``. It

- seeds a bench lesson (one lead classroom, N receiving classrooms, a join link each) into a
  fresh SQLite database in a temporary data folder;
- installs a :class:`media.forward_probe.ForwardProbe` (the only difference from
  ``tongke serve``: it stamps forwarding delay at the server's socket), and sets the
  bench-only ``TONGKE_BENCH_FORWARD_PROBE=1`` so that media workers (``TONGKE_WORKERS``),
  which inherit its environment, install one each (server/workers/bench_probe.py);
- serves ``server.app.create_app`` with uvicorn on 127.0.0.1, media on loopback only, on the
  event loop ``tongke serve`` uses (uvloop when installed, as uvicorn's ``loop="auto"``);
- prints one line ``READY {json}`` with ``http_port``, ``control_port``, ``lead`` (join code),
  ``receivers`` (join codes) and ``loop``, then runs until its stdin closes.

Many nodes (``tongke bench --nodes N``, tongke_bench/nodes.py): with ``--node-id`` the host
is one node of a cluster: Redis at ``--redis-url`` under ``--redis-prefix``, the shared
database ``--database-url``, the shared ``--secret-key``. The node given ``--media-nodes``
(node A) seeds the lesson into the shared database and serves receiver ``i``'s media from
``media_nodes[i % len]`` through ``TONGKE_CASCADE_EDGES`` (its ``READY`` adds
``media_nodes``, one per receiver); the others seed nothing.

Peers join through the real signaling protocol (media/synthetic/terminal.py). The control
port takes JSON lines, answered in order: ``{"op": "probe_watch", "ssrcs": [...]}`` (sample
these RTP streams), ``{"op": "probe_read", "reset": bool}`` (the probe's summary) and, for
many nodes, ``{"op": "probe_watch_relayed"}`` (an edge node samples the relayed camera main
and mic it receives) and ``{"op": "media_stats"}`` (the MediaService's counts: peers, relays,
relayed streams). With media workers, ``{"op": "workers_probe", "watch_relayed": bool,
"reset": bool}`` asks each live worker's probe over the workers' socket (``watch_relayed``:
sample the relayed camera main and mic from the service) and answers ``{"workers": {node:
{"pid", "peers", "watching", "probe"}}}`` (no workers: empty). A bench harness, not a
product API.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import socket
import sys
import tempfile
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import uvicorn

from media import aiortc_hooks as hooks
from media.forward_probe import ForwardProbe, relayed_main_ssrcs
from server.settings import Settings
from server.workers.bench_probe import ENV as BENCH_PROBE_ENV

LOOPBACK = ["127.0.0.1"]


@dataclass
class BenchLesson:
    """Join codes of a seeded bench lesson (receivers' codes and classroom ids in order)."""

    lead: str
    receivers: list[str] = field(default_factory=list)
    rooms: list[str] = field(default_factory=list)
    patrols: list[str] = field(default_factory=list)


async def seed_bench_lesson(settings: Settings, receivers: int, patrols: int = 0) -> BenchLesson:
    """A lesson starting now with ``receivers`` receiving classrooms and ``patrols`` patrol
    links (of one inspector). Also the lesson of tests/signaling/test_join_load.py."""
    from server.api.links import make_link
    from server.db import open_database
    from server.db.models import (
        Account,
        AccountRole,
        Classroom,
        ClassroomKind,
        Lesson,
        School,
        SchoolKind,
        lesson_receivers,
        utcnow,
    )
    from signaling.grants import Role

    async with open_database(settings) as db, db.sessions.begin() as session:
        school = School(name="bench", kind=SchoolKind.CENTRAL.value)
        session.add(school)
        await session.flush()
        lead = Classroom(school_id=school.id, name="lead", kind=ClassroomKind.LEAD.value)
        rooms = [
            Classroom(school_id=school.id, name=f"receiver {n}", kind=ClassroomKind.RECEIVING.value)
            for n in range(receivers)
        ]
        # No usable password: nobody signs in, the terminals join by link.
        teacher = Account(
            username="bench-teacher",
            display_name="bench",
            role=AccountRole.TEACHER.value,
            password_hash="!",
        )
        inspector = Account(
            username="bench-inspector",
            display_name="bench",
            role=AccountRole.INSPECTOR.value,
            password_hash="!",
        )
        session.add_all([lead, *rooms, teacher, *([inspector] if patrols else [])])
        await session.flush()
        start = utcnow()
        lesson = Lesson(
            title="bench",
            teacher_id=teacher.id,
            lead_classroom_id=lead.id,
            scheduled_start=start,
            scheduled_end=start + timedelta(hours=1),
        )
        session.add(lesson)
        await session.flush()
        if rooms:
            await session.execute(
                lesson_receivers.insert(),
                [
                    {"lesson_id": lesson.id, "classroom_id": room.id, "position": n}
                    for n, room in enumerate(rooms)
                ],
            )
        seeded = BenchLesson(
            lead=(await make_link(session, lesson, Role.LEAD, classroom_id=lead.id)).code,
            rooms=[str(room.id) for room in rooms],
        )
        for room in rooms:
            link = await make_link(session, lesson, Role.RECEIVER, classroom_id=room.id)
            seeded.receivers.append(link.code)
        for _ in range(patrols):
            link = await make_link(session, lesson, Role.PATROL, account_id=inspector.id)
            seeded.patrols.append(link.code)
    return seeded


def _media_stats(media: Any) -> dict[str, Any]:
    stats = dict(media.stats())
    # Relayed producers this node receives, per relay (edge node): what the home sends it.
    stats["relayed_in_producers"] = {
        relay_id: len(media.relay_producers(relay_id)) for relay_id in media.cascade.receivers
    }
    return stats


async def _workers_probe(app: Any, watch_relayed: bool, reset: bool) -> dict[str, Any]:
    """Each live media worker's ``bench_probe`` answer, by node id (none: no workers)."""
    from server.workers.ipc import IpcHub

    rpc = getattr(app.rooms.media, "rpc", None)  # ClusterMediaPort's, once workers started
    if rpc is None or not isinstance(rpc.bus, IpcHub):
        return {"workers": {}}
    nodes = sorted(rpc.bus.connected())
    answers = await asyncio.gather(
        *(rpc.call(n, "bench_probe", watch_relayed=watch_relayed, reset=reset) for n in nodes)
    )
    return {"workers": dict(zip(nodes, answers, strict=True))}


def _control(
    probe: ForwardProbe,
    media: Callable[[], Any] = lambda: None,
    app: Callable[[], Any] = lambda: None,
) -> Callable[[Any, Any], Coroutine[Any, Any, None]]:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            request = json.loads(line)
            op = request.get("op")
            reply: dict[str, Any]
            if op == "probe_watch":
                probe.watch(int(s) for s in request["ssrcs"])
                reply = {"watching": len(probe.ssrcs)}
            elif op == "probe_read":
                reply = probe.summary()
                if request.get("reset"):
                    probe.reset()
            elif op == "probe_watch_relayed":
                probe.watch(relayed_main_ssrcs(media()))
                reply = {"watching": len(probe.ssrcs)}
            elif op == "media_stats":
                reply = _media_stats(media())
            elif op == "workers_probe":
                reply = await _workers_probe(
                    app(), bool(request.get("watch_relayed")), bool(request.get("reset"))
                )
            else:
                reply = {"error": "bad_op", "message": f"Unknown op {op!r}."}
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
        writer.close()

    return serve


async def main(receivers: int, loop_name: str, cluster: argparse.Namespace | None = None) -> None:
    """``cluster``: this host is one node of a many-nodes bench (``--node-id`` given)."""
    data_dir = Path(tempfile.mkdtemp(prefix="tongke-bench-"))
    http = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    http.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    http.bind(("127.0.0.1", 0))
    port = http.getsockname()[1]
    options: dict[str, Any] = {}
    if cluster is not None:
        options = {
            "redis_url": cluster.redis_url,
            "redis_prefix": cluster.redis_prefix,
            "node_id": cluster.node_id,
            "database_url": cluster.database_url,
            "public_url": f"http://127.0.0.1:{port}",
        }
    settings = Settings(
        host="127.0.0.1",
        port=port,
        data_dir=data_dir,
        seed_demo=False,
        media_addresses=LOOPBACK,
        secret_key=cluster.secret_key if cluster is not None else secrets.token_hex(32),
        max_peers=max(500, receivers + 10),
        log_level="warning",
        **options,
    )
    try:
        seeds = cluster is None or bool(cluster.media_nodes)
        seeded = await seed_bench_lesson(settings, receivers) if seeds else BenchLesson("")
        lead, codes, rooms = seeded.lead, seeded.receivers, seeded.rooms
        media_nodes: list[str] = []
        if cluster is not None and cluster.media_nodes:
            # Receiver i's media on node i mod N: the home's picker reads these edges.
            names = cluster.media_nodes.split(",")
            media_nodes = [names[i % len(names)] for i in range(len(rooms))]
            edges = {
                room: node
                for room, node in zip(rooms, media_nodes, strict=True)
                if node != cluster.node_id
            }
            settings = settings.model_copy(update={"cascade_edges": edges})
        probe = ForwardProbe()
        hooks.forward_probe = probe  # before the app creates any transport
        # The media workers the app starts inherit it: each installs its own probe.
        os.environ[BENCH_PROBE_ENV] = "1"

        from server.app import create_app

        server = uvicorn.Server(
            uvicorn.Config(
                create_app(settings),
                log_level="warning",
                ws_max_size=settings.ws_max_message_bytes,
                lifespan="on",
            )
        )
        serving = asyncio.ensure_future(server.serve(sockets=[http]))
        while not server.started:
            if serving.done():
                raise SystemExit("bench host: the service did not start")
            await asyncio.sleep(0.02)

        def app() -> Any:  # the app's state, from the lifespan
            return server.lifespan.state["app"]

        def media() -> Any:  # the app's MediaService
            return app().media

        control = await asyncio.start_server(_control(probe, media, app), "127.0.0.1", 0)
        ready: dict[str, Any] = {
            "http_port": port,
            "control_port": control.sockets[0].getsockname()[1],
            "lead": lead,
            "receivers": codes,
            "loop": loop_name,
        }
        if cluster is not None:
            ready["node_id"] = cluster.node_id
            ready["media_nodes"] = media_nodes
        print("READY " + json.dumps(ready), flush=True)
        # Runs until the harness closes our stdin (or kills us).
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        control.close()
        server.should_exit = True
        await serving
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def run() -> None:
    parser = argparse.ArgumentParser(prog="python -m tongke_bench.host")
    parser.add_argument("--receivers", type=int, required=True)
    # Many nodes (tongke_bench/nodes.py); without --node-id the host is the single node.
    parser.add_argument("--node-id")
    parser.add_argument("--redis-url", default="")
    parser.add_argument("--redis-prefix", default="")
    parser.add_argument("--database-url", default="")
    parser.add_argument("--secret-key", default="")
    parser.add_argument("--media-nodes", default="", help="node ids, comma-separated: seeds")
    args = parser.parse_args()
    cluster = args if args.node_id else None
    try:  # the loop uvicorn's loop="auto" picks for `tongke serve`
        import uvloop
    except ImportError:
        asyncio.run(main(args.receivers, "asyncio", cluster))
    else:
        uvloop.run(main(args.receivers, "uvloop", cluster))


if __name__ == "__main__":
    run()
