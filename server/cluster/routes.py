"""/api/cluster: administrators see the nodes and drain or undrain this node."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from server.api.access import DistrictAdmin
from server.api.errors import ApiError, ErrorResponse
from server.auth import State
from server.cluster.node import ClusterNode
from server.state import AppState

cluster_router = APIRouter(prefix="/api/cluster", tags=["cluster"])

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (401, 403, 404, 503)
}


def _node(state: AppState) -> ClusterNode:
    if state.cluster is None:
        raise ApiError(
            404, "cluster_disabled", "This service runs as one node (TONGKE_REDIS_URL is unset)."
        )
    return state.cluster


async def _view(node: ClusterNode) -> dict[str, Any]:
    return {
        "node_id": node.node_id,
        "draining": node.draining,
        "nodes": [n.public() for n in await node.nodes()],
        "lessons": await node.placement.lessons(),
    }


@cluster_router.get("", responses=ERRORS)
async def cluster_view(principal: DistrictAdmin, state: State) -> dict[str, Any]:
    """Every live node (address, load, draining) and where each placed lesson lives.
    404 cluster_disabled on one node."""
    return await _view(_node(state))


@cluster_router.post("/drain", responses=ERRORS)
async def drain(principal: DistrictAdmin, state: State) -> dict[str, Any]:
    """This node takes no new lessons; its lessons go on until they end (then stop it)."""
    node = _node(state)
    await node.drain()
    return await _view(node)


@cluster_router.post("/undrain", responses=ERRORS)
async def undrain(principal: DistrictAdmin, state: State) -> dict[str, Any]:
    """This node takes new lessons again."""
    node = _node(state)
    await node.undrain()
    return await _view(node)
