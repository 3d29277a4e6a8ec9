"""RED (RFC 2198) toward subscribers: Opus packets that repeat the ones before them.

A lost audio packet is never resent (audio negotiates no NACK and the producer keeps no
audio in its retransmission buffer), and Opus in-band FEC comes only when the publisher's
encoder chooses SILK (a beep or music stays CELT, which has none). RED repairs any signal:
each packet also carries the previous one or two Opus payloads, so a receiver that lost a
packet decodes it from the next. The SFU builds RED from the plain Opus it forwards, per
subscriber that negotiated ``audio/red`` (media/negotiation.py), as LiveKit's
pkg/sfu/redreceiver.go does; publishers, relays between nodes and the recorder stay plain.

Wire format (RFC 2198 section 3): one 4-byte header per redundant block (F=1, block payload
type, 14-bit timestamp offset back from the primary, 10-bit length), a 1-byte header for
the primary (F=0, payload type), then the blocks oldest first and the primary last.

How much to repeat (``RedundancyPolicy``): the subscriber's receiver reports about the
audio stream tell its link's loss before repair. With independent losses at rate p, one
repeated packet leaves about p**2 (5 % -> 0.25 %, 10 % -> 1 %), two leave p**3 (10 % ->
0.1 %, 20 % -> 0.8 %); each repeat adds the Opus bitrate again (~32 kbit/s for a browser
microphone). So: distance 1 from the start (the link is unknown), 2 while reports show
heavy loss (>= 8 %, kept until below 3 %), and none (the primary with its 1-byte header)
once the link has been clean for 10 s, so a clean 300 kbit/s line does not carry double
audio for nothing; the first report with any loss brings the repeats back.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from media.codecs import RtpParameters
from media.consumer import ConsumerListener, RtpSink, SimpleConsumer
from media.events import monotonic_ms
from media.producer import Producer
from media.rtcp import RtcpReportBlock
from media.rtp import RtpPacket, pack_tail

MAX_DISTANCE = 2  # the most earlier packets one packet repeats (sequence numbers back)
MAX_TIMESTAMP_OFFSET = 0x3FFF  # 14 bits: 341 ms of Opus's 48 kHz clock
MAX_BLOCK_LENGTH = 0x3FF  # 10 bits
# Whole RED payload: with RTP, extension, SRTP and UDP/IP headers a packet stays well under
# a 1280-byte path MTU (a redundant block that would pass it is left out).
MAX_RED_PAYLOAD = 1100

_BLOCK_HEADER = struct.Struct("!I")
_PRIMARY_HEADERS = [bytes((pt,)) for pt in range(128)]  # F=0 and the payload type


def _block_header(payload_type: int, offset: int, length: int) -> bytes:
    return _BLOCK_HEADER.pack(((0x80 | payload_type) << 24) | (offset << 10) | length)


def pack_red(
    payload_type: int,
    primary: RtpPacket,
    older: RtpPacket | None = None,
    newer: RtpPacket | None = None,
) -> bytes:
    """The RED payload of ``primary`` repeating ``newer`` and, before it, ``older``.

    The caller chose them (``RedHistory.choose``: ``older`` only with ``newer``, each with a
    timestamp offset of 1..``MAX_TIMESTAMP_OFFSET`` and at most ``MAX_BLOCK_LENGTH`` bytes).
    ``payload_type`` is the subscriber's Opus payload type, named in every block header."""
    head = _PRIMARY_HEADERS[payload_type]
    if newer is None:
        return head + primary.payload
    ts = primary.timestamp
    block = _block_header(payload_type, (ts - newer.timestamp) & 0xFFFFFFFF, len(newer.payload))
    if older is None:
        return b"".join((block, head, newer.payload, primary.payload))
    first = _block_header(payload_type, (ts - older.timestamp) & 0xFFFFFFFF, len(older.payload))
    return b"".join((first, block, head, older.payload, newer.payload, primary.payload))


