"""Robustness matrix: ours vs fgd vs bestfit on generated trace variants nobody tuned for.

    .venv/bin/python benchmarks/robustness.py [--set reporting|tuning|both] [--seeds 101-110]
        [--variants multi30,spec25] [--policies fgd,bestfit,ours] [--workers 2]
        [--out benchmarks/ROBUSTNESS_RESULTS.md] [--json FILE] [--no-cache]

Variants are made by `gpupool.sim.variants` from the `default` trace (the rules of the FGD paper's
variant families, BENCHMARK.md) and cached under ~/.cache/gpupool/variants (never in the repo).
Two disjoint sets: TUNING (variant shares, generator seed 1, simulator seeds 42-51) is what the
policy may be looked at on while changing it; REPORTING (other shares, generator seed 2, simulator
seeds 101-110) is only measured. Finished replays are cached under ~/.cache/gpupool/robustness,
keyed by the variant file, the policy's profile and the scheduler/simulator source, so a rerun
after a change to `ours` replays only `ours`.

Per variant: unallocated GPU % at arrived 100 / 130 (median of the seeds) for each policy, the
median of the per-seed deltas ours - fgd (same arrival order), and the worst seed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from sim_bench import machine

from gpupool.scheduler.profiles import Profile, resolve
from gpupool.sim.cli import parse_seeds
from gpupool.sim.engine import RunResult
from gpupool.sim.runner import Job, run_jobs
from gpupool.sim.trace import read_nodes
from gpupool.sim.variants import (
    GENERATOR_VERSION,
    VariantSpec,
    generate,
    measured_shares,
    read_rows,
    write_rows,
)

REPO = Path(__file__).resolve().parents[1]
CSV = REPO.parent / "shared" / "data" / "alibaba-gpu-v2023" / "csv"
NODES = CSV / "openb_node_list_gpu_node.csv"
SOURCE = CSV / "openb_pod_list_default.csv"
CACHE = Path.home() / ".cache" / "gpupool"
POINTS = (100, 130)
POLICIES = ("fgd", "bestfit", "ours")
TUNING_SEEDS = "42-51"
REPORTING_SEEDS = "101-110"
TUNING_GENERATOR_SEED = 1
REPORTING_GENERATOR_SEED = 2


@dataclass(frozen=True)
class Variant:
    name: str
    shares: dict[str, Any] = field(hash=False)
    generator_seed: int = REPORTING_GENERATOR_SEED

    def spec(self) -> VariantSpec:
        return VariantSpec(**self.shares, seed=self.generator_seed)

    def describe(self) -> str:
        words = {
            "multi_gpu_share": "multi-GPU",
            "gpu_spec_share": "GPU-type",
            "sharing_share": "sharing",
            "cpu_only_share": "CPU-only",
        }
        parts = [f"{words[key]} {value:.0%}" for key, value in self.shares.items() if key in words]
        if not parts:
            return "the default trace as it is"
        if self.shares.get("spec_weights", "gpus") != "gpus":
            parts.append(f"models {'uniform' if self.shares['spec_weights'] == 'models' else 'by nodes'}")
        return ", ".join(parts)


def _variants(seed: int, table: Sequence[tuple[str, dict[str, Any]]]) -> list[Variant]:
    return [Variant(name, shares, seed) for name, shares in table]


TUNING = _variants(
    TUNING_GENERATOR_SEED,
    [
        ("default", {}),
        ("multi25", {"multi_gpu_share": 0.25}),
        ("multi45", {"multi_gpu_share": 0.45}),
        ("spec15", {"gpu_spec_share": 0.15}),
        ("spec30", {"gpu_spec_share": 0.30}),
        ("spec30-uniform", {"gpu_spec_share": 0.30, "spec_weights": "models"}),
        ("share30", {"sharing_share": 0.30}),
        ("share70", {"sharing_share": 0.70}),
        ("share90", {"sharing_share": 0.90}),
        ("multi35-spec15u", {"multi_gpu_share": 0.35, "gpu_spec_share": 0.15, "spec_weights": "models"}),
        ("multi25-share50", {"multi_gpu_share": 0.25, "sharing_share": 0.50}),
    ],
)
REPORTING = _variants(
    REPORTING_GENERATOR_SEED,
    [
        ("multi20", {"multi_gpu_share": 0.20}),
        ("multi30", {"multi_gpu_share": 0.30}),
        ("multi40", {"multi_gpu_share": 0.40}),
        ("multi50", {"multi_gpu_share": 0.50}),
        ("spec05", {"gpu_spec_share": 0.05}),
        ("spec10", {"gpu_spec_share": 0.10}),
        ("spec20", {"gpu_spec_share": 0.20}),
        ("spec25", {"gpu_spec_share": 0.25}),
        ("spec33", {"gpu_spec_share": 0.33}),
        ("spec25-uniform", {"gpu_spec_share": 0.25, "spec_weights": "models"}),
        ("spec33-uniform", {"gpu_spec_share": 0.33, "spec_weights": "models"}),
        ("share20", {"sharing_share": 0.20}),
        ("share40", {"sharing_share": 0.40}),
        ("share60", {"sharing_share": 0.60}),
        ("share80", {"sharing_share": 0.80}),
        ("share100", {"sharing_share": 1.00}),
        ("multi30-spec25", {"multi_gpu_share": 0.30, "gpu_spec_share": 0.25}),
        ("multi40-share60", {"multi_gpu_share": 0.40, "sharing_share": 0.60}),
        ("share60-spec20u", {"sharing_share": 0.60, "gpu_spec_share": 0.20, "spec_weights": "models"}),
        (
            "multi20-spec33-cpu20",
            {"multi_gpu_share": 0.20, "gpu_spec_share": 0.33, "cpu_only_share": 0.20},
        ),
    ],
)
SETS = {"tuning": (TUNING, TUNING_SEEDS), "reporting": (REPORTING, REPORTING_SEEDS)}


# ---------------------------------------------------------------------------- caches
def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def variant_file(variant: Variant, nodes: Path = NODES, source: Path = SOURCE) -> Path:
    """The variant's CSV, generated once into the cache (keyed by its spec and the source files)."""
    # version 2 changed only multi+sharing combinations: theirs are the only files it renamed
    version = (
        GENERATOR_VERSION if "sharing_share" in variant.shares and "multi_gpu_share" in variant.shares else 1
    )
    extra = "" if version == 1 else f"|v{version}"
    key = _sha((repr((variant.spec(), _sha(source.read_bytes()), _sha(nodes.read_bytes()))) + extra).encode())
    path = CACHE / "variants" / f"{variant.name}-{key}.csv"
    if not path.is_file():
        rows = generate(read_rows(source), read_nodes(nodes), variant.spec())
        partial = path.with_suffix(".tmp")
        write_rows(partial, rows)
        partial.replace(path)
    return path


