"""A large lesson (名师课堂): 300 receiving classrooms join one lesson within a minute through
the real service in its own process, every join is answered, and the lead sees all of them.

Signaling-only terminals (no media): what is measured is that the room, the lead's queue and
the roster hold at this size. Media at this size is a benchmark (docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from test_join_load import _close_all, _join, _seen_by, _service

from media.synthetic.terminal import SyntheticTerminal
from server.settings import Settings
from tongke_bench.host import seed_bench_lesson

CLASSROOMS = 300
ARRIVAL_S = 30.0  # the joins start spread over this long (terminals switched on at 8:00)
ANSWER_WITHIN_S = 60.0


async def test_three_hundred_classrooms_join_within_a_minute_and_all_are_answered(
    tmp_path: Path,
) -> None:
    settings = Settings(
        data_dir=tmp_path,
        seed_demo=False,
        secret_key="test-secret-0123456789abcdef0123456789abcdef",
        media_addresses=["127.0.0.1"],
    )
    codes = await seed_bench_lesson(settings, CLASSROOMS)
    async with _service(settings) as (base, _pid):
        lead = SyntheticTerminal(base, codes.lead, publish=False)
        terminals = [
            SyntheticTerminal(base, code, publish=False, connect_timeout_s=ANSWER_WITHIN_S)
            for code in codes.receivers
        ]
        try:
            await lead.connect()
            assert (await lead.request({"type": "start_lesson"}))["type"] == "ok"

            async def arrive(n: int, terminal: SyntheticTerminal) -> tuple[str, float]:
                await asyncio.sleep(ARRIVAL_S * n / CLASSROOMS)
                return await _join(terminal)

            started = time.monotonic()
            outcomes = await asyncio.gather(*(arrive(n, t) for n, t in enumerate(terminals)))
            took = max(at for _, at in outcomes) - started
            print(f"\n{CLASSROOMS} joins answered within {took:.1f} s")
            assert [o for o, _ in outcomes] == ["joined"] * CLASSROOMS
            assert took < ANSWER_WITHIN_S + ARRIVAL_S

            # The lead's roster holds every classroom; its connection survived the burst.
            everyone = {t.joined["peer_id"] for t in terminals}
            deadline = time.monotonic() + 20
            while _seen_by(lead) != everyone:
                assert time.monotonic() < deadline, len(_seen_by(lead))
                await asyncio.sleep(0.2)
            # Hands scale: a third of the classrooms raise theirs at once, all queued in order.
            raisers = terminals[::3]
            replies = await asyncio.gather(*(t.request({"type": "raise_hand"}) for t in raisers))
            assert {r["type"] for r in replies} == {"ok"}
            assert (await lead.request({"type": "ping"}))["type"] == "pong"
            raised = [m for _, m in lead.events if m["type"] == "hand_raised"]
            assert len(raised) == len(raisers)
            assert set(raised[-1]["hands"]) == {t.joined["you"]["classroom_id"] for t in raisers}
        finally:
            await _close_all([*terminals, lead])
