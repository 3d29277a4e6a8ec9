"""Which media worker serves a new peer: by load, a big lesson spread over workers.

The lead's media stays in the service's process, the lesson's home: every worker that
serves the lesson's classrooms gets the lead's streams once, over a relay, whatever the
number of classrooms there. Every other peer goes to a live worker:

1. a worker already serving this lesson with fewer than ``per_lesson`` of its peers (the
   least loaded of them): a lesson stays on as few workers as it can, so its streams are
   relayed as few times as they can;
2. else the least loaded live worker not yet serving the lesson (the lesson spreads);
3. else (every live worker carries ``per_lesson`` of it) the least loaded live worker.

Load is the number of peers a worker serves, counted by the service as it places them, so
300 classrooms joining within a second spread exactly; no worker alive: the service's own
process serves the peer (the lesson goes on while workers restart).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from server.cluster.media_port import Picker
from signaling.grants import Role
from signaling.media_port import PeerInfo


def choose_worker(
    lesson_id: str, live: list[str], served: dict[str, Counter[str]], per_lesson: int
) -> str | None:
    """The rules above, as a pure function of what each live worker serves now."""
    if not live:
        return None

    def load(node: str) -> tuple[int, str]:
        return (sum(served.get(node, Counter()).values()), node)

    def of_lesson(node: str) -> int:
        return served.get(node, Counter())[lesson_id]

    holding = [n for n in live if 0 < of_lesson(n) < per_lesson]
    if holding:
        return min(holding, key=load)
    fresh = [n for n in live if of_lesson(n) == 0]
    return min(fresh or live, key=load)


def worker_picker(
    live: Callable[[], list[str]],
    served: Callable[[], dict[str, Counter[str]]],
    per_lesson: int,
) -> Picker:
    async def pick(peer: PeerInfo) -> str | None:
        # No await before the choice is made: the port records it before the next join runs.
        if peer.role is Role.LEAD:
            return None
        return choose_worker(peer.lesson_id, live(), served(), per_lesson)

    return pick
