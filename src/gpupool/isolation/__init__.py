"""Turns bindings into the environment a workload starts with; nothing sits in its GPU data path."""

from gpupool.isolation.env import launch_env

__all__ = ["launch_env"]
