"""Layer choice for dual-stream (大小流) consumers: decide, then the consumer applies.

``select(packet, layer)`` returns a small frozen ``Translation`` (drop, or forward, or switch
to this packet's layer, which only happens at a keyframe of the target layer); the
precomputed constants mean no allocation per packet. The target layer follows the
subscriber's bandwidth feedback (REMB, and the loss left after NACK repair) with hysteresis (see
``DualStreamSelector.update``). It never exceeds the preferred layer (set from role:
patrol and many-receiver grids prefer low).

``LayeredConsumer`` applies it: the consumer kind for a camera published in two copies.

Layer numbers: ``LOW = 0``, ``MAIN = 1`` (names in ``LAYER_NAMES``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from media.codecs import RtpParameters, extension_rewriter, vp8_ids, vp8_with_ids
from media.consumer import Consumer, ConsumerListener, RtpSink, Segment
from media.events import monotonic_ms
from media.producer import Producer
from media.residual_loss import RAW_WINDOW_MS, WindowedShare
from media.rtcp import RtcpReportBlock
from media.rtp import RtpPacket, pack_tail

LOW = 0
MAIN = 1
LAYER_NAMES = ("low", "main")
# Raw loss over a second at or over this is a link that cannot carry what it is sent (a
# rate cap drops most of main), not random loss that NACK repairs: a rural link losing
# 10 % at random reads 25 % in a second of main (~80 packets) about once in 10,000.
HEAVY_RAW_LOSS = 0.25
# Probe padding: its loss is judged over this (a report rides on each NACK, so a short
# window would be two packets); a burst is at most this many bytes (a frame of main); the
# copies cycle over this many recent packets.
PROBE_WINDOW_MS = 500
PROBE_BURST_BYTES = 12_000
PROBE_DEPTH = 16
# The most a layer is shed for while the target's keyframe is awaited (it comes within
# ~0.3 s of the request on a live publisher; the request is repeated after a second).
SHED_MAX_MS = 1000


def layer_index(name: str) -> int:
    """``"low" -> 0``, ``"main" -> 1``; raise ValueError for anything else."""
    try:
        return LAYER_NAMES.index(name)
    except ValueError:
        raise ValueError(f"unknown layer {name!r}: expected 'low' or 'main'.") from None


@dataclass(frozen=True, slots=True)
class Translation:
    """What to do with one packet: drop it, or send it (``switching`` to ``layer`` first)."""

    drop: bool
    switching: bool = False
    layer: int = -1


DROP = Translation(drop=True)
FORWARD = Translation(drop=False)
_SWITCH = tuple(Translation(drop=False, switching=True, layer=i) for i in range(len(LAYER_NAMES)))


class LayerSelector(Protocol):
    """Chooses which layer's packets a consumer forwards."""

    @property
    def current_layer(self) -> int: ...

    @property
    def target_layer(self) -> int: ...

    def select(self, packet: RtpPacket, layer: int) -> Translation: ...


class NullLayerSelector:
    """A single-layer stream: everything of layer 0 is forwarded once synced on a keyframe."""

    current_layer = 0
    target_layer = 0

    def __init__(self) -> None:
        self._synced = False

    def select(self, packet: RtpPacket, layer: int) -> Translation:
        if self._synced:
            return FORWARD
        if packet.keyframe:
            self._synced = True
            return _SWITCH[0]
        return DROP

    def reset(self) -> None:
        """Wait for a keyframe again (after a pause)."""
        self._synced = False


