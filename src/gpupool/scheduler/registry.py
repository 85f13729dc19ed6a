"""One readable map from plugin name to factory; registering a name twice is refused."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gpupool.scheduler.framework import Factory, PluginContext
from gpupool.scheduler.plugins import (
    bestfit,
    binpack,
    clustering,
    device_choice,
    dotprod,
    fgd,
    fit,
    host_busy,
    load_aware,
    ours,
    packing,
    passthrough,
    pickers,
    random_score,
    vgpu_profile,
)
from gpupool.scheduler.plugins.fragmodel import FragModel


class Registry:
    """Plugin factories by name."""

    def __init__(self, factories: Mapping[str, Factory] | None = None) -> None:
        self._factories: dict[str, Factory] = {}
        for name, factory in (factories or {}).items():
            self.register(name, factory)

    def register(self, name: str, factory: Factory) -> None:
        if name in self._factories:
            raise ValueError(f"plugin {name!r} is already registered")
        self._factories[name] = factory

    def create(self, name: str, args: Mapping[str, Any], context: PluginContext) -> Any:
        try:
            factory = self._factories[name]
        except KeyError:
            raise KeyError(f"unknown plugin {name!r} (known: {', '.join(self.names())})") from None
        return factory(args, context)

    def names(self) -> list[str]:
        return sorted(self._factories)


def frag_model(args: Mapping[str, Any], context: PluginContext) -> FragModel:
    """Offline target workload when the profile asks for the trace's and one is given; else online."""
    if args.get("workload", "online") == "trace" and context.workload is not None:
        return FragModel(fixed=context.workload)
    return FragModel(
        half_life=float(args.get("half_life", 0.0)),
        refresh_every=int(args.get("refresh_every", 256)),
        warmup=int(args.get("warmup", 1)),
        drift=float(args.get("drift", 0.0)),
        threshold=float(args.get("threshold", 0.95)),
    )


DEFAULT_REGISTRY = Registry(
    {
        fit.GPU_FIT: lambda args, ctx: fit.GpuFit(),
        fit.NODE_FIT: lambda args, ctx: fit.NodeFit(),
        random_score.NAME: lambda args, ctx: random_score.RandomScore(ctx.seed),
        dotprod.NAME: lambda args, ctx: dotprod.DotProdScore(),
        clustering.NAME: lambda args, ctx: clustering.GpuClusteringScore(),
        packing.NAME: lambda args, ctx: packing.GpuPackingScore(),
        bestfit.NAME: lambda args, ctx: bestfit.BestFitScore(),
        fgd.NAME: lambda args, ctx: fgd.FgdScore(frag_model(args, ctx)),
        binpack.BINPACK: lambda args, ctx: binpack.BinPackScore(),
        binpack.SPREAD: lambda args, ctx: binpack.SpreadScore(),
        load_aware.NAME: lambda args, ctx: load_aware.LoadAwareScore(),
        pickers.FIRST: lambda args, ctx: pickers.FirstPicker(),
        pickers.BEST: lambda args, ctx: pickers.BestPicker(),
        ours.NAME: lambda args, ctx: ours.OursScore(frag_model(args, ctx), **ours.options(args)),
        # VM rules on single GPUs (slot filters); no-ops unless the pool serves VMs (`--libvirt`)
        device_choice.NAME: lambda args, ctx: device_choice.DeviceChoice(),
        vgpu_profile.NAME: lambda args, ctx: vgpu_profile.VgpuProfileRule(),
        passthrough.NAME: lambda args, ctx: passthrough.PassthroughRule(),
        host_busy.NAME: lambda args, ctx: host_busy.HostBusyRule(),
    }
)
