"""MIG: claims that ask for a MIG profile are placed on existing MIG instances of the pool.

Existing instances are devices of their own (UUID `MIG-...`, model "<parent> MIG <profile>", e.g.
"H100-80GB MIG 1g.10gb"), so a profile is a model pattern and the scheduler pools them like any
device; the `visible` backend then isolates by the instance UUID. Creating an instance changes
the card, so gpupool does it only when the server runs with `--allow-mig-reconfig`.
"""

from __future__ import annotations

import re
import subprocess

from gpupool.errors import Forbidden, InvalidRequest

PROFILE_RE = re.compile(r"^(\d+)g\.(\d+)gb(\+me)?$")


def parse_profile(profile: str) -> str:
    """A normalised profile name such as `1g.10gb` or `1g.10gb+me`; InvalidRequest otherwise."""
    value = profile.strip().lower()
    if not PROFILE_RE.match(value):
        raise InvalidRequest(f"mig: expected a MIG profile like 1g.10gb or 3g.40gb, got {profile!r}")
    return value


def profile_model_pattern(profile: str, model: str | None = None) -> str:
    """The device model pattern that matches instances of `profile` (on `model` GPUs if given)."""
    parent = model.rstrip("*") if model else ""
    return f"{parent}* MIG {parse_profile(profile)}"


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
