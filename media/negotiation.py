"""SDP negotiation helpers: aiortc's negotiated codecs <-> tongke's CodecInfo/RtpParameters.

tongke forwards Opus, VP8 and H.264 (packetization-mode 1). A published m-line is answered
with exactly one of them (+ its RTX); a subscriber's m-line is offered with the producer's
codec only (aiortc's payload types; the consumer rewrites).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiortc import RTCRtpSender, RTCRtpTransceiver
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.sdp import SessionDescription

from media import aiortc_hooks as hooks
from media.codecs import CodecInfo, RtpParameters


class NegotiationError(Exception):
    """A negotiation failure with a stable ``code`` (``bad_sdp``, ``bad_offer``,
    ``bad_answer``, ``unsupported_codec``, ``transport_closed``) and a human message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class IncomingTrack:
    """One m-line a publisher offered: its MID, kind and the producer-side RTP parameters."""

    mid: str
    kind: str
    params: RtpParameters


@dataclass(slots=True)
class OutgoingTrack:
    """One sendonly m-line of a receive transport; ``params`` are final once the answer is in."""

    kind: str
    codec: CodecInfo
    transceiver: RTCRtpTransceiver
    mid: str | None = None
    params: RtpParameters | None = None
    active: bool = True


# The SSRC of a published m-line that announced none (learnt from its first packet).
UNKNOWN_SSRC = 0

SUPPORTED_MIME_TYPES = frozenset({"audio/opus", "video/vp8", "video/h264"})

# The Opus fmtp the SFU answers a publisher with (RFC 7587): ``useinbandfec=1`` tells the
# publisher's encoder that its receiver (the SFU, forwarding to subscribers that decode it)
# wants in-band FEC, which libwebrtc then scales with the loss our receiver reports carry
# (media/producer.py reports the subscribers' loss too); ``minptime=10`` as browsers offer.
OPUS_ANSWER_FMTP: dict[str, int] = {"minptime": 10, "useinbandfec": 1}


def codec_info(codecs: Sequence[RTCRtpCodecParameters]) -> CodecInfo:
    """M1's CodecInfo for aiortc's negotiated list (first non-RTX codec, plus its RTX)."""
    primary = next(c for c in codecs if c.mimeType.lower() != "video/rtx")
    rtx = next(
        (
            c
            for c in codecs
            if c.mimeType.lower() == "video/rtx" and c.parameters.get("apt") == primary.payloadType
        ),
        None,
    )
    feedback = tuple(
        f"{fb.type} {fb.parameter}" if fb.parameter else fb.type for fb in primary.rtcpFeedback
    )
    return CodecInfo(
        mime_type=primary.mimeType,
        clock_rate=primary.clockRate,
        payload_type=primary.payloadType,
        channels=primary.channels,
        rtx_payload_type=None if rtx is None else rtx.payloadType,
        parameters={k: v for k, v in primary.parameters.items() if v is not None},
        rtcp_feedback=feedback,
    )


def choose_codecs(codecs: Sequence[RTCRtpCodecParameters]) -> list[RTCRtpCodecParameters]:
    for codec in codecs:
        mime = codec.mimeType.lower()
        if mime not in SUPPORTED_MIME_TYPES:
            continue
        if mime == "video/h264" and str(codec.parameters.get("packetization-mode")) != "1":
            continue
        rtx = [
            c
            for c in codecs
            if c.mimeType.lower() == "video/rtx" and c.parameters.get("apt") == codec.payloadType
        ]
        return [codec, *rtx[:1]]
    return []


def capabilities_for(codec: CodecInfo) -> list[Any]:
    """aiortc codec capabilities matching ``codec`` (and RTX for video) for setCodecPreferences."""
    caps = RTCRtpSender.getCapabilities(codec.kind).codecs
    same = [c for c in caps if c.mimeType.lower() == codec.mime_type.lower()]
    if codec.name == "H264":
        # Match profile_idc + constraints (first 4 hex digits): constrained baseline is 42e0.
        want = str(codec.parameters.get("profile-level-id", "42e01f")).lower()[:4]
        exact = [
            c for c in same if str(c.parameters.get("profile-level-id", "")).lower()[:4] == want
        ]
        same = exact or same
    chosen = same[:1]
    if not chosen:
        raise NegotiationError(
            "unsupported_codec", f"Codec {codec.mime_type} cannot be offered to subscribers."
        )
    if codec.kind == "video":
        chosen += [cap for cap in caps if cap.mimeType.lower() == "video/rtx"]
    return chosen


def check_publisher_offer(description: SessionDescription, *, allow_inactive: bool = False) -> None:
    """Refuse what tongke cannot forward BEFORE aiortc applies the offer (no rollback there).

    ``allow_inactive``: an m-line may be inactive (a cascade relay's re-offer ends a relayed
    track that way, media/cascade.py); it carries nothing and is not checked further.
    """
    if not description.media:
        raise NegotiationError("bad_offer", "The offer has no m-line.")
    for media in description.media:
        if media.kind not in ("audio", "video"):
            raise NegotiationError("bad_offer", f"Media kind {media.kind!r} is not supported.")
        if allow_inactive and media.direction == "inactive":
            continue
        if media.direction not in ("sendonly", "sendrecv"):
            raise NegotiationError(
                "bad_offer",
                f"m-line {media.rtp.muxId} must be sendonly, not {media.direction}.",
            )
        # Checked before aiortc applies the offer: aiortc cannot roll an offer back.
        if not choose_codecs(media.rtp.codecs):
            raise NegotiationError(
                "unsupported_codec",
                f"m-line {media.rtp.muxId} offers no codec tongke forwards "
                "(Opus, VP8, H.264 packetization-mode 1).",
            )


def incoming_tracks(
    description: SessionDescription, transceivers: Sequence[RTCRtpTransceiver]
) -> list[IncomingTrack]:
    """After aiortc applied the offer: one IncomingTrack per m-line, answered with one codec."""
    tracks: list[IncomingTrack] = []
    by_mid = {t.mid: t for t in transceivers}
    for media in description.media:
        mid = str(media.rtp.muxId)
        transceiver = by_mid.get(mid)
        if transceiver is None:
            raise NegotiationError("bad_offer", f"m-line {mid} was not accepted.")
        chosen = choose_codecs(hooks.negotiated_codecs(transceiver))
        if not chosen:
            raise NegotiationError(
                "unsupported_codec",
                f"m-line {mid} offers no codec tongke forwards (Opus, VP8, H.264 mode 1).",
            )
        if chosen[0].mimeType.lower() == "audio/opus":
            chosen[0].parameters = {**chosen[0].parameters, **OPUS_ANSWER_FMTP}
        hooks.keep_codecs(transceiver, chosen)
        # No a=ssrc (allowed; unified-plan stacks may omit it): SSRC 0 until the transport
        # binds the m-line's first packet to it by MID or payload type.
        ssrcs, rtx_pairs = hooks.media_ssrcs(media)
        ssrc = ssrcs[0] if ssrcs else UNKNOWN_SSRC
        rtx_ssrc = next((r for r, m in rtx_pairs.items() if m == ssrc), None)
        extensions = {e.uri: e.id for e in hooks.negotiated_header_extensions(transceiver)}
        params = RtpParameters(
            codec=codec_info(chosen),
            ssrc=ssrc,
            rtx_ssrc=rtx_ssrc,
            header_extensions=extensions,
            mid=mid,
        )
        tracks.append(IncomingTrack(mid=mid, kind=media.kind, params=params))
    return tracks
