"""What the pool tells an observer (metrics, dashboards) about its scheduling work.

The pool layer knows nothing of Prometheus: the API layer plugs in an observer that does.
"""

from __future__ import annotations

from typing import Protocol


class PoolObserver(Protocol):
    """Callbacks from the scheduling pass; each must be cheap and never raise."""

    def on_decision(self, seconds: float, placed: bool) -> None:
        """One placement decision took `seconds` (wall time) and found a placement or not."""
        ...

    def on_bind_failure(self, reason: str) -> None:
        """The store refused a bind the placer proposed (`capacity` or `conflict`)."""
        ...

    def on_preemption(self, tenant: str, count: int) -> None:
        """`count` claims of `tenant` were preempted."""
        ...


class NullObserver:
    """The observer of a pool nobody watches."""

    def on_decision(self, seconds: float, placed: bool) -> None:
        """Ignore."""

    def on_bind_failure(self, reason: str) -> None:
        """Ignore."""

    def on_preemption(self, tenant: str, count: int) -> None:
        """Ignore."""
