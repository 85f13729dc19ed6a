"""End to end: `gpupool serve --libvirt test:///...` as a real server process, driven by the real
CLI (and the REST API where the status code matters), on the test VM host."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from vmhost import MDEV_GPU, SRIOV_GPU, VFIO_GPU, VmTestHost, make_host, vf_addresses

from gpupool.devices.libvirt_config import HostdevMdev, HostdevPCI, parse_hostdev
from gpupool.model import GiB
from gpupool.model.vm import PciAddress
from runctl import gpupool
from serverctl import ServerProcess


def start(vm_host: VmTestHost, home: Path, db: Path | None = None) -> ServerProcess:
    args = ("--libvirt", vm_host.uri, "--libvirt-host-root", str(vm_host.root))
    home.mkdir(parents=True, exist_ok=True)
    server = ServerProcess(home=home, simulate="", db=str(db or home / "pool.db"), extra_args=args)
    return server.start()


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, VmTestHost]]:
    """One server for the tests that leave the host as they found it (see `server`)."""
    pytest.importorskip("libvirt", reason="libvirt-python is missing: bash scripts/setup.sh --dev")
    tmp = tmp_path_factory.mktemp("vm-e2e")
    host = make_host(tmp / "vmhost")
    proc = start(host, tmp / "home")
    try:
        for tenant in ("team-a", "team-b"):
            assert gpupool(proc, "tenants", "create", tenant).returncode == 0
        yield proc, host
    finally:
        proc.stop()


@pytest.fixture
def server(shared: tuple[ServerProcess, VmTestHost]) -> Iterator[ServerProcess]:
    """The shared server; every gpupool hostdev is detached again after the test."""
    proc, _ = shared
    yield proc
    with proc.client() as http:
        for domain in http.get("/v1/vms").json()["items"]:
            if any(h["claim_id"] for h in domain["hostdevs"]):
                assert http.post(f"/v1/vms/{domain['name']}/detach", json={}).status_code == 200
        assert http.get("/v1/claims", params={"state": ["pending", "bound"]}).json()["items"] == []


@pytest.fixture
def shared_host(shared: tuple[ServerProcess, VmTestHost]) -> VmTestHost:
    return shared[1]


def cli_json(server: ServerProcess, *args: str) -> Any:
    result = gpupool(server, *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def hostdevs_of(server: ServerProcess, domain: str) -> list[HostdevPCI | HostdevMdev]:
    """The <hostdev>s of the domain's config as the server reads them from libvirt, parsed."""
    with server.client() as http:
        shown = http.get(f"/v1/vms/{domain}").json()
    parsed = [parse_hostdev(ET.fromstring(xml)) for xml in shown["hostdev_xml"]]
    assert None not in parsed
    return parsed  # type: ignore[return-value]


def attach(server: ServerProcess, domain: str, *args: str) -> dict[str, Any]:
    return cli_json(server, "vm", "attach", domain, *args)  # type: ignore[no-any-return]


def test_inventory_lists_gpus_profiles_and_available_instances(server: ServerProcess) -> None:
    gpus = cli_json(server, "vm", "inventory")
    assert [(g["address"], g["driver"], g["iommu_group"], g["numa_node"]) for g in gpus] == [
        (MDEV_GPU, "nvidia", 41, 0),
        (SRIOV_GPU, "nvidia", 81, 1),
        (VFIO_GPU, "vfio-pci", 193, 1),
    ]
    assert all(g["passthrough_available"] and g["model"] == "A100-40GB" for g in gpus)
    profiles = {(p["name"], p["mechanism"]): p for p in gpus[0]["profiles"] + gpus[1]["profiles"]}
    assert profiles[("A100-4C", "mdev")]["available_instances"] == 10
    assert profiles[("A100-8C", "vf")] | {} == {
        "name": "A100-8C",
        "type_id": "559",
        "mechanism": "vf",
        "framebuffer_bytes": 8 * GiB,
        "max_instances": 5,
        "available_instances": 5,
    }
    assert gpus[1]["virtual_functions"] == gpus[1]["free_virtual_functions"] == 16
    assert gpus[2]["profiles"] == []

    attach(server, "web-1", "--profile", "A100-4C", "--device", MDEV_GPU)
    after = cli_json(server, "vm", "inventory")[0]
    available = {p["name"]: p["available_instances"] for p in after["profiles"]}
    assert available["A100-4C"] == 9 and available["A100-8C"] == 0  # one profile per GPU
    assert (after["hosted_profile"], after["held_by"], after["passthrough_available"]) == (
        "A100-4C",
        ["web-1"],
        False,
    )
    table = gpupool(server, "vm", "inventory")
    assert table.returncode == 0 and "A100-4C" in table.stdout and VFIO_GPU in table.stdout