def split_red(payload: bytes) -> list[tuple[int, int, bytes]]:
    """``(payload type, timestamp offset, data)`` of each block of a RED payload, oldest
    first, the primary last with offset 0; ValueError says what is malformed."""
    headers: list[tuple[int, int, int]] = []
    pos = 0
    n = len(payload)
    while True:
        if pos >= n:
            raise ValueError("RED payload ends inside its block headers.")
        b0 = payload[pos]
        if not b0 & 0x80:
            headers.append((b0 & 0x7F, 0, -1))
            pos += 1
            break
        if pos + 4 > n:
            raise ValueError("RED payload ends inside its block headers.")
        word = _BLOCK_HEADER.unpack_from(payload, pos)[0]
        headers.append((b0 & 0x7F, (word >> 10) & 0x3FFF, word & 0x3FF))
        pos += 4
    blocks: list[tuple[int, int, bytes]] = []
    for pt, offset, length in headers:
        end = n if length < 0 else pos + length
        if end > n:
            raise ValueError(f"RED block of {length} bytes exceeds the payload.")
        blocks.append((pt, offset, payload[pos:end]))
        pos = end
    return blocks


def _repeatable(earlier: RtpPacket, seq: int, ts: int, distance: int) -> bool:
    """Whether ``earlier`` may ride in the packet (``seq``, ``ts``): at most ``distance``
    sequence numbers back, 1..14 bits of timestamp back, a 10-bit length."""
    back = (seq - earlier.sequence_number) & 0xFFFF
    offset = (ts - earlier.timestamp) & 0xFFFFFFFF
    return (
        0 < back <= distance
        and 0 < offset <= MAX_TIMESTAMP_OFFSET
        and len(earlier.payload) <= MAX_BLOCK_LENGTH
    )


class RedHistory:
    """The two newest packets a consumer forwarded in its current segment, and which of them
    a new packet repeats. ``reset`` at every new segment: a packet from before a pause or a
    restart has another timestamp base and was never sent in this segment."""

    __slots__ = ("_before", "_newest")

    def __init__(self) -> None:
        self._newest: RtpPacket | None = None
        self._before: RtpPacket | None = None

    def reset(self) -> None:
        self._newest = self._before = None

    def choose(self, packet: RtpPacket, distance: int) -> tuple[RtpPacket | None, RtpPacket | None]:
        """``(older, newer)`` earlier packets ``packet`` repeats (None: none), then keep
        ``packet`` as the newest if it is. A packet lost before the server leaves a gap:
        the one before it is repeated if within ``distance``. Past ``MAX_RED_PAYLOAD`` the
        older block is left out first."""
        newest, before = self._newest, self._before
        seq = packet.sequence_number
        older = newer = None
        if distance and newest is not None:
            ts = packet.timestamp
            if _repeatable(newest, seq, ts, distance):
                newer = newest
            if before is not None and _repeatable(before, seq, ts, distance):
                older = before
            if newer is not None or older is not None:
                size = 1 + len(packet.payload)
                if newer is not None:
                    size += 4 + len(newer.payload)
                    if size > MAX_RED_PAYLOAD:
                        newer = None
                        size -= 4 + len(newest.payload)
                if older is not None and size + 4 + len(older.payload) > MAX_RED_PAYLOAD:
                    older = None
                if newer is None and older is not None:
                    newer, older = older, None  # one block: always in the ``newer`` slot
        if newest is None or 0 < (seq - newest.sequence_number) & 0xFFFF < 0x8000:
            self._before, self._newest = newest, packet
        return older, newer


# Redundancy decisions, from the subscriber's receiver reports (fraction_lost, 0-255).
START_DISTANCE = 1  # before any report: the link is unknown
HEAVY_LOSS = 20  # >= ~8 % lost: repeat two packets ...
HEAVY_LOSS_CLEARED = 8  # ... until the loss falls below ~3 %
CLEAN_MS = 10_000  # reports without loss for this long: send the primary alone


