"""/v1/nodes: the pool's nodes, their state and, in cluster mode, their Ray node ids.

In cluster mode `gpupool serve --ray` puts a node directory on `app.state.node_directory` (an
object with `mode` and `nodes() -> list[NodePublic]`); on one machine the nodes come from the
pool's devices and workloads start where `gpupool run` runs.
"""

from __future__ import annotations

from typing import Protocol

from fastapi import APIRouter, Request

from gpupool.api.deps import PoolDep, TenantDep
from gpupool.model.node_wire import NodeList, NodePublic

router = APIRouter(prefix="/v1/nodes", tags=["nodes"])


class NodeDirectory(Protocol):
    mode: str

    def nodes(self) -> list[NodePublic]: ...


@router.get("", response_model=NodeList)
def list_nodes(request: Request, pool: PoolDep, _tenant: TenantDep) -> NodeList:
    directory: NodeDirectory | None = getattr(request.app.state, "node_directory", None)
    if directory is not None:
        return NodeList(mode=directory.mode, items=directory.nodes())
    names = sorted({device.node for device in pool.devices})
    items = [
        NodePublic(
            name=name,
            state="alive",
            devices=sum(1 for d in pool.devices if d.node == name),
            models=sorted({d.model for d in pool.devices if d.node == name}),
            launch="local",
            backend=pool.backend.name,
        )
        for name in names
    ]
    return NodeList(mode="local", items=items)
