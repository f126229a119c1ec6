"""The operator console in a real headless Chromium against the real Serve app.

The ``serve_app`` fixture (tests/serve_apps/conftest.py) runs the whole app on 127.0.0.1:
private PostgreSQL, paper broker, rules LLM, TWO_PHASE mode, so every decision that would
trade waits for an operator. The page is driven like an operator would: it loads clean, an
incident pushed through the API appears live over SSE, a pending decision is approved from
its button (after a wrong token is refused), and a halt shows the red banner until a resume
with the right acknowledgement.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import re
import secrets
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright

from tripwire.execution.base import (
    Fill,
    FillKind,
    Liquidity,
    Order,
    OrderRequest,
    OrderStatus,
    OrderType,
)
from tripwire.model import Side, new_id

CHROMIUM = "/usr/bin/chromium"
CONSOLE_DIR = Path(__file__).resolve().parents[2] / "serve_apps" / "console"
WAIT_MS = 60_000  # triage + sign-off on a 2-core machine; a bound, not a speed assert
FINAL_OUTCOMES = re.compile(r"^(EXECUTED|DRY_RUN|HOLD|REJECTED|DECLINED|EXPIRED)$")
DAY_NS = 86_400 * 10**9


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


# -- the operator view shows now (issue 13, finding 6) --------------------------------------


def in_store(serve_app: Any, fn: Any) -> Any:
    """Run ``fn(store)`` on the app's own database (rows the app did not make itself)."""
    from tripwire.store.pg_decisions import PgDecisionStore

    async def go() -> Any:
        store = await PgDecisionStore.connect(serve_app.dsn, max_size=2)
        try:
            return await fn(store)
        finally:
            await store.close()

    # Its own thread: Playwright's sync API keeps an event loop running in this one.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, go()).result(timeout=60)


@contextlib.contextmanager
def opened(serve_app: Any, browser: Browser, *, width: int = 1200,
           height: int = 800) -> Iterator[Console]:
    """A fresh tab on the console, opened after the test wrote its rows."""
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    tab = Console(page)
    page.goto(f"{serve_app.url.rstrip('/')}/")
    expect(page.locator("#stream-status")).to_have_text("live")
    try:
        yield tab
    finally:
        context.close()


def test_the_current_runs_newest_incident_comes_first(serve_app: Any, browser: Browser) -> None:
    tag = secrets.token_hex(4)
    now = time.time_ns()
    old_ids = [new_id() for _ in range(3)]  # one millisecond: one shared UUIDv7 prefix
    a, b = new_id(), new_id()

    async def seed(s: Any) -> None:
        # An older run replayed a LATER market: by market time its rows would come first.
        await s.start_run(f"old-{tag}", "older replay")
        for i, iid in enumerate(old_ids):
            await s.record_incident(iid, "BTCUSDT", now + DAY_NS + i, "open", {})
        await s.end_run(f"old-{tag}")
        await s.start_run(f"cur-{tag}", "this run")
        await s.record_incident(a, "ETHUSDT", now - 3_600 * 10**9, "open", {})
        await s.record_incident(b, "SOLUSDT", now - 7_200 * 10**9, "open", {})  # arrived last

    in_store(serve_app, seed)
    with opened(serve_app, browser) as console:
        page = console.page
        rows = page.locator("[data-testid=incident-row]")
        expect(rows.first).to_have_attribute("data-incident-id", b)
        expect(rows.nth(1)).to_have_attribute("data-incident-id", a)
        expect(rows).to_have_count(2)  # only this run's rows
        expect(page.locator("#run-select option:checked")).to_contain_text("this run")
        # Readable ids: the random tail, distinct per row; the full id in the title.
        for iid in (a, b):
            cell = page.locator(f"[data-incident-id='{iid}'] td.id")
            expect(cell).to_have_text(f"…{iid[-8:]}")
            expect(cell).to_have_attribute("title", iid)
        # All runs: the older run's rows (and earlier tests') too, newest arrival first.
        page.select_option("#run-select", "*")
        for iid in old_ids:
            expect(page.locator(f"[data-testid=incident-row][data-incident-id='{iid}']")
                   ).to_have_count(1)
        expect(rows.first).to_have_attribute("data-incident-id", b)
        shown = [cell.inner_text() for cell in rows.locator("td.id").all()]
        assert len(shown) >= 5 and len(set(shown)) == len(shown), shown
        assert console.errors == []


