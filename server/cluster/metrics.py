"""Prometheus figures of a cluster node, read at scrape time (docs/operations.md, "Many nodes")."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from server.cluster.node import ClusterNode
from signaling.redis_bus import RedisBus


class ClusterCollector(Collector):
    def __init__(self, node: ClusterNode, bus: RedisBus) -> None:
        self.node = node
        self.bus = bus

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        registry = self.node.registry
        yield GaugeMetricFamily(
            "tongke_node_draining", "1 while this node drains", value=int(registry.draining)
        )
        yield GaugeMetricFamily(
            "tongke_node_heartbeat_failures",
            "Heartbeats failed in a row (at node_ttl_s the other nodes count this one gone)",
            value=registry.heartbeat_failures,
        )
        yield GaugeMetricFamily(
            "tongke_node_cpu",
            "Cores this process used (as last reported)",
            value=registry.last_load.cpu,
        )
        yield GaugeMetricFamily(
            "tongke_bus_connected",
            "1 while the bus reader is connected to Redis",
            value=int(self.bus.connected),
        )
        yield CounterMetricFamily(
            "tongke_bus_reconnects",
            "Times the bus reader reconnected to Redis",
            value=self.bus.reconnects,
        )
        yield CounterMetricFamily(
            "tongke_bus_gaps",
            "Sequence gaps seen on bus channels (messages lost)",
            value=self.bus.gaps,
        )
        yield CounterMetricFamily(
            "tongke_lessons_moved_away",
            "Lessons whose room here was closed because another node became their home "
            "(this node had missed heartbeats)",
            value=self.node.lessons_moved_away,
        )
        yield CounterMetricFamily(
            "tongke_lesson_placements",
            "Lessons this node placed (on itself or another node)",
            value=self.node.placement.placements,
        )
