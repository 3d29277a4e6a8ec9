"""SDP negotiation helpers: aiortc's negotiated codecs <-> tongke's CodecInfo/RtpParameters.

tongke forwards Opus, VP8 and H.264 (packetization-mode 1; the profiles browsers decode:
Constrained Baseline, Baseline, Main, Constrained High, High). A published m-line is
answered with exactly one of them (+ its RTX); a published H.264 m-line is answered with the
publisher's own fmtp, so the producer knows the profile-level-id it sends.

A subscriber's m-line is offered with the producer's codec (aiortc's payload types; the
consumer rewrites). H.264 is offered with the producer's exact fmtp (profile-level-id,
packetization-mode=1, level-asymmetry-allowed=1) first and Constrained Baseline after it:
a browser that decodes the producer's profile answers it; a browser that declares only
Baseline/Main (Chromium without a hardware decoder declares no High) answers the fallback
and gets the stream as it is, which software decoders play. A receiver whose answer rejects
the m-line, or keeps no H.264 with packetization-mode=1, is told (``unsupported_codec``)
and that m-line carries nothing.

A subscriber's Opus m-line is offered with RED after it (``red/48000/2`` on
``RED_PAYLOAD_TYPE``, fmtp ``<opus>/<opus>``, RFC 2198) when the caller asks (the browser
and terminal subscribers; never a relay to another node). If the answer keeps RED and
Opus, the consumer sends RED (media/red.py); an answer with Opus alone (aiortc, older
browsers, GStreamer's webrtcbin) gets plain Opus. After Opus, not first: webrtcbin answers
only the first codec of an m-line it can take, and a RED-first offer got RED alone back,
without the Opus its blocks carry; Chromium answers both in the offer's order and decodes
RED as the second. Publishers are answered Opus alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiortc import RTCRtpSender, RTCRtpTransceiver
from aiortc.rtcrtpparameters import RTCRtpCodecCapability, RTCRtpCodecParameters
from aiortc.sdp import (
    H264Level,
    H264Profile,
    MediaDescription,
    SessionDescription,
    parse_h264_profile_level_id,
)

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
    # Set by the first answer holding this m-line: the codec it keeps is in ``params``,
    # or ``refused`` says why the receiver cannot take it (nothing is sent on it then).
    answered: bool = False
    refused: str = ""


# The SSRC of a published m-line that announced none (learnt from its first packet).
UNKNOWN_SSRC = 0

SUPPORTED_MIME_TYPES = frozenset({"audio/opus", "video/vp8", "video/h264"})

# RED's payload type in offers to subscribers: Chromium's own choice, outside aiortc's
# dynamic range (96-127), so it never meets another codec's number in a BUNDLE group.
RED_PAYLOAD_TYPE = 63

# The Opus fmtp the SFU answers a publisher with (RFC 7587): ``useinbandfec=1`` tells the
# publisher's encoder that its receiver (the SFU, forwarding to subscribers that decode it)
# wants in-band FEC, which libwebrtc then scales with the loss our receiver reports carry
# (media/producer.py reports the subscribers' loss too); ``minptime=10`` as browsers offer.
OPUS_ANSWER_FMTP: dict[str, int] = {"minptime": 10, "useinbandfec": 1}


def _is_red(codec: RTCRtpCodecParameters) -> bool:
    return codec.mimeType.lower() == "audio/red"


def red_over(codec: RTCRtpCodecParameters, payload_type: int) -> bool:
    """Whether a RED codec's fmtp (``96/96``: the payload type of each block) names only
    ``payload_type``; a RED codec without fmtp is taken to carry the primary codec."""
    names = [n for key in codec.parameters for n in str(key).split("/")]
    return all(n == str(payload_type) for n in names)


def codec_info(codecs: Sequence[RTCRtpCodecParameters]) -> CodecInfo:
    """M1's CodecInfo for aiortc's negotiated list (first codec neither RTX nor RED, plus
    its RTX and a RED over it)."""
    primary = next(c for c in codecs if c.mimeType.lower() != "video/rtx" and not _is_red(c))
    rtx = next(
        (
            c
            for c in codecs
            if c.mimeType.lower() == "video/rtx" and c.parameters.get("apt") == primary.payloadType
        ),
        None,
    )
    red = next((c for c in codecs if _is_red(c) and red_over(c, primary.payloadType)), None)
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
        red_payload_type=None if red is None else red.payloadType,
    )


# H.264 profiles browsers decode in WebRTC; High 10, 4:2:2 and 4:4:4 (10-bit or chroma
# other than 4:2:0) and Extended they do not, and tongke never transcodes.
PLAYABLE_H264_PROFILES = frozenset(
    {
        H264Profile.PROFILE_CONSTRAINED_BASELINE,
        H264Profile.PROFILE_BASELINE,
        H264Profile.PROFILE_MAIN,
        H264Profile.PROFILE_CONSTRAINED_HIGH,
        H264Profile.PROFILE_HIGH,
    }
)
_PROFILE_NAMES = {
    H264Profile.PROFILE_CONSTRAINED_BASELINE: "Constrained Baseline",
    H264Profile.PROFILE_BASELINE: "Baseline",
    H264Profile.PROFILE_MAIN: "Main",
    H264Profile.PROFILE_CONSTRAINED_HIGH: "Constrained High",
    H264Profile.PROFILE_HIGH: "High",
    H264Profile.PROFILE_PREDICTIVE_HIGH_444: "High 4:4:4",
}
# profile_idc (hex) of the profiles aiortc does not parse, for messages.
_PROFILE_IDC_NAMES = {"58": "Extended", "6e": "High 10", "7a": "High 4:2:2", "f4": "High 4:4:4"}
# What aiortc (and RFC 6184 practice in WebRTC) assumes when an fmtp has no profile-level-id.
DEFAULT_PROFILE_LEVEL_ID = "42e01f"
# The H.264 every WebRTC browser decodes: offered after the producer's own profile.
FALLBACK_PROFILE_LEVEL_ID = "42e01f"


def profile_level_id(parameters: Any) -> str:
    """The lower-case profile-level-id of an H.264 fmtp (``DEFAULT_PROFILE_LEVEL_ID`` if none)."""
    return str(parameters.get("profile-level-id", DEFAULT_PROFILE_LEVEL_ID)).lower()


def h264_profile(profile_level_id: str) -> H264Profile | None:
    """aiortc's profile for a profile-level-id (None: not a profile aiortc recognizes)."""
    try:
        return parse_h264_profile_level_id(profile_level_id)[0]
    except ValueError:
        return None


