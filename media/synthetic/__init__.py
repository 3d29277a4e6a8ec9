"""Synthetic peers for tests, demo and bench: a pre-encoded clip, a publisher and a receiver.

The clip is encoded once into a cache (``$TONGKE_CACHE_DIR/clips`` or ``~/.cache/tongke``)
and afterwards only packetized, so synthetic peers cost almost no CPU.
"""

from media.synthetic.peers import (
    ClipAudioTrack,
    ClipVideoTrack,
    PublishedTrack,
    StreamCounters,
    SyntheticPublisher,
    SyntheticReceiver,
)

__all__ = [
    "ClipAudioTrack",
    "ClipVideoTrack",
    "PublishedTrack",
    "StreamCounters",
    "SyntheticPublisher",
    "SyntheticReceiver",
]
