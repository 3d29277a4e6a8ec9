"""What tongke needs of a peer's SDP, and the standard lines aiortc's parser cannot read.

tongke carries a peer's media on one ICE/DTLS transport per direction: every m-line must be
in one BUNDLE group (RFC 9143) and multiplex RTCP with RTP (rtcp-mux, RFC 5761). Without
them the peer would send media to transports that do not exist; refusing at once with the
missing feature named is better than an ``ok`` and silence.

aiortc 1.16's parser splits ``a=extmap`` into exactly two fields, so a valid line with
extension attributes (RFC 8285: ``a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level
vad=on``) fails with "too many values to unpack". :func:`normalize` drops those attributes:
tongke forwards header extensions as they are and needs none of them.

A subscriber's answer may reject an m-line (port 0, outside the BUNDLE group: Chromium
does so for a codec it cannot decode, RFC 8843 9.3). aiortc 1.16 cannot apply such an answer
(it looks for a common codec in the rejected m-line and fails the whole answer);
:func:`accept_rejected` gives aiortc the rejected m-line as an inactive one with the codecs
it offered, and media/negotiation.py tells the receiver why nothing comes on it.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence

from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.sdp import GroupDescription, MediaDescription, SessionDescription

from media.negotiation import NegotiationError

# a=extmap:<id>[/<direction>] <uri> <extension attributes...>
_EXTMAP_ATTRIBUTES = re.compile(r"^(a=extmap:\S+[ \t]+\S+)[ \t]+[^\r\n]*", re.MULTILINE)


def normalize(text: str) -> str:
    """``text`` with what aiortc cannot parse but tongke does not need removed."""
    return _EXTMAP_ATTRIBUTES.sub(r"\1", text)


def check_transport_features(description: SessionDescription, *, what: str, code: str) -> None:
    """Raise NegotiationError(``code``) naming the first feature ``description`` lacks.

    ``what`` ("offer", "answer") is how the message names the description.
    """
    for media in description.media:
        if not media.rtcp_mux:
            raise NegotiationError(
                code,
                f"m-line {media.rtp.muxId} of the {what} has no a=rtcp-mux: tongke needs RTCP "
                "on the RTP port (rtcp-mux, RFC 5761).",
            )
    if len(description.media) < 2:
        return
    bundle = next((g for g in description.group if g.semantic == "BUNDLE"), None)
    bundled = set(bundle.items) if bundle is not None else set()
    missing = [
        str(m.rtp.muxId)
        for m in description.media
        if str(m.rtp.muxId) not in bundled and not (what == "answer" and rejected(m))
    ]
    if missing:
        raise NegotiationError(
            code,
            f"The {what} bundles no m-line {', '.join(missing)} (a=group:BUNDLE): tongke "
            "carries all media of a peer on one transport (BUNDLE, RFC 9143; use "
            "bundlePolicy max-bundle).",
        )


def rejected(media: MediaDescription) -> bool:
    """An m-line the answerer rejected: port 0 (a bundled m-line of an answer never has it)."""
    return media.port == 0


def accept_rejected(
    description: SessionDescription,
    offered: Mapping[str, Sequence[RTCRtpCodecParameters]],
    refused: Collection[str] = (),
) -> str | None:
    """The answer as aiortc can apply it when it rejects m-lines (None: it rejects none).

    Each rejected m-line, and each whose MID is in ``refused`` (answered with no codec
    tongke can send on it), becomes inactive and bundled with the codecs it was offered
    (``offered`` by MID): aiortc then keeps its transceiver and sends nothing on it."""
    gone = [m for m in description.media if rejected(m) or str(m.rtp.muxId) in refused]
    if not gone:
        return None
    bundle = next((g for g in description.group if g.semantic == "BUNDLE"), None)
    if bundle is None:
        bundle = GroupDescription(semantic="BUNDLE", items=[])
        description.group.append(bundle)
    # aiortc wants ICE and DTLS parameters on every m-line: a bundled one shares the
    # transport of the BUNDLE group's m-lines (a rejected one may carry none).
    kept = next((m for m in description.media if m not in gone), None)
    for media in gone:
        if kept is not None:
            media.ice = kept.ice
            media.dtls = kept.dtls
        # aiortc writes a=rtcp-mux only after an a=rtcp line (its serializer).
        media.rtcp_mux = True
        if media.rtcp_port is None:
            media.rtcp_host, media.rtcp_port = "0.0.0.0", 9
        mid = str(media.rtp.muxId)
        codecs = [
            RTCRtpCodecParameters(
                mimeType=c.mimeType,
                clockRate=c.clockRate,
                channels=c.channels,
                payloadType=c.payloadType,
                rtcpFeedback=list(c.rtcpFeedback),
                parameters=dict(c.parameters),
            )
            for c in offered.get(mid, ())
        ]
        media.rtp.codecs = codecs
        media.fmt = [c.payloadType for c in codecs]
        media.direction = "inactive"
    # In m-line order, as the offer bundled them: aiortc keeps the first m-line's transport
    # (the one the SFU's SrtpLink uses) and stops the others' on a first answer.
    bundle.items = [str(m.rtp.muxId) for m in description.media]
    return str(description)