def h264_playable(profile_level_id: str) -> bool:
    """Whether browsers decode this profile (tongke forwards it, never transcodes)."""
    return h264_profile(profile_level_id) in PLAYABLE_H264_PROFILES


def describe_h264(profile_level_id: str) -> str:
    """``H.264 High 4.0 (640028)``: how messages name an H.264 stream."""
    plid = profile_level_id.lower()
    try:
        profile, level = parse_h264_profile_level_id(plid)
    except ValueError:  # a profile aiortc does not know (High 10, 4:2:2 ...) or no hex
        return f"H.264 {_PROFILE_IDC_NAMES.get(plid[:2], 'profile ' + plid[:2])} ({plid})"
    name = _PROFILE_NAMES.get(profile, profile.name)
    shown = "1b" if level is H264Level.LEVEL1_B else f"{level.value // 10}.{level.value % 10}"
    return f"H.264 {name} {shown} ({plid})"


def describe_codec(codec: CodecInfo) -> str:
    """The codec as messages name it (H.264 with its profile and level)."""
    if codec.name == "H264":
        return describe_h264(profile_level_id(codec.parameters))
    return codec.name


def _forwardable(codec: RTCRtpCodecParameters) -> bool:
    mime = codec.mimeType.lower()
    if mime not in SUPPORTED_MIME_TYPES:
        return False
    if mime == "video/h264":
        return str(codec.parameters.get("packetization-mode")) == "1" and h264_playable(
            profile_level_id(codec.parameters)
        )
    return True


def choose_codecs(codecs: Sequence[RTCRtpCodecParameters]) -> list[RTCRtpCodecParameters]:
    for codec in codecs:
        if not _forwardable(codec):
            continue
        rtx = [
            c
            for c in codecs
            if c.mimeType.lower() == "video/rtx" and c.parameters.get("apt") == codec.payloadType
        ]
        return [codec, *rtx[:1]]
    return []


def _offered_names(media: MediaDescription) -> str:
    """What an m-line offers, for a refusal: ``H265, H.264 High 10 (6e0028) mode 0``."""
    names: list[str] = []
    for codec in media.rtp.codecs:
        mime = codec.mimeType.lower()
        if mime in ("video/rtx", "video/red", "video/ulpfec", "video/flexfec-03", "audio/red"):
            continue
        if mime == "video/h264":
            name = describe_h264(profile_level_id(codec.parameters))
            mode = str(codec.parameters.get("packetization-mode", "0"))
            name += "" if mode == "1" else f" packetization-mode {mode}"
        else:
            name = codec.mimeType.split("/")[-1]
        if name not in names:
            names.append(name)
    return ", ".join(names) or "no codec"


@dataclass(frozen=True, slots=True)
class CodecOffer:
    """What a subscriber's m-line offers for one producer: the aiortc capabilities for
    setCodecPreferences and, for H.264, the fmtp the producer's own codec is offered with."""

    capabilities: list[RTCRtpCodecCapability]
    fmtp: dict[str, str] | None = None
    profile: H264Profile | None = None

    def applies(self, codec: RTCRtpCodecParameters) -> bool:
        """Whether ``codec`` (one of aiortc's) is the producer's H.264 profile."""
        return (
            self.profile is not None
            and codec.mimeType.lower() == "video/h264"
            and h264_profile(profile_level_id(codec.parameters)) is self.profile
        )


