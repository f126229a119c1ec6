"""The watchdog against a real PostgreSQL and the paper backend: it HALTs on each broken
invariant, cancels orders, never resumes, and an operator resumes only with an
acknowledgement naming the halt's code."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import asyncpg
import pytest

from tests.graphs.harness import make_runner, news_incident
from tripwire.cli import main as tripwire_main
from tripwire.decisions.outcome import Outcome
from tripwire.execution.base import OrderRequest, OrderStatus, OrderType, Side
from tripwire.execution.paper import PaperBroker, PaperConfig
from tripwire.model import NS_PER_SECOND, SimClock, SymbolTable, TickBatch
from tripwire.store.pg_decisions import PgDecisionStore
from tripwire.watchdog import (
    AccountSnapshot,
    Alerter,
    BrokerControl,
    PositionView,
    Watchdog,
    WatchdogConfig,
    acknowledgement_error,
    check_drawdown,
    check_exposure,
    check_heartbeats,
    check_marks,
    check_stops,
    halt_code,
    load_watchdog_config,
    load_watchdog_file,
    operator_reason,
)
from tripwire.watchdog.control import FLATTEN_PREFIX

pytestmark = pytest.mark.timeout(300)

T0 = 1_000 * NS_PER_SECOND
SYM = "BTCUSDT"
CASH = 10_000.0
# No heartbeat requirement unless a test asks: the account checks are tested on their own.
ACCOUNT_ONLY = WatchdogConfig(heartbeats=(), max_drawdown=0.10, max_gross_exposure=50_000.0)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def snap(equity: float = 100.0, peak: float = 100.0, gross: float = 0.0,
         positions: tuple[PositionView, ...] = ()) -> AccountSnapshot:
    return AccountSnapshot(equity, peak, gross, 0, positions)


# -- pure checks, at their boundaries ------------------------------------------------------


def test_heartbeat_exactly_at_max_age_is_fresh_one_ns_more_is_stale() -> None:
    beats = {"shard:0": (T0, ""), "feed:binance": (T0, "")}
    age = 5 * NS_PER_SECOND
    assert check_heartbeats(beats, ["shard:*", "feed:*"], age, T0 + age) is None
    stale = check_heartbeats(beats, ["shard:*", "feed:*"], age, T0 + age + 1)
    assert stale is not None and stale.code == "heartbeat_stale"
    assert "shard:0" in stale.detail and "feed:binance" in stale.detail


def test_a_required_component_with_no_heartbeat_at_all_is_stale() -> None:
    breach = check_heartbeats({"shard:0": (T0, "")}, ["shard:*", "feed:*"], NS_PER_SECOND, T0)
    assert breach is not None and "no heartbeat from feed:*" in breach.detail


def test_drawdown_exactly_at_cap_passes_just_over_breaches() -> None:
    assert check_drawdown(snap(equity=90.0, peak=100.0), 0.10) is None
    over = check_drawdown(snap(equity=89.99, peak=100.0), 0.10)
    assert over is not None and over.code == "drawdown_cap"
    assert check_drawdown(snap(equity=float("nan")), 0.10) is not None  # fail closed
    assert check_drawdown(snap(equity=10.0, peak=0.0), 0.10) is not None


def test_exposure_exactly_at_cap_passes_just_over_breaches() -> None:
    assert check_exposure(snap(gross=1_000.0), 1_000.0) is None
    over = check_exposure(snap(gross=1_000.01), 1_000.0)
    assert over is not None and over.code == "exposure_cap"
    assert check_exposure(snap(gross=float("inf")), 1_000.0) is not None


def test_every_open_position_needs_a_stop() -> None:
    guarded = PositionView(SYM, 1.0, 100.0, True)
    naked = PositionView("ETHUSDT", -2.0, 50.0, False)
    flat = PositionView("SOLUSDT", 0.0, 10.0, False)
    assert check_stops(snap(positions=(guarded, flat))) is None
    breach = check_stops(snap(positions=(guarded, naked)))
    assert breach is not None and breach.code == "stop_missing" and "ETHUSDT" in breach.detail


# -- reasons and acknowledgements --------------------------------------------------------


@pytest.mark.parametrize("ack", ["drawdown_cap checked", "Drawdown Cap reviewed, size cut",
                                 "DRAWDOWN_CAP"])
def test_acknowledgement_naming_the_code_is_accepted(ack: str) -> None:
    assert acknowledgement_error("drawdown_cap: 12% > 10%", ack) is None


@pytest.mark.parametrize("ack", ["", "   ", "all good", "drawdown checked"])
def test_acknowledgement_not_naming_the_code_is_refused(ack: str) -> None:
    problem = acknowledgement_error("drawdown_cap: 12% > 10%", ack)
    assert problem is not None
    assert "drawdown_cap" in problem or "empty" in problem


def test_operator_reasons_get_a_code() -> None:
    assert operator_reason("maintenance window") == "operator: maintenance window"
    assert operator_reason("exposure_cap: manual") == "exposure_cap: manual"
    assert halt_code(operator_reason("exchange: down")) == "operator"
    with pytest.raises(ValueError, match="empty"):
        operator_reason("  ")


# -- configuration -----------------------------------------------------------------------


@pytest.mark.parametrize(("table", "key"), [
    ({"interval_s": 0}, "watchdog.interval_s"),
    ({"max_drawdown": 0}, "watchdog.max_drawdown"),
    ({"max_gross_exposure": -1}, "watchdog.max_gross_exposure"),
    ({"require_stops": "yes"}, "watchdog.require_stops"),
    ({"heartbeats": "shard:*"}, "watchdog.heartbeats"),
    ({"webhook_url": "ftp://x"}, "watchdog.webhook_url"),
    ({"intervall_s": 1}, "watchdog.intervall_s"),
])
def test_bad_config_names_the_key(table: dict[str, Any], key: str) -> None:
    with pytest.raises(ValueError, match=key):
        load_watchdog_config(table)


def test_config_file_and_env_override(tmp_path: Any) -> None:
    path = tmp_path / "tw.toml"
    path.write_text('[data]\ndir = "/srv/tw"\n[watchdog]\ninterval_s = 2\n'
                    'heartbeats = ["shard:*"]\nflatten_on_halt = true\n')
    wd = load_watchdog_file(path, env={"TRIPWIRE_WATCHDOG__MAX_DRAWDOWN": "0.05"})
    assert wd.config.interval_s == 2.0 and wd.config.heartbeats == ("shard:*",)
    assert wd.config.flatten_on_halt and wd.config.max_drawdown == 0.05
    assert str(wd.data_dir) == "/srv/tw"
    with pytest.raises(ValueError, match="TRIPWIRE_WATCHDOG__MAX_DRAWDOWN"):
        load_watchdog_file(path, env={"TRIPWIRE_WATCHDOG__MAX_DRAWDOWN": "2"})


# -- the loop against PostgreSQL and the paper backend -----------------------------------


class Alerts:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    async def __call__(self, event: dict[str, Any]) -> None:
        self.events.append(event)


def paper(clock: SimClock) -> PaperBroker:
    return PaperBroker(SymbolTable([SYM]), clock, PaperConfig(initial_cash=CASH))


def tick(broker: PaperBroker, clock: SimClock, price: float) -> None:
    clock.advance(NS_PER_SECOND)
    broker.on_ticks(TickBatch.from_columns([0], [clock.now_ns()], [price], [1.0]))


def buy(broker: PaperBroker, cid: str, qty: float, stop: float | None = None) -> None:
    broker.place(OrderRequest(cid, SYM, Side.BUY, qty, stop_loss=stop))


def resting_limit(broker: PaperBroker, cid: str = "tw-rest") -> None:
    """A buy far below the market: stays open until cancelled."""
    broker.place(OrderRequest(cid, SYM, Side.BUY, 1.0, OrderType.LIMIT, limit_price=1.0))


async def with_store(dsn: str, fn: Any) -> Any:
    store = await PgDecisionStore.connect(dsn)
    try:
        return await fn(store)
    finally:
        await store.close()


def test_stale_heartbeat_halts_at_the_next_check(migrated_db: str) -> None:
    async def scenario(store: PgDecisionStore) -> None:
        clock = SimClock(T0)
        config = WatchdogConfig(heartbeats=("shard:*",), heartbeat_max_age_s=5.0)
        alerts = Alerts()
        dog = Watchdog(store, None, config, clock, alerts)
        await store.heartbeat("shard:0", T0, "ok")
        assert await dog.check_once() == []
        assert not (await store.read_halt()).halted
        clock.advance(5 * NS_PER_SECOND + 1)  # one ns past the max age
        breaches = await dog.check_once()  # the very next check halts
        assert [b.code for b in breaches] == ["heartbeat_stale"]
        halt = await store.read_halt()
        assert halt.halted and halt.by == "watchdog"
        assert halt_code(halt.reason) == "heartbeat_stale" and "shard:0" in halt.reason
        assert [e["action"] for e in alerts.events] == ["halt"]
        beats = await store.heartbeats()
        assert beats["watchdog"][0] == clock.now_ns()  # it reports its own liveness

    run(with_store(migrated_db, scenario))


def test_run_loop_halts_on_a_stale_heartbeat_and_stops_on_the_event(migrated_db: str) -> None:
    async def scenario(store: PgDecisionStore) -> None:
        clock = SimClock(T0)
        config = WatchdogConfig(interval_s=0.01, heartbeats=("feed:*",), heartbeat_max_age_s=1)
        dog = Watchdog(store, None, config, clock, Alerts())
        await store.heartbeat("feed:binance", T0)
        stop = asyncio.Event()
        task = asyncio.create_task(dog.run(stop))
        clock.advance(2 * NS_PER_SECOND)
        for _ in range(2_000):  # bounded wait, no wall-clock assertion
            if (await store.read_halt()).halted:
                break
            await asyncio.sleep(0.01)
        stop.set()
        await asyncio.wait_for(task, 30)
        assert (await store.read_halt()).halted
        assert dog.stats["halts"] == 1 and dog.stats["errors"] == 0

    run(with_store(migrated_db, scenario))


def test_drawdown_breach_halts_and_cancels_open_orders(migrated_db: str) -> None:
    async def scenario(store: PgDecisionStore) -> None:
        clock = SimClock(T0)
        broker = paper(clock)
        buy(broker, "tw-long", 50.0, stop=50.0)  # 5000 notional at 100, stop at 50
        tick(broker, clock, 100.0)
        resting_limit(broker)
        dog = Watchdog(store, BrokerControl(broker, clock=clock), ACCOUNT_ONLY, clock, Alerts())
        tick(broker, clock, 80.2)  # loss 990 of 10000: 9.9%, under the cap
        assert await dog.check_once() == []
        assert broker.get_order("tw-rest").status is OrderStatus.OPEN
        tick(broker, clock, 79.8)  # loss 1010: 10.1%
        breaches = await dog.check_once()
        assert [b.code for b in breaches] == ["drawdown_cap"]
        halt = await store.read_halt()
        assert halt.halted and halt.reason.startswith("drawdown_cap: drawdown 10.10%")
        assert broker.get_order("tw-rest").status is OrderStatus.CANCELLED
        assert broker.positions()[SYM].qty == 50.0  # flatten_on_halt is off by default
        assert dog.stats["cancelled"] == 1

    run(with_store(migrated_db, scenario))


def test_exposure_breach_halts(migrated_db: str) -> None:
    async def scenario(store: PgDecisionStore) -> None:
        clock = SimClock(T0)
        broker = paper(clock)
        buy(broker, "tw-long", 30.0, stop=50.0)
        tick(broker, clock, 100.0)  # gross 3000
        config = WatchdogConfig(heartbeats=(), max_gross_exposure=3_000.0)
        dog = Watchdog(store, BrokerControl(broker, clock=clock), config, clock, Alerts())
        assert await dog.check_once() == []  # exactly at the cap
        tick(broker, clock, 100.01)
        assert [b.code for b in await dog.check_once()] == ["exposure_cap"]
        assert halt_code((await store.read_halt()).reason) == "exposure_cap"

    run(with_store(migrated_db, scenario))


def test_a_position_without_a_live_stop_halts(migrated_db: str) -> None:
    async def scenario(store: PgDecisionStore) -> None:
        clock = SimClock(T0)
        broker = paper(clock)
        buy(broker, "tw-guarded", 10.0, stop=90.0)
        tick(broker, clock, 100.0)
        dog = Watchdog(store, BrokerControl(broker, clock=clock), ACCOUNT_ONLY, clock, Alerts())
        assert await dog.check_once() == []
        buy(broker, "tw-naked", 5.0)  # adds 5 unguarded to the long
        tick(broker, clock, 100.0)
        breaches = await dog.check_once()
        assert [b.code for b in breaches] == ["stop_missing"] and SYM in breaches[0].detail

    run(with_store(migrated_db, scenario))


def test_halted_watchdog_does_not_rehalt_or_realert_but_cancels_new_orders(
        migrated_db: str) -> None:
    async def scenario(store: PgDecisionStore) -> None:
        clock = SimClock(T0)
        broker = paper(clock)
        buy(broker, "tw-naked", 5.0)
        tick(broker, clock, 100.0)
        alerts = Alerts()
        dog = Watchdog(store, BrokerControl(broker, clock=clock), ACCOUNT_ONLY, clock, alerts)
        await dog.check_once()
        first = await store.read_halt()
        resting_limit(broker, "tw-late")  # appears after the halt
        clock.advance(NS_PER_SECOND)
        assert [b.code for b in await dog.check_once()] == ["stop_missing"]
        assert await store.read_halt() == first  # not re-set
        assert len(alerts.events) == 1 and dog.stats["halts"] == 1
        assert broker.get_order("tw-late").status is OrderStatus.CANCELLED

    run(with_store(migrated_db, scenario))


def test_operator_halt_is_enforced_too(migrated_db: str) -> None:
    async def scenario(store: PgDecisionStore) -> None:
        clock = SimClock(T0)
        broker = paper(clock)
        await store.set_halt("operator: maintenance", "ops", T0)
        resting_limit(broker)
        dog = Watchdog(store, BrokerControl(broker, clock=clock), ACCOUNT_ONLY, clock, Alerts())
        assert await dog.check_once() == []
        assert broker.get_order("tw-rest").status is OrderStatus.CANCELLED
        assert (await store.read_halt()).by == "ops"

    run(with_store(migrated_db, scenario))


def test_the_watchdog_never_resumes(migrated_db: str) -> None:
    async def scenario(store: PgDecisionStore) -> None:
        clock = SimClock(T0)
        broker = paper(clock)
        buy(broker, "tw-long", 50.0, stop=50.0)
        tick(broker, clock, 100.0)
        dog = Watchdog(store, BrokerControl(broker, clock=clock), ACCOUNT_ONLY, clock, Alerts())
        tick(broker, clock, 70.0)
        assert await dog.check_once()
        tick(broker, clock, 100.0)  # recovered: every invariant holds again
        for _ in range(3):
            clock.advance(NS_PER_SECOND)
            assert await dog.check_once() == []
        halt = await store.read_halt()
        assert halt.halted and halt_code(halt.reason) == "drawdown_cap"

    run(with_store(migrated_db, scenario))


def test_flatten_on_halt_closes_positions_and_keeps_its_own_orders(migrated_db: str) -> None:
    async def scenario(store: PgDecisionStore) -> None:
        clock = SimClock(T0)
        broker = paper(clock)
        buy(broker, "tw-long", 50.0, stop=10.0)
        tick(broker, clock, 100.0)
        config = WatchdogConfig(heartbeats=(), flatten_on_halt=True)
        dog = Watchdog(store, BrokerControl(broker, clock=clock), config, clock, Alerts())
        tick(broker, clock, 70.0)
        await dog.check_once()
        closing = broker.orders(working_only=True)
        assert [o.id.startswith(FLATTEN_PREFIX) for o in closing] == [True]
        clock.advance(NS_PER_SECOND)
        await dog.check_once()  # halted: must not cancel its own closing order
        assert broker.get_order(closing[0].id).status is OrderStatus.OPEN
        tick(broker, clock, 70.0)
        assert broker.positions()[SYM].qty == 0.0

    run(with_store(migrated_db, scenario))


def test_halt_notifies_listeners(migrated_db: str) -> None:
    async def scenario(store: PgDecisionStore) -> None:
        got: asyncio.Queue[str] = asyncio.Queue()
        conn = await asyncpg.connect(migrated_db)
        try:
            await conn.add_listener("tripwire_halt", lambda *a: got.put_nowait(a[-1]))
            dog = Watchdog(store, None, WatchdogConfig(heartbeats=("shard:*",)),
                           SimClock(T0), Alerts())
            await dog.check_once()
            note = json.loads(await asyncio.wait_for(got.get(), 30))
        finally:
            await conn.close()
        assert note["halted"] is True and note["set_by"] == "watchdog"
        assert note["reason"].startswith("heartbeat_stale:")

    run(with_store(migrated_db, scenario))


def test_database_unreachable_still_cancels_and_alerts(migrated_db: str) -> None:
    async def scenario() -> None:
        store = await PgDecisionStore.connect(migrated_db)
        await store.close()  # every call now raises
        clock = SimClock(T0)
        broker = paper(clock)
        resting_limit(broker)
        alerts = Alerts()
        dog = Watchdog(store, BrokerControl(broker, clock=clock), ACCOUNT_ONLY, clock, alerts)
        breaches = await dog.check_once()
        assert [b.code for b in breaches] == ["database_unreachable"]
        assert broker.get_order("tw-rest").status is OrderStatus.CANCELLED
        assert [e["action"] for e in alerts.events] == ["halt_flag_unwritable"]
        await dog.check_once()  # same episode: no second alert
        assert len(alerts.events) == 1

    run(scenario())


@pytest.mark.parametrize("node", ["fact_checker", "double_checker", "execute"])
def test_watchdog_halt_mid_graph_places_no_order(migrated_db: str, node: str) -> None:
    """A decision already inside the sign-off graph when the watchdog halts places nothing."""

    async def scenario(store: PgDecisionStore) -> None:
        holder: dict[str, Watchdog] = {}

        async def watchdog_fires(name: str, state: dict[str, Any]) -> None:
            if name == node:
                assert await holder["dog"].check_once()  # no shard heartbeat: breach

        r, d = make_runner(store=store, before_node=watchdog_fires)
        config = WatchdogConfig(heartbeats=("shard:*",))
        holder["dog"] = Watchdog(store, BrokerControl(d.broker, clock=d.clock), config,
                                 d.clock, Alerts())
        res = await r.handle(news_incident("inc-wd"))
        assert res.outcome == Outcome.REJECTED and "halt" in res.reason, res.reason
        assert d.broker.orders() == []
        assert (await store.read_halt()).halted

    run(with_store(migrated_db, scenario))


# -- alerts ------------------------------------------------------------------------------


class _Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Hook.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture
def webhook() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    _Hook.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hook"
    finally:
        server.shutdown()
        server.server_close()


def test_webhook_receives_the_alert_and_failures_are_counted(webhook: str) -> None:
    ok = Alerter(webhook, timeout_s=5.0)
    run(ok({"action": "halt", "reason": "stop_missing: BTCUSDT"}))
    assert _Hook.received == [{"action": "halt", "reason": "stop_missing: BTCUSDT"}]
    assert ok.stats["webhook_sent"] == 1
    down = Alerter("http://127.0.0.1:9/hook", timeout_s=2.0)  # discard port: refused
    run(down({"action": "halt"}))
    assert down.stats["webhook_failures"] == 1 and down.stats["alerts"] == 1


# -- the commands, against a real database -----------------------------------------------


def cli(capsys: Any, *argv: str) -> tuple[int, str, str]:
    code = tripwire_main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def no_config(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    path = tmp_path / "wd.toml"
    path.write_text('[watchdog]\nheartbeats = ["shard:*"]\nheartbeat_max_age_s = 60\n')
    for name in ("TRIPWIRE_CONFIG", "TRIPWIRE_WATCHDOG_DSN", "TRIPWIRE_PG_DSN"):
        monkeypatch.delenv(name, raising=False)
    return str(path)


def test_cli_halt_then_resume_needs_the_code(migrated_db: str, capsys: Any,
                                             no_config: str) -> None:
    db = ["--dsn", migrated_db, "--config", no_config]
    assert cli(capsys, "halt", "--reason", "exchange maintenance", "--by", "ana", *db)[0] == 0
    code, out, _ = cli(capsys, "status", "--json", *db)
    status = json.loads(out)
    assert status["halted"] and status["reason"] == "operator: exchange maintenance"
    assert status["set_by"] == "ana"
    code, _, err = cli(capsys, "resume", "--ack", "all fine", "--by", "ana", *db)
    assert code == 2 and "'operator'" in err and "refused" in err
    assert json.loads(cli(capsys, "status", "--json", *db)[1])["halted"]
    code, out, _ = cli(capsys, "resume", "--ack", "operator maintenance over, checked",
                       "--by", "ana", "--json", *db)
    assert code == 0 and json.loads(out)["resumed"]
    assert not json.loads(cli(capsys, "status", "--json", *db)[1])["halted"]
    code, _, err = cli(capsys, "halt", "--reason", "  ", *db)
    assert code == 2 and "empty" in err


def test_cli_watchdog_once_json(migrated_db: str, capsys: Any, no_config: str) -> None:
    db = ["--dsn", migrated_db, "--config", no_config]
    code, out, err = cli(capsys, "watchdog", "--once", "--json", *db)
    summary = json.loads(out)
    assert code == 1 and summary["execution"] == "none" and "no --api" in err
    assert [b["code"] for b in summary["last_breaches"]] == ["heartbeat_stale"]
    assert summary["halted"] and summary["halts"] == 1
    assert '"event": "watchdog_alert"' in err  # the structured alert line
    # Fresh heartbeats now: the check passes, and the flag stays up (it never resumes).
    import time

    run(with_store(migrated_db, lambda s: s.heartbeat("shard:0", time.time_ns(), "ok")))
    code, out, _ = cli(capsys, "watchdog", "--once", "--json", *db)
    summary = json.loads(out)
    assert code == 0 and summary["last_breaches"] == [] and summary["halted"]


def test_cli_watchdog_bad_config_exits_2(tmp_path: Any, capsys: Any, no_config: str) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[watchdog]\nmax_drawdown = 3\n")
    code, _, err = cli(capsys, "watchdog", "--once", "--config", str(bad), "--dsn",
                       "postgresql://nobody@127.0.0.1:9/x")
    assert code == 2 and "watchdog.max_drawdown" in err


# -- the HTTP adapter, against a real loopback server ------------------------------------


class _Orchestrator(BaseHTTPRequestHandler):
    """The three routes the watchdog uses, as the orchestrator's API contract states them."""

    account: ClassVar[dict[str, Any]] = {}
    account_status: ClassVar[int] = 200
    calls: ClassVar[list[tuple[str, str, str]]] = []

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        _Orchestrator.calls.append(("GET", self.path, self.headers.get("Authorization", "")))
        self._send(_Orchestrator.account_status, _Orchestrator.account)

    def do_POST(self) -> None:
        auth = self.headers.get("Authorization", "")
        _Orchestrator.calls.append(("POST", self.path, auth))
        if auth != "Bearer s3cret":
            self._send(401, {"error": {"code": "unauthorized"}})
        elif self.path == "/v1/orders/cancel-all":
            self._send(200, {"cancelled": 2})
        else:
            self._send(200, {"orders": 1})

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture
def orchestrator() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Orchestrator)
    _Orchestrator.calls, _Orchestrator.account_status = [], 200
    _Orchestrator.account = {"equity": 10_000.0, "peak_equity": 10_000.0,
                             "gross_exposure": 500.0, "open_orders": 2,
                             "positions": [{"symbol": SYM, "qty": 5.0, "price": 100.0,
                                            "stop_attached": False}]}
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def test_http_control_halts_cancels_and_flattens(migrated_db: str, orchestrator: str) -> None:
    from tripwire.watchdog import HttpControl

    async def scenario(store: PgDecisionStore) -> None:
        control = HttpControl(orchestrator, "s3cret", timeout_s=5.0)
        config = WatchdogConfig(heartbeats=(), flatten_on_halt=True)
        dog = Watchdog(store, control, config, SimClock(T0), Alerts())
        try:
            assert [b.code for b in await dog.check_once()] == ["stop_missing"]
        finally:
            control.close()
        posts = [(p, a) for m, p, a in _Orchestrator.calls if m == "POST"]
        assert posts == [("/v1/orders/cancel-all", "Bearer s3cret"),
                         ("/v1/positions/flatten", "Bearer s3cret")]
        assert dog.stats["cancelled"] == 2 and dog.stats["flattened"] == 1

    run(with_store(migrated_db, scenario))


