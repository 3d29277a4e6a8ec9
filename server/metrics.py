"""Prometheus metrics. One registry per app, so tests can build many apps in one process."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from signaling.stats import SignalingStats

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _SignalingCollector(Collector):
    """Reads the signaling counters at scrape time instead of mirroring every change."""

    def __init__(self, stats: Callable[[], SignalingStats]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        stats = self._stats()
        live = GaugeMetricFamily("tongke_live_lessons", "Lessons live on this node")
        live.add_metric([], stats.live_lessons)
        yield live
        peers = GaugeMetricFamily("tongke_peers", "Joined peers by role", labels=["role"])
        for role in ("lead", "receiver", "patrol", "recorder"):
            peers.add_metric([role], stats.peers.get(role, 0))
        yield peers
        messages = CounterMetricFamily(
            "tongke_signaling_messages", "Signaling messages received", labels=["type"]
        )
        for kind, count in sorted(stats.messages.items()):
            messages.add_metric([kind], count)
        yield messages
        errors = CounterMetricFamily(
            "tongke_signaling_errors", "Signaling error replies sent", labels=["code"]
        )
        for code, count in sorted(stats.errors.items()):
            errors.add_metric([code], count)
        yield errors


class _HttpGuardCollector(Collector):
    """What server/http_guard.py did at the socket (slow requests, the cap, bad text)."""

    def collect(self) -> Iterator[CounterMetricFamily]:
        from server.http_guard import STATS

        for name, text, value in (
            ("tongke_http_read_timeouts", "Connections closed: request sent too slowly",
             STATS.read_timeouts),
            ("tongke_http_connections_evicted", "Half-sent requests closed to make room",
             STATS.evicted),
            ("tongke_http_connections_refused", "Connections refused: the cap was full",
             STATS.refused),
            ("tongke_ws_invalid_utf8", "WebSockets closed (1007): a text frame not UTF-8",
             STATS.invalid_utf8),
        ):  # fmt: skip
            family = CounterMetricFamily(name, text)
            family.add_metric([], value)
            yield family


# The service's own loggers (module __name__ loggers and the tongke.* ones) and uvicorn's
# "Exception in ASGI application".
_OWN_LOGGERS = ("tongke", "media", "signaling", "server", "recorder", "uvicorn.error")


class _ErrorLogCounter(logging.Handler):
    """Counts ERROR records of the service's loggers: failures nobody got an error reply for
    (a crashed hook, a failed media sync) still show on /metrics."""

    def __init__(self, counter: Counter) -> None:
        super().__init__(logging.ERROR)
        self._counter = counter

    def emit(self, record: logging.LogRecord) -> None:
        name = record.name
        for area in _OWN_LOGGERS:
            if name == area or name.startswith(area + "."):
                self._counter.labels(area).inc()
                return


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.http_requests = Counter(
            "tongke_http_requests",
            "HTTP requests",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.http_latency = Histogram(
            "tongke_http_request_seconds",
            "HTTP request latency",
            ["method", "route"],
            registry=self.registry,
        )

        self.errors_logged = Counter(
            "tongke_errors_logged",
            "ERROR log records of the service, by area",
            ["area"],
            registry=self.registry,
        )
        for area in _OWN_LOGGERS:
            self.errors_logged.labels(area)  # shown as 0, not absent, until one happens
        self.registry.register(_HttpGuardCollector())

    def count_error_logs(self) -> Callable[[], None]:
        """Counts the service's ERROR logs into ``tongke_errors_logged_total`` until the
        returned function is called (the lifespan's end)."""
        handler = _ErrorLogCounter(self.errors_logged)
        root = logging.getLogger()
        root.addHandler(handler)
        return lambda: root.removeHandler(handler)

    def watch_signaling(self, stats: Callable[[], SignalingStats]) -> None:
        self.registry.register(_SignalingCollector(stats))

    def watch(self, collector: Collector) -> None:
        """Adds a collector of another part (media, recorder)."""
        self.registry.register(collector)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class HttpMetricsMiddleware:
    """Counts HTTP requests by route template (not raw path: ids would explode the labels)."""

    def __init__(self, app: ASGIApp, metrics: Callable[[], Metrics | None]) -> None:
        self.app = app
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        start = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            metrics = self._metrics()
            if metrics is not None:
                route = scope.get("route")
                template = getattr(route, "path", None) or "unmatched"
                metrics.http_requests.labels(scope["method"], template, str(status)).inc()
                metrics.http_latency.labels(scope["method"], template).observe(
                    time.perf_counter() - start
                )
