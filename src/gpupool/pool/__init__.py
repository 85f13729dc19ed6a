"""The pool service that ties devices, scheduler and store together."""

from gpupool.pool.service import DeviceView, PoolService

__all__ = ["DeviceView", "PoolService"]
