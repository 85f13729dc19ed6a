"""gpupool: pool every GPU, hand out virtual GPUs, run workloads at native speed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from gpupool.client import Client


def __getattr__(name: str) -> Any:
    # Lazy: `import gpupool.scheduler` (simulator workers) should not pay for httpx and pydantic.
    if name == "Client":
        from gpupool.client import Client

        return Client
    raise AttributeError(f"module 'gpupool' has no attribute {name!r}")


__all__ = ["Client", "__version__"]