def test_attach_puts_the_right_hostdev_xml_in_each_domain(server: ServerProcess) -> None:
    whole = attach(server, "build-1", "--gpus", "1", "--device", VFIO_GPU)
    assert whole["config"] and whole["claim"]["state"] == "bound"
    assert hostdevs_of(server, "build-1") == [HostdevPCI(PciAddress.parse(VFIO_GPU), managed=True)]

    mdev = attach(server, "web-1", "--profile", "A100-4C", "--device", MDEV_GPU)
    (hostdev,) = hostdevs_of(server, "web-1")
    assert isinstance(hostdev, HostdevMdev) and hostdev.model == "vfio-pci"
    (shown,) = mdev["domain"]["hostdevs"]
    assert (shown["kind"], shown["source"], shown["gpu_address"], shown["claim_id"]) == (
        "mdev",
        hostdev.uuid,
        MDEV_GPU,
        mdev["claim"]["id"],
    )
    assert mdev["claim"]["tenant"] == "team-a" and mdev["claim"]["memory_bytes"] == 4 * GiB

    vf = attach(server, "web-2", "--profile", "A100-8C", "--device", SRIOV_GPU)
    assert hostdevs_of(server, "web-2") == [HostdevPCI(PciAddress.parse(vf_addresses()[0]), managed=False)]
    assert not vf["live"] and "cannot hot-plug" in vf["note"]  # web-2 runs; the test driver cannot hot-plug

    with server.client() as http:
        overview = http.get("/v1/overview").json()
    holders = {d["uuid"]: {s["holder"] for s in d["segments"]} for d in overview["devices"]}
    assert sorted(holders.values(), key=sorted) == [{"build-1"}, {"web-1"}, {"web-2"}]
    ps = gpupool(server, "ps", "--json")
    assert {c["labels"]["vm.gpupool.io/domain"] for c in json.loads(ps.stdout)} == {
        "build-1",
        "web-1",
        "web-2",
    }


