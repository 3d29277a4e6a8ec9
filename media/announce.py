"""AnnounceGate: a publisher's new producers reach ``producer_added`` only once they can flow.

A producer is announced (and so offered to receivers) when its publisher's send transport
is connected (ICE and DTLS done, SRTP keys exist) and its SSRC is known (an m-line without
``a=ssrc`` learns it from its first packet). A transport that fails before that never
announces them: receivers are never offered a stream that cannot arrive.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from media.sfu_types import ProducerInfo
from media.transport import TransportState, WebRtcTransport


class AnnounceGate:
    def __init__(self, announce: Callable[[ProducerInfo], None]) -> None:
        self._announce = announce
        self._held: dict[str, tuple[ProducerInfo, Any, WebRtcTransport]] = {}

    def hold(self, transport: WebRtcTransport, created: Sequence[tuple[ProducerInfo, Any]]) -> None:
        """Announce ``created`` (producers of ``transport``) as soon as each can flow."""
        for info, producer in created:
            self._held[info.id] = (info, producer, transport)
            if not producer.ssrc:
                producer.events.once("ssrc_bound", lambda _ssrc: self.release(transport))
        transport.when_connected(lambda: self.release(transport))
        self.release(transport)

    def release(self, transport: WebRtcTransport) -> None:
        """Announce every held producer of ``transport`` that can flow now, in order."""
        if transport.state is not TransportState.CONNECTED:
            return
        for producer_id, (info, producer, owner) in list(self._held.items()):
            if owner is transport and producer.ssrc and not producer.closed:
                del self._held[producer_id]
                self._announce(info)

    def forget(self, producer_id: str) -> bool:
        """The producer closes: True when it was never announced (so nobody must hear of
        its removal either)."""
        return self._held.pop(producer_id, None) is not None
