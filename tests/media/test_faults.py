"""The fault injector (tests, drills): off by default, deterministic when on."""

import asyncio

import pytest

from media.faults import NO_FAULTS, FaultInjector


def test_no_faults_returns_the_send_function_itself() -> None:
    def send(data: bytes) -> None:
        return None

    assert NO_FAULTS.wrap(send) is send


def test_fault_injector_drops_about_the_asked_fraction_deterministically() -> None:
    sent: list[bytes] = []
    faults = FaultInjector(drop_rate=0.05, seed=7)
    send = faults.wrap(sent.append)
    for i in range(2000):
        send(i.to_bytes(2, "big"))
    assert 60 <= faults.dropped <= 140
    assert faults.passed == len(sent) == 2000 - faults.dropped
    again = FaultInjector(drop_rate=0.05, seed=7)
    replay: list[bytes] = []
    send2 = again.wrap(replay.append)
    for i in range(2000):
        send2(i.to_bytes(2, "big"))
    assert replay == sent


async def test_fault_injector_delays_packets() -> None:
    sent: list[bytes] = []
    send = FaultInjector(delay_ms=30).wrap(sent.append)
    send(b"x")
    assert sent == []
    await asyncio.sleep(0.06)
    assert sent == [b"x"]


def test_fault_injector_rejects_bad_settings_with_clear_errors() -> None:
    with pytest.raises(ValueError, match=r"drop_rate must be in \[0, 1\], got 1.5."):
        FaultInjector(drop_rate=1.5)
    with pytest.raises(ValueError, match=r"delay_ms must not be negative, got -1\."):
        FaultInjector(delay_ms=-1)
    with pytest.raises(ValueError, match=r"reorder_rate must be in \[0, 1\), got 1"):
        FaultInjector(reorder_rate=1.0)
    with pytest.raises(ValueError, match=r"rate_kbps must be at least 8, got 1\."):
        FaultInjector(rate_kbps=1)
    with pytest.raises(ValueError, match=r"queue_ms must be in \[10, 5000\], got 1\."):
        FaultInjector(rate_kbps=100, queue_ms=1)


def test_a_dead_link_drops_everything() -> None:
    sent: list[bytes] = []
    faults = FaultInjector(drop_rate=1.0)
    send = faults.wrap(sent.append)
    for i in range(100):
        send(bytes([i]))
    assert sent == [] and faults.dropped == 100


async def test_reordering_sends_a_held_packet_after_the_next_one() -> None:
    sent: list[int] = []
    faults = FaultInjector(reorder_rate=0.3, seed=2)
    send = faults.wrap(lambda data: sent.append(data[0]))
    for i in range(200):
        send(bytes([i]))
    await asyncio.sleep(0.05)  # a packet held last goes out on its own
    assert sorted(sent) == list(range(200))
    assert sent != list(range(200)) and faults.reordered > 20
    swaps = [i for i in range(199) if sent[i] > sent[i + 1]]
    assert all(sent[i] == sent[i + 1] + 1 for i in swaps)  # each held one moves one place


async def test_jitter_spreads_delays_and_reorders() -> None:
    arrivals: list[tuple[int, float]] = []
    loop = asyncio.get_running_loop()
    start = loop.time()
    send = FaultInjector(delay_ms=20, jitter_ms=40, seed=3).wrap(
        lambda data: arrivals.append((data[0], loop.time() - start))
    )
    for i in range(50):
        send(bytes([i]))
    await asyncio.sleep(0.12)
    assert len(arrivals) == 50
    delays = [t for _, t in arrivals]
    assert min(delays) >= 0.019 and max(delays) <= 0.1
    assert [n for n, _ in arrivals] != list(range(50))


async def test_a_capped_link_delivers_its_rate_and_drops_what_its_queue_cannot_hold() -> None:
    sent: list[bytes] = []
    # 80 kbit/s = 10 kB/s; the queue holds 500 ms = 5 kB.
    faults = FaultInjector(rate_kbps=80, queue_ms=500)
    send = faults.wrap(sent.append)
    for _ in range(20):
        send(bytes(1000))
    stats = faults.stats()
    assert len(sent) == 3  # the burst allowance (3000 bytes) goes at once
    assert stats["cap_dropped"] == 12  # 3 sent + 5 queued; the rest does not fit
    await asyncio.sleep(0.45)
    assert 6 <= len(sent) <= 8  # the queue drains at 10 kB/s
    await asyncio.sleep(0.2)
    assert len(sent) == 8
    assert faults.stats()["cap_max_queued_bytes"] == 5000


async def test_priority_packets_leave_first_and_push_out_queued_video() -> None:
    sent: list[bytes] = []
    faults = FaultInjector(rate_kbps=80, queue_ms=500)
    video = faults.wrap(sent.append, priority=lambda data: data[0] == 1)
    rtcp = faults.wrap(sent.append, priority=True)
    for _ in range(8):
        video(bytes([0]) * 1000)  # 3 go, 5 fill the queue
    for _ in range(3):
        video(bytes([1]) * 200)  # audio-like: pushes out one queued video packet
    rtcp(bytes([2]) * 100)
    stats = faults.stats()
    assert stats["cap_pushed_out"] == 1 and stats["cap_dropped"] == 0
    await asyncio.sleep(0.15)
    after_burst = sent[3:]
    assert [p[0] for p in after_burst[:4]] == [1, 1, 1, 2]  # priority first, in order
    faults.close()
    await asyncio.sleep(0.5)
    assert len(sent) == 3 + 4  # close() forgets what was queued


def test_injector_settings_and_stats_describe_it() -> None:
    faults = FaultInjector(0.1, 30, 4, jitter_ms=5, reorder_rate=0.2, rate_kbps=300)
    assert faults.settings() == {
        "drop_rate": 0.1,
        "delay_ms": 30,
        "jitter_ms": 5,
        "reorder_rate": 0.2,
        "rate_kbps": 300,
        "queue_ms": 200.0,
        "seed": 4,
    }
    assert set(faults.stats()) == {
        "passed",
        "dropped",
        "reordered",
        "cap_dropped",
        "cap_pushed_out",
        "cap_max_queued_bytes",
    }
    assert NO_FAULTS.stats() == {} and NO_FAULTS.active is False and faults.active