def _attach_all(
    server: ServerProcess, domains: list[str], *args: str
) -> list[subprocess.CompletedProcess[str]]:
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "gpupool", "vm", "attach", name, *args, "--json"],
            env={**server.env, "GPUPOOL_TOKEN": "test-admin-token"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in domains
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        results.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return results


def test_two_vms_never_get_the_same_gpu_or_mdev(server: ServerProcess) -> None:
    domains = ["build-1", "web-1", "web-2", "db-1"]
    results = _attach_all(server, domains, "--gpus", "1")
    ok = [json.loads(r.stdout) for r in results if r.returncode == 0]
    refused = [r for r in results if r.returncode != 0]
    assert len(ok) == 3 and len(refused) == 1  # three GPUs for four VMs
    assert refused[0].returncode == 2 and "held whole by VM" in refused[0].stderr
    sources = [h["source"] for result in ok for h in result["domain"]["hostdevs"]]
    assert sorted(sources) == [MDEV_GPU, SRIOV_GPU, VFIO_GPU]

    # Free the two vGPU-capable GPUs (which VMs won them depends on the race above), then let
    # their holders race for vGPUs on them.
    holder = {h["gpu_address"]: r["domain"]["name"] for r in ok for h in r["domain"]["hostdevs"]}
    pair = [holder[MDEV_GPU], holder[SRIOV_GPU]]
    for name in pair:
        assert gpupool(server, "vm", "detach", name).returncode == 0
    results = _attach_all(server, pair, "--profile", "A100-4C")
    assert [r.returncode for r in results] == [0, 0], [r.stderr for r in results]
    mdevs = [h for name in pair for h in hostdevs_of(server, name) if isinstance(h, HostdevMdev)]
    vfs = [h for name in pair for h in hostdevs_of(server, name) if isinstance(h, HostdevPCI)]
    assert len({h.key for h in mdevs + vfs}) == len(mdevs + vfs) >= 2


def test_a_gpu_hosting_4c_refuses_an_8c(server: ServerProcess) -> None:
    attach(server, "web-1", "--profile", "A100-4C", "--device", MDEV_GPU)
    refused = gpupool(server, "vm", "attach", "web-2", "--profile", "A100-8C", "--device", MDEV_GPU)
    assert refused.returncode == 2
    assert refused.stderr.startswith("gpupool: error: ") and refused.stderr.count("\n") == 1
    assert f"{MDEV_GPU} host A100-4C vGPUs" in refused.stderr
    with server.client() as http:
        response = http.post("/v1/vms/web-2/attach", json={"profile": "A100-8C", "device": MDEV_GPU})
        assert response.status_code == 409 and "A100-4C" in response.json()["detail"]
    assert hostdevs_of(server, "web-2") == []
    elsewhere = attach(server, "web-2", "--profile", "A100-8C")  # the other vGPU-capable GPU
    assert elsewhere["domain"]["hostdevs"][0]["gpu_address"] == SRIOV_GPU


def test_detach_releases_the_claim_and_takes_the_hostdev_off(server: ServerProcess) -> None:
    claim = attach(server, "web-1", "--profile", "A100-4C", "--device", MDEV_GPU)["claim"]["id"]
    detached = gpupool(server, "vm", "detach", "web-1")
    assert detached.returncode == 0 and claim in detached.stdout
    assert hostdevs_of(server, "web-1") == []
    with server.client() as http:
        assert http.get(f"/v1/claims/{claim}").json()["state"] == "released"
    with server.client() as http:
        assert http.get("/v1/vms/gpus").json()["items"][0]["mdevs"] == 0
    again = gpupool(server, "vm", "detach", "web-1")
    assert again.returncode == 2 and "holds no GPU" in again.stderr


def test_bad_input_gets_a_clear_4xx_and_exit_2(server: ServerProcess, shared_host: VmTestHost) -> None:
    cases = [
        (("vm", "attach", "nope", "--gpus", "1"), "unknown domain 'nope'"),
        (("vm", "attach", "web-1", "--profile", "A100-3C"), "unknown vGPU profile 'A100-3C'"),
        (("vm", "attach", "web-1", "--gpus", "1", "--profile", "A100-4C"), "not both"),
        (("vm", "attach", "web-1", "--device", "0000:99:00.0"), "unknown GPU"),
        (("vm", "show", "nope"), "unknown domain 'nope'"),
        (("vm", "detach", "nope"), "unknown domain 'nope'"),
    ]
    for args, words in cases:
        result = gpupool(server, *args)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert words in result.stderr and "Traceback" not in result.stderr, (args, result.stderr)

    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"f = open({str(shared_host.dev_node(MDEV_GPU))!r}); import time; time.sleep(60)",
        ]
    )
    try:
        time.sleep(0.5)  # let it open the device node
        busy = gpupool(server, "vm", "attach", "build-1", "--gpus", "1", "--device", MDEV_GPU)
        assert busy.returncode == 2 and f"in use by host process(es) {holder.pid}" in busy.stderr
        inventory = cli_json(server, "vm", "inventory")
        assert inventory[0]["host_pids"] == [holder.pid] and not inventory[0]["passthrough_available"]
        with server.client() as http:
            response = http.post("/v1/vms/build-1/attach", json={"gpus": 1, "device": MDEV_GPU})
            assert response.status_code == 409 and "in use by host process" in response.json()["detail"]
    finally:
        holder.kill()
        holder.wait()

    with server.client() as http:
        statuses = [
            http.post("/v1/vms/nope/attach", json={"gpus": 1}).status_code,
            http.post("/v1/vms/web-1/attach", json={"profile": "A100-3C"}).status_code,
            http.post("/v1/vms/web-1/attach", json={"gpus": 0}).status_code,
            http.post("/v1/vms/web-1/attach", json={"gpus": 1, "profile": "A100-4C"}).status_code,
            http.post("/v1/vms/bad%20name/attach", json={"gpus": 1}).status_code,
            http.post("/v1/vms/web-1/attach", json={"gpu": 1}).status_code,
        ]
        assert statuses == [404, 422, 422, 422, 422, 422]
        assert http.get("/v1/claims", params={"state": ["pending", "bound"]}).json()["items"] == []

    created = gpupool(server, "tenants", "create", "team-c", "--json")  # (the shared server's only one)
    token = json.loads(created.stdout)["token"]
    foreign = gpupool(server, "vm", "attach", "db-1", "--gpus", "1", token=token)
    assert foreign.returncode == 2 and "not assigned to tenant team-c" in foreign.stderr
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}) as http:
        assert http.get("/v1/vms").json()["items"] == []


