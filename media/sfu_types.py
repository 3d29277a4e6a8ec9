"""Plain values the media service takes and returns (no aiortc, no signaling types)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from aiortc import RTCIceServer
from aiortc.rtcicetransport import parse_stun_turn_uri

from media.codecs import CodecInfo

SOURCES = {"camera": "video", "board": "video", "screen": "video", "mic": "audio"}
LAYERS = ("main", "low")


class MediaError(Exception):
    """A refused media request: stable ``code`` plus a human ``message`` (nothing changed)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class TrackSpec:
    """What the publisher says one of its m-lines carries."""

    mid: str
    source: str  # camera | board | screen | mic
    layer: str = "main"  # main | low


@dataclass(frozen=True, slots=True)
class ProducerInfo:
    id: str
    lesson_id: str
    peer_id: str
    kind: str
    source: str
    layer: str
    mid: str
    mime_type: str


@dataclass(frozen=True, slots=True)
class ConsumerInfo:
    id: str
    peer_id: str
    producer_id: str  # the main (or only) producer it follows
    kind: str
    source: str
    publisher_peer_id: str
    mid: str


@dataclass(frozen=True, slots=True)
class PublishResult:
    sdp: str
    producers: tuple[ProducerInfo, ...]


@dataclass(frozen=True, slots=True)
class LocalTrack:
    """A track this process feeds itself (an RTSP pull): its codec and SSRC; ``rtcp_sink``
    hears the producer's keyframe requests and reports."""

    source: str
    codec: CodecInfo
    ssrc: int
    rtcp_sink: Any


@dataclass(frozen=True, slots=True)
class SubscribeResult:
    sdp: str  # an offer for the peer's receive transport
    consumers: tuple[ConsumerInfo, ...]  # everything the peer receives after answering


class MediaListener(Protocol):
    """Events for the signaling layer (called synchronously; errors are logged)."""

    def producer_added(self, info: ProducerInfo) -> None: ...
    def producer_removed(self, info: ProducerInfo) -> None: ...
    def active_speaker(self, lesson_id: str, peer_id: str | None) -> None: ...
    def peer_quality(self, lesson_id: str, peer_id: str, quality: Any) -> None: ...
    def transport_state(self, peer_id: str, direction: str, state: str) -> None: ...
    def renegotiation_needed(self, peer_id: str) -> None: ...
    # Optional (media/cascade.py): a relayed producer closed; call ``relay_resync``.
    def relay_renegotiation_needed(self, relay_id: str) -> None: ...
    # Optional: a publisher's send transport failed (``reason`` is a sentence); its
    # producers are closed and were never offered if it never connected.
    def publish_failed(self, lesson_id: str, peer_id: str, reason: str) -> None: ...
    # Optional: a subscriber's answer refused an m-line (it cannot decode the producer's
    # codec); ``reason`` is a sentence. That m-line carries nothing; the others play.
    def subscribe_refused(self, lesson_id: str, peer_id: str, reason: str) -> None: ...


class NullMediaListener:
    def producer_added(self, info: ProducerInfo) -> None:
        return None

    def producer_removed(self, info: ProducerInfo) -> None:
        return None

    def active_speaker(self, lesson_id: str, peer_id: str | None) -> None:
        return None

    def peer_quality(self, lesson_id: str, peer_id: str, quality: Any) -> None:
        return None

    def transport_state(self, peer_id: str, direction: str, state: str) -> None:
        return None

    def renegotiation_needed(self, peer_id: str) -> None:
        return None

    def relay_renegotiation_needed(self, relay_id: str) -> None:
        return None


def _server_from_url(url: str) -> RTCIceServer:
    # "turn:user:pass@host:3478?transport=udp" (tongke's settings form) -> url + credentials.
    scheme, sep, rest = url.partition(":")
    if not sep:
        raise MediaError("bad_ice_server", f"ICE server {url!r} has no scheme (stun:, turn:).")
    if "@" in rest:
        credentials, _, address = rest.rpartition("@")
        username, _, password = credentials.partition(":")
        return RTCIceServer(urls=f"{scheme}:{address}", username=username, credential=password)
    return RTCIceServer(urls=url)


def ice_servers_from(
    servers: Sequence[str | Mapping[str, Any] | RTCIceServer],
) -> list[RTCIceServer]:
    """Accept URLs (``stun:host:3478``, ``turn:user:pass@host:3478?transport=udp``), dicts as
    in the browser API (``{"urls": ...,
    "username": ..., "credential": ...}``) or RTCIceServer objects."""
    out: list[RTCIceServer] = []
    for server in servers:
        if isinstance(server, RTCIceServer):
            out.append(server)
        elif isinstance(server, str):
            out.append(_server_from_url(server))
        else:
            out.append(
                RTCIceServer(
                    urls=server["urls"],
                    username=server.get("username"),
                    credential=server.get("credential"),
                )
            )
    for server in out:
        urls = server.urls if isinstance(server.urls, list) else [server.urls]
        for url in urls:
            try:
                parse_stun_turn_uri(url)
            except ValueError as exc:
                raise MediaError(
                    "bad_ice_server", f"ICE server {url!r} is invalid: {exc}."
                ) from exc
    return out
