"""MIG: claims that ask for a MIG profile (`mig`) are placed on existing MIG instances of the pool.

Existing instances are devices of their own (UUID `MIG-...`, model "<parent> MIG <profile>", e.g.
"H100-80GB MIG 1g.10gb"; see `gpupool.model.mig`); the scheduler pools them like any device, but
only claims that name a profile land on them, and a parent in MIG mode is never handed out whole.
The `visible` backend then isolates by the instance UUID. Creating an instance changes the card,
so gpupool does it only when the server runs with `--allow-mig-reconfig`.
"""

from __future__ import annotations

import subprocess

from gpupool.errors import Forbidden, InvalidRequest
from gpupool.model.mig import parse_profile


def create_instance_argv(gpu_index: int, profile: str) -> list[str]:
    """`nvidia-smi` arguments that create a GPU instance and its default compute instance."""
    return ["nvidia-smi", "mig", "-i", str(gpu_index), "-cgi", parse_profile(profile), "-C"]


def create_instance(gpu_index: int, profile: str, *, allow_reconfig: bool) -> str:
    """Create one MIG instance; refused unless the admin allowed reconfiguration. Returns stdout."""
    if not allow_reconfig:
        raise Forbidden("MIG reconfiguration is off; start the server with --allow-mig-reconfig")
    done = subprocess.run(
        create_instance_argv(gpu_index, profile), capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise InvalidRequest(
            f"nvidia-smi could not create {profile} on GPU {gpu_index}: {done.stderr.strip()}"
        )
    return done.stdout
