"""The web console in a real browser (Debian's chromium) against a real engine with tokens.

In order, on one engine (the module's): the overview lists the quickstart's agents; a canary of
``scorer`` under load shows its steps advancing on the open page and charts with data; a faulty
build is rolled back and the page says why; the deploy token's Promote and Abort buttons work, and a
read token sees none. Every test ends with no console error, no failed request and no unexpected
4xx/5xx. ``test_screenshots`` writes every page at 1280x800 and 390x844.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
import httpx
import pytest
import wasmtime

from tests.ui.browser import WAIT_MS, Console, screenshot_dir
from tests.ui.conftest import ConsoleEngine

CANARY = """rollout:
  strategy: canary
  steps: [20, 50, 100]
  interval: {interval}
  analysis:
    max_error_rate: 0.05
    min_requests: {min_requests}
"""
QUICKSTART = ("data-processor", "scorer", "summarizer", "word-count")


class Load:
    """Two threads messaging ``scorer`` (with the admin token: messages need the message role)."""

    def __init__(self, engine: ConsoleEngine) -> None:
        self.url = engine.url + "/api/v1/agents/scorer/messages"
        self.headers = {"Authorization": f"Bearer {engine.tokens['root']}"}
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(k,), daemon=True) for k in range(2)]

    def _run(self, k: int) -> None:
        """A new conversation every 4 messages (a conversation stays on the revision that started it)."""
        n = 0
        with httpx.Client(headers=self.headers, timeout=30.0) as client:
            while not self.stop.is_set():
                client.post(self.url, json={"content": "hello", "conversation_id": f"t{k}-c{n // 4}"})
                n += 1
                time.sleep(0.005)

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(30)


def _release(engine: ConsoleEngine, version: str, *, interval: str, min_requests: int, wat: str | None = None) -> None:
    """Commit ``scorer`` at ``version`` with a canary rollout (and a module built from ``wat``)."""
    repo = engine.repo
    path = repo.root / "agents" / "scorer.md"
    text = path.read_text()
    if "rollout:" in text:
        text = text[:text.index("rollout:")] + text[text.index("security_policy:"):]
    text = text.replace("security_policy:", CANARY.format(interval=interval, min_requests=min_requests)
                        + "security_policy:", 1)
    lines = [f'version: "{version}"' if line.startswith("version:") else line for line in text.splitlines()]
    if wat is not None:
        module = bytes(wasmtime.wat2wasm(wat))
        (repo.root / "wasm" / "scorer.wasm").write_bytes(module)
        lines = [f"sha256: {hashlib.sha256(module).hexdigest()}" if line.startswith("sha256:") else line
                 for line in lines]
    path.write_text("\n".join(lines) + "\n")
    repo.commit(f"scorer {version}")


def _apply(engine: ConsoleEngine) -> None:
    done = engine.caxton("apply", str(engine.repo.agents), "--auto-approve", "--detach")
    assert done.returncode == 0, done.stdout + done.stderr


def _status(console: Console) -> str:
    return str(console.page.locator(".rollout-status .badge").inner_text(timeout=WAIT_MS)).strip()


def _wait_status(console: Console, *wanted: str) -> str:
    deadline = time.monotonic() + WAIT_MS / 1000
    while time.monotonic() < deadline:
        found = console.page.locator(".rollout-status .badge")
        if found.count() and found.inner_text().strip() in wanted:
            return str(found.inner_text().strip())
        time.sleep(0.05)
    raise AssertionError(f"the rollout never showed {wanted}; the page says: {console.page.locator('main').inner_text()}"
                         f"\nproblems: {console.problems}")


@pytest.fixture
def deployer(console: Console, console_engine: ConsoleEngine) -> Iterator[Console]:
    console.login(console_engine.tokens["deployer"])
    yield console


def test_overview_lists_the_quickstart_agents(console: Console, console_engine: ConsoleEngine) -> None:
    console.goto("/ui")
    assert console.page.url.startswith(console_engine.url + "/ui/login"), "a console without a session must log in"
    console.login(console_engine.tokens["reader"])
    rows = console.page.locator("table.agents tbody tr")
    names = [rows.nth(i).locator("th").inner_text().strip() for i in range(rows.count())]
    assert names == list(QUICKSTART)
    scorer = console.page.locator("table.agents tbody tr", has_text="scorer")
    assert "Running" in scorer.inner_text() and "Healthy" in scorer.inner_text()
    assert "reader" in console.page.locator(".who").inner_text()
    scorer.get_by_role("link", name="scorer").click()
    assert console.page.get_by_role("heading", level=1).inner_text().startswith("scorer")
    assert console.page.locator(".states li.current").inner_text().startswith("Running")
    console.assert_clean()


def test_a_canary_under_load_advances_on_the_open_page_with_charts(deployer: Console, console_engine: ConsoleEngine,
                                                                    tmp_path: Path) -> None:
    page = deployer.page
    deployer.goto("/ui/rollout?name=scorer")
    page.evaluate("window.stillHere = true")
    with Load(console_engine):
        time.sleep(0.3)
        _release(console_engine, "1.1.0", interval="2s", min_requests=5)
        _apply(console_engine)
        seen: list[str] = []
        deadline = time.monotonic() + WAIT_MS / 1000
        while time.monotonic() < deadline:
            current = page.locator(".steps li.step-current")
            if current.count():
                label = current.inner_text().split()[0]
                if not seen or seen[-1] != label:
                    seen.append(label)
                    if len(seen) >= 2:  # the live canary, for docs/screenshots and the README (the last step wins)
                        deployer.shoot(screenshot_dir(tmp_path), "rollout-live")
            status = page.locator(".rollout-status .badge")
            if status.count() and status.inner_text().strip() == "succeeded":
                break
            time.sleep(0.05)
    assert _status(deployer) == "succeeded"
    assert len(seen) >= 2 and seen == sorted(seen, key=int), f"steps seen on the page: {seen}"
    assert page.evaluate("window.stillHere") is True, "the page was reloaded instead of updated"
    error_rate = page.locator("figure.chart", has_text="Error rate")
    assert int(error_rate.locator("svg").get_attribute("data-points") or 0) > 0
    assert error_rate.locator("polyline.series-candidate").count() == 1
    assert page.locator("table.measurements tbody tr.v-pass").count() >= 2
    deployer.assert_clean()


def test_a_faulty_revision_shows_the_rollback_and_its_reason(deployer: Console,
                                                             console_engine: ConsoleEngine) -> None:
    wat = (console_engine.repo.root / "wasm" / "scorer.wat").read_text()
    faulty = wat.replace("(local.set $out (i32.add", "unreachable (local.set $out (i32.add", 1)
    deployer.goto("/ui/rollout?name=scorer")
    with Load(console_engine):
        _release(console_engine, "1.2.0", interval="1s", min_requests=5, wat=faulty)
        _apply(console_engine)
        assert _wait_status(deployer, "rolled back") == "rolled back"
    reason = deployer.page.locator(".rollout-status .reason").inner_text()
    assert "analysis failed at step 1/3" in reason and "error_rate" in reason, reason
    assert deployer.page.locator(".steps li.step-failed").inner_text().startswith("20")
    assert deployer.page.locator("table.measurements tbody tr.v-fail").count() >= 1
    deployer.goto("/ui/agent?name=scorer")
    rows = deployer.page.locator("section", has_text="Revisions").locator("tbody tr")
    assert "rolled back" in rows.first.inner_text()
    deployer.assert_clean()


@pytest.mark.parametrize(("button", "outcome"), [("Promote", "succeeded"), ("Abort", "rolled back")])
def test_the_deploy_token_promotes_and_aborts_a_paused_canary(deployer: Console, console_engine: ConsoleEngine,
                                                              button: str, outcome: str) -> None:
    version = "1.3.0" if button == "Promote" else "1.4.0"
    _release(console_engine, version, interval="0.5s", min_requests=1_000_000)  # no data: it pauses at step 1
    deployer.goto("/ui/rollout?name=scorer")
    _apply(console_engine)
    _wait_status(deployer, "paused")
    deployer.page.get_by_role("button", name=button).click()
    deployer.page.wait_for_url("**notice=*")
    assert _wait_status(deployer, outcome) == outcome
    assert deployer.page.get_by_role("status").inner_text().startswith("promoted" if button == "Promote" else "aborted")
    assert deployer.page.get_by_role("button", name=button).count() == 0
    deployer.assert_clean()


def test_a_read_token_sees_no_buttons_and_its_forms_are_refused(console: Console,
                                                                console_engine: ConsoleEngine) -> None:
    _release(console_engine, "1.5.0", interval="0.5s", min_requests=1_000_000)
    _apply(console_engine)
    console.login(console_engine.tokens["reader"])
    console.goto("/ui/rollout?name=scorer")
    _wait_status(console, "paused")
    assert console.page.locator("main form").count() == 0
    console.goto("/ui/agent?name=scorer")
    assert console.page.get_by_role("button", name="Suspend").count() == 0
    # The same form, posted with the reader's session cookie: the guard refuses it.
    refused = console.page.request.post(console_engine.url + "/ui/rollout/abort",
                                        form={"name": "scorer", "csrf": "x"}, max_redirects=0)
    assert refused.status == 403, refused.text()
    assert "deploy" in refused.json()["error"]["message"]
    done = console_engine.caxton("rollout", "abort", "scorer")
    assert done.returncode == 0, done.stderr
    console.assert_clean()


def test_screenshots_of_every_page_at_both_sizes(console: Console, console_engine: ConsoleEngine,
                                                 tmp_path: Path) -> None:
    deployer = console  # an admin: the memory page needs memory-read too
    deployer.login(console_engine.tokens["root"])
    root = {"Authorization": f"Bearer {console_engine.tokens['root']}"}
    seeded = httpx.post(console_engine.url + "/api/v1/memory/entities/batch", headers=root, timeout=120, json={
        "entities": [{"name": "Ada Lovelace", "entity_type": "person", "scope": "global",
                      "observations": ["wrote the first program", "worked with Babbage"]},
                     {"name": "Analytical Engine", "entity_type": "machine", "scope": "global",
                      "observations": ["a mechanical computer designed by Babbage"]}]})
    assert seeded.status_code == 200, seeded.text
    ids = [e["id"] for e in seeded.json()["entities"]]
    related = httpx.post(console_engine.url + "/api/v1/memory/relations", headers=root, timeout=30,
                         json={"from_id": ids[0], "to_id": ids[1], "relation_type": "programmed"})
    assert related.status_code == 200, related.text
    out = screenshot_dir(tmp_path)
    pages = {"overview": "/ui", "agent": "/ui/agent?name=scorer", "rollout": "/ui/rollout?name=scorer",
             "applies": "/ui/applies", "memory": "/ui/memory?q=who+wrote+a+program"}
    made: list[Path] = []
    for name, path in pages.items():
        deployer.goto(path)
        made += deployer.shoot(out, name)
    assert "Ada Lovelace" in deployer.page.locator("main").inner_text()
    assert "programmed" in deployer.page.locator("main").inner_text()
    deployer.page.context.clear_cookies()
    deployer.goto("/ui/login")
    made += deployer.shoot(out, "login")
    assert all(path.stat().st_size > 5_000 for path in made), made
    deployer.assert_clean()


def test_the_keyboard_reaches_every_link_and_button(deployer: Console) -> None:
    deployer.goto("/ui/agent?name=scorer")
    page = deployer.page
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    focusable = page.evaluate("""() => Array.from(document.querySelectorAll(
        'a[href], button, input:not([type=hidden]), select, summary')).filter(e => e.offsetParent !== null).length""")
    reached: set[str] = set()
    for _ in range(focusable + 5):
        page.keyboard.press("Tab")
        reached.add(page.evaluate("document.activeElement.outerHTML.slice(0, 80)"))
    assert any(">Suspend</button>" in html for html in reached)
    assert any('href="/ui/applies"' in html for html in reached)
    deployer.assert_clean()
