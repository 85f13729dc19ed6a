"""Issue 10, point 6: the smaller things a new user hits. The banner names the policy as the README
and CLI do; the package builds without setuptools' license deprecation; and, in real headless
Chromium, the dashboard shows a workload's command (not its argument count), memory in the CLI's
units, every event row in the window, and a different colour for every tenant."""

from __future__ import annotations

import colorsys
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from browserctl import signed_in_page
from runctl import gpupool, wait_for
from serverctl import ADMIN_TOKEN, ServerProcess

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_the_banner_names_the_policy_as_the_cli_does(server: ServerProcess) -> None:
    assert "policy default" in server.log_text()
    assert "policy ours" not in server.log_text()
    # /healthz reports the profile (`ours`): the banner names it beside the alias so the two agree
    assert "policy default (= ours)" in server.log_text()
    health = httpx.get(f"{server.url}/healthz", timeout=10).json()
    assert health["policy"] == "ours"


def test_pyproject_uses_an_spdx_license_so_builds_do_not_warn() -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    assert project["project"]["license"] == "Apache-2.0", "a table is deprecated (warned 3x per install)"
    assert "setuptools>=77" in project["build-system"]["requires"], "SPDX strings need setuptools 77"
    assert "sim/data/*.csv" in project["tool"]["setuptools"]["package-data"]["gpupool"]


@pytest.fixture(scope="module")
def page(server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    profile = tmp_path_factory.mktemp("chromium-profile")
    with signed_in_page(server.url, ADMIN_TOKEN, profile, {"width": 1440, "height": 860}) as page:
        yield page


def test_the_feed_shows_a_workloads_command(page: Any, server: ServerProcess) -> None:
    started = gpupool(server, "run", "--detach", "--memory", "1GiB", "--", "sleep", "30")
    assert started.returncode == 0, started.stderr
    claim_id = started.stdout.strip()
    try:
        wait_for(lambda: "command=sleep 30" in page.inner_text("#events"), timeout=10)
        assert "command: 2" not in page.inner_text("#events")
    finally:
        gpupool(server, "stop", claim_id)


def test_memory_reads_as_in_the_cli(page: Any, server: ServerProcess) -> None:
    listed = gpupool(server, "devices")
    assert "79.6GiB" in listed.stdout
    wait_for(lambda: "/79.6GiB" in page.inner_text("#nodes"), timeout=10)
    assert not re.search(r"\d+G/\d+G\b", page.inner_text("#nodes")), "no `80G/80G`"


def test_every_tenant_has_its_own_colour_and_the_last_event_is_in_the_window(
    page: Any, server: ServerProcess
) -> None:
    with server.client() as http:
        for number in range(8):
            http.post("/v1/tenants", json={"name": f"team-{number}"})
        for _ in range(30):  # a long feed, and a queue
            http.delete(f"/v1/claims/{http.post('/v1/claims', json={'memory': '1GiB'}).json()['id']}")
    page.reload()
    page.wait_for_selector("#conn[data-state=live]", timeout=10_000)
    wait_for(lambda: "team-7" in page.inner_text("#tenants"), timeout=10)
    colours = page.eval_on_selector_all(
        "#tenants .tenant-head .swatch", "els => els.map(e => getComputedStyle(e).backgroundColor)"
    )
    hues = sorted(_hue(colour) for colour in colours)
    assert len(hues) >= 8, colours  # eight teams (and the admin, when it holds something)
    gaps = [(b - a) for a, b in zip(hues, [*hues[1:], hues[0] + 360], strict=True)]
    assert min(gaps) >= 19, f"two tenants look alike: hues {hues}"
    page.evaluate("document.querySelector('#events').scrollTop = 1e9")
    geometry = page.evaluate(
        """() => {
            const list = document.querySelector('#events');
            const last = list.lastElementChild.getBoundingClientRect();
            const panel = document.querySelector('.events-panel').getBoundingClientRect();
            return {last: last.bottom, panel: panel.bottom, window: innerHeight};
        }"""
    )
    assert geometry["last"] <= geometry["panel"] <= geometry["window"], geometry


def _hue(css: str) -> float:
    red, green, blue = (int(part) / 255 for part in re.findall(r"\d+", css)[:3])
    return 360 * colorsys.rgb_to_hls(red, green, blue)[0]
