"""Expected outcomes of a scheduling step, as a `Status` with a code and a human reason.

Exceptions are for bugs and infrastructure; "this claim does not fit" is a Status.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Code(enum.IntEnum):
    """Status codes after kube-scheduler's framework."""

    SUCCESS = 0
    UNSCHEDULABLE = 1  # may fit later, when capacity frees up
    UNSCHEDULABLE_AND_UNRESOLVABLE = 2  # will never fit this cluster as it is
    ERROR = 3
    WAIT = 4
    SKIP = 5


@dataclass(frozen=True)
class Status:
    """A code and, unless it is SUCCESS, the reason a user reads."""

    code: Code = Code.SUCCESS
    reason: str = ""
    plugin: str = ""

    @property
    def ok(self) -> bool:
        return self.code is Code.SUCCESS


SUCCESS = Status()


def unschedulable(reason: str, plugin: str = "") -> Status:
    """Status for a claim that does not fit now but may fit later."""
    return Status(Code.UNSCHEDULABLE, reason, plugin)


def unresolvable(reason: str, plugin: str = "") -> Status:
    """Status for a claim that can never fit this cluster."""
    return Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, reason, plugin)
