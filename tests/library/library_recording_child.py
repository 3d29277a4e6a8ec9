"""A service stand-in for the SIGKILL test: records a synthetic lead until it is killed.

Usage: library_recording_child.py DATA_DIR LESSON_ID LEAD_CLASSROOM_ID
Prints "recording <unix time>" once the first frames are on disk, then waits forever.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from media.sfu import MediaService, TrackSpec
from media.synthetic import SyntheticPublisher
from recorder.jobs import RenditionRunner
from server.db import open_database
from server.recording import RecordingController
from server.settings import Settings


async def main(data_dir: Path, lesson: str, lead: str) -> None:
    settings = Settings(data_dir=data_dir, seed_demo=False, secret_key="x" * 40)
    async with open_database(settings) as db:
        media = MediaService(host_addresses=["127.0.0.1"])
        controller = RecordingController(media, db, settings, RenditionRunner())
        publisher = SyntheticPublisher(host_addresses=["127.0.0.1"], layers=("main",))
        offer = await publisher.create_offer()
        specs = [TrackSpec(t.mid, t.source, t.layer) for t in publisher.tracks]
        result = await media.publish(lesson, "lead-peer", offer, specs)
        await publisher.accept_answer(result.sdp)
        controller.set_peer_classroom(lesson, "lead-peer", lead, "lead")
        await controller.start(lesson)
        root = settings.effective_recording_root / lesson
        for _ in range(1200):  # up to a minute for the first frames
            if any(p.stat().st_size > 0 for p in root.glob("*/*.mkv")):
                break
            await asyncio.sleep(0.05)
        print("recording", time.time(), flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2], sys.argv[3]))
