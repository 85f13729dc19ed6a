"""A `Statement` groups allocations so that a placement commits whole or rolls back (after KAI)."""

from __future__ import annotations

from gpupool.scheduler.cluster import Allocation, Cluster
from gpupool.scheduler.request import Request


class Statement:
    """Allocations applied to the cluster at once; `rollback` undoes them in reverse order."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.allocations: list[Allocation] = []
        self.released: list[Allocation] = []
        self._log: list[tuple[bool, Allocation]] = []  # (taken?, allocation) in order
        self.closed = False

    def allocate(self, request: Request, node: int, gpus: tuple[int, ...]) -> Allocation:
        """Take resources now; they stay taken only if the statement commits."""
        if self.closed:
            raise RuntimeError("statement already committed or rolled back")
        allocation = self.cluster.allocate(request, node, gpus)
        self.allocations.append(allocation)
        self._log.append((True, allocation))
        return allocation

    def release(self, allocation: Allocation) -> None:
        """Give an existing allocation back now (a move's first half); rollback restores it."""
        if self.closed:
            raise RuntimeError("statement already committed or rolled back")
        self.cluster.release(allocation)
        self.released.append(allocation)
        self._log.append((False, allocation))

    def commit(self) -> list[Allocation]:
        """Keep every allocation; returns them."""
        self.closed = True
        return list(self.allocations)

    def rollback(self) -> None:
        """Undo every step of this statement, newest first."""
        for taken, allocation in reversed(self._log):
            if taken:
                self.cluster.release(allocation)
            else:
                self.cluster.restore(allocation)
        self.allocations.clear()
        self.released.clear()
        self._log.clear()
        self.closed = True

    def __enter__(self) -> Statement:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if not self.closed:
            if exc_type is None:
                self.commit()
            else:
                self.rollback()
