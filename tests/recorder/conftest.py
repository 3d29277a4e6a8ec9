"""Clips for the recorder tests, encoded once per session (small: 320x240, 25 fps)."""

from __future__ import annotations

import pytest
from recorder_media import GREEN, MAGENTA, EncodedFrame, encode_opus, encode_video


@pytest.fixture(scope="session")
def vp8_clip() -> list[EncodedFrame]:
    """10 s of the moving-box picture, a keyframe every second."""
    return encode_video("vp8", 10.0)


@pytest.fixture(scope="session")
def h264_clip() -> list[EncodedFrame]:
    return encode_video("h264", 4.0)


@pytest.fixture(scope="session")
def opus_clip() -> list[EncodedFrame]:
    return encode_opus(10.0)


@pytest.fixture(scope="session")
def green_clip() -> list[EncodedFrame]:
    return encode_video("vp8", 10.0, color=GREEN)


@pytest.fixture(scope="session")
def magenta_clip() -> list[EncodedFrame]:
    return encode_video("vp8", 10.0, color=MAGENTA)
