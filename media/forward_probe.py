"""Bench-only: the SFU's added forwarding delay, stamped at the server's UDP socket.

``tongke bench`` (tongke_bench/host.py) installs one :class:`ForwardProbe` as
``media.aiortc_hooks.forward_probe`` before any transport exists; the product never does, and
then :class:`media.aiortc_hooks.SrtpLink` installs its plain datagram callback (no check per
packet). With a probe, every incoming datagram first passes :meth:`ForwardProbe.wrap`'s
callback; RTP of a watched SSRC is sampled (one packet in ``every``):

- *arrival*: the kernel's receive timestamp of the datagram (``SIOCGSTAMPNS`` on the socket
  the packet was read from, CLOCK_REALTIME), so the time a packet waited in the socket
  buffer while the event loop was busy is counted;
- *start* / *done*: ``time.time_ns()`` around the synchronous handler: SRTP unprotect, parse,
  producer, router, every consumer's rewrite, SRTP protect and ``sendto``. The fan-out runs
  inside that one call, so *done* is when the last forwarded copy has left the server.

Samples go into preallocated rings (``array('q')``); nothing is logged or allocated per packet
beyond the SSRC lookup. :meth:`ForwardProbe.summary` computes percentiles off the hot path.

Media workers (server/workers/): a worker installs its own probe only when the bench host
asks for it (server/workers/bench_probe.py); it samples the relayed streams from the service.
"""

from __future__ import annotations

import contextlib
import fcntl
import struct
import time
from array import array
from collections.abc import Callable, Iterable
from typing import Any

SIOCGSTAMPNS = 0x8907  # linux/sockios.h: timestamp (timespec) of the last datagram read
_TIMESPEC = struct.Struct("qq")

DatagramHandler = Callable[[bytes, int], None]


def _percentile(ordered: list[int], q: float) -> int:
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def relayed_main_ssrcs(media: Any) -> list[int]:
    """The SSRCs of the relayed camera main and mic arriving at ``media`` (a MediaService:
    an edge node, or a media worker) through its cascade relays: the streams every receiver
    it serves consumes."""
    ssrcs = []
    for relay_id in list(media.cascade.receivers):
        for info in media.relay_producers(relay_id).values():
            entry = media._producers.get(info.id)  # the Producer itself: a bench-only look
            if entry is not None and info.layer == "main" and info.source in ("camera", "mic"):
                ssrcs.append(int(entry[1].ssrc))
    return ssrcs


class ForwardProbe:
    """Samples socket-arrival-to-last-send delay of watched RTP streams into fixed rings."""

    def __init__(self, capacity: int = 16384, every: int = 2) -> None:
        if capacity < 1 or every < 1:
            raise ValueError("ForwardProbe capacity and every must be at least 1.")
        self.capacity = capacity
        self.every = every
        self.ssrcs: frozenset[int] = frozenset()
        self._countdown = every
        self._total = array("q", bytes(8 * capacity))  # arrival -> last copy sent, ns
        self._wait = array("q", bytes(8 * capacity))  # arrival -> handler start, ns
        self._work = array("q", bytes(8 * capacity))  # handler start -> last copy sent, ns
        # CPU time of the handler: far below its wall time means this process was not
        # running (a busy machine), not that forwarding is slow.
        self._cpu = array("q", bytes(8 * capacity))
        self._mean_copy = array("q", bytes(8 * capacity))  # arrival -> the average copy sent
        # While a sampled packet is handled: how many datagrams left, and their send times.
        self._sampling = False
        self._copies = 0
        self._copy_sum = 0
        self._written = 0
        self._stamp = bytearray(_TIMESPEC.size)
        self._enabled_fds: set[int] = set()
        self.errors = 0  # samples without a usable kernel timestamp

    def watch(self, ssrcs: Iterable[int]) -> None:
        """Sample RTP of these SSRCs (the packets every subscriber consumes) from now on."""
        self.ssrcs = frozenset(ssrcs)
        self.reset()

    def reset(self) -> None:
        self._written = 0
        self.errors = 0

    def wrap(self, handle: DatagramHandler, socket_fd: Callable[[], int]) -> DatagramHandler:
        """The datagram callback to install instead of ``handle`` (aioice's data_received)."""

        def probed(data: bytes, component: int) -> None:
            ssrcs = self.ssrcs
            if (
                not ssrcs
                or len(data) < 12
                or not 128 <= data[0] <= 191
                or 192 <= data[1] <= 208  # RTCP
                or int.from_bytes(data[8:12], "big") not in ssrcs
            ):
                handle(data, component)
                return
            self._countdown -= 1
            if self._countdown:
                handle(data, component)
                return
            self._countdown = self.every
            cpu = time.thread_time_ns()
            self._copies = self._copy_sum = 0
            self._sampling = True
            start = time.time_ns()
            try:
                handle(data, component)
            finally:
                self._sampling = False
            done = time.time_ns()
            cpu = time.thread_time_ns() - cpu
            # The socket's last-read timestamp is still this datagram's: nothing was read since.
            self._record(socket_fd(), start, done, cpu)

        return probed

    def wrap_send(self, sendto: Callable[[bytes, Any], None]) -> Callable[[bytes, Any], None]:
        """The ``sendto`` to use instead: stamps each datagram sent while a packet is sampled."""

        def stamped(data: bytes, addr: Any) -> None:
            sendto(data, addr)
            if self._sampling:
                self._copies += 1
                self._copy_sum += time.time_ns()

        return stamped

    def enable_timestamps(self, fd: int) -> None:
        """Turn on a socket's kernel receive timestamps (the first SIOCGSTAMPNS does)."""
        with contextlib.suppress(OSError):
            fcntl.ioctl(fd, SIOCGSTAMPNS, self._stamp)
        self._enabled_fds.add(fd)

    def _record(self, fd: int, start: int, done: int, cpu: int) -> None:
        if fd < 0:
            self.errors += 1
            return
        if fd not in self._enabled_fds:
            # Datagrams read before timestamps were on carry no stamp (the kernel answers
            # "now" or nothing): the first sample of each socket is not trusted.
            self.enable_timestamps(fd)
            self.errors += 1
            return
        try:
            fcntl.ioctl(fd, SIOCGSTAMPNS, self._stamp)
        except OSError:
            self.errors += 1
            return
        seconds, nanos = _TIMESPEC.unpack(self._stamp)
        arrival = seconds * 1_000_000_000 + nanos
        if arrival > start:
            self.errors += 1
            return
        slot = self._written % self.capacity
        self._total[slot] = done - arrival
        self._wait[slot] = start - arrival
        self._work[slot] = done - start
        self._cpu[slot] = cpu
        copies = self._copies
        self._mean_copy[slot] = (self._copy_sum // copies if copies else done) - arrival
        self._written += 1

    def summary(self) -> dict[str, Any]:
        """Percentiles (ms) of the samples kept since the last reset; ``None`` without samples."""
        count = min(self._written, self.capacity)
        result: dict[str, Any] = {"samples": count, "errors": self.errors, "every": self.every}
        rings = (
            ("total_ms", self._total),
            ("socket_wait_ms", self._wait),
            ("handling_ms", self._work),
            ("handling_cpu_ms", self._cpu),
            ("mean_copy_ms", self._mean_copy),
        )
        for name, ring in rings:
            if not count:
                result[name] = None
                continue
            ordered = sorted(ring[:count])
            result[name] = {
                "p50": round(_percentile(ordered, 0.5) / 1e6, 3),
                "p99": round(_percentile(ordered, 0.99) / 1e6, 3),
                "max": round(ordered[-1] / 1e6, 3),
            }
        return result
