"""The HTTP API of the real Serve app, over real HTTP on 127.0.0.1 (fixture ``serve_app``)."""

from __future__ import annotations

import io
import json
import time

import httpx
import pyarrow as pa
import pytest

from tests.graphs.harness import PRICE, SYMBOL
from tests.serve_apps.conftest import LiveApp

pytestmark = pytest.mark.timeout(300)


def test_health_readiness_and_openapi(serve_app: LiveApp) -> None:
    with serve_app.client(auth=False) as c:
        assert c.get("/healthz").json() == {"status": "ok"}
        ready = c.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"]["database"] == "ok"
        paths = c.get("/openapi.json").json()["paths"]
    for route in ("/v1/ticks", "/v1/incidents", "/v1/decisions/{decision_id}/approve",
                  "/v1/halt", "/v1/resume", "/v1/stream", "/v1/llm/costs"):
        assert route in paths


@pytest.mark.parametrize("header", [None, "Bearer wrong-token", "Basic abc", "Bearer"])
def test_mutating_routes_refuse_a_missing_or_wrong_token(serve_app: LiveApp, header) -> None:
    headers = {"Authorization": header} if header else {}
    with httpx.Client(base_url=serve_app.url, headers=headers, timeout=30) as c:
        for path, body in (("/v1/halt", {"reason": "x"}), ("/v1/ticks", {"ticks": []}),
                           ("/v1/orders/cancel-all", {})):
            r = c.post(path, json=body)
            assert r.status_code == 401, (path, r.text)
            assert r.json()["error"]["code"] == "unauthorized"
            assert serve_app.token not in r.text
        assert c.get("/v1/halt").json()["halted"] is False  # nothing happened


