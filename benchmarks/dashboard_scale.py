"""Dashboard benchmark: a 1,000-node (8,000-GPU) simulated pool in headless Chromium.

For this checkout, and for a baseline source tree in the same run (`--baseline-src`, e.g. the
`src/` of `git archive main src | tar -x -C /tmp/base`), it starts `gpupool serve`, signs the
dashboard in and measures
  * seconds from opening the page to every device tile drawn,
  * over 10 s of live updates while a claim arrives every 0.5 s: the page's main-thread CPU time
    per telemetry sample, its longest stall (a 100 ms timer firing late; wall time, so it grows
    with the machine's load) and the device tiles it re-created,
  * the size of the stream's first message and of the largest message after it.
Prints a Markdown table; `--out FILE` also writes the numbers as JSON.

    .venv/bin/python benchmarks/dashboard_scale.py [--baseline-src /tmp/base/src] [--out r.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

TESTS = Path(__file__).resolve().parents[1] / "tests"
sys.path[:0] = [str(TESTS), str(TESTS / "dashboard")]

from pagewatch import WATCH, task_cpu_s  # noqa: E402 (after the path)

from serverctl import ADMIN_TOKEN, ServerProcess  # noqa: E402

NODES = 1000
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


def stream_sizes(server: ServerProcess) -> tuple[int, int]:
    """Bytes of the first stream message and the largest of the next ones while a claim is bound."""
    sizes: list[int] = []
    with server.client() as http, http.stream("GET", "/v1/stream", timeout=120) as stream:
        data: list[str] = []
        started = None
        for line in stream.iter_lines():
            if line.startswith("data: "):
                data.append(line[6:])
            elif line == "" and data:
                sizes.append(len("\n".join(data)))
                data = []
                if len(sizes) == 1:
                    claim = http.post("/v1/claims", json={"memory": "10GiB", "compute": 25}).json()
                    started = time.monotonic()
                elif started is not None and time.monotonic() - started > 5:
                    break
        http.delete(f"/v1/claims/{claim['id']}")
    return sizes[0], max(sizes[1:])


def page_numbers(server: ServerProcess) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        started = time.monotonic()
        page.goto(f"{server.url}/")
        page.fill("#token", ADMIN_TOKEN)
        page.click("#login-form button[type=submit]")
        # Polled from here: the page's CSP forbids the eval that wait_for_function uses.
        while page.evaluate("document.querySelectorAll('.device').length") < NODES * 8:
            time.sleep(0.2)
        loaded_s = time.monotonic() - started
        cdp = page.context.new_cdp_session(page)
        cdp.send("Performance.enable", {"timeDomain": "threadTicks"})  # CPU time, not wall time
        page.evaluate(WATCH)
        made: list[str] = []
        with server.client() as http:
            http.timeout = httpx.Timeout(300)
            cpu_before, sample_before = task_cpu_s(cdp), http.get("/v1/overview").json()["sample_id"]
            for _ in range(20):
                made.append(http.post("/v1/claims", json={"memory": "8GiB", "compute": 10}).json()["id"])
                time.sleep(0.5)
            cpu_s = task_cpu_s(cdp) - cpu_before
            samples = http.get("/v1/overview").json()["sample_id"] - sample_before
            tiles, lag = page.evaluate("[window.__tiles, window.__lag]")
            for claim_id in made:
                http.delete(f"/v1/claims/{claim_id}")
        browser.close()
    return {
        "load_s": loaded_s,
        "max_stall_ms": lag,
        "tiles_recreated": tiles,
        "cpu_s_per_sample": cpu_s / max(samples, 1),
    }


def measure(src: Path | None, label: str) -> dict[str, Any]:
    env_before = os.environ.get("PYTHONPATH")
    if src is not None:
        os.environ["PYTHONPATH"] = str(src)
    try:
        with tempfile.TemporaryDirectory() as home:
            server = ServerProcess(home=Path(home), simulate=f"{NODES}x8xH100-80GB").start(timeout_s=180)
            try:
                first, largest = stream_sizes(server)
                result = {
                    "label": label,
                    "first_message_kib": first / 1024,
                    "largest_next_kib": largest / 1024,
                }
                result.update(page_numbers(server))
                return result
            finally:
                server.stop()
    finally:
        if env_before is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = env_before


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--baseline-src", type=Path, help="a src/ tree to measure the same way (e.g. main's)")
    parser.add_argument("--out", type=Path, help="write the numbers as JSON here")
    args = parser.parse_args()
    runs = []
    if args.baseline_src is not None:
        runs.append(measure(args.baseline_src.resolve(), "baseline"))
    runs.append(measure(None, "this checkout"))
    print(f"machine: {platform.node()} {os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d')}")
    print(
        "| tree | page drawn | main-thread CPU per sample | longest stall | tiles re-created in 10 s "
        "| first message | largest next |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in runs:
        print(
            f"| {r['label']} | {r['load_s']:.1f} s | {r['cpu_s_per_sample']:.2f} s "
            f"| {r['max_stall_ms']:.0f} ms | {r['tiles_recreated']} | "
            f"{r['first_message_kib']:.0f} KiB | {r['largest_next_kib']:.1f} KiB |"
        )
    if args.out:
        args.out.write_text(json.dumps(runs, indent=2) + "\n")


if __name__ == "__main__":
    main()
