"""The test-only fault injector: off by default, deterministic when on."""

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
    with pytest.raises(ValueError, match=r"drop_rate must be in \[0, 1\), got 1.5."):
        FaultInjector(drop_rate=1.5)
    with pytest.raises(ValueError, match=r"delay_ms must not be negative, got -1\."):
        FaultInjector(delay_ms=-1)