def test_a_restart_reconciles_domains_host_and_records(vm_host: VmTestHost, tmp_path: Path) -> None:
    home, db = tmp_path / "home", tmp_path / "pool.db"
    first = start(vm_host, home, db)
    try:
        assert gpupool(first, "tenants", "create", "team-a").returncode == 0
        assert gpupool(first, "tenants", "create", "team-b").returncode == 0
        mdev = attach(first, "web-1", "--profile", "A100-4C", "--device", MDEV_GPU)
        vf = attach(first, "web-2", "--profile", "A100-8C", "--device", SRIOV_GPU)
        whole = attach(first, "db-1", "--gpus", "1", "--device", VFIO_GPU)
        kept = {name: cli_json(first, "vm", "show", name) for name in ("web-1", "web-2")}
    finally:
        first.stop()
    # While gpupool was down: libvirt kept web-1 and web-2 as configured (the test driver keeps
    # nothing, so the host XML says it), the host rebooted (web-1's mdev is gone), db-1 was
    # undefined, and someone gave db-1's old GPU to a new domain by hand.
    for name in ("web-1", "web-2", "db-1"):
        vm_host.remove_domain(name)
    for name, running in (("web-1", False), ("web-2", True)):
        shown = kept[name]
        vm_host.add_domain(name, "team-a", running, shown["hostdev_xml"], uuid=shown["uuid"])
    vm_host.add_domain("legacy-1", running=True, hostdevs=[HostdevPCI(PciAddress.parse(VFIO_GPU)).to_xml()])

    second = start(vm_host, home, db)
    try:
        with second.client() as http:
            claims = {
                c["id"]: c
                for c in http.get("/v1/claims", params={"state": ["bound", "released"]}).json()["items"]
            }
            actions = [e["action"] for e in http.get("/v1/events", params={"limit": 1000}).json()["items"]]
        assert claims[mdev["claim"]["id"]]["state"] == "bound"
        assert claims[vf["claim"]["id"]]["state"] == "bound"
        assert claims[whole["claim"]["id"]]["state"] == "released"
        assert "db-1 is gone" in claims[whole["claim"]["id"]]["reason"]
        assert "vm.vgpu.rebuilt" in actions and actions.count("vm.hostdev.unrecorded") == 1
        (web1,) = hostdevs_of(second, "web-1")
        with second.client() as http:
            assert isinstance(web1, HostdevMdev) and http.get("/v1/vms/gpus").json()["items"][0]["mdevs"] == 1
        listing = {d["name"]: d for d in cli_json(second, "vm", "list")}
        (legacy,) = listing["legacy-1"]["hostdevs"]
        assert (legacy["state"], legacy["source"], legacy["claim_id"]) == ("unrecorded", VFIO_GPU, None)
        assert "unrecorded" in gpupool(second, "vm", "list").stdout
        refused = gpupool(second, "vm", "attach", "build-1", "--gpus", "1", "--device", VFIO_GPU)
        assert refused.returncode == 2 and "held whole by VM legacy-1" in refused.stderr
        assert hostdevs_of(second, "legacy-1") == [HostdevPCI(PciAddress.parse(VFIO_GPU))]  # never removed
    finally:
        second.stop()


def test_vm_calls_say_when_vm_support_is_off(tmp_path: Path) -> None:
    simulated = ServerProcess(home=tmp_path).start()
    try:
        result = gpupool(simulated, "vm", "list")
        assert result.returncode == 2 and "gpupool serve --libvirt URI" in result.stderr
    finally:
        simulated.stop()
