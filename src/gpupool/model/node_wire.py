"""REST v1 wire schemas for nodes (`GET /v1/nodes`); the server and the SDK share them."""

from __future__ import annotations

from pydantic import BaseModel, Field


class NodePublic(BaseModel):
    """One node of the pool and how workloads reach it."""

    name: str
    state: str = Field(description="alive | joining | lost")
    devices: int
    models: list[str]
    launch: str = Field(
        description="local: `gpupool run` starts CMD on its own machine; remote: on the node, via its agent"
    )
    ray_node_id: str | None = None
    address: str | None = None
    hostname: str | None = None
    backend: str | None = None
    reason: str = ""
    joined_at: float | None = None
    lost_at: float | None = None


class NodeList(BaseModel):
    mode: str = Field(description="local (one machine) | ray (cluster mode)")
    items: list[NodePublic]