def code_key(policy: str | Profile) -> str:
    """What a cached replay depends on: the scheduler source, the simulator's arrival, trace and
    measurement code, and the policy's profile (`ours.py` only for profiles that use it, so
    baselines survive changes to `ours`)."""
    profile = resolve(policy) if isinstance(policy, str) else policy
    uses_ours = any(ref.name == "ours" for ref in (*profile.scores, profile.picker))
    src = REPO / "src" / "gpupool"
    files = sorted((src / "scheduler").rglob("*.py"))
    files += [src / "sim" / name for name in ("arrival.py", "trace.py", "metrics.py")]
    skip = {src / "scheduler" / "profiles.py", src / "scheduler" / "live.py"}
    if not uses_ours:
        skip.add(src / "scheduler" / "plugins" / "ours.py")
    digest = hashlib.sha256(repr(profile).encode())
    for path in files:
        if path not in skip:
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


class ResultCache:
    """Per replay: unallocated % at the report points and decision-time percentiles, on disk."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.data: dict[str, dict[str, float]] = {}
        if path is not None and path.is_file():
            self.data = json.loads(path.read_text())

    def key(self, pods: Path, policy: str | Profile, seed: int) -> str:
        name = policy if isinstance(policy, str) else policy.name
        return f"{pods.name}|{name}|{code_key(policy)}|{seed}"

    def put(self, key: str, result: RunResult) -> dict[str, float]:
        row = {f"u{p}": round(result.curves.unallocated_at(p), 4) for p in POINTS}
        row["ms_p50"] = round(float(np.median(result.decision_ms)), 4)
        row["ms_p99"] = round(float(np.percentile(result.decision_ms, 99)), 4)
        row["wall_s"] = round(result.wall_s, 2)
        if result.decision_cpu_ms is not None:
            row["cpu_ms_p50"] = round(float(np.median(result.decision_cpu_ms)), 4)
            row["cpu_ms_p99"] = round(float(np.percentile(result.decision_cpu_ms, 99)), 4)
        self.data[key] = row
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            partial = self.path.with_suffix(".tmp")
            partial.write_text(json.dumps(self.data))
            partial.replace(self.path)
        return row


# ---------------------------------------------------------------------------- running
def run_matrix(
    variants: Iterable[Variant],
    policies: Sequence[str | Profile],
    seeds: Sequence[int],
    workers: int = 2,
    cache: ResultCache | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, dict[str, list[dict[str, float]]]]:
    """variant name -> policy name -> one row per seed (in `seeds` order)."""
    cache = cache or ResultCache(None)
    chosen = list(variants)
    files = {v.name: variant_file(v) for v in chosen}
    jobs: list[tuple[str, str, Job]] = []
    keys: dict[tuple[str, int, int], str] = {}  # taken once: the source may change during a long run
    for variant in chosen:
        for number, policy in enumerate(policies):
            for seed in seeds:
                job = Job(NODES, files[variant.name], policy, seed)
                key = keys[(variant.name, number, seed)] = cache.key(job.pods, policy, seed)
                if key not in cache.data:
                    jobs.append((variant.name, key, job))
    log(f"{len(chosen)} variants x {len(policies)} policies x {len(seeds)} seeds: {len(jobs)} replays to run")
    started = time.perf_counter()
    done = 0
    # one variant at a time so each worker reads a variant's CSV once
    for name in dict.fromkeys(item[0] for item in jobs):
        batch = [item for item in jobs if item[0] == name]

        def finished(result: RunResult, batch: list[tuple[str, str, Job]] = batch, name: str = name) -> None:
            nonlocal done
            done += 1
            elapsed = time.perf_counter() - started
            eta = elapsed / done * (len(jobs) - done)
            log(
                f"[{done}/{len(jobs)}] {name} {result.policy} seed {result.seed}: "
                f"{result.curves.unallocated_at(100):.2f} / {result.curves.unallocated_at(130):.2f} % "
                f"({result.wall_s:.1f} s; {elapsed / 60:.1f} min so far, ~{eta / 60:.0f} min left)"
            )

        results = run_jobs([item[2] for item in batch], workers, finished)
        for (_, key, _), result in zip(batch, results, strict=True):
            cache.put(key, result)
    table: dict[str, dict[str, list[dict[str, float]]]] = {}
    for variant in chosen:
        rows = table.setdefault(variant.name, {})
        for number, policy in enumerate(policies):
            name = policy if isinstance(policy, str) else policy.name
            rows[name] = [cache.data[keys[(variant.name, number, seed)]] for seed in seeds]
    return table


# ---------------------------------------------------------------------------- summaries
@dataclass(frozen=True)
class Delta:
    """ours - fgd on one variant: median over seeds of the per-seed deltas, and the worst seed."""

    median: dict[int, float]
    worst: dict[int, float]


def delta(rows: dict[str, list[dict[str, float]]], ours: str = "ours", base: str = "fgd") -> Delta:
    per_seed = {
        p: [a[f"u{p}"] - b[f"u{p}"] for a, b in zip(rows[ours], rows[base], strict=True)] for p in POINTS
    }
    return Delta(
        {p: float(np.median(v)) for p, v in per_seed.items()}, {p: max(v) for p, v in per_seed.items()}
    )


def median_of(rows: list[dict[str, float]], column: str) -> float:
    return float(np.median([row[column] for row in rows]))


def summary(table: dict[str, dict[str, list[dict[str, float]]]], ours: str = "ours") -> dict[int, Any]:
    """Mean and worst of the per-variant median deltas, and how many variants ours is <= fgd on."""
    deltas = {name: delta(rows, ours) for name, rows in table.items()}
    out: dict[int, Any] = {}
    for p in POINTS:
        medians = [d.median[p] for d in deltas.values()]
        worst_variant = max(deltas, key=lambda name: deltas[name].median[p])
        out[p] = {
            "mean_delta": float(np.mean(medians)),
            "worst_variant": worst_variant,
            "worst_variant_delta": deltas[worst_variant].median[p],
            "worst_seed_delta": max(d.worst[p] for d in deltas.values()),
            "variants_not_worse": sum(1 for m in medians if m <= 0),
            "variants": len(medians),
        }
    return out


def render(
    title: str,
    variants: Sequence[Variant],
    table: dict[str, dict[str, list[dict[str, float]]]],
    names: Sequence[str],
    seeds: Sequence[int],
) -> list[str]:
    """A markdown section: per variant the policies' medians and, for every `ours*` policy, its
    deltas to fgd; then the summary and decision times."""
    contenders = [n for n in names if n.startswith("ours")] if "fgd" in names else []
    head = "".join(f" | {n} - fgd 100 / 130 | worst seed" for n in contenders)
    lines = [
        f"### {title}: {len(variants)} variants, generator seed {variants[0].generator_seed}, "
        f"simulator seeds {seeds[0]}-{seeds[-1]}",
        "",
        "Unallocated GPU % at arrived 100 / 130 (median of the seeds); delta = median over the seeds "
        "of ours - fgd on the same arrival order (negative: ours allocates more); worst seed = the "
        "largest per-seed delta.",
        "",
        "| variant | mix | " + " | ".join(names) + head + " |",
        "|---|---|" + "---|" * len(names) + "---|---|" * len(contenders),
    ]
    for variant in variants:
        rows = table[variant.name]
        cells = [f"{median_of(rows[n], 'u100'):.2f} / {median_of(rows[n], 'u130'):.2f}" for n in names]
        for name in contenders:
            d = delta(rows, name)
            cells.append(f"{d.median[100]:+.2f} / {d.median[130]:+.2f}")
            cells.append(f"{d.worst[100]:+.2f} / {d.worst[130]:+.2f}")
        lines.append(f"| {variant.name} | {variant.describe()} | " + " | ".join(cells) + " |")
    lines.append("")
    for name in contenders:
        s = summary(table, name)
        lines += [
            f"{name}: mean of the per-variant deltas **{s[100]['mean_delta']:+.2f}** at 100 and "
            f"**{s[130]['mean_delta']:+.2f}** at 130; <= fgd on {s[100]['variants_not_worse']}/"
            f"{len(variants)} variants at 100 and {s[130]['variants_not_worse']}/{len(variants)} at 130; "
            "worst variant "
            f"{s[100]['worst_variant']} {s[100]['worst_variant_delta']:+.2f} at 100 and "
            f"{s[130]['worst_variant']} {s[130]['worst_variant_delta']:+.2f} at 130; worst single seed "
            f"{s[100]['worst_seed_delta']:+.2f} / {s[130]['worst_seed_delta']:+.2f}.",
            "",
        ]
    lines += [
        "Decision time per pod (ms; median over the variants of each replay's median / p99; wall time, "
        "and in brackets the deciding thread's CPU time, which leaves out other processes on the shared "
        "cores): " + ", ".join(f"{n} {_times(table, variants, n)}" for n in names) + ".",
        "",
    ]
    return lines


def _times(
    table: dict[str, dict[str, list[dict[str, float]]]], variants: Sequence[Variant], name: str
) -> str:
    def over(column: str) -> float:
        return float(np.median([median_of(table[v.name][name], column) for v in variants]))

    text = f"{over('ms_p50'):.3f} / {over('ms_p99'):.2f}"
    if all("cpu_ms_p50" in row for v in variants for row in table[v.name][name]):
        text += f" [{over('cpu_ms_p50'):.3f} / {over('cpu_ms_p99'):.2f}]"
    return text


def ours_variant(text: str) -> Profile:
    """The ours profile with some arguments changed ('key=value,...'; values as Python literals)."""
    import ast

    base = resolve("ours")
    ref = base.scores[0]
    changed: dict[str, Any] = {}
    for item in filter(None, text.split(",")):
        key, _, value = item.partition("=")
        try:
            changed[key.strip()] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            changed[key.strip()] = value.strip()
    score = replace(ref, args={**ref.args, **changed})
    return replace(base, name=f"ours[{text}]", scores=(score,))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--set", choices=("reporting", "tuning", "both"), default="both")
    parser.add_argument("--seeds", default=None, help="override the set's simulator seeds")
    parser.add_argument("--variants", default=None, help="comma-separated names (default: the whole set)")
    parser.add_argument("--policies", default=",".join(POLICIES))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "ROBUSTNESS_RESULTS.md")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--no-cache", action="store_true", help="replay everything (results still saved)")
    parser.add_argument(
        "--ours-args",
        default=None,
        help="also run a variant of the ours profile, e.g. 'reserve=0,foreign_idle=True' (tuning)",
    )
    args = parser.parse_args()
    policies: list[str | Profile] = list(args.policies.split(","))
    if args.ours_args:
        policies.append(ours_variant(args.ours_args))
    cache_path = CACHE / "robustness" / "results.json"
    cache = ResultCache(cache_path)
    if args.no_cache:
        cache.data = {}
    started = time.perf_counter()
    command = " ".join(["benchmarks/robustness.py", *sys.argv[1:]])
    m = machine()
    lines = [
        "## Robustness matrix: trace variants nobody tuned for (issue 13)",
        "",
        f"Command: `.venv/bin/python {command}`",
        f"Machine: `{m['uname']}`, nproc {m['nproc']}, {m['cpu']}; {m['date']}.",
    ]
    report: dict[str, Any] = {}
    for name in ("tuning", "reporting") if args.set == "both" else (args.set,):
        variants, default_seeds = SETS[name]
        if args.variants:
            wanted = set(args.variants.split(","))
            variants = [v for v in variants if v.name in wanted]
            if not variants:
                continue
        seeds = parse_seeds(args.seeds or default_seeds)
        table = run_matrix(variants, policies, seeds, args.workers, cache, log=lambda m: print(m, flush=True))
        shares = {v.name: measured_shares(read_rows(variant_file(v))) for v in variants}
        names = [p if isinstance(p, str) else p.name for p in policies]
        summaries = {n: summary(table, n) for n in names if n.startswith("ours") and "fgd" in names}
        report[name] = {"table": table, "summary": summaries, "shares": shares}
        lines += render(f"{name.capitalize()} set", variants, table, names, seeds)
    lines.insert(4, f"({(time.perf_counter() - started) / 60:.1f} min in this run, cached replays reused.)")
    args.out.write_text("\n".join(lines) + "\n")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=str) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
