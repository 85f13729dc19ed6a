"""Turns bindings into the environment a workload starts with; nothing sits in its GPU data path.

Backends: `visible` (env.py: devices by UUID, plus MPS client limits for fractions), `mps`
(mps.py: one control daemon per shared device), `mig` (mig.py: profiles as pooled instances),
framework `hints`, and the memory `watchdog`.
"""

from gpupool.isolation.env import launch_env
from gpupool.isolation.hints import framework_hints
from gpupool.isolation.mps import MpsError, MpsManager
from gpupool.isolation.watchdog import Overuse, Watchdog, WatchdogAction, WatchdogMode, find_overuse

__all__ = [
    "MpsError",
    "MpsManager",
    "Overuse",
    "Watchdog",
    "WatchdogAction",
    "WatchdogMode",
    "find_overuse",
    "framework_hints",
    "launch_env",
]