def capabilities_for(codec: CodecInfo) -> CodecOffer:
    """The offer of ``codec`` to a subscriber (and RTX for video)."""
    caps = RTCRtpSender.getCapabilities(codec.kind).codecs
    same = [c for c in caps if c.mimeType.lower() == codec.mime_type.lower()]
    offer = CodecOffer(same[:1])
    if codec.name == "H264":
        plid = profile_level_id(codec.parameters)
        profile = h264_profile(plid)
        if profile not in PLAYABLE_H264_PROFILES:
            raise NegotiationError(
                "unsupported_codec",
                f"{describe_h264(plid)} cannot be offered to subscribers: browsers do not "
                "decode that profile.",
            )
        exact = [c for c in same if h264_profile(profile_level_id(c.parameters)) is profile]
        fallback = [c for c in same if profile_level_id(c.parameters) == FALLBACK_PROFILE_LEVEL_ID]
        chosen = exact[:1] + [c for c in fallback[:1] if c not in exact[:1]]
        fmtp = {
            "level-asymmetry-allowed": "1",
            "packetization-mode": "1",
            "profile-level-id": plid,
        }
        offer = CodecOffer(chosen, fmtp if exact else None, profile if exact else None)
    if not offer.capabilities:
        raise NegotiationError(
            "unsupported_codec", f"Codec {codec.mime_type} cannot be offered to subscribers."
        )
    if codec.kind == "video":
        offer.capabilities.extend(cap for cap in caps if cap.mimeType.lower() == "video/rtx")
    return offer


def check_answer(
    description: SessionDescription, tracks: Sequence[OutgoingTrack]
) -> dict[str, list[RTCRtpCodecParameters] | str]:
    """Per m-line a subscriber's answer decides for the first time (active ``tracks`` not
    yet ``answered``): the codecs to send with (primary first, its RTX, RED over it when
    the answer keeps both) or, when the receiver cannot take the producer's codec, a
    sentence saying why.

    Read before aiortc applies the answer, which it cannot do for a rejected m-line."""
    by_mid = {str(m.rtp.muxId): m for m in description.media}
    decided: dict[str, list[RTCRtpCodecParameters] | str] = {}
    for track in tracks:
        if not track.active or track.answered or track.mid is None or track.params is None:
            continue
        wanted = describe_codec(track.codec)
        media = by_mid.get(track.mid)
        if media is None or media.port == 0:
            decided[track.mid] = (
                f"your answer rejected m-line {track.mid} (port 0): this receiver cannot "
                f"decode {wanted}"
            )
            continue
        offered = hooks.negotiated_codecs(track.transceiver)
        offered_pts = {c.payloadType for c in offered if c.mimeType.lower() != "video/rtx"}
        kept = [c for c in media.rtp.codecs if c.payloadType in offered_pts]
        # RED wherever the answer lists it: an answerer takes any format it answers (RFC 3264
        # 6.1), and Chromium answers RED after Opus as offered and decodes it so.
        answered_red = next((c for c in kept if _is_red(c)), None)
        kept = [c for c in kept if not _is_red(c)]
        if track.codec.name == "H264":
            kept = [c for c in kept if str(c.parameters.get("packetization-mode")) == "1"]
        if not kept:
            decided[track.mid] = (
                f"your answer to m-line {track.mid} keeps none of the offered codecs "
                f"({wanted}; packetization-mode=1) but {_offered_names(media)}"
            )
            continue
        # The producer's own profile if the receiver kept it, else the first it kept.
        primary = next((c for c in kept if _same_profile(c, track.codec)), kept[0])
        ours = next(c for c in offered if c.payloadType == primary.payloadType)
        rtx = [
            c
            for c in offered
            if c.mimeType.lower() == "video/rtx"
            and c.parameters.get("apt") == ours.payloadType
            and any(a.payloadType == c.payloadType for a in media.rtp.codecs)
        ]
        red = [
            c
            for c in offered
            if answered_red is not None
            and _is_red(c)
            and c.payloadType == answered_red.payloadType
            and red_over(c, ours.payloadType)
            and red_over(answered_red, ours.payloadType)
        ]
        decided[track.mid] = [ours, *rtx[:1], *red[:1]]
    return decided


def _same_profile(answered: RTCRtpCodecParameters, codec: CodecInfo) -> bool:
    if codec.name != "H264":
        return True
    want = h264_profile(profile_level_id(codec.parameters))
    return h264_profile(profile_level_id(answered.parameters)) is want


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
                f"m-line {media.rtp.muxId} offers {_offered_names(media)}: tongke forwards "
                "only what browsers decode, Opus, VP8 and H.264 with packetization-mode=1 "
                "(Baseline, Main or High), and transcodes no video (H.265, VP9 and AV1 are "
                "refused).",
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
        elif chosen[0].mimeType.lower() == "video/h264":
            # Answer the publisher's own profile-level-id (aiortc would answer its 3.1 level
            # of that profile): the producer then knows what it forwards, and subscribers
            # are offered exactly that.
            offered = next(c for c in media.rtp.codecs if c.payloadType == chosen[0].payloadType)
            chosen[0].parameters = {
                "level-asymmetry-allowed": "1",
                "packetization-mode": "1",
                "profile-level-id": profile_level_id(offered.parameters),
            }
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
