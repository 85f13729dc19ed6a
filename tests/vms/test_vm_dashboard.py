"""The dashboard of a `serve --libvirt` pool shows which domain holds each GPU (real headless
Chromium, as in tests/dashboard; skipped, with the reason, where it or Playwright is missing)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from vmhost import MDEV_GPU, VFIO_GPU, VmTestHost

from runctl import gpupool
from serverctl import ADMIN_TOKEN, ServerProcess

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip

sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is missing: pip install -e '.[dev]'")
if not CHROMIUM.exists():
    pytest.skip("no /usr/bin/chromium: as root, apt-get install -y chromium", allow_module_level=True)


def test_each_gpu_tile_names_the_domains_holding_it(vm_host: VmTestHost, tmp_path: Path) -> None:
    args = ("--libvirt", vm_host.uri, "--libvirt-host-root", str(vm_host.root))
    server = ServerProcess(home=tmp_path, simulate="", extra_args=args).start()
    profile = tmp_path / "chromium"
    try:
        assert gpupool(server, "tenants", "create", "team-a").returncode == 0
        for domain, how in (("web-1", ("--profile", "A100-4C", "--device", MDEV_GPU)),
                            ("web-2", ("--profile", "A100-4C", "--device", MDEV_GPU)),
                            ("build-1", ("--gpus", "1", "--device", VFIO_GPU))):  # fmt: skip
            result = gpupool(server, "vm", "attach", domain, *how)
            assert result.returncode == 0, result.stderr
        with sync_api.sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                str(profile), executable_path=str(CHROMIUM), args=ARGS, headless=True
            )
            try:
                page = context.new_page()
                page.goto(f"{server.url}/")
                page.fill("#token", ADMIN_TOKEN)
                page.click("#login-form button[type=submit]")
                page.wait_for_selector("#conn[data-state=live]", timeout=15_000)
                page.wait_for_selector(".device .holders", timeout=5_000)
                holders = sorted(page.locator(".device .holders").all_inner_texts())
                assert holders == ["VM build-1", "VM web-1, web-2"]
                title = page.locator(".device .seg").first.get_attribute("title") or ""
                assert "for VM " in title
            finally:
                context.close()
    finally:
        server.stop()
        shutil.rmtree(profile, ignore_errors=True)
