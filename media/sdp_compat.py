"""What tongke needs of a peer's SDP, and the standard lines aiortc's parser cannot read.

tongke carries a peer's media on one ICE/DTLS transport per direction: every m-line must be
in one BUNDLE group (RFC 9143) and multiplex RTCP with RTP (rtcp-mux, RFC 5761). Without
them the peer would send media to transports that do not exist; refusing at once with the
missing feature named is better than an ``ok`` and silence.

aiortc 1.16's parser splits ``a=extmap`` into exactly two fields, so a valid line with
extension attributes (RFC 8285: ``a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level
vad=on``) fails with "too many values to unpack". :func:`normalize` drops those attributes:
tongke forwards header extensions as they are and needs none of them.
"""

from __future__ import annotations

import re

from aiortc.sdp import SessionDescription

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
    missing = [str(m.rtp.muxId) for m in description.media if str(m.rtp.muxId) not in bundled]
    if missing:
        raise NegotiationError(
            code,
            f"The {what} bundles no m-line {', '.join(missing)} (a=group:BUNDLE): tongke "
            "carries all media of a peer on one transport (BUNDLE, RFC 9143; use "
            "bundlePolicy max-bundle).",
        )
