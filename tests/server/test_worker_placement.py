"""Which media worker serves a new peer (server/workers/placement.py)."""

from __future__ import annotations

from collections import Counter

from server.workers.placement import choose_worker, worker_picker
from signaling.grants import Role
from signaling.media_port import PeerInfo


def test_a_new_lesson_goes_to_the_least_loaded_worker() -> None:
    served = {"w1.1": Counter(a=5), "w2.1": Counter(b=2)}
    assert choose_worker("c", ["w1.1", "w2.1"], served, per_lesson=10) == "w2.1"


def test_a_lesson_stays_on_its_worker_until_it_carries_per_lesson_peers() -> None:
    served = {"w1.1": Counter(a=3), "w2.1": Counter()}
    assert choose_worker("a", ["w1.1", "w2.1"], served, per_lesson=4) == "w1.1"
    served["w1.1"]["a"] = 4
    assert choose_worker("a", ["w1.1", "w2.1"], served, per_lesson=4) == "w2.1"


def test_a_lesson_on_every_worker_at_its_limit_goes_to_the_least_loaded() -> None:
    served = {"w1.1": Counter(a=4, b=1), "w2.1": Counter(a=4)}
    assert choose_worker("a", ["w1.1", "w2.1"], served, per_lesson=4) == "w2.1"


def test_three_hundred_classrooms_split_evenly_over_two_workers() -> None:
    served: dict[str, Counter[str]] = {"w1.1": Counter(), "w2.1": Counter()}
    for _ in range(300):
        node = choose_worker("big", ["w1.1", "w2.1"], served, per_lesson=150)
        assert node is not None
        served[node]["big"] += 1
    assert served == {"w1.1": Counter(big=150), "w2.1": Counter(big=150)}


def test_a_dead_worker_is_never_chosen_and_none_alive_means_the_service() -> None:
    served = {"w1.1": Counter(), "w2.1": Counter(a=1)}
    assert choose_worker("a", ["w2.1"], served, per_lesson=10) == "w2.1"
    assert choose_worker("a", [], served, per_lesson=10) is None


async def test_the_lead_stays_in_the_service_process() -> None:
    pick = worker_picker(lambda: ["w1.1"], lambda: {}, 10)
    assert await pick(PeerInfo("l", "p1", Role.LEAD, None)) is None
    assert await pick(PeerInfo("l", "p2", Role.RECEIVER, "c1")) == "w1.1"
    assert await pick(PeerInfo("l", "p3", Role.PATROL, None)) == "w1.1"