def test_http_account_unreadable_is_a_breach(migrated_db: str, orchestrator: str) -> None:
    from tripwire.watchdog import HttpControl

    async def scenario(store: PgDecisionStore) -> None:
        _Orchestrator.account_status = 503
        control = HttpControl(orchestrator, "s3cret", timeout_s=5.0)
        dog = Watchdog(store, control, WatchdogConfig(heartbeats=()), SimClock(T0), Alerts())
        try:
            breaches = await dog.check_once()
        finally:
            control.close()
        assert [b.code for b in breaches] == ["account_unreadable"] and "503" in breaches[0].detail
        assert halt_code((await store.read_halt()).reason) == "account_unreadable"
        assert ("POST", "/v1/orders/cancel-all", "Bearer s3cret") in _Orchestrator.calls

    run(with_store(migrated_db, scenario))


def test_database_down_flattens_once_not_every_check(migrated_db: str) -> None:
    async def scenario() -> None:
        store = await PgDecisionStore.connect(migrated_db)
        await store.close()
        clock = SimClock(T0)
        broker = paper(clock)
        buy(broker, "tw-long", 5.0, stop=10.0)
        tick(broker, clock, 100.0)
        config = WatchdogConfig(heartbeats=(), flatten_on_halt=True)
        dog = Watchdog(store, BrokerControl(broker, clock=clock), config, clock, Alerts())
        for _ in range(3):
            clock.advance(NS_PER_SECOND)
            assert [b.code for b in await dog.check_once()] == ["database_unreachable"]
        assert len(broker.orders(working_only=True)) == 1  # one closing order, not three
        tick(broker, clock, 100.0)
        assert broker.positions()[SYM].qty == 0.0

    run(scenario())