class RedundancyPolicy:
    """How many earlier packets each RED packet repeats (0, 1 or 2); see the module text."""

    __slots__ = ("_clean_since", "distance")

    def __init__(self) -> None:
        self.distance = START_DISTANCE
        self._clean_since = -1

    def report(self, fraction_lost: int, now_ms: int) -> None:
        """A receiver report about the stream: its ``fraction_lost`` (0-255) at ``now_ms``."""
        if fraction_lost:
            self._clean_since = -1
            heavy = HEAVY_LOSS_CLEARED if self.distance == MAX_DISTANCE else HEAVY_LOSS
            self.distance = MAX_DISTANCE if fraction_lost >= heavy else 1
            return
        if self._clean_since < 0:
            self._clean_since = now_ms
        if now_ms - self._clean_since >= CLEAN_MS:
            self.distance = 0
        elif self.distance == MAX_DISTANCE:
            self.distance = 1


class RedConsumer(SimpleConsumer):
    """Forwards one Opus producer as RED to a subscriber whose answer kept ``audio/red``.

    Sequence numbers, timestamps, SSRC and header extensions are the plain consumer's; the
    payload type is the RED one and the payload the RED blocks. Consumers of one producer
    that repeat the same packets with the same extension rewrite share one copy of the
    packet's wire bytes (``RtpPacket.red_cache``), as ``ExtensionRewriter.tail`` does.

    Retransmission never reaches it: audio negotiates no NACK and the producer keeps no
    audio for it (a NACK counts as a miss); if one were answered, it would carry the plain
    Opus packet under the Opus payload type, which the subscriber negotiated too.
    """

    def __init__(
        self,
        consumer_id: str,
        producer: Producer,
        params: RtpParameters,
        sink: RtpSink,
        listener: ConsumerListener,
        *,
        clock: Callable[[], int] = monotonic_ms,
        wall_offset_ms: int = 0,
        paused: bool = False,
    ) -> None:
        red_pt = params.codec.red_payload_type
        if red_pt is None:
            raise ValueError(f"consumer {consumer_id} negotiated no audio/red payload type.")
        super().__init__(
            consumer_id,
            producer,
            params,
            sink,
            listener,
            clock=clock,
            wall_offset_ms=wall_offset_ms,
            paused=paused,
        )
        self._marker_pt = (red_pt, 0x80 | red_pt)
        self._history = RedHistory()
        self._policy = RedundancyPolicy()

    @property
    def red_distance(self) -> int:
        """How many earlier packets each packet repeats now (0, 1 or 2)."""
        return self._policy.distance

    def _anchor(self, packet: RtpPacket, producer: Producer) -> None:
        super()._anchor(packet, producer)
        self._history.reset()

    def _tail(self, packet: RtpPacket) -> tuple[int, bytes]:
        older, newer = self._history.choose(packet, self._policy.distance)
        rewriter = self._rewriter
        pt = self._pt
        cache = packet.red_cache
        if (
            cache is not None
            and cache[0] is rewriter
            and cache[1] is older
            and cache[2] is newer
            and cache[3] == pt
        ):
            b0, tail, extra = cache[4], cache[5], cache[6]
        else:
            payload = pack_red(pt, packet, older, newer)
            profile, body = rewriter.rewrite(packet)
            b0, tail = pack_tail(payload, packet.csrc, profile, body, packet.padding_size)
            extra = len(payload) - len(packet.payload)
            packet.red_cache = (rewriter, older, newer, pt, b0, tail, extra)
        # _write counts the Opus payload; the sender reports' octet count is what went out.
        self._stats.bytes_sent += extra
        return b0, tail

    def receive_receiver_report(self, block: RtcpReportBlock) -> None:
        super().receive_receiver_report(block)
        if block.ssrc == self._ssrc:
            self._policy.report(block.fraction_lost, self._clock())
