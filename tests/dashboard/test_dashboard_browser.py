"""The live dashboard in real headless Chromium (Debian `chromium`, driven by Playwright's Python
package; nothing is downloaded at test time). Skipped, with the reason, when either is missing."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from browserctl import require_browser, signed_in_page
from serverctl import ADMIN_TOKEN, ServerProcess

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

require_browser()  # skips the module, with the reason, without Playwright or Chromium


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(home=tmp_path_factory.mktemp("dashboard"), simulate="2x4xH100-80GB").start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def page(server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A signed-in dashboard page in a fresh Chromium profile."""
    profile = tmp_path_factory.mktemp("chromium-profile")
    with signed_in_page(server.url, ADMIN_TOKEN, profile, {"width": 1440, "height": 900}) as page:
        yield page


def test_dashboard_shows_every_device_of_the_pool(page: Any) -> None:
    assert page.locator(".device").count() == 8
    assert page.locator(".node").count() == 2
    assert "signed in as admin" in page.inner_text("#viewer")


def test_claim_made_through_the_api_appears_without_reload(page: Any, server: ServerProcess) -> None:
    page.evaluate("window.__noReload = true")
    with server.client() as http:
        token = http.post("/v1/tenants", json={"name": "team-a"}).json()["token"]
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}) as team_a:
        started = time.monotonic()
        claim = team_a.post("/v1/claims", json={"memory": "20GiB", "compute": 30}).json()
        assert claim["state"] == "bound"
        page.wait_for_selector(f'.seg[data-claim="{claim["id"]}"]', timeout=2_000)
        seen_after_s = time.monotonic() - started
        # Above team-a's limit, so it waits in the queue (with the quota as its reason).
        with server.client() as admin:
            admin.put("/v1/tenants/team-a/quota", json={"limit": "1gpu"}).raise_for_status()
        queued = team_a.post("/v1/claims", json={"gpus": 2}).json()
        assert queued["state"] == "pending"
        page.wait_for_selector("#queue li[data-claim]", timeout=2_000)
    assert seen_after_s < 2.0
    assert page.evaluate("window.__noReload") is True, "the page was reloaded"
    assert claim["id"] in page.inner_text("#events")
    assert queued["id"] in page.inner_text("#queue")
    assert "team-a" in page.inner_text("#tenants")
    page.wait_for_timeout(2_500)  # a couple of utilization samples for the sparklines
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
    assert (ARTIFACTS / "dashboard.png").stat().st_size > 10_000


def test_admin_releases_a_claim_from_its_detail(page: Any, server: ServerProcess) -> None:
    with server.client() as http:
        claim = http.post("/v1/claims", json={"gpus": 1}).json()
    segment = page.locator(f'.seg[data-claim="{claim["id"]}"]').first
    segment.wait_for(timeout=2_000)
    segment.click()
    page.wait_for_selector("#detail:not([hidden]) button[data-action=release]")
    assert claim["id"] in page.inner_text("#detail-body")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#detail button[data-action=release]")
    page.wait_for_selector("#detail-body .state.released", timeout=2_000)
    page.keyboard.press("Escape")
    page.wait_for_selector(f'.seg[data-claim="{claim["id"]}"]', state="detached", timeout=2_000)
    with server.client() as http:
        assert http.get(f"/v1/claims/{claim['id']}").json()["state"] == "released"
