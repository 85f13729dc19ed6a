"""Real-GPU check of `gpupool run`: native speed, MPS sharing, quota enforcement, telemetry.

    .venv/bin/python benchmarks/gpu_check.py OUT_DIR [--seconds 8] [--gpu 0]

Starts a real `gpupool serve` on this host's GPUs (NVML backend, MPS when
nvidia-cuda-mps-control is on PATH) and measures, on one GPU:
  (a) bf16 matmul and a training step: bare vs `gpupool run` whole GPU vs an MPS 100% vGPU
      (target ratio >= 0.98);
  (b) two small workloads at 50%/50% under gpupool+MPS vs the same two under plain time-slicing
      (total throughput);
  (c) a workload that allocates past its memory quota fails or is stopped, while its neighbour
      finishes with a correct result;
  (d) gpupool's telemetry (device memory used, per-process memory) vs nvidia-smi.
Every pooled run is pinned to the same card as the bare run (`--gpu`): the other cards are held
by placeholder claims while the check runs, and each run's binding is checked against the card.
Every worker checks its own numerical result (`correct`): matmuls against an fp32 reference, the
training step by a finite, falling loss, the memory hog by reading back what it wrote.
Writes OUT_DIR/results.md (table) and OUT_DIR/results.json (raw numbers); needs torch with CUDA
for (a)-(c) and says which parts it could not run otherwise. About 3 minutes on an H100.
The same file is also the worker (`--worker matmul|train|small|hog`) that the cases start.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import serverctl  # noqa: E402  (tests/serverctl.py: the same server control the tests use)

GiB = 1024**3


# ----------------------------------------------------------------------------- workers (child side)
def _torch() -> Any:
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("worker: torch sees no CUDA device")
    return torch


def _timed_loop(torch: Any, step: Any, seconds: float, warmup: int = 5) -> tuple[int, float]:
    """Run `step` for about `seconds` after warm-up; returns (iterations, elapsed seconds)."""
    for _ in range(warmup):
        step()
    torch.cuda.synchronize()
    start = time.perf_counter()
    iterations = 0
    while True:
        for _ in range(10):
            step()
        iterations += 10
        torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return iterations, elapsed


def worker_matmul(args: argparse.Namespace) -> dict[str, Any]:
    torch = _torch()
    n = args.size
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    iterations, elapsed = _timed_loop(torch, lambda: a @ b, args.seconds)
    tflops = 2 * n**3 * iterations / elapsed / 1e12
    # The timed product itself, checked against an fp32 reference of the same inputs on the GPU:
    # bf16 keeps 8 bits of mantissa, so a relative error of a few 1e-3 is expected, 2e-2 is not.
    product = (a @ b).float()
    reference = a.float() @ b.float()
    error = ((product - reference).abs().max() / reference.abs().max()).item()
    ok = error < 2e-2 and bool(torch.isfinite(product).all().item())
    return {"rate": tflops, "unit": "TFLOP/s", "iterations": iterations, "rel_error": error, "correct": ok}


def worker_train(args: argparse.Namespace) -> dict[str, Any]:
    torch = _torch()
    width, batch = 4096, 256
    model = torch.nn.Sequential(
        *[m for _ in range(4) for m in (torch.nn.Linear(width, width), torch.nn.GELU())]
    ).to("cuda", dtype=torch.bfloat16)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    data = torch.randn(batch, width, device="cuda", dtype=torch.bfloat16)

    losses: dict[str, Any] = {}

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss = model(data).float().pow(2).mean()
        loss.backward()
        optimizer.step()
        losses.setdefault("first", loss.detach())
        losses["last"] = loss.detach()

    iterations, elapsed = _timed_loop(torch, step, args.seconds)
    # The step minimises mean(output^2): on a working GPU the loss is finite and falls.
    first, last = float(losses["first"].item()), float(losses["last"].item())
    finite = all(p.isfinite().all().item() for p in model.parameters())
    ok = finite and math.isfinite(first) and math.isfinite(last) and last < first
    return {
        "rate": iterations / elapsed,
        "unit": "steps/s",
        "iterations": iterations,
        "loss_first": first,
        "loss_last": last,
        "correct": ok,
    }


def worker_hog(args: argparse.Namespace) -> dict[str, Any]:
    """Allocate 1 GiB blocks up to --alloc-gib (slowly), then hold them for --seconds."""
    torch = _torch()
    blocks = []
    reached = 0
    error = ""
    try:
        for block_number in range(args.alloc_gib):
            blocks.append(torch.empty(GiB, dtype=torch.uint8, device="cuda").fill_(block_number % 251 + 1))
            reached += 1
            torch.cuda.synchronize()
            _write(args.result, {"reached_gib": reached, "done": False})
            time.sleep(0.3)
        time.sleep(args.seconds)
        # Read back what was written: every byte of block k holds k % 251 + 1.
        correct = all(
            int(block.sum(dtype=torch.int64).item()) == GiB * (number % 251 + 1)
            for number, block in enumerate(blocks)
        )
    except RuntimeError as exc:  # torch.cuda.OutOfMemoryError and CUDA errors under MPS
        error = str(exc).splitlines()[0]
        _write(args.result, {"reached_gib": reached, "error": error, "done": True})
        raise SystemExit(1) from None
    return {"reached_gib": reached, "error": error, "done": True, "correct": correct}


WORKERS = {"matmul": worker_matmul, "train": worker_train, "small": worker_matmul, "hog": worker_hog}


def _write(path: str | None, data: dict[str, Any]) -> None:
    if path:
        Path(path).write_text(json.dumps(data))


def run_worker(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", choices=sorted(WORKERS))
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--size", type=int, default=8192)
    parser.add_argument("--alloc-gib", type=int, default=0)
    parser.add_argument("--result")
    args = parser.parse_args(argv)
    result = WORKERS[args.worker](args)
    _write(args.result, result)
    print(json.dumps(result), flush=True)
    return 0


# ------------------------------------------------------------------------------- driver (parent)
class Check:
    """One run of the whole check: a server, a scratch dir, the results."""

    def __init__(self, out: Path, seconds: float, gpu_index: int) -> None:
        self.out = out
        self.seconds = seconds
        self.gpu_index = gpu_index
        self.scratch = Path(tempfile.mkdtemp(prefix="gpu-check-", dir=out))
        self.results: dict[str, Any] = {"cases": {}, "not_run": []}
        self.server: Any = None
        self.uuid = ""
        self.holders: list[str] = []  # placeholder claims on every other card

    # -- plumbing
    def worker_cmd(self, kind: str, *extra: str) -> list[str]:
        return [
            sys.executable,
            str(Path(__file__).resolve()),
            "--worker",
            kind,
            "--seconds",
            str(self.seconds),
            *extra,
        ]

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(GPUPOOL_URL=self.server.url, GPUPOOL_TOKEN=serverctl.ADMIN_TOKEN, **extra)
        return env

    def start(
        self, cmd: list[str], name: str, gpupool_args: list[str] | None, **env: str
    ) -> subprocess.Popen[str]:
        """Start a worker bare (gpupool_args None: CUDA_VISIBLE_DEVICES set by hand) or via `gpupool run`."""
        result = self.scratch / f"{name}.json"
        full = [*cmd, "--result", str(result)]
        if gpupool_args is not None:
            full = [sys.executable, "-m", "gpupool", "run", *gpupool_args, "--", *full]
        else:
            env = {"CUDA_VISIBLE_DEVICES": self.uuid, **env}
        log = open(self.scratch / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
        return subprocess.Popen(full, env=self.env(**env), stdout=log, stderr=subprocess.STDOUT, text=True)

    def finish(self, proc: subprocess.Popen[str], name: str, timeout: float) -> dict[str, Any]:
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        path = self.scratch / f"{name}.json"
        data: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
        data["exit_code"] = code
        bound = _bound_index(self.scratch / f"{name}.log")
        if bound is not None:  # a pooled run: it must have run on the card the bare run used
            data["device_index"] = bound
            data["pinned"] = bound == self.gpu_index
        return data

    def hold_other_cards(self) -> None:
        """Claim every whole card, then give back the one under test: the pool can only place
        pooled runs there, so they compare with the bare run on the same card."""
        with self.server.client(serverctl.ADMIN_TOKEN) as http:
            while True:
                claim = http.post("/v1/claims", json={"gpus": 1}).json()
                if claim.get("state") != "bound":
                    http.delete(f"/v1/claims/{claim['id']}")
                    break
                if claim["bindings"][0]["device_uuid"] == self.uuid:
                    target = claim["id"]
                else:
                    self.holders.append(claim["id"])
            http.delete(f"/v1/claims/{target}")

    def release_holders(self) -> None:
        with self.server.client(serverctl.ADMIN_TOKEN) as http:
            for claim_id in self.holders:
                http.delete(f"/v1/claims/{claim_id}")

    def run_one(self, kind: str, name: str, gpupool_args: list[str] | None, *extra: str) -> dict[str, Any]:
        return self.finish(
            self.start(self.worker_cmd(kind, *extra), name, gpupool_args), name, self.seconds * 4 + 120
        )

    # -- cases
    def case_native_speed(self) -> None:
        """(a) bare vs gpupool whole GPU vs gpupool MPS 100%, for matmul and a training step."""
        mps = self.results["mps"]
        for kind in ("matmul", "train"):
            bare = self.run_one(kind, f"a-{kind}-bare", None)
            whole = self.run_one(kind, f"a-{kind}-whole", ["--gpus", "1"])
            row = {"bare": bare, "gpupool_whole": whole}
            if mps:
                row["gpupool_mps100"] = self.run_one(kind, f"a-{kind}-mps", ["--compute", "100"])
            for key in ("gpupool_whole", "gpupool_mps100"):
                if key in row and bare.get("rate") and row[key].get("rate"):
                    row[f"{key}_ratio"] = row[key]["rate"] / bare["rate"]
            self.results["cases"][f"a_{kind}"] = row

    def case_sharing(self) -> None:
        """(b) two small matmul workloads at once: 50/50 under gpupool+MPS vs plain time-slicing."""
        small = ("--size", "2048")
        half = str(self.results["memory_total_bytes"] // 2 - GiB)
        row: dict[str, Any] = {}
        procs = [self.start(self.worker_cmd("small", *small), f"b-slice-{i}", None) for i in range(2)]
        slices = [self.finish(p, f"b-slice-{i}", self.seconds * 4 + 120) for i, p in enumerate(procs)]
        row["time_slicing"] = {"each": slices, "total": sum(s.get("rate", 0.0) for s in slices)}
        if self.results["mps"]:
            args = ["--compute", "50", "--memory", half]
            procs = [self.start(self.worker_cmd("small", *small), f"b-mps-{i}", args) for i in range(2)]
            shared = [self.finish(p, f"b-mps-{i}", self.seconds * 4 + 120) for i, p in enumerate(procs)]
            row["gpupool_mps_50_50"] = {"each": shared, "total": sum(s.get("rate", 0.0) for s in shared)}
            if row["time_slicing"]["total"]:
                row["mps_over_time_slicing"] = (
                    row["gpupool_mps_50_50"]["total"] / row["time_slicing"]["total"]
                )
        else:
            self.results["not_run"].append("(b) gpupool+MPS 50/50: nvidia-cuda-mps-control not found")
        self.results["cases"]["b_sharing"] = row

    def case_quota(self) -> None:
        """(c) an 8 GiB vGPU that allocates up to 16 GiB next to a neighbour doing checked matmuls."""
        quota = ["--memory", "8GiB", "--compute", "50"]
        hog = self.start(self.worker_cmd("hog", "--alloc-gib", "16"), "c-hog", quota)
        neighbour = self.start(self.worker_cmd("matmul", "--size", "4096"), "c-neighbour", quota)
        hog_result = self.finish(hog, "c-hog", self.seconds * 4 + 120)
        neighbour_result = self.finish(neighbour, "c-neighbour", self.seconds * 4 + 120)
        self.results["cases"]["c_quota"] = {
            "hog": hog_result,
            "neighbour": neighbour_result,
            # Under MPS the pinned limit fails the allocation near 8 GiB; without MPS the watchdog
            # stops it within a telemetry sample or two, so a GiB or two past the quota.
            "hog_stopped": hog_result["exit_code"] != 0 and hog_result.get("reached_gib", 16) < 16,
            "neighbour_ok": neighbour_result["exit_code"] == 0 and bool(neighbour_result.get("correct")),
            "events": [e for e in self.events() if e["action"].startswith(("watchdog.", "mps."))],
        }

    def case_telemetry(self) -> None:
        """(d) hold 6 GiB through gpupool; compare gpupool's numbers with nvidia-smi's."""
        # A whole GPU: NVML's compute-process list shows MPS clients only as the MPS server.
        hog = self.start(
            self.worker_cmd("hog", "--alloc-gib", "6", "--seconds", "120"), "d-hog", ["--gpus", "1"]
        )
        deadline = time.monotonic() + 120
        result_path = self.scratch / "d-hog.json"
        while time.monotonic() < deadline:
            if result_path.exists() and json.loads(result_path.read_text()).get("reached_gib") == 6:
                break
            time.sleep(0.5)
        time.sleep(3)  # two telemetry samples
        with self.server.client(serverctl.ADMIN_TOKEN) as http:
            device = next(d for d in http.get("/v1/devices").json()["items"] if d["uuid"] == self.uuid)
            workloads = [w for w in http.get("/v1/workloads").json()["items"] if w["state"] == "running"]
        smi_used = _smi(["--query-gpu=memory.used", "--format=csv,noheader,nounits", "-i", self.uuid])
        apps = _smi(
            ["--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits", "-i", self.uuid]
        )
        smi_procs = {
            int(pid): int(mib) * 1024**2
            for pid, mib in (line.split(",") for line in apps.splitlines() if line.strip())
            if mib.strip().isdigit()
        }
        ours = {p["pid"]: p["used_memory_bytes"] for w in workloads for p in w["processes"]}
        gpupool_used = device.get("memory_used_bytes") or 0
        nvidia_smi_used = int(smi_used.strip().splitlines()[0]) * 1024**2 if smi_used.strip() else 0
        matched = {pid: (used, smi_procs.get(pid)) for pid, used in ours.items()}
        hog.terminate()
        self.finish(hog, "d-hog", 30)
        self.results["cases"]["d_telemetry"] = {
            "gpupool_memory_used_bytes": gpupool_used,
            "nvidia_smi_memory_used_bytes": nvidia_smi_used,
            "device_within_5pct": abs(gpupool_used - nvidia_smi_used) <= 0.05 * max(nvidia_smi_used, 1),
            "processes": {str(pid): {"gpupool": a, "nvidia_smi": b} for pid, (a, b) in matched.items()},
            "processes_match": bool(matched)
            and all(b is not None and abs(a - b) <= 64 * 1024**2 for a, b in matched.values()),
        }

    def events(self) -> list[dict[str, Any]]:
        with self.server.client(serverctl.ADMIN_TOKEN) as http:
            items: list[dict[str, Any]] = http.get("/v1/events", params={"limit": 10_000}).json()["items"]
        return items

    # -- the run
    def run(self) -> int:
        from serverctl import ServerProcess

        self.results.update(_machine())
        try:
            import torch

            has_cuda = bool(torch.cuda.is_available())
            self.results["torch"] = torch.__version__
        except ImportError:
            has_cuda = False
            self.results["torch"] = None
        if not self.results.get("gpus"):
            self.results["not_run"].append("everything: nvidia-smi found no GPU")
            return self.report(3)
        gpu = self.results["gpus"][self.gpu_index]
        self.uuid = gpu["uuid"]
        self.results["memory_total_bytes"] = gpu["memory_total_mib"] * 1024**2
        self.results["mps"] = shutil.which("nvidia-cuda-mps-control") is not None
        if not self.results["mps"]:
            self.results["not_run"].append("MPS cases: nvidia-cuda-mps-control not on PATH")
        home = self.scratch / "home"
        home.mkdir()
        args = (
            "--watchdog",
            "kill",
            "--watchdog-grace",
            "2",
            "--telemetry-interval",
            "0.5",
            "--lease-ttl",
            "5",
        )
        self.server = ServerProcess(home=home, simulate="", extra_args=args)
        self.server.start(timeout_s=60)
        try:
            self.hold_other_cards()
            if has_cuda:
                for case in (self.case_native_speed, self.case_sharing, self.case_quota, self.case_telemetry):
                    started = time.monotonic()
                    try:
                        case()
                    except Exception as exc:  # one broken case must not hide the others' numbers
                        self.results["not_run"].append(f"{case.__name__}: {type(exc).__name__}: {exc}")
                    self.results.setdefault("case_seconds", {})[case.__name__] = round(
                        time.monotonic() - started, 1
                    )
            else:
                self.results["not_run"].append(
                    "(a)-(d): torch with CUDA is not installed in this environment"
                )
        finally:
            self.release_holders()
            self.server.stop()
        return self.report(0 if has_cuda else 3)

    def report(self, code: int) -> int:
        (self.out / "results.json").write_text(json.dumps(self.results, indent=2, default=str) + "\n")
        (self.out / "results.md").write_text(_table(self.results))
        print(_table(self.results))
        return code


def _bound_index(log: Path) -> int | None:
    """The device index `gpupool run` printed for its claim ("claim c-... bound: node/3 ..."),
    or None for a bare run."""
    if not log.exists():
        return None
    match = re.search(r"claim c-[0-9a-f]+ bound: [^/\s]+/(\d+) ", log.read_text(errors="replace"))
    return int(match.group(1)) if match else None


def _smi(args: list[str]) -> str:
    try:
        return subprocess.run(["nvidia-smi", *args], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""


def _machine() -> dict[str, Any]:
    query = "--query-gpu=index,uuid,name,memory.total,driver_version,compute_mode"
    gpus = []
    for line in _smi([query, "--format=csv,noheader,nounits"]).splitlines():
        index, uuid, name, memory, driver, mode = (part.strip() for part in line.split(","))
        gpus.append(
            {
                "index": int(index),
                "uuid": uuid,
                "name": name,
                "memory_total_mib": int(memory),
                "driver": driver,
                "compute_mode": mode,
            }
        )
    return {"date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "gpus": gpus}


def _rate(row: dict[str, Any], key: str) -> str:
    data = row.get(key) or {}
    return f"{data['rate']:.2f} {data['unit']}" if data.get("rate") else "-"


def _checked(runs: list[dict[str, Any]]) -> str:
    """Whether every run's own result was correct and every pooled run ran on the card under test."""
    problems = []
    if not all(run.get("correct") for run in runs):
        problems.append("WRONG RESULT")
    if not all(run.get("pinned", True) for run in runs):
        problems.append("OTHER CARD")
    return ", ".join(problems) or "correct, same card"


