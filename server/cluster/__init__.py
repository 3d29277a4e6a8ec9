"""Many nodes on Redis: the node registry, lesson placement and draining (docs/architecture.md)."""

from server.cluster.node import LOCAL_WS_PATH, ClusterNode
from server.cluster.placement import LessonPlacement, PlacementError
from server.cluster.registry import Load, NodeInfo, NodeRegistry

__all__ = [
    "LOCAL_WS_PATH",
    "ClusterNode",
    "LessonPlacement",
    "Load",
    "NodeInfo",
    "NodeRegistry",
    "PlacementError",
]
