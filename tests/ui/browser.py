"""A real browser for the console's tests: Debian's chromium driven by Playwright, no browser download.

    with browser_session(tmp_path, engine_url) as console:   # a fresh profile per session
        console.login(token)                                  # pastes the token into /ui/login
        console.goto("/ui/rollout?name=scorer")
        console.page                                          # the Playwright page
        console.assert_clean()                                # no console error, no failed request, no 4xx/5xx

``chromium_path()`` installs the ``chromium`` package with apt when /usr/bin/chromium is absent
(``tests.support.apt``: one install at a time, under a file lock). Playwright's own browsers are
never installed: the launch names Debian's binary. Screenshots go to ``CAXTON_SCREENSHOTS`` when
set (``make screenshots`` points it at docs/screenshots), else to the test's tmp dir.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.apt import ensure_command

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SIZES = {"wide": (1280, 800), "narrow": (390, 844)}
#: Generous: the suite runs on loaded machines; every wait returns as soon as its condition holds.
WAIT_MS = 60_000


def chromium_path() -> str:
    return ensure_command("chromium", package="chromium")


def screenshot_dir(tmp_path: Path) -> Path:
    chosen = os.environ.get("CAXTON_SCREENSHOTS")
    out = Path(chosen) if chosen else tmp_path / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    return out


@dataclass
class Console:
    """One browser profile on the console of the engine at ``url``, recording every problem it sees."""

    page: Any
    url: str
    problems: list[str] = field(default_factory=list)

    def watch(self) -> None:
        self.page.on("console", lambda m: self.problems.append(f"console {m.type}: {m.text}")
                     if m.type in ("error", "warning") else None)
        self.page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        self.page.on("requestfailed", lambda r: self._failed(r))
        self.page.on("response", lambda r: self._response(r))
        self.page.on("request", lambda r: None if r.url.startswith((self.url, "data:")) else
                     self.problems.append(f"external request: {r.url}"))

    def _failed(self, request: Any) -> None:
        failure = request.failure or ""
        # A page left while its event stream or a live refresh is open cancels them: not a failure.
        if "ERR_ABORTED" in failure and (request.resource_type in ("eventsource", "fetch")):
            return
        self.problems.append(f"failed request: {request.method} {request.url}: {failure}")

    def _response(self, response: Any) -> None:
        if response.status >= 400:
            self.problems.append(f"HTTP {response.status}: {response.request.method} {response.url}")

    def goto(self, path: str) -> None:
        self.page.goto(self.url + path)

    def login(self, token: str) -> None:
        self.goto("/ui/login")
        self.page.get_by_label("Engine token").fill(token)
        self.page.get_by_role("button", name="Log in").click()
        self.page.wait_for_url(self.url + "/ui")

    def shoot(self, directory: Path, name: str) -> list[Path]:
        """The current page at both sizes (full page), back at the first size after."""
        made = []
        for size, (width, height) in SIZES.items():
            self.page.set_viewport_size({"width": width, "height": height})
            path = directory / f"{name}-{size}.png"
            self.page.screenshot(path=str(path), full_page=True)
            made.append(path)
        self.page.set_viewport_size({"width": SIZES["wide"][0], "height": SIZES["wide"][1]})
        return made

    def assert_clean(self) -> None:
        assert not self.problems, "\n".join(self.problems)


@contextmanager
def browser_session(playwright: Any, profile: Path, url: str) -> Iterator[Console]:
    """A headless chromium with a fresh user-data-dir ``profile``, on the engine at ``url``."""
    context = playwright.chromium.launch_persistent_context(
        str(profile), executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS,
        viewport={"width": SIZES["wide"][0], "height": SIZES["wide"][1]})
    try:
        context.set_default_timeout(WAIT_MS)
        page = context.pages[0] if context.pages else context.new_page()
        console = Console(page, url)
        console.watch()
        yield console
    finally:
        context.close()