def _table(results: dict[str, Any]) -> str:
    gpu = (results.get("gpus") or [{}])[0]
    lines = [
        f"# gpupool GPU check: {gpu.get('name', 'no GPU')}, driver {gpu.get('driver', '?')}, "
        f"{results['date']}",
        "",
        "| check | measured | target | ok |",
        "|---|---|---|---|",
    ]
    cases = results.get("cases", {})
    for kind in ("matmul", "train"):
        row = cases.get(f"a_{kind}")
        if not row:
            continue
        for key, label in (("gpupool_whole", "whole GPU"), ("gpupool_mps100", "MPS 100%")):
            ratio = row.get(f"{key}_ratio")
            if ratio is not None:
                checked = _checked([row["bare"], row[key]])
                ok = ratio >= 0.98 and checked == "correct, same card"
                lines.append(
                    f"| (a) {kind} {label} vs bare | {_rate(row, key)} / {_rate(row, 'bare')} = {ratio:.3f}; "
                    f"{checked} | >= 0.98, correct, same card | {'yes' if ok else 'NO'} |"
                )
    sharing = cases.get("b_sharing", {})
    if "mps_over_time_slicing" in sharing:
        ratio = sharing["mps_over_time_slicing"]
        mps_total, slice_total = sharing["gpupool_mps_50_50"]["total"], sharing["time_slicing"]["total"]
        checked = _checked(sharing["gpupool_mps_50_50"]["each"] + sharing["time_slicing"]["each"])
        ok = ratio > 1 and checked == "correct, same card"
        lines.append(
            f"| (b) 2x small matmul, MPS 50/50 vs time-slicing | {mps_total:.2f} / {slice_total:.2f} TFLOP/s "
            f"= {ratio:.2f}; {checked} | > 1, correct, same card | {'yes' if ok else 'NO'} |"
        )
    quota = cases.get("c_quota")
    if quota:
        ok = quota["hog_stopped"] and quota["neighbour_ok"]
        lines.append(
            f"| (c) 8 GiB vGPU allocating 16 GiB | hog exit {quota['hog']['exit_code']} at "
            f"{quota['hog'].get('reached_gib', '?')} GiB; neighbour exit {quota['neighbour']['exit_code']}, "
            f"correct {quota['neighbour'].get('correct')} | hog stopped, neighbour fine "
            f"| {'yes' if ok else 'NO'} |"
        )
    tele = cases.get("d_telemetry")
    if tele:
        ok = tele["device_within_5pct"] and tele["processes_match"]
        lines.append(
            f"| (d) memory used, gpupool vs nvidia-smi | {tele['gpupool_memory_used_bytes'] / GiB:.2f} / "
            f"{tele['nvidia_smi_memory_used_bytes'] / GiB:.2f} GiB; "
            f"per process match {tele['processes_match']} | within 5% | {'yes' if ok else 'NO'} |"
        )
    if results.get("not_run"):
        lines += ["", "Not run:", *[f"- {item}" for item in results["not_run"]]]
    return "\n".join(lines) + "\n"


def main() -> int:
    if "--worker" in sys.argv:
        return run_worker(sys.argv[1:])
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", type=Path, help="folder for results.md and results.json")
    parser.add_argument("--seconds", type=float, default=8.0, help="measured seconds per workload")
    parser.add_argument("--gpu", type=int, default=0, help="index of the GPU to use")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    return Check(args.out, args.seconds, args.gpu).run()


if __name__ == "__main__":
    sys.exit(main())
