from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def clip_cache() -> Path:
    """The synthetic clip cache (encoded once per machine, reused across runs)."""
    from media.synthetic import clip

    path = clip.default_cache_dir()
    clip.load_video(clip.MAIN, path)
    clip.load_video(clip.LOW, path)
    clip.load_video(clip.H264_MAIN, path)
    clip.load_video(clip.H264_LOW, path)
    clip.load_audio(10, path)
    return path