def test_a_bad_body_is_a_422_naming_the_field(serve_app: LiveApp) -> None:
    r = serve_app.post("/v1/ticks", {"ticks": [{"symbol": SYMBOL, "ts_ns": "soon",
                                                "price": 1.0, "qty": 1.0}]})
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "ticks.0.ts_ns"
    r = serve_app.post("/v1/halt", {"by": "me"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "reason"
    with serve_app.client(auth=False) as c:
        r = c.get("/v1/incidents", params={"since": "last tuesday"})
        assert r.status_code == 422 and r.json()["error"]["field"] == "since"
        r = c.get("/v1/incidents", params={"limit": 0})
        assert r.status_code == 422 and r.json()["error"]["field"] == "limit"


def test_ticks_in_json_and_arrow_unknown_symbols_are_dead_letters(serve_app: LiveApp) -> None:
    now = time.time_ns()
    body = {"ticks": [{"symbol": "SOLUSDT", "ts_ns": now, "price": 150.0, "qty": 2.0},
                      {"symbol": "DOGEUSDT", "ts_ns": now, "price": 0.1, "qty": 5.0},
                      {"symbol": "SOLUSDT", "ts_ns": now + 1, "price": -3.0, "qty": 1.0}]}
    r = serve_app.post("/v1/ticks", body)
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 1 and r.json()["rejected"] == 2
    table = pa.table({"symbol": ["SOLUSDT"] * 3, "ts_ns": [now + 10, now + 11, now + 12],
                      "price": [150.1, 150.2, 150.3], "qty": [1.0, 1.0, 1.0],
                      "side": pa.array([1, -1, 1], pa.int8())})
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    with serve_app.client() as c:
        r = c.post("/v1/ticks", content=sink.getvalue(),
                   headers={"Content-Type": "application/vnd.apache.arrow.stream"})
        assert r.status_code == 200, r.text
        assert r.json()["accepted"] == 3
        bad = c.post("/v1/ticks", content=b"not arrow",
                     headers={"Content-Type": "application/vnd.apache.arrow.stream"})
        assert bad.status_code == 422 and bad.json()["error"]["field"] == "body"
        letters = c.get("/v1/dead-letters", params={"limit": 50}).json()["items"]
    reasons = {(d["symbol"], d["reason"]) for d in letters}
    assert ("DOGEUSDT", "unknown_symbol") in reasons
    assert ("SOLUSDT", "bad_price") in reasons


def test_an_incident_is_triaged_waits_for_approval_and_executes(serve_app: LiveApp) -> None:
    incident_id = serve_app.push_incident()
    waiting = serve_app.wait_for(
        "/v1/decisions?limit=100",
        lambda b: next((d for d in b["items"] if d["incident_id"] == incident_id
                        and d["awaiting_approval"]), None))
    verdicts = serve_app.wait_for(f"/v1/incidents/{incident_id}", lambda b: b["verdicts"])
    assert verdicts[0]["class"] == "NEWS_DRIVEN"
    approvals = serve_app.wait_for("/v1/approvals", lambda b: b["items"])
    assert waiting["id"] in {a["decision_id"] for a in approvals}

    r = serve_app.post(f"/v1/decisions/{waiting['id']}/approve", {"by": "test", "note": "ok"})
    assert r.status_code == 200, r.text
    assert r.json()["outcome"] == "EXECUTED"
    again = serve_app.post(f"/v1/decisions/{waiting['id']}/approve", {"by": "test"})
    assert again.status_code == 409  # answered once; a second answer changes nothing

    with serve_app.client(auth=False) as c:
        chain = c.get(f"/v1/decisions/{waiting['id']}").json()
        assert {s["signer"] for s in chain["signatures"]} >= {
            "risk_gate", "fact_checker", "double_checker"}
        assert chain["approval"]["status"] == "approved"
        assert chain["orders"] and chain["orders"][0]["symbol"] == SYMBOL
        assert c.get("/v1/decisions/nope").status_code == 404
    def filled(body):  # the venue's latency: the order is live a little after placing
        serve_app.push_ticks(price=PRICE * 0.999, n=1)  # the marketable limit fills
        return body["positions"]

    positions = serve_app.wait_for("/v1/positions", filled)
    assert positions[0]["symbol"] == SYMBOL and positions[0]["qty"] < 0
    assert positions[0]["stop_attached"] is True
    with serve_app.client(auth=False) as c:
        pnl = c.get("/v1/pnl").json()
        assert pnl["equity"] > 0 and 0 <= pnl["drawdown"] < 1
        account = c.get("/v1/account").json()
        assert account["gross_exposure"] > 0


def test_pagination_and_filters(serve_app: LiveApp) -> None:
    serve_app.push_incident()
    serve_app.push_incident()
    serve_app.wait_for("/v1/incidents?limit=500", lambda b: len(b["items"]) >= 2)
    with serve_app.client(auth=False) as c:
        for _ in range(20):  # lists are newest first by arrival: a row that arrives between
            # the two pages shifts them, so compare pages taken while the list stood still
            both = [i["id"] for i in c.get("/v1/incidents", params={"limit": 2}).json()["items"]]
            first = c.get("/v1/incidents", params={"limit": 1}).json()
            second = c.get("/v1/incidents", params={"limit": 1, "offset": 1}).json()
            again = [i["id"] for i in c.get("/v1/incidents", params={"limit": 2}).json()["items"]]
            if both == again:
                break
            time.sleep(0.25)
        assert len(first["items"]) == 1 and first["next_offset"] == 1
        assert [first["items"][0]["id"], second["items"][0]["id"]] == both
        assert second["items"][0]["id"] != first["items"][0]["id"]
        far = c.get("/v1/incidents", params={"since": "2999-01-01T00:00"})
        assert far.status_code == 422 and far.json()["error"]["field"] == "since"
        future = c.get("/v1/incidents", params={"since": "2200-01-01T00:00"}).json()
        assert future["items"] == [] and future["next_offset"] is None
        other = c.get("/v1/incidents", params={"symbol": "BTCUSDT"}).json()
        assert all(i["symbol"] == "BTCUSDT" for i in other["items"])


def test_halt_and_resume_need_the_acknowledgement(serve_app: LiveApp) -> None:
    r = serve_app.post("/v1/halt", {"reason": "checking the venue", "by": "ops"})
    assert r.status_code == 200 and r.json()["halted"] is True
    try:
        refused = serve_app.post("/v1/resume", {"by": "ops", "acknowledgement": "all fine"})
        assert refused.status_code == 409
        assert refused.json()["error"]["code"] == "acknowledgement_required"
        with serve_app.client(auth=False) as c:
            assert c.get("/v1/halt").json()["halted"] is True
    finally:
        ok = serve_app.post("/v1/resume", {"by": "ops", "acknowledgement":
                                           "operator halt: venue checked, resuming"})
    assert ok.status_code == 200, ok.text
    assert ok.json()["halted"] is False
    again = serve_app.post("/v1/resume", {"by": "ops", "acknowledgement": "operator"})
    assert again.status_code == 409 and again.json()["error"]["code"] == "not_halted"


def test_metrics_and_llm_costs(serve_app: LiveApp) -> None:
    serve_app.push_ticks(n=3)
    with serve_app.client(auth=False) as c:
        text = c.get("/metrics").text
        costs = c.get("/v1/llm/costs").json()
    assert "tripwire_dataplane_ticks_in_total " in text  # a counter, as Prometheus names them
    assert "tripwire_signoff_submitted_total " in text
    assert set(costs) >= {"calls", "usd", "by_route"}


def test_the_stream_sends_incidents_live(serve_app: LiveApp) -> None:
    events: list[tuple[str, dict]] = []
    with serve_app.client(auth=False) as c, c.stream("GET", "/v1/stream") as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        pushed = None
        event = None
        deadline = time.monotonic() + 60
        for line in r.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event:
                events.append((event, json.loads(line[6:])))
                if pushed is None and event == "halt":  # the first poll has gone out
                    pushed = serve_app.push_incident()
                if pushed and any(e == "incident" and d["id"] == pushed for e, d in events):
                    break
            assert time.monotonic() < deadline, f"no live incident; got {events[-5:]}"
    assert any(e == "incident" and d["id"] == pushed for e, d in events)
