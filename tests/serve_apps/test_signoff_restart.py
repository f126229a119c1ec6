"""Kill the SignOff replica with an open position and its stop: Serve starts a new one, which
rebuilds the paper book from PostgreSQL, and the stop still fires on the next ticks.

Regression for issue 13, finding 2 (after a restart /v1/positions was empty while
PostgreSQL held the filled orders) and issue 15, item 2, on the real Serve app: the replica
actor is killed, not shut down, so nothing is flushed on the way out.
"""

from __future__ import annotations

import time

import httpx
import pytest

from tests.graphs.harness import PRICE, SYMBOL
from tests.serve_apps.conftest import LiveApp

pytestmark = pytest.mark.timeout(420)


def _qty(app: LiveApp) -> float:
    with app.client(auth=False) as c:
        rows = c.get("/v1/positions").json()["positions"]
    return sum(p["qty"] for p in rows if p["symbol"] == SYMBOL)


def _executed_short(app: LiveApp) -> None:
    """A short in SYMBOL with its stop at the venue (TWO_PHASE: approved here);
    an earlier test's short in the same symbol may be there already."""
    prior = _qty(app)
    incident_id = app.push_incident()
    waiting = app.wait_for(
        "/v1/decisions?limit=200",
        lambda b: next((d for d in b["items"] if d["incident_id"] == incident_id
                        and d["awaiting_approval"]), None))
    r = app.post(f"/v1/decisions/{waiting['id']}/approve", {"by": "test", "note": "ok"})
    assert r.status_code == 200 and r.json()["outcome"] == "EXECUTED", r.text

    def filled(body):
        app.push_ticks(price=PRICE * 0.999, n=1)  # past the venue's latency: it fills
        return sum(p["qty"] for p in body["positions"] if p["symbol"] == SYMBOL) < prior

    app.wait_for("/v1/positions", filled)


def _signoff_replica():
    import ray

    names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
             if "SignOff" in a["name"] and a["name"].startswith("SERVE_REPLICA")]
    assert len(names) == 1, names
    return ray.get_actor(names[0], namespace="serve"), names[0]


def _book(app: LiveApp) -> dict:
    with app.client(auth=False) as c:
        account = c.get("/v1/account").json()
        positions = c.get("/v1/positions").json()["positions"]
    return {"open_orders": account["open_orders"],
            "positions": sorted((p["symbol"], p["qty"], p["avg_price"], p["stop_attached"])
                                for p in positions)}


def _answering(app: LiveApp, timeout_s: float = 180.0) -> dict:
    """The book once the new replica answers (errors while Serve replaces it)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with app.client(auth=False) as c:
                if c.get("/v1/positions").status_code == 200:
                    return _book(app)
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "the SignOff replica did not come back"
        time.sleep(0.5)


def test_a_killed_signoff_replica_keeps_the_paper_book(serve_app: LiveApp) -> None:
    import ray

    _executed_short(serve_app)
    before = _book(serve_app)
    # the short and the stop that guards it (the paper venue keeps a position's stop with
    # it; market orders leave nothing else resting)
    assert [p for p in before["positions"] if p[0] == SYMBOL and p[1] < 0 and p[3]]

    replica, name = _signoff_replica()
    ray.kill(replica, no_restart=True)  # no drain, no flush: the process is gone
    deadline = time.monotonic() + 180
    while True:  # Serve notices and starts a new replica under a new name
        try:
            _, new_name = _signoff_replica()
            if new_name != name:
                break
        except (AssertionError, ValueError):
            pass
        assert time.monotonic() < deadline, "Serve did not replace the SignOff replica"
        time.sleep(0.5)

    after = _answering(serve_app)
    assert after == before  # positions, average prices, stops and open orders rebuilt

    def stopped(body):  # the rebuilt stop still guards the short: a rally closes it
        serve_app.push_ticks(price=PRICE * 1.25, n=1)
        return not [p for p in body["positions"] if p["symbol"] == SYMBOL]

    serve_app.wait_for("/v1/positions", stopped, timeout_s=120)
