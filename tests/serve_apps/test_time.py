"""Bad time at the edges of the real Serve app (issue 13, finding 1).

A single tick stamped 2100-01-01 used to be accepted: the symbol's later ticks all became
``out_of_order``, the venue never saw them, and a long fell through its stop without the
stop firing. Here the same tick is a ``bad_time`` dead letter and the next good tick fires
the stop. Headlines and incidents outside the window are refused too.

Runs on the session-wide ``serve_app`` (wall clock, TWO_PHASE): it must stay before
``test_watchdog_live`` (which kills a shard). It trades BTCUSDT only, which no other module
of the app uses, and leaves it flat.
"""

from __future__ import annotations

import time

from tests.llm.test_rules import make
from tests.serve_apps.conftest import LiveApp
from tripwire.model import NS_PER_SECOND

SYM = "BTCUSDT"
PRICE = 3_400.0
Y2100 = 4_102_444_800 * NS_PER_SECOND  # 2100-01-01T00:00Z
GOOD_NEWS = [("BREAKING: SEC approves spot BTC ETF", True)]


def _tick(app: LiveApp, ts_ns: int, price: float) -> dict:
    r = app.post("/v1/ticks", {"ticks": [{"symbol": SYM, "ts_ns": ts_ns, "price": price,
                                          "qty": 1.0, "side": 1, "trade_id": 0}]})
    assert r.status_code == 200, r.text
    return r.json()


def _open_long(app: LiveApp) -> dict:
    """A confident good-news rise of BTCUSDT, approved: a small long with a stop."""
    app.push_ticks(SYM, PRICE, n=5)
    incident = make(symbol=SYM, ret_1_pct=2.9, ret_10_pct=2.9, news=GOOD_NEWS, price=PRICE)
    incident = incident.model_copy(update={"ts_ns": time.time_ns()})
    r = app.post("/v1/incidents", {"incidents": [incident.model_dump(mode="json")]})
    assert r.status_code == 200, r.text
    incident_id = r.json()["items"][0]["id"]
    waiting = app.wait_for("/v1/decisions?limit=500", lambda b: next(
        (d for d in b["items"] if d["incident_id"] == incident_id and d["awaiting_approval"]),
        None))
    r = app.post(f"/v1/decisions/{waiting['id']}/approve", {"by": "test", "note": "time"})
    assert r.status_code == 200 and r.json()["outcome"] == "EXECUTED", r.text

    def filled(body):  # the venue's latency: the marketable limit fills on a later tick
        app.push_ticks(SYM, PRICE, n=1)
        return next((p for p in body["positions"] if p["symbol"] == SYM), None)

    return app.wait_for("/v1/positions", filled)


def _position(app: LiveApp) -> dict | None:
    with app.client(auth=False) as c:
        body = c.get("/v1/positions").json()
    return next((p for p in body["positions"] if p["symbol"] == SYM), None)


def test_a_tick_from_2100_is_bad_time_and_the_stop_fires_at_the_next_good_tick(
        serve_app: LiveApp) -> None:
    pos = _open_long(serve_app)
    assert pos["qty"] > 0 and pos["stop_attached"] is True
    assert pos["mark_ns"] is not None and pos["refused_ticks"] == 0  # the watchdog's inputs

    absurd = _tick(serve_app, Y2100, PRICE)
    assert (absurd["accepted"], absurd["rejected"]) == (0, 1)
    with serve_app.client(auth=False) as c:
        letters = c.get("/v1/dead-letters", params={"limit": 50}).json()["items"]
    assert any(d["symbol"] == SYM and d["reason"] == "bad_time" and str(Y2100) in d["detail"]
               for d in letters), letters

    # ~8% below the entry: through the stop (1.45% away). Old code: out_of_order, no stop.
    crash = _tick(serve_app, time.time_ns(), PRICE * 0.92)
    assert (crash["accepted"], crash["rejected"]) == (1, 0)
    assert _position(serve_app) is None  # flat: the stop closed it at this tick
    with serve_app.client(auth=False) as c:
        account = c.get("/v1/account").json()
    assert SYM not in {p["symbol"] for p in account["positions"]}
    assert account["clock_ns"] is not None
    after = _tick(serve_app, time.time_ns(), PRICE * 0.93)  # later ticks are taken too
    assert after["accepted"] == 1


def test_news_outside_the_window_is_a_dead_letter_not_news(serve_app: LiveApp) -> None:
    now = time.time_ns()
    items = [{"ts_ns": now, "headline": "BTC trades sideways", "symbols": [SYM]},
             {"ts_ns": Y2100, "headline": "BTC from the future", "symbols": [SYM]},
             {"ts_ns": now - 3 * 86_400 * NS_PER_SECOND, "headline": "stale BTC news"}]
    r = serve_app.post("/v1/news", {"items": items})
    assert r.status_code == 200, r.text
    assert r.json() == {"accepted": 1, "rejected": 2}
    with serve_app.client(auth=False) as c:
        letters = c.get("/v1/dead-letters", params={"limit": 50}).json()["items"]
    raws = {d["raw"] for d in letters if d["reason"] == "bad_time"}
    assert {"BTC from the future", "stale BTC news"} <= raws


def test_an_incident_outside_the_window_is_a_422_naming_ts_ns(serve_app: LiveApp) -> None:
    for ts in (Y2100, time.time_ns() - 2 * 86_400 * NS_PER_SECOND):
        incident = make(symbol=SYM, price=PRICE).model_copy(update={"ts_ns": ts})
        r = serve_app.post("/v1/incidents", {"incidents": [incident.model_dump(mode="json")]})
        assert r.status_code == 422, r.text
        assert "ts_ns" in r.json()["error"]["message"], r.text
