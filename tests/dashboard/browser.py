"""Headless Chromium for the dashboard tests: Debian's `chromium`, driven by Playwright's Python
package (nothing is downloaded at test time). Importing this skips the importing module, with the
reason, when either is missing."""

from __future__ import annotations

from pathlib import Path

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

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="Playwright's Python package is missing: pip install -e '.[dev]'"
)
if not CHROMIUM.exists():
    pytest.skip(
        "no /usr/bin/chromium: as root, apt-get install -y chromium (scripts/test.sh does it)",
        allow_module_level=True,
    )