def test_after_the_newest_run_ended_current_shows_what_arrives_since(
        serve_app: Any, browser: Browser) -> None:
    tag = secrets.token_hex(4)
    late = new_id()

    async def seed(s: Any) -> None:
        await s.start_run(f"done-{tag}", "a demo that ended")
        await s.end_run(f"done-{tag}")
        # e.g. the service started again after the demo: its rows belong to no run
        await s.record_incident(late, "BTCUSDT", time.time_ns(), "open", {})

    in_store(serve_app, seed)
    with opened(serve_app, browser) as console:
        page = console.page
        rows = page.locator("[data-testid=incident-row]")
        expect(rows.first).to_have_attribute("data-incident-id", late)
        expect(page.locator("#run-select option:checked")).to_contain_text("no run going on")
        assert console.errors == []


def test_money_is_formatted_and_an_order_state_follows_its_fills(
        serve_app: Any, browser: Browser) -> None:
    tag = secrets.token_hex(4)
    now = time.time_ns()
    incident, decision = new_id(), new_id()
    cid = f"tw-{decision}-0"
    long_token = "x" * 4000  # raw JSON with no place to break

    async def seed(s: Any) -> None:
        await s.start_run(f"money-{tag}", "money run")
        await s.record_incident(incident, "ETHUSDT", now, "triaged", {})
        await s.record_proposal(decision, incident_id=incident, verdict_id=None,
                                symbol="ETHUSDT", ts_ns=now, action="BUY",
                                proposal_hash="h0", revision=0, mode="DIRECT",
                                payload={"note": long_token})
        await s.set_outcome(decision, "EXECUTED", "", now)
        req = OrderRequest(cid, "ETHUSDT", Side.BUY, 4.8, OrderType.MARKET)
        # Not the paper venue's backend: a row the venue never placed is, to the SignOff
        # replica's book rebuild, a store ahead of its log (it would refuse orders after a
        # restart: tests/serve_apps/test_signoff_restart.py).
        await s.record_order(decision, "seeded", Order(cid, req, OrderStatus.PENDING, now, now,
                                                       updated_ns=now))

    in_store(serve_app, seed)
    with opened(serve_app, browser, width=1000, height=700) as console:
        page = console.page
        page.locator(f"[data-testid=decision-row][data-decision-id='{decision}']").click()
        detail = page.locator("#decision-detail")
        state = detail.locator("[data-testid=orders-table] td[data-col=state]")
        expect(state).to_have_text("pending")
        expect(detail.locator("[data-testid=orders-table] td[data-col=qty]")).to_have_text("4.8")
        detail.locator("summary").click()  # the raw JSON: wraps, never widens the page
        expect(detail.locator("pre")).to_be_visible()
        assert page.evaluate("document.documentElement.scrollWidth"
                             " <= document.documentElement.clientWidth")

        # The venue fills it; the open detail follows (the store's row may lag the fill).
        fill = Fill(f"f-{tag}", cid, "ETHUSDT", Side.BUY, 4.8, 2345.678912, 0.159999991753686,
                    Liquidity.TAKER, FillKind.ORDER, now + 1)
        in_store(serve_app, lambda s: s.record_fill(fill))
        expect(state).to_have_text("filled")
        fills = detail.locator("[data-testid=fills-table]")
        expect(fills.locator("td[data-col=fee]")).to_have_text("0.16")
        expect(fills.locator("td[data-col=price]")).to_have_text("2,345.68")
        expect(fills.locator("td[data-col=qty]")).to_have_text("4.8")
        assert page.evaluate("document.documentElement.scrollWidth"
                             " <= document.documentElement.clientWidth")
        assert console.errors == []


def test_the_halt_banner_stays_in_sight_after_scrolling(serve_app: Any, browser: Browser) -> None:
    api(serve_app, "POST", "/v1/halt", {"reason": "banner test", "by": "console-test"})
    try:
        with opened(serve_app, browser, width=1000, height=360) as console:
            page = console.page
            banner = page.locator("#halt-banner")
            expect(banner).to_be_visible()
            page.evaluate("window.scrollTo(0, document.documentElement.scrollHeight)")
            page.wait_for_function("window.scrollY > 100")  # it did scroll
            expect(banner).to_be_in_viewport()
            box = banner.bounding_box()
            assert box is not None and box["y"] <= 1, box
    finally:
        halt = api(serve_app, "GET", "/v1/halt")
        api(serve_app, "POST", "/v1/resume",
            {"by": "console-test", "acknowledgement": f"I acknowledge: {halt['reason']}"})
    assert api(serve_app, "GET", "/v1/halt")["halted"] is False
