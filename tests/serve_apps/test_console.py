"""The operator console in a real headless Chromium against the real Serve app.

The ``serve_app`` fixture (tests/serve_apps/conftest.py) runs the whole app on 127.0.0.1:
private PostgreSQL, paper broker, rules LLM, TWO_PHASE mode, so every decision that would
trade waits for an operator. The page is driven like an operator would: it loads clean, an
incident pushed through the API appears live over SSE, a pending decision is approved from
its button (after a wrong token is refused), and a halt shows the red banner until a resume
with the right acknowledgement.
"""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright

CHROMIUM = "/usr/bin/chromium"
CONSOLE_DIR = Path(__file__).resolve().parents[2] / "serve_apps" / "console"
WAIT_MS = 60_000  # triage + sign-off on a 2-core machine; a bound, not a speed assert
FINAL_OUTCOMES = re.compile(r"^(EXECUTED|DRY_RUN|HOLD|REJECTED|DECLINED|EXPIRED)$")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (the test needs it)")
    expect.set_options(timeout=WAIT_MS)  # expect() has its own timeout (5 s by default)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        yield browser
        browser.close()


class Console:
    """One browser tab on the console, recording every console error and page error."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.errors: list[str] = []
        page.on("console", self._on_console)
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))

    def _on_console(self, msg: ConsoleMessage) -> None:
        if msg.type == "error":
            self.errors.append(f"console.error: {msg.text} at {msg.location}")

    def errors_except(self, *statuses: int) -> list[str]:
        """The errors, less Chromium's own log line for a refusal the test provoked."""
        expected = tuple(
            f"Failed to load resource: the server responded with a status of {s} "
            for s in statuses
        )
        return [e for e in self.errors if not any(x in e for x in expected)]

    def set_token(self, token: str, name: str = "console-test") -> None:
        self.page.fill("#token-input", token)
        self.page.fill("#operator-name", name)
        self.page.click("#token-save")
        expect(self.page.locator("#token-state")).to_contain_text("token set")


@pytest.fixture
def console(serve_app: Any, browser: Browser) -> Iterator[Console]:
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    tab = Console(page)
    page.goto(f"{serve_app.url.rstrip('/')}/")
    expect(page.locator("#stream-status")).to_have_text("live")
    yield tab
    context.close()


def api(serve_app: Any, method: str, path: str, body: dict | None = None) -> Any:
    """Call the app directly (the test's own view, to compare with what the page shows)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"{serve_app.url.rstrip('/')}{path}", data=data, method=method)
    req.add_header("Content-Type", "application/json")
    req.add_header("Authorization", f"Bearer {serve_app.token}")
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def test_the_page_loads_without_console_errors(console: Console) -> None:
    page = console.page
    expect(page).to_have_title("Tripwire operator console")
    expect(page.locator("#halt-banner")).to_be_hidden()
    # The polled panels filled in from the API (PnL and LLM cost always have figures).
    expect(page.locator("#pnl dt").first).to_have_text("Equity")
    expect(page.locator("#llm-costs dt").first).to_have_text("Calls")
    expect(page.locator("#poll-status")).to_have_text("")
    page.wait_for_timeout(500)  # let a poll round finish: errors it logs must show up
    assert console.errors == []


def test_server_text_is_never_parsed_as_html() -> None:
    source = (CONSOLE_DIR / "console.js").read_text()
    assert "innerHTML" not in source and "insertAdjacentHTML" not in source
    assert "document.write" not in source


def test_a_pushed_incident_appears_live(console: Console, serve_app: Any) -> None:
    rows = console.page.locator("[data-testid=incident-row]")
    incident_id = serve_app.push_incident()
    row = rows.and_(console.page.locator(f"[data-incident-id='{incident_id}']"))
    # No reload, and incidents are not polled: the row can only come from the SSE stream.
    expect(row).to_have_count(1)
    incident = api(serve_app, "GET", f"/v1/incidents/{incident_id}")
    expect(row.locator("[data-testid=incident-symbol]")).to_have_text(incident["symbol"])
    expect(rows.first).to_have_attribute("data-incident-id", incident_id)  # newest first
    assert console.errors == []


def test_a_two_phase_decision_is_approved_from_its_button(
    console: Console, serve_app: Any
) -> None:
    page = console.page
    # The incident of the previous test may hold the symbol's one open decision, so the
    # decision to approve is whichever waits first, not necessarily this incident's.
    serve_app.push_incident()
    approval = page.locator("[data-testid=approval-row]").first
    expect(approval).to_be_visible()
    decision_id = approval.get_attribute("data-decision-id")
    assert decision_id
    decision = page.locator(f"[data-testid=decision-row][data-decision-id='{decision_id}']")
    outcome = page.locator(f"[data-testid='outcome-{decision_id}']")
    expect(outcome).to_have_text("AWAITING APPROVAL")
    approve = page.locator(f"[data-testid='approve-{decision_id}']")

    console.set_token("not-the-token")
    approve.click()
    expect(page.locator("#message")).to_contain_text("Unauthorized")
    expect(approve).to_be_visible()  # a refused click changes nothing

    console.set_token(serve_app.token)
    approve.click()
    expect(approve).to_have_count(0)
    expect(outcome).to_have_text(FINAL_OUTCOMES)
    stored = api(serve_app, "GET", f"/v1/decisions/{decision_id}")
    assert stored["approval"] is not None
    listed = {d["id"]: d for d in api(serve_app, "GET", "/v1/decisions?limit=500")["items"]}
    expect(outcome).to_have_text(listed[decision_id]["outcome"])

    decision.click()
    detail = page.locator("#decision-detail")
    expect(detail).to_contain_text(f"Sign-off chain of decision {decision_id}")
    expect(detail.locator("[data-testid=signature-row]")).to_have_count(
        len(stored["signatures"])
    )
    for order in stored["orders"]:  # the chain's orders, as the app recorded them
        expect(detail).to_contain_text(order["client_order_id"])
    assert console.errors_except(401) == []


def test_halt_shows_the_banner_and_resume_needs_the_acknowledgement(
    console: Console, serve_app: Any
) -> None:
    page = console.page
    console.set_token(serve_app.token)
    banner = page.locator("#halt-banner")
    message = page.locator("#message")
    page.fill("#halt-reason-input", "console test pulls the plug")
    page.click("#halt-button")
    expect(banner).to_be_visible()
    expect(page.locator("#halt-reason")).to_contain_text("console test pulls the plug")
    expect(page.locator("#halt-by")).to_have_text("console-test")

    page.click("#resume-button")  # no acknowledgement at all: refused before any request
    expect(message).to_contain_text("Resume refused")
    page.fill("#resume-ack", "all fine, resuming")  # does not name the halt's code
    page.click("#resume-button")
    expect(message).to_contain_text("Resume failed")
    expect(message).to_contain_text("acknowledgement")  # the app's own error.message
    expect(banner).to_be_visible()
    halt = api(serve_app, "GET", "/v1/halt")
    assert halt["halted"] is True

    page.fill("#resume-ack", f"I have read and acknowledge: {halt['reason']}")
    page.click("#resume-button")
    expect(banner).to_be_hidden()
    assert api(serve_app, "GET", "/v1/halt")["halted"] is False
    assert console.errors_except(409) == []
