"""The dashboard in real headless Chromium: Debian's `/usr/bin/chromium` driven by Playwright's
Python package (nothing is downloaded at test time). Tests skip, with the reason, without either."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def require_browser() -> Any:
    """Playwright's sync API, or a skip saying what is missing."""
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="Playwright's Python package is missing: pip install -e '.[dev]'"
    )
    if not CHROMIUM.exists():
        pytest.skip(
            "no /usr/bin/chromium: as root, apt-get install -y chromium (scripts/test.sh does it)",
            allow_module_level=True,
        )
    return sync_api


@contextlib.contextmanager
def signed_in_page(url: str, token: str, profile: Path, viewport: dict[str, int]) -> Iterator[Any]:
    """A dashboard page signed in with `token`, in a fresh Chromium profile; fails the test when
    the page raised a JavaScript error."""
    sync_api = require_browser()
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True, viewport=viewport
        )
        try:
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(f"{url}/")
            page.fill("#token", token)
            page.click("#login-form button[type=submit]")
            page.wait_for_selector("#conn[data-state=live]", timeout=10_000)
            yield page
            assert errors == [], f"JavaScript errors on the page: {errors}"
        finally:
            context.close()
            shutil.rmtree(profile, ignore_errors=True)
