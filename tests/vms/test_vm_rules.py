"""Scenario tests of the scheduler's VM rules (vgpu-profile, passthrough, host-busy, device-choice):
a VM host's GPUs with their traits, a claim, and where it must (or must not) go."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pytest

from gpupool.model import ClaimSpec, Device, GiB
from gpupool.model.vm import DEVICES_LABEL, PASSTHROUGH_LABEL, VGPU_PROFILE_LABEL, VM_DOMAIN_LABEL
from gpupool.scheduler import DeviceLoad, make_placer
from gpupool.scheduler.contract import DeviceTraits

MEMORY = 40 * GiB
OFFERS = {"A100-4C": 10, "A100-8C": 5, "A100-40C": 1}
ADDRESSES = ["0000:41:00.0", "0000:81:00.0", "0000:c1:00.0"]


def gpu(index: int, traits: DeviceTraits | None = None, memory: int = 0, compute: int = 0) -> DeviceLoad:
    device = Device(f"GPU-{index}", "host", index, "A100-40GB", MEMORY)
    if traits is not None:
        traits = replace(traits, label=ADDRESSES[index])
    return DeviceLoad(device, memory, compute, traits=traits)


def nvidia(**changes: object) -> DeviceTraits:
    """An idle nvidia-bound GPU that offers the C-series profiles and can be passed through."""
    return replace(DeviceTraits(profiles=dict(OFFERS), passthrough_capable=True), **changes)  # type: ignore[arg-type]


def vfio(**changes: object) -> DeviceTraits:
    return replace(DeviceTraits(passthrough_capable=True, vm_only=True), **changes)  # type: ignore[arg-type]


def vgpu(profile: str, memory_gib: int, compute: int, device: str | None = None) -> ClaimSpec:
    labels = {VM_DOMAIN_LABEL: "vm", VGPU_PROFILE_LABEL: profile}
    if device:
        labels[DEVICES_LABEL] = device
    return ClaimSpec(memory_bytes=memory_gib * GiB, compute_percent=compute, labels=labels)


def passthrough(gpus: int = 1) -> ClaimSpec:
    return ClaimSpec(gpus=gpus, labels={VM_DOMAIN_LABEL: "vm", PASSTHROUGH_LABEL: "true"})


HOST_SHARE = ClaimSpec(memory_bytes=4 * GiB)  # a host process's fractional claim
HOSTS_4C = nvidia(hosted_profile="A100-4C", vm_only=True)


@dataclass(frozen=True)
class Scenario:
    name: str
    loads: list[DeviceLoad]
    spec: ClaimSpec
    placed_on: set[str] | None  # device UUIDs it may land on; None: refused
    reason: list[str] = field(default_factory=list)  # words the refusal reason must hold
    policy: str = "default"


SCENARIOS = [
    Scenario(
        "a GPU hosting 4C refuses an 8C",
        [gpu(0, HOSTS_4C, 4 * GiB, 10), gpu(2, vfio())],
        vgpu("A100-8C", 8, 20),
        None,
        ["0000:41:00.0 host A100-4C vGPUs", "0000:c1:00.0: no vGPU profile A100-8C"],
    ),
    Scenario(
        "a GPU hosting 4C takes another 4C",
        [gpu(0, HOSTS_4C, 4 * GiB, 10)],
        vgpu("A100-4C", 4, 10),
        {"GPU-0"},
    ),
    Scenario(
        "an 8C goes to the GPU that hosts no other profile",
        [gpu(0, HOSTS_4C, 4 * GiB, 10), gpu(1, nvidia())],
        vgpu("A100-8C", 8, 20),
        {"GPU-1"},
    ),
    Scenario(
        "a host claim avoids a GPU hosting vGPUs even where binpack would put it",
        [gpu(0, HOSTS_4C, 4 * GiB, 10), gpu(1, nvidia())],
        HOST_SHARE,
        {"GPU-1"},
        policy="binpack",
    ),
    Scenario(
        "a vGPU avoids a GPU running host claims",
        [gpu(0, nvidia(host_claims=True), 4 * GiB, 10), gpu(1, nvidia())],
        vgpu("A100-4C", 4, 10),
        {"GPU-1"},
        policy="binpack",
    ),
    Scenario(
        "no instance left",
        [gpu(0, replace(HOSTS_4C, profiles={**OFFERS, "A100-4C": 0}), 36 * GiB, 90)],
        vgpu("A100-4C", 4, 10),
        None,
        ["no A100-4C instance left"],
    ),
    Scenario(
        "a GPU passed through takes nothing else, recorded or not",
        [
            gpu(0, nvidia(passed_through_to="legacy-vm", vm_only=True)),
            gpu(1, nvidia(passed_through_to="db-1"), MEMORY, 100),
        ],
        vgpu("A100-4C", 4, 10),
        None,
        ["0000:41:00.0, 0000:81:00.0 held whole by VM db-1, legacy-vm"],
    ),
    Scenario(
        "a GPU bound to vfio-pci serves VMs, not host claims",
        [gpu(2, vfio())],
        HOST_SHARE,
        None,
        ["0000:c1:00.0 serve only VMs"],
    ),
    Scenario(
        "a GPU bound to vfio-pci is passed through",
        [gpu(1, HOSTS_4C, 4 * GiB, 10), gpu(2, vfio())],
        passthrough(),
        {"GPU-2"},
    ),
    Scenario(
        "a GPU in use by host processes is not passed through",
        [gpu(0, nvidia(host_pids=(4242,))), gpu(1, nvidia())],
        passthrough(),
        {"GPU-1"},
    ),
    Scenario(
        "the only GPU is in use by host processes",
        [gpu(0, nvidia(host_pids=(4242, 4243)))],
        passthrough(),
        None,
        ["0000:41:00.0 in use by host processes (pids 4242, 4243)"],
    ),
    Scenario(
        "host processes do not stop a vGPU",
        [gpu(0, nvidia(host_pids=(4242,)))],
        vgpu("A100-4C", 4, 10),
        {"GPU-0"},
    ),
    Scenario(
        "no IOMMU group: never passed through",
        [gpu(0, nvidia(passthrough_capable=False))],
        passthrough(),
        None,
        ["cannot be passed through"],
    ),
    Scenario(
        "two GPUs passed through skip the busy one",
        [gpu(0, nvidia()), gpu(1, nvidia(host_pids=(7,))), gpu(2, vfio())],
        passthrough(2),
        {"GPU-0", "GPU-2"},
    ),
    Scenario(
        "a chosen device is the only one used",
        [gpu(0, nvidia()), gpu(1, nvidia())],
        vgpu("A100-4C", 4, 10, "GPU-1"),
        {"GPU-1"},
    ),
    Scenario(
        "a chosen device that hosts another profile",
        [gpu(0, HOSTS_4C, 4 * GiB, 10), gpu(1, nvidia())],
        vgpu("A100-8C", 8, 20, "GPU-0"),
        None,
        ["0000:41:00.0 host A100-4C vGPUs"],
    ),
    Scenario("without traits nothing is restricted", [gpu(0), gpu(1)], HOST_SHARE, {"GPU-0", "GPU-1"}),
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_vm_rule_scenario(scenario: Scenario) -> None:
    result = make_placer(scenario.policy).place(scenario.spec, scenario.loads)
    if scenario.placed_on is None:
        assert not result.ok, f"placed on {[b.device_uuid for b in result.bindings]}"
        for words in scenario.reason:
            assert words in result.reason, result.reason
    else:
        assert result.ok, result.reason
        assert {b.device_uuid for b in result.bindings} <= scenario.placed_on
        assert len(result.bindings) == scenario.spec.gpus


def test_vm_rules_keep_the_whole_claim_together() -> None:
    """Two vGPUs of one claim need two GPUs that may each take one."""
    loads = [gpu(0, HOSTS_4C, 4 * GiB, 10), gpu(1, nvidia())]
    spec = replace(vgpu("A100-8C", 8, 20), gpus=2)
    result = make_placer().place(spec, loads)
    assert not result.ok and "no node has 2 GPUs that can take it" in result.reason