class DualStreamSelector:
    """Main/low selection driven by bandwidth feedback, switching only at keyframes."""

    def __init__(
        self,
        *,
        preferred: int = MAIN,
        available: Sequence[int] = (LOW, MAIN),
        up_after_ms: int = 5000,
        up_margin: float = 1.25,
        down_margin: float = 0.85,
        down_loss: float = 0.05,
        up_loss: float = 0.01,
        main_bitrate_floor: int = 300_000,
        probe_after_ms: int = 5_000,
        probe_max_ms: int = 20_000,
        probe_window_ms: int = 10_000,
        probe_ms: int = 3000,
        probe_fail_loss: float = 0.2,
        probe_retry_max_ms: int = 5000,
    ) -> None:
        self._available = sorted(set(available))
        if not self._available:
            raise ValueError("a dual-stream selector needs at least one layer.")
        self._preferred = preferred
        self._allowed = MAIN  # what the bandwidth allows
        self._up_after_ms = up_after_ms
        self._up_margin = up_margin
        # REMB must fall under this share of main's mean to count: an estimator starts at
        # about the incoming rate and backs off to 0.85x it on congestion (libwebrtc, aiortc).
        self._down_margin = down_margin
        self._down_loss = down_loss
        self._up_loss = up_loss
        # The loss thresholds judge the loss left after NACK repair (media/residual_loss.py):
        # 5 % unrepaired is a picture that breaks up; under 1 % is a link main can use.
        # Main is tried again after 5 s of calm (doubling to 20 s after failed tries), so a
        # classroom is back on main within seconds of an impairment's end, not minutes.
        self._floor = main_bitrate_floor
        self._probe_base_ms = probe_after_ms
        self._probe_after_ms = probe_after_ms
        self._probe_max_ms = probe_max_ms
        self._probe_window_ms = probe_window_ms
        # A try at main is first a probe when the consumer can send one (``can_probe``):
        # for ``probe_ms`` it pads low up to main's rate with RTX copies of what it sent, and
        # main is switched to only if that costs nothing. A capped link drops the padding
        # (``probe_fail_loss`` of it, or heavy loss on low itself, or an estimate backing
        # off) and the classroom stays on low, mostly without a freeze; a try without a probe
        # floods the link with a keyframe of main and freezes low for seconds (issue 20).
        # A failed probe costs little (the padding ramps up and stops at the first sign), so
        # probes come back within seconds (``probe_retry_max_ms``; the base wait already): the
        # classroom is back on main within ~10 s of a cap lifting, where a failed try waits up
        # to 20 s.
        self._probe_ms = probe_ms
        self._probe_fail_loss = probe_fail_loss
        self._probe_retry_max_ms = probe_retry_max_ms
        self._probing_since = -1
        self._probe_remb: int | None = None
        self.can_probe = False
        self._covered_since = -1  # since when the estimate covers main with the margin
        self._calm_since = -1  # since when nothing signals congestion on low
        self._bearable_since = -1  # since when low's loss stays under down_loss
        self._up_at = -1  # when the bandwidth last allowed main again
        # After a probe up, the estimate still describes the low layer: REMB ramps up over
        # seconds (aiortc ~8%/s; browsers probe, but lag too), so only loss judges the try
        # until the estimate has covered main once.
        self._remb_lags = False
        self._last_remb: int | None = None  # the previous estimate (is it climbing?)
        # The layers' bitrates, smoothed: one sample over a keyframe is up to twice the mean,
        # and neither a spike of main (a clean link's REMB is ~1.1x main's mean) nor one of
        # low (a calm spell restarting) may decide a switch.
        self._main_avg = 0.0
        self._low_avg = 0.0
        self._current = -1
        self._target = self._choose()

    @property
    def current_layer(self) -> int:
        """The layer being forwarded, -1 before the first keyframe."""
        return self._current

    @property
    def target_layer(self) -> int:
        """The layer wanted; the switch happens at its next keyframe."""
        return self._target

    @property
    def preferred_layer(self) -> int:
        return self._preferred

    @property
    def main_rate_bps(self) -> int:
        """Main's bitrate as the selector judges it (smoothed over keyframe spikes)."""
        return int(self._main_avg)

    @property
    def shedding(self) -> bool:
        """The bandwidth moved the target under the layer being forwarded: stop sending the
        current layer (at a frame's end) while the target's keyframe is on its way."""
        return self._target < self._current and self._allowed < self._current

    @property
    def probing(self) -> bool:
        """A probe is under way: the consumer pads low up to ``probe_rate_bps`` more."""
        return self._probing_since >= 0

    def probe_rate_bps(self, now_ms: int) -> int:
        """What a probe adds to low now: from a twentieth of the rest of main's rate to all
        of it over the probe, slowly first (quadratic), so that a link short of room shows it
        (an estimate backing off, padding lost) while its buffer still has room: a 300
        kbit/s line with low on it has ~75 kbit/s spare, a 200 ms buffer holds 7.5 kB, and
        Chromium's estimate backs off 0.6-0.9 s after the excess starts."""
        full = max(0.0, max(self._main_avg, self._floor) - self._low_avg)
        if self._probing_since < 0:
            return 0
        ramp = min(1.0, (now_ms - self._probing_since) / self._probe_ms)
        return int(full * (0.05 + 0.95 * ramp * ramp))

    def select(self, packet: RtpPacket, layer: int) -> Translation:
        if layer == self._current:
            return FORWARD
        if layer == self._target and packet.keyframe:
            self._current = layer
            return _SWITCH[layer]
        return DROP

    def reset(self) -> None:
        """Forget the current layer: wait for a keyframe of the target (after a pause)."""
        self._current = -1

    def set_preferred(self, layer: int) -> bool:
        """Cap the layer (role, subscriber choice); True when the target changed."""
        self._preferred = layer
        return self._retarget()

    def set_available(self, layers: Sequence[int]) -> bool:
        """The layers that exist now (a layer's producer closed); True if the target changed."""
        self._available = sorted(set(layers))
        if self._current not in self._available:
            self._current = -1
        return self._retarget()

    def update(
        self,
        now_ms: int,
        *,
        available_bps: int | None = None,
        loss: float | None = None,
        main_bps: int = 0,
        low_bps: int = 0,
        probe_loss: float | None = None,
    ) -> bool:
        """Feed one estimate (a REMB bitrate and/or a loss fraction 0-1, and during a probe
        the loss of its padding) with the layers' measured bitrates; True when the target
        layer changed.

        Down at once when main no longer fits (an estimate that is not climbing and is under
        ``down_margin`` of main's mean bitrate, or heavy loss). Up when the estimate covers
        main with a margin for ``up_after_ms``, or after a calm spell of ``probe_after_ms``:
        a subscriber fed only low seldom reports more than ~1.5x what it gets, since nothing
        probes its headroom, so main is tried again;
        a try that fails within ``probe_window_ms`` doubles the wait (up to ``probe_max_ms``).
        During a try only loss fails it until the estimate has covered main once (it lags).
        Loss between ``up_loss`` and ``down_loss`` on low is not calm (it may be congestion);
        but a link that keeps it that long (``probe_max_ms``) without anything worse may just
        lose packets at random (a rural radio link, where NACK repair serves main as well),
        so main is tried then too, with the same doubling if it fails.
        When the consumer can probe, a try other than a covering estimate starts as a probe
        (see ``__init__``); a failed probe doubles the wait as a failed try does.
        """
        if main_bps:
            self._main_avg = (
                main_bps if not self._main_avg else 0.75 * self._main_avg + 0.25 * main_bps
            )
        if low_bps:
            self._low_avg = low_bps if not self._low_avg else 0.75 * self._low_avg + 0.25 * low_bps
        need = max(self._main_avg, self._floor)
        lossy = loss is not None and loss >= self._down_loss
        # A browser's receive-side estimate (REMB from abs-send-time) starts low and climbs
        # 5-10 % a second while nothing congests, slower than a publisher's encoder ramps
        # main up at the start of a lesson (Chromium: ~300 kbit/s to 1 Mbit/s over ~25 s).
        # A rising estimate under main's rate is that climb, not a link that is short; one
        # that holds or falls (overuse backs it off to 0.85x the incoming rate) is.
        rising = (
            available_bps is not None
            and self._last_remb is not None
            and available_bps > self._last_remb
        )
        if available_bps is not None:
            self._last_remb = available_bps
        if self._allowed == MAIN:
            if available_bps is not None and available_bps >= need:
                self._remb_lags = False
            short = (
                available_bps is not None
                and available_bps < need * self._down_margin
                and not self._remb_lags
                and not rising
            )
            if lossy or short:
                self._allowed = LOW
                self._covered_since = self._calm_since = self._bearable_since = -1
                failed_try = self._up_at >= 0 and now_ms - self._up_at < self._probe_window_ms
                self._probe_after_ms = (
                    min(self._probe_after_ms * 2, self._probe_max_ms)
                    if failed_try
                    else self._probe_base_ms
                )
            return self._retarget()
        if self._probing_since >= 0:
            return self._judge_probe(now_ms, lossy, available_bps, probe_loss)
        quiet = loss is None or loss <= self._up_loss
        if available_bps is not None:
            covers = available_bps >= need * self._up_margin
            if not covers:
                self._covered_since = -1
            elif self._covered_since < 0:
                self._covered_since = now_ms
        if not quiet:
            self._covered_since = -1
        # Without a probe, an estimate under what low carries says there is no room; with
        # one, the probe asks the link itself (an estimate backed off by a storm that has
        # passed climbs only ~1-10 kbit/s a second, and would keep main away for long).
        low_fits = self.can_probe or available_bps is None or available_bps >= self._low_avg
        if quiet and low_fits:
            if self._calm_since < 0:
                self._calm_since = now_ms
        else:
            self._calm_since = -1
        if not lossy and low_fits:
            if self._bearable_since < 0:
                self._bearable_since = now_ms
        else:
            self._bearable_since = -1
        covered = self._covered_since >= 0 and now_ms - self._covered_since >= self._up_after_ms
        probe = self._calm_since >= 0 and now_ms - self._calm_since >= self._probe_after_ms
        bearable_wait = max(self._probe_max_ms, self._probe_after_ms)
        bearable = self._bearable_since >= 0 and now_ms - self._bearable_since >= bearable_wait
        if covered or probe or bearable:
            self._covered_since = self._calm_since = self._bearable_since = -1
            wants_main = self._preferred >= MAIN and MAIN in self._available
            if not covered and self.can_probe and wants_main:
                self._probing_since = now_ms
                self._probe_remb = self._last_remb
                return False
            self._try_main(now_ms, remb_lags=not covered)
        return self._retarget()

    def _try_main(self, now_ms: int, *, remb_lags: bool) -> None:
        self._allowed = MAIN
        self._remb_lags = remb_lags
        self._up_at = now_ms

    def _judge_probe(
        self, now_ms: int, lossy: bool, available_bps: int | None, probe_loss: float | None
    ) -> bool:
        backing_off = (
            available_bps is not None
            and self._probe_remb is not None
            and available_bps < self._probe_remb * self._down_margin
        )
        if lossy or backing_off or (probe_loss is not None and probe_loss >= self._probe_fail_loss):
            self._probing_since = -1
            self._probe_after_ms = max(
                self._probe_after_ms, min(self._probe_after_ms * 2, self._probe_retry_max_ms)
            )
            return False
        if now_ms - self._probing_since < self._probe_ms:
            return False
        self._probing_since = -1
        self._try_main(now_ms, remb_lags=True)
        return self._retarget()

    def _choose(self) -> int:
        want = min(self._preferred, self._allowed)
        below = [layer for layer in self._available if layer <= want]
        return below[-1] if below else self._available[0]

    def _retarget(self) -> bool:
        target = self._choose()
        if target == self._target:
            return False
        self._target = target
        return True


