"""A real headless Chromium (Debian's /usr/bin/chromium, which `make test` installs when it is
missing), driven by Playwright's Python API. Playwright's own browser download cannot run
here, so it is pointed at the system browser; each launch gets a fresh profile."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, Page, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


@contextmanager
def chromium() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        raise RuntimeError(f"{CHROMIUM} is missing: `make test` installs it (apt-get install -y chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


def csrf_of(page: Page) -> str:
    """The CSRF value the page's forms carry (every page has the log-out form)."""
    return page.locator("input[name=csrf]").first.get_attribute("value") or ""


def heading(page: Page) -> str:
    return re.sub(r"\s+", " ", page.locator("h1").first.inner_text()).strip()
