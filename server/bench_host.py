"""The server process of `tongke bench`: the real tongke app, plus a probe and a control port.

Run as ``python -m server.bench_host --receivers N``. It

- seeds a bench lesson (one lead classroom, N receiving classrooms, a join link each) into a
  fresh SQLite database in a temporary data folder;
- installs a :class:`media.forward_probe.ForwardProbe` (the only difference from
  ``tongke serve``: it stamps forwarding delay at the server's socket);
- serves ``server.app.create_app`` with uvicorn on 127.0.0.1, media on loopback only, on the
  event loop ``tongke serve`` uses (uvloop when installed, as uvicorn's ``loop="auto"``);
- prints one line ``READY {json}`` with ``http_port``, ``control_port``, ``lead`` (join code),
  ``receivers`` (join codes) and ``loop``, then runs until its stdin closes.

Peers join through the real signaling protocol (media/synthetic/terminal.py). The control
port takes JSON lines, answered in order: ``{"op": "probe_watch", "ssrcs": [...]}`` (sample
these RTP streams) and ``{"op": "probe_read", "reset": bool}`` (the probe's summary). A bench
harness, not a product API.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import shutil
import socket
import sys
import tempfile
from collections.abc import Callable, Coroutine
from datetime import timedelta
from pathlib import Path
from typing import Any

import uvicorn

from media import aiortc_hooks as hooks
from media.forward_probe import ForwardProbe
from server.settings import Settings

LOOPBACK = ["127.0.0.1"]


async def seed_bench_lesson(settings: Settings, receivers: int) -> tuple[str, list[str]]:
    """A lesson starting now with ``receivers`` receiving classrooms: lead and receiver codes."""
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
        school = School(name="bench", kind=SchoolKind.CENTRAL.value, district="bench")
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
        session.add_all([lead, *rooms, teacher])
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
        lead_code = (await make_link(session, lesson, Role.LEAD, classroom_id=lead.id)).code
        codes = [
            (await make_link(session, lesson, Role.RECEIVER, classroom_id=room.id)).code
            for room in rooms
        ]
    return lead_code, codes


def _control(probe: ForwardProbe) -> Callable[[Any, Any], Coroutine[Any, Any, None]]:
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
            else:
                reply = {"error": "bad_op", "message": f"Unknown op {op!r}."}
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
        writer.close()

    return serve


async def main(receivers: int, loop_name: str) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="tongke-bench-"))
    http = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    http.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    http.bind(("127.0.0.1", 0))
    port = http.getsockname()[1]
    settings = Settings(
        host="127.0.0.1",
        port=port,
        data_dir=data_dir,
        seed_demo=False,
        media_addresses=LOOPBACK,
        secret_key=secrets.token_hex(32),
        max_peers=max(500, receivers + 10),
        log_level="warning",
    )
    try:
        lead, codes = await seed_bench_lesson(settings, receivers)
        probe = ForwardProbe()
        hooks.forward_probe = probe  # before the app creates any transport

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
        control = await asyncio.start_server(_control(probe), "127.0.0.1", 0)
        ready = {
            "http_port": port,
            "control_port": control.sockets[0].getsockname()[1],
            "lead": lead,
            "receivers": codes,
            "loop": loop_name,
        }
        print("READY " + json.dumps(ready), flush=True)
        # Runs until the harness closes our stdin (or kills us).
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        control.close()
        server.should_exit = True
        await serving
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def run() -> None:
    parser = argparse.ArgumentParser(prog="python -m server.bench_host")
    parser.add_argument("--receivers", type=int, required=True)
    args = parser.parse_args()
    try:  # the loop uvicorn's loop="auto" picks for `tongke serve`
        import uvloop
    except ImportError:
        asyncio.run(main(args.receivers, "asyncio"))
    else:
        uvloop.run(main(args.receivers, "uvloop"))


if __name__ == "__main__":
    run()