class LayeredConsumer(Consumer):
    """Forwards the main or the low copy of a camera, switching only at a keyframe of the
    target that comes after the end (marker bit) of the frame being forwarded."""

    def __init__(
        self,
        consumer_id: str,
        layers: Mapping[str, Producer],
        params: RtpParameters,
        sink: RtpSink,
        listener: ConsumerListener,
        *,
        preferred_layer: str = "main",
        selector: DualStreamSelector | None = None,
        clock: Callable[[], int] = monotonic_ms,
        wall_offset_ms: int = 0,
        paused: bool = False,
    ) -> None:
        by_index = {layer_index(name): p for name, p in layers.items()}
        if not by_index:
            raise ValueError("a layered consumer needs at least one layer.")
        first = by_index.get(MAIN) or next(iter(by_index.values()))
        super().__init__(
            consumer_id,
            first,
            params,
            sink,
            listener,
            clock=clock,
            wall_offset_ms=wall_offset_ms,
            paused=paused,
        )
        self._layers = by_index
        self._layer_of = {p.ssrc: i for i, p in by_index.items()}
        self._pts = frozenset(p.params.codec.payload_type for p in by_index.values())
        self._rewriters = {i: extension_rewriter(p.params, params) for i, p in by_index.items()}
        self.selector = selector or DualStreamSelector(
            preferred=layer_index(preferred_layer), available=tuple(by_index)
        )
        self.selector.set_available(tuple(by_index))

        # VP8: the two copies come from two encoders, so picture ids are shifted to continue.
        self._vp8 = params.codec.name == "VP8"
        self._pid_shift = 0
        self._tl0_shift = 0
        # The last packet forwarded did not end its frame (no marker bit).
        self._in_frame = False
        self.switches_held = 0
        self._residual = WindowedShare()  # repeated NACKs over packets sent
        self._raw = WindowedShare(RAW_WINDOW_MS)  # the reports' lost over expected
        # Probing (see DualStreamSelector): padding needs RTX, so the subscriber drops the
        # copies as duplicates; their loss shows in its reports on our RTX SSRC.
        self.selector.can_probe = self._rtx
        self._probe_at = -1  # when padding was last added, -1 when not probing
        self._probe_budget = 0.0  # bytes of padding owed
        self._probe_back = 0  # which recent packet the next copy is
        self._probe_loss = WindowedShare(PROBE_WINDOW_MS)
        self._retargeted_at = -SHED_MAX_MS  # when the bandwidth last moved the target
        self.loss_judged = 0.0  # the last loss reading the layer rule judged (0-1)

    @property
    def producers(self) -> tuple[Producer, ...]:
        return tuple(self._layers.values())

    @property
    def current_layer(self) -> str | None:
        layer = self.selector.current_layer
        return LAYER_NAMES[layer] if layer >= 0 else None

    @property
    def target_layer(self) -> str:
        return LAYER_NAMES[self.selector.target_layer]

    def send_rtp(self, packet: RtpPacket) -> None:
        if not self._active or packet.payload_type not in self._pts:
            return
        layer = self._layer_of.get(packet.ssrc, -1)
        selector = self.selector
        if (
            self._in_frame
            and packet.keyframe
            and layer == selector.target_layer
            and 0 <= selector.current_layer != layer
        ):
            # A switch now would cut the frame being forwarded short: its missing tail (lost
            # upstream, a repair still on its way) would get no sequence numbers, so the
            # subscriber could not see the hole and would decode a truncated frame. Keep the
            # current layer until its frame ends and take the target's next keyframe.
            self.switches_held += 1
            self.request_key_frame()
            return
        t = selector.select(packet, layer)
        if t.drop:
            return
        if t.switching:
            self._switch(packet, layer)
        elif selector.shedding and not self._in_frame and self._shed_window(packet.arrival_ms):
            # The link cannot carry this layer: sending more of it until the target's
            # keyframe arrives only keeps the line's buffer full, which delays that keyframe
            # (two freezes instead of one at a 300 kbit/s cap). Stop at a frame's end.
            return
        self._write(packet)
        self._in_frame = not packet.marker
        if selector.probing:
            self._pad(packet.arrival_ms)

    def _shedding(self) -> bool:
        # Repairs of the layer being shed would fill the short link's buffer ahead of the
        # target's keyframe (the subscriber's decoder starts over at that keyframe anyway).
        return self.selector.shedding and self._shed_window(self._clock())

    def _shed_window(self, now_ms: int) -> bool:
        """Shedding lasts while the target's keyframe is due; a target layer whose producer
        sends nothing (a stalled encoder) must not leave the subscriber without a picture."""
        return now_ms - self._retargeted_at < SHED_MAX_MS

    def _pad(self, now_ms: int) -> None:
        """Probe: after each packet forwarded, RTX copies of the last few sent, enough to
        bring the stream up toward main's rate (``probe_rate_bps``)."""
        if self._probe_at < 0:
            self._probe_at = now_ms
            self._probe_budget = 0.0
            self._probe_loss = WindowedShare(PROBE_WINDOW_MS)
            return
        elapsed = now_ms - self._probe_at
        self._probe_at = now_ms
        budget = self._probe_budget + self.selector.probe_rate_bps(now_ms) * elapsed / 8000
        budget = min(budget, PROBE_BURST_BYTES)
        tries = 0
        while budget > 0 and tries < PROBE_DEPTH:
            tries += 1
            self._probe_back = (self._probe_back + 1) % PROBE_DEPTH
            size = self._resend((self._max_seq - self._probe_back) & 0xFFFF, now_ms)
            if size:
                budget -= size
                self._stats.probe_packets += 1
        self._probe_budget = budget

    def _switch(self, packet: RtpPacket, layer: int) -> None:
        producer = self._layers[layer]
        self._rewriter = self._rewriters[layer]
        self._anchor(packet, producer)
        self._stats.layer_switches += 1
        self._stats.layer = LAYER_NAMES[layer]
        self.events.emit("layer_changed", LAYER_NAMES[layer])

    def _restart(self) -> None:
        self.selector.reset()

    def _anchor_ids(self, packet: RtpPacket) -> tuple[int, int]:
        last = self._max_packet
        if self._vp8 and last is not None:
            pid, mask, tl0 = vp8_ids(packet.payload)
            last_pid, _, last_tl0 = vp8_ids(last.payload)  # as sent: plus the current shifts
            if pid >= 0 and last_pid >= 0:
                self._pid_shift = (last_pid + self._pid_shift + 1 - pid) & mask
            if tl0 >= 0 and last_tl0 >= 0:
                self._tl0_shift = (last_tl0 + self._tl0_shift + 1 - tl0) & 0xFF
        return self._pid_shift, self._tl0_shift

    def _tail(self, packet: RtpPacket) -> tuple[int, bytes]:
        if not (self._pid_shift or self._tl0_shift):
            return self._rewriter.tail(packet)  # ids unchanged: the shared cached copy
        pid, mask, tl0 = vp8_ids(packet.payload)
        payload = vp8_with_ids(
            packet.payload,
            (pid + self._pid_shift) & mask if pid >= 0 else -1,
            (tl0 + self._tl0_shift) & 0xFF if tl0 >= 0 else -1,
        )
        profile, body = self._rewriter.rewrite(packet)
        return pack_tail(payload, packet.csrc, profile, body, packet.padding_size)

    def _payload_of(self, packet: RtpPacket, segment: Segment) -> bytes:
        if not self._vp8 or not (segment.pid_offset or segment.tl0_offset):
            return packet.payload
        pid, mask, tl0 = vp8_ids(packet.payload)
        return vp8_with_ids(
            packet.payload,
            (pid + segment.pid_offset) & mask if pid >= 0 else -1,
            (tl0 + segment.tl0_offset) & 0xFF if tl0 >= 0 else -1,
        )

    def request_key_frame(self) -> None:
        target = self._layers.get(self.selector.target_layer)
        if target is not None:
            target.request_key_frame()

    def receive_key_frame_request(self) -> None:
        """The subscriber's decoder is stuck: the layer it gets must send a keyframe (and the
        target too, when a switch is pending)."""
        super().receive_key_frame_request()
        current = self._layers.get(self.selector.current_layer)
        if current is not None and self.selector.current_layer != self.selector.target_layer:
            current.request_key_frame()

    def set_preferred_layer(self, name: str) -> None:
        """Cap the layer (role default, subscriber choice); switches at the next keyframe."""
        if self.selector.set_preferred(layer_index(name)):
            self.request_key_frame()

    def receive_remb(self, bitrate_bps: int) -> None:
        super().receive_remb(bitrate_bps)
        self._update_target(available_bps=bitrate_bps)

    def receive_receiver_report(self, block: RtcpReportBlock) -> None:
        super().receive_receiver_report(block)
        if block.ssrc != self.params.ssrc:  # our RTX stream's (see Consumer)
            if block.ssrc == self._rtx_ssrc and self.selector.probing and self._probe_at >= 0:
                padding_lost = self._probe_loss.update(
                    self._clock(), block.packets_lost, block.highest_sequence
                )
                if padding_lost is not None:
                    self._update_target(probe_loss=padding_lost)
            return
        # The loss NACK repair left, not the raw loss it repairs (media/residual_loss.py);
        # but raw loss no random link has (HEAVY_RAW_LOSS over a second) is congestion, and
        # counts before failed repairs could show it.
        now, stats = self._clock(), self._stats
        residual = self._residual.update(now, stats.nacks_repeated, stats.packets_sent)
        raw = self._raw.update(now, block.packets_lost, block.highest_sequence)
        if raw is not None and raw >= HEAVY_RAW_LOSS:
            residual = max(residual or 0.0, raw)
        if residual is not None:
            self.loss_judged = residual
            self._update_target(loss=residual)

    def _update_target(
        self,
        *,
        available_bps: int | None = None,
        loss: float | None = None,
        probe_loss: float | None = None,
    ) -> None:
        now = self._clock()
        main = self._layers.get(MAIN)
        low = self._layers.get(LOW)
        if self.selector.update(
            now,
            available_bps=available_bps,
            loss=loss,
            main_bps=main.bitrate_bps(now) if main is not None else 0,
            low_bps=low.bitrate_bps(now) if low is not None else 0,
            probe_loss=probe_loss,
        ):
            self._retargeted_at = now
            self.request_key_frame()
        if not self.selector.probing:
            self._probe_at = -1

    def add_layer(self, producer: Producer) -> None:
        """A layer's producer appeared after this consumer was made (the router calls it)."""
        if not self.accepts(producer):
            return
        i = layer_index(producer.layer)
        self._layers[i] = producer
        self._layer_of[producer.ssrc] = i
        self._pts = frozenset(p.params.codec.payload_type for p in self._layers.values())
        self._rewriters[i] = extension_rewriter(producer.params, self.params)
        if self.selector.set_available(tuple(self._layers)) and not self._paused:
            self.request_key_frame()

    def producer_closed(self, producer: Producer) -> None:
        """A layer's producer closed: go on with the other layer, or close if none is left."""
        for i, p in list(self._layers.items()):
            if p is producer:
                del self._layers[i]
                del self._layer_of[p.ssrc]
        if not self._layers:
            self._close("producer_closed")
            return
        if self.selector.set_available(tuple(self._layers)) or self.selector.current_layer < 0:
            self.request_key_frame()