# -- a database outage: halt when it returns -----------------------------------------------


def test_database_outage_is_halted_when_the_database_returns(pg_root: Any, capsys: Any,
                                                            no_config: str,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    """Regression: after the database came back from an outage the watchdog had seen, no
    halt was written and trading resumed without anyone's acknowledgement. Now the first
    thing the watchdog does on the database's return is set ``database_outage: ...``, and a
    resume must name that code. A real server is stopped and started on the same port."""
    from tripwire.commands.watchdog import ReconnectingStore
    from tripwire.store import pg as pg_module
    from tripwire.store.migrate import migrate
    from tripwire.store.pg import PrivateCluster

    cluster = PrivateCluster(pg_root / "outage", durable=False)
    dsn = cluster.start()
    port = cluster.port
    try:
        run(migrate(dsn))

        async def scenario() -> None:
            store = ReconnectingStore(dsn)  # what `tripwire watchdog` runs on
            clock = SimClock(T0)
            broker = paper(clock)
            alerts = Alerts()
            dog = Watchdog(store, BrokerControl(broker, clock=clock), ACCOUNT_ONLY, clock,
                           alerts)
            try:
                assert await dog.check_once() == []
                await asyncio.to_thread(cluster.stop)
                resting_limit(broker, "tw-during")  # an order appears while nobody can halt
                for _ in range(2):
                    clock.advance(NS_PER_SECOND)
                    codes = [b.code for b in await dog.check_once()]
                    assert codes == ["database_unreachable"] and dog.in_outage
                assert broker.get_order("tw-during").status is OrderStatus.CANCELLED
                monkeypatch.setattr(pg_module, "_free_port", lambda: port)  # same address
                await asyncio.to_thread(cluster.start)
                clock.advance(NS_PER_SECOND)
                assert await dog.check_once() == []  # every invariant holds again...
                halt = await store.read_halt()  # ...and the outage is a halt all the same
                assert halt.halted and halt.by == "watchdog", halt
                assert halt_code(halt.reason) == "database_outage", halt.reason
                assert "2.0 s" in halt.reason and "2 check(s)" in halt.reason, halt.reason
                assert not dog.in_outage and dog.stats["outage_halts"] == 1
                assert alerts.events[-1]["action"] == "halt"
                assert alerts.events[-1]["reason"] == halt.reason
                clock.advance(NS_PER_SECOND)
                await dog.check_once()  # written once: the next check leaves it be
                assert dog.stats["outage_halts"] == 1
            finally:
                await store.close()

        run(scenario())
        db = ["--dsn", dsn, "--config", no_config]
        code, _, err = cli(capsys, "resume", "--ack", "all fine again", "--by", "ana", *db)
        assert code == 2 and "'database_outage'" in err and "refused" in err, err
        code, out, _ = cli(capsys, "resume", "--ack", "database_outage reviewed: no order "
                           "left during it", "--by", "ana", "--json", *db)
        assert code == 0 and json.loads(out)["resumed"], out
    finally:
        cluster.stop()


def test_a_restart_reported_in_a_heartbeat_is_logged_once(migrated_db: str) -> None:
    import logging

    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    async def scenario(store: PgDecisionStore) -> None:
        clock = SimClock(T0)
        alerts = Alerts()
        dog = Watchdog(store, None, WatchdogConfig(heartbeats=("shard:*",)), clock, alerts)
        await store.heartbeat("shard:0", T0, "ping ok restarts=0")
        assert await dog.check_once() == [] and dog.stats["restarts_seen"] == 0
        await store.heartbeat("shard:0", T0, "ping ok restarts=1 restored batch 7")
        assert await dog.check_once() == []
        await dog.check_once()  # the same restart is not reported twice
        assert dog.stats["restarts_seen"] == 1
        assert [e["component"] for e in alerts.events
                if e["action"] == "component_restarted"] == ["shard:0"]

    logger = logging.getLogger("tripwire.watchdog")
    handler = Keep(logging.WARNING)
    logger.addHandler(handler)
    try:
        run(with_store(migrated_db, scenario))
    finally:
        logger.removeHandler(handler)
    assert sum("watchdog_component_restarted" in line for line in lines) == 1, lines


# -- mark_stale: a position whose stop is not being checked against the market -------------


def _pos(mark_ns: int | None, refused: int = 0, qty: float = 1.0) -> PositionView:
    return PositionView(SYM, qty, 100.0, True, mark_ns, refused)


def _at(clock_ns: int | None, *positions: PositionView) -> AccountSnapshot:
    return AccountSnapshot(100.0, 100.0, 100.0, 0, positions, clock_ns)


def test_check_marks_at_the_bound_and_just_over() -> None:
    cap = 60 * NS_PER_SECOND
    assert check_marks(_at(T0 + cap, _pos(T0)), cap) is None  # exactly at the bound
    breach = check_marks(_at(T0 + cap + 1, _pos(T0)), cap)
    assert breach is not None and breach.code == "mark_stale"
    assert breach.detail == f"{SYM}: mark 60.0 s old (max age 60 s)"
    assert check_marks(_at(T0 + cap + 1, _pos(T0, qty=0.0)), cap) is None  # flat: no risk


def test_check_marks_refused_ticks_future_marks_and_unknown_clocks() -> None:
    cap = 60 * NS_PER_SECOND
    refused = check_marks(_at(T0, _pos(T0, refused=3)), cap)
    assert refused is not None and "3 tick(s) refused by the venue" in refused.detail
    future = check_marks(_at(T0, _pos(T0 + cap + 1)), cap)  # marked by a tick from 2100
    assert future is not None and "in the future" in future.detail
    assert check_marks(_at(None, _pos(T0)), cap).code == "mark_stale"  # fail closed
    assert check_marks(_at(None, _pos(None)), cap) is None  # a backend without mark times


def test_mark_max_age_is_configurable_and_validated() -> None:
    assert load_watchdog_config({"mark_max_age_s": 30}).mark_max_age_ns == 30 * NS_PER_SECOND
    assert WatchdogConfig().mark_max_age_s == 900.0
    with pytest.raises(ValueError, match="watchdog.mark_max_age_s must be a number"):
        load_watchdog_config({"mark_max_age_s": 0})


def test_a_stalled_mark_halts_and_flattens_where_configured(migrated_db: str) -> None:
    """Issue 13 finding 1: the venue refused every tick of a long and the watchdog saw
    nothing. Here its only ticks are late: mark_stale halts, and flatten_on_halt closes it."""
    async def scenario(store: PgDecisionStore) -> None:
        clock = SimClock(T0)
        broker = paper(clock)
        buy(broker, "tw-long", 10.0, stop=90.0)
        tick(broker, clock, 100.0)
        config = WatchdogConfig(heartbeats=(), mark_max_age_s=60.0, flatten_on_halt=True)
        dog = Watchdog(store, BrokerControl(broker, clock=clock), config, clock, Alerts())
        clock.advance(60 * NS_PER_SECOND)
        assert await dog.check_once() == []  # 60 s old: at the bound
        # A tick older than the venue has seen for the symbol: refused, counted.
        broker.on_ticks(TickBatch.from_columns([0], [T0], [80.0], [1.0]))
        snap_ = BrokerControl(broker, clock=clock).snapshot()
        assert snap_.positions[0].refused_ticks == 1 and snap_.clock_ns == clock.now_ns()
        breaches = await dog.check_once()
        assert [b.code for b in breaches] == ["mark_stale"]
        halt = await store.read_halt()
        assert halt.halted and halt_code(halt.reason) == "mark_stale"
        assert dog.stats["flattened"] == 1
        [closing] = broker.orders(working_only=True)
        assert closing.id.startswith(FLATTEN_PREFIX)

    run(with_store(migrated_db, scenario))


def test_an_old_mark_alone_halts(migrated_db: str) -> None:
    async def scenario(store: PgDecisionStore) -> None:
        clock = SimClock(T0)
        broker = paper(clock)
        buy(broker, "tw-long", 10.0, stop=90.0)
        tick(broker, clock, 100.0)
        config = WatchdogConfig(heartbeats=(), mark_max_age_s=60.0)
        dog = Watchdog(store, BrokerControl(broker, clock=clock), config, clock, Alerts())
        clock.advance(60 * NS_PER_SECOND + 1)
        assert [b.code for b in await dog.check_once()] == ["mark_stale"]

    run(with_store(migrated_db, scenario))
