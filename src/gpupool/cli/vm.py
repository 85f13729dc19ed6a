"""`gpupool vm list|inventory|show|attach|detach`: GPUs for libvirt domains (`serve --libvirt URI`)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from gpupool.cli.common import JsonOpt, TokenOpt, UrlOpt, make_client
from gpupool.cli.output import console, fail, print_json
from gpupool.model import format_size
from gpupool.model.vm_wire import VmDomainPublic

app = typer.Typer(
    help="GPUs for virtual machines: whole GPUs (passthrough) or vGPU profiles, on a `serve --libvirt` host.",
    no_args_is_help=True,
)

DomainArg = Annotated[str, typer.Argument(help="libvirt domain name, e.g. web-1")]


@app.command("list")
def list_domains(url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """The domains you may use and the GPUs each holds (gpupool's, and any it did not attach)."""
    with make_client(url, token) as client:
        items = client.vms.domains()
    if as_json:
        print_json(items)
        return
    table = Table(title=f"{len(items)} domains", title_justify="left")
    for column in ("DOMAIN", "STATE", "OWNER", "GPU", "VGPU", "CLAIM", "STATUS"):
        table.add_column(column, no_wrap=column in ("GPU", "CLAIM", "STATUS"))
    for domain in items:
        if not domain.hostdevs:
            table.add_row(domain.name, domain.state, domain.owner or "-", "-", "-", "-", "-")
        for index, h in enumerate(domain.hostdevs):
            first = index == 0
            table.add_row(
                domain.name if first else "",
                domain.state if first else "",
                (domain.owner or "-") if first else "",
                h.gpu_address or "?",
                f"{h.profile} ({h.kind})" if h.profile else h.kind,
                h.claim_id or "-",
                "[yellow]unrecorded[/]" if h.state == "unrecorded" else h.state,
            )
    console.print(table)


@app.command()
def inventory(url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """The host's GPUs: driver, IOMMU group, NUMA node, who holds them, vGPU profiles and how many
    instances a VM can get now."""
    with make_client(url, token) as client:
        items = client.vms.gpus()
    if as_json:
        print_json(items)
        return
    table = Table(title=f"{len(items)} GPUs", title_justify="left")
    for column in ("IDX", "ADDRESS", "MODEL", "DRIVER", "IOMMU", "NUMA", "PASSTHROUGH", "VGPUS", "HELD BY"):
        table.add_column(
            column, no_wrap=column in ("ADDRESS", "VGPUS"), min_width=12 if column == "ADDRESS" else None
        )
    for g in items:
        passthrough = "free" if g.passthrough_available else ("taken" if g.passthrough_capable else "no")
        if g.host_pids:
            passthrough = f"host pids {','.join(map(str, g.host_pids))}"
        table.add_row(
            str(g.index),
            g.address,
            f"{g.model} ({format_size(g.memory_total_bytes)})",
            g.driver,
            "-" if g.iommu_group is None else str(g.iommu_group),
            "-" if g.numa_node is None else str(g.numa_node),
            passthrough,
            g.hosted_profile or "-",
            ", ".join(g.held_by) or "-",
        )
    console.print(table)
    profiles = Table(title="vGPU profiles", title_justify="left")
    for column in ("IDX", "PROFILE", "TYPE", "VIA", "FRAMEBUFFER", "AVAILABLE", "MAX"):
        profiles.add_column(column, no_wrap=column == "PROFILE")
    for g in items:
        for p in g.profiles:
            via = (
                "mdev"
                if p.mechanism == "mdev"
                else f"VF ({g.free_virtual_functions}/{g.virtual_functions} free)"
            )
            profiles.add_row(
                str(g.index),
                p.name,
                p.type_id,
                via,
                format_size(p.framebuffer_bytes),
                str(p.available_instances),
                str(p.max_instances),
            )
    if profiles.row_count:
        console.print(profiles)


@app.command()
def show(domain: DomainArg, url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """One domain: its GPUs and the <hostdev> XML of its config."""
    with make_client(url, token) as client:
        found = client.vms.domain(domain)
    if as_json:
        print_json(found)
        return
    _print_domain(found)


@app.command()
def attach(
    domain: DomainArg,
    gpus: Annotated[
        int | None, typer.Option("--gpus", min=1, help="whole GPUs passed through (default 1)")
    ] = None,
    profile: Annotated[
        str | None, typer.Option("--profile", help="one vGPU of this profile instead, e.g. A100-4C")
    ] = None,
    device: Annotated[
        str | None, typer.Option("--device", help="this GPU only: PCI address (0000:41:00.0), UUID or index")
    ] = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Give a domain whole GPUs or a vGPU now (never queued: it fits now or says why not)."""
    if gpus is not None and profile is not None:
        fail("give --gpus (passthrough) or --profile (vGPU), not both")
    with make_client(url, token) as client:
        result = client.vms.attach(domain, gpus=gpus, profile=profile, device=device)
    if as_json:
        print_json(result)
        return
    claim = result.claim
    what = f"a {profile} vGPU" if profile else f"{claim.gpus} whole GPU(s)"
    console.print(
        f"attached {what} to [bold]{domain}[/] as claim [bold]{claim.id}[/] (tenant {claim.tenant})"
    )
    where = [w for w, done in (("the running domain", result.live), ("its config", result.config)) if done]
    console.print(
        f"  in {' and '.join(where) or 'nothing yet'}" + (f"; {result.note}" if result.note else "")
    )
    _print_domain(result.domain)


@app.command()
def detach(
    domain: DomainArg,
    claim: Annotated[str | None, typer.Option("--claim", help="only this claim's GPUs")] = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Take gpupool's GPUs off a domain and release their claims."""
    with make_client(url, token) as client:
        result = client.vms.detach(domain, claim_id=claim)
    if as_json:
        print_json(result)
        return
    console.print(f"detached from [bold]{domain}[/]; released {', '.join(result.released)}")


def _print_domain(domain: VmDomainPublic) -> None:
    console.print(f"[bold]{domain.name}[/] ({domain.state}, owner {domain.owner or '-'}) {domain.uuid}")
    for h in domain.hostdevs:
        claim = f"claim {h.claim_id}" if h.claim_id else "[yellow]not attached by gpupool[/]"
        console.print(f"  {h.kind:<11} {h.source:<36} GPU {h.gpu_address or '?'}  {h.profile or ''} {claim}")
    for xml in domain.hostdev_xml:
        console.print(xml, highlight=False, markup=False, soft_wrap=True)
