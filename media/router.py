"""Router: one per live lesson. Owns the producers and the ``producer_id -> consumers`` table.

How the media service (media/sfu.py) uses it::

    router = Router("lesson-1")
    router.events.on("active_speaker", lambda producer_id: ...)   # str | None
    p = router.create_producer("p1", "video", "camera", "main", params, rtcp_sink,
                               group="peer-7/camera")
    low = router.create_producer("p2", "video", "camera", "low", low_params, rtcp_sink,
                                 group="peer-7/camera")
    c = router.create_consumer("c1", "p1", subscriber_params, rtp_sink,
                               preferred_layer="low")           # LayeredConsumer over p1 + p2
    a = router.create_consumer("c2", "p-audio", params, rtp_sink)  # SimpleConsumer

Dual stream: video producers with layer ``"main"`` or ``"low"`` and the same ``group`` (e.g.
``f"{peer_id}/{source}"``) form a pair. ``create_consumer`` on either id of a video producer
makes a ``LayeredConsumer`` over every layer of the group that exists (pass
``layered=False`` for a plain ``SimpleConsumer``); a layer created later joins existing
layered consumers of its group, and a closed layer leaves them (they go on with the
other). Audio gets a ``SimpleConsumer``, or a ``RedConsumer`` (media/red.py) when the
subscriber's parameters carry a RED payload type. A new consumer asks its producer for a
keyframe at once (aggregated and rate limited by the producer).

Lifecycle (STYLE rule 4): ``close()`` everywhere is idempotent and each object emits
``closed(reason)`` once on its ``events``: a producer's close closes its consumers
(reason ``producer_closed``); the router's close closes everything (``router_closed``); a
consumer whose sink raises during fan-out is closed (``error``) so the others still get it.
Errors in listeners are logged, never raised. Bad calls raise ``RouterError`` with a code.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from media.audio_level import AudioLevelObserver
from media.codecs import RtpParameters
from media.consumer import Consumer, RtpSink, SimpleConsumer
from media.events import EventEmitter, monotonic_ms, wall_offset_ms
from media.layers import LAYER_NAMES, LayeredConsumer
from media.producer import Producer, RtcpSink
from media.red import RedConsumer
from media.rtp import RtpPacket

logger = logging.getLogger(__name__)


class RouterError(ValueError):
    """A bad call on a router: ``code`` is stable, the message says what was wrong."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Router:
    """Producers, consumers and the fan-out between them, for one lesson."""

    def __init__(
        self,
        router_id: str,
        *,
        clock: Callable[[], int] = monotonic_ms,
        key_frame_interval_ms: int = 500,
        audio_level_interval_ms: int = 300,
    ) -> None:
        self.id = router_id
        self.events = EventEmitter()
        self._clock = clock
        self._wall_offset_ms = wall_offset_ms() if clock is monotonic_ms else 0
        self._key_frame_interval_ms = key_frame_interval_ms
        self._closed = False
        self._producers: dict[str, Producer] = {}
        self._consumers: dict[str, Consumer] = {}
        self._fanout: dict[str, tuple[Consumer, ...]] = {}
        self._report_ssrc = 0x7E570000
        self.audio_levels = AudioLevelObserver(
            self._on_active_speaker, interval_ms=audio_level_interval_ms
        )

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def producers(self) -> Mapping[str, Producer]:
        return self._producers

    @property
    def consumers(self) -> Mapping[str, Consumer]:
        return self._consumers

    def get_producer(self, producer_id: str) -> Producer | None:
        return self._producers.get(producer_id)

    def get_consumer(self, consumer_id: str) -> Consumer | None:
        return self._consumers.get(consumer_id)

    def consumers_of(self, producer_id: str) -> tuple[Consumer, ...]:
        """The consumers fed by ``producer_id`` (a snapshot)."""
        return self._fanout.get(producer_id, ())

    # -- creation ---------------------------------------------------------------------

    def create_producer(
        self,
        producer_id: str,
        kind: str,
        source: str,
        layer: str,
        params: RtpParameters,
        rtcp_sink: RtcpSink,
        *,
        group: str = "",
    ) -> Producer:
        """Register an incoming track; raise RouterError on a duplicate id or bad params."""
        self._check_open()
        if producer_id in self._producers:
            raise RouterError("producer_exists", f"Producer {producer_id} already exists.")
        self._report_ssrc += 1
        try:
            producer = Producer(
                producer_id,
                kind,
                source,
                layer,
                params,
                self,
                rtcp_sink,
                group=group,
                clock=self._clock,
                report_ssrc=self._report_ssrc,
                audio_levels=self.audio_levels if kind == "audio" else None,
                key_frame_interval_ms=self._key_frame_interval_ms,
                downstream_loss=self._worst_fraction_lost,
            )
        except ValueError as exc:
            raise RouterError("bad_producer", str(exc)) from None
        self._producers[producer_id] = producer
        self._fanout[producer_id] = ()
        if self._is_layer(producer):
            for sibling in self._siblings(producer):
                for consumer in self._fanout.get(sibling.id, ()):
                    if (
                        isinstance(consumer, LayeredConsumer)
                        and producer not in consumer.producers
                        and consumer.accepts(producer)
                    ):
                        consumer.add_layer(producer)
                        self._link(producer.id, consumer)
        return producer

    def create_consumer(
        self,
        consumer_id: str,
        producer_id: str,
        params: RtpParameters,
        sink: RtpSink,
        *,
        preferred_layer: str = "main",
        layered: bool | None = None,
        paused: bool = False,
    ) -> Consumer:
        """An outgoing copy of ``producer_id`` for one subscriber (see the module docstring)."""
        self._check_open()
        if consumer_id in self._consumers:
            raise RouterError("consumer_exists", f"Consumer {consumer_id} already exists.")
        producer = self._producers.get(producer_id)
        if producer is None:
            raise RouterError("producer_not_found", f"Producer {producer_id} does not exist.")
        if preferred_layer not in LAYER_NAMES:
            raise RouterError(
                "bad_layer", f"Unknown layer {preferred_layer!r}: expected 'low' or 'main'."
            )
        if layered is None:
            layered = self._is_layer(producer)
        consumer: Consumer
        try:
            if layered:
                group = [producer] + [
                    p for p in self._siblings(producer) if not Consumer.mismatch(params, p)
                ]
                layers = {p.layer: p for p in group if p.layer in LAYER_NAMES} or {"main": producer}
                consumer = LayeredConsumer(
                    consumer_id,
                    layers,
                    params,
                    sink,
                    self,
                    preferred_layer=preferred_layer,
                    clock=self._clock,
                    wall_offset_ms=self._wall_offset_ms,
                    paused=paused,
                )
            else:
                # Opus to a subscriber that negotiated RED over it goes as RED.
                red = params.codec.red_payload_type is not None
                consumer = (RedConsumer if red else SimpleConsumer)(
                    consumer_id,
                    producer,
                    params,
                    sink,
                    self,
                    clock=self._clock,
                    wall_offset_ms=self._wall_offset_ms,
                    paused=paused,
                )
        except ValueError as exc:
            raise RouterError("bad_consumer", str(exc)) from None
        self._consumers[consumer_id] = consumer
        for p in consumer.producers:
            self._link(p.id, consumer)
        if not paused:
            consumer.request_key_frame()
        return consumer

    # -- fan-out (hot path) -----------------------------------------------------------

    def on_producer_rtp(self, producer: Producer, packet: RtpPacket) -> None:
        for consumer in self._fanout[producer.id]:
            try:
                consumer.send_rtp(packet)
            except Exception:  # one broken consumer must not starve the others
                logger.exception("consumer %s failed to send; closing it", consumer.id)
                consumer.close("error")

    def _worst_fraction_lost(self, producer: Producer, now_ms: int) -> int:
        """The highest fresh ``fraction_lost`` (0-255) the subscribers of ``producer`` report."""
        worst = 0
        for consumer in self._fanout.get(producer.id, ()):
            worst = max(worst, consumer.reported_fraction_lost(now_ms))
        return worst

    # -- lifecycle --------------------------------------------------------------------

    def on_producer_closed(self, producer: Producer) -> None:
        """A producer closed itself: forget it and tell its consumers."""
        if self._producers.get(producer.id) is not producer:
            return
        del self._producers[producer.id]
        consumers = self._fanout.pop(producer.id, ())
        for consumer in consumers:
            consumer.producer_closed(producer)
            if consumer.closed:
                self._forget_consumer(consumer)
        self.events.emit("producer_closed", producer.id)

    def on_consumer_closed(self, consumer: Consumer) -> None:
        """A consumer closed itself: drop it from every table."""
        self._forget_consumer(consumer)

    def close(self, reason: str = "closed") -> None:
        """Close every producer and consumer, then the router (idempotent)."""
        if self._closed:
            return
        self._closed = True
        consumers = list(self._consumers.values())
        producers = list(self._producers.values())
        self._consumers.clear()
        self._producers.clear()
        self._fanout.clear()
        for consumer in consumers:
            consumer.router_closed()
        for producer in producers:
            producer.router_closed()
        self.events.emit("closed", reason)
        self.events.remove_all_listeners()

    # -- internals --------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise RouterError("router_closed", f"Router {self.id} is closed.")

    @staticmethod
    def _is_layer(producer: Producer) -> bool:
        return producer.kind == "video" and producer.layer in LAYER_NAMES

    def _siblings(self, producer: Producer) -> list[Producer]:
        if not producer.group:
            return []
        return [
            p
            for p in self._producers.values()
            if p is not producer
            and p.group == producer.group
            and self._is_layer(p)
            and p.layer != producer.layer
        ]

    def _link(self, producer_id: str, consumer: Consumer) -> None:
        current = self._fanout.get(producer_id, ())
        if consumer not in current:
            self._fanout[producer_id] = (*current, consumer)

    def _forget_consumer(self, consumer: Consumer) -> None:
        if self._consumers.get(consumer.id) is consumer:
            del self._consumers[consumer.id]
        for producer_id, consumers in self._fanout.items():
            if consumer in consumers:
                self._fanout[producer_id] = tuple(c for c in consumers if c is not consumer)

    def _on_active_speaker(self, producer_id: str | None) -> None:
        self.events.emit("active_speaker", producer_id)
