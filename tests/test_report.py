"""The daily report: built from a real store and ledger, rendered, and run as the job."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path

import pytest

from serve_apps.jobs.report import main, parse_time, period
from tripwire.execution.base import (
    EquityPoint,
    Fill,
    FillKind,
    Liquidity,
    Order,
    OrderRequest,
    OrderStatus,
)
from tripwire.llm.ledger import CallRecord, InMemoryLedger, JsonlLedger
from tripwire.model import Side
from tripwire.report import ReportError, build_report, pnl_from_fills, write_report
from tripwire.store.decisions import DecisionStore, MemoryDecisionStore

DAY = 86_400 * 10**9
T0 = parse_time("2026-11-20")  # the reported day
H = 3600 * 10**9
EVIL = "risk: <b>exposure</b> | cap & more"


async def _order(store: DecisionStore, decision: str, side: Side, qty: float, price: float,
                 fee: float, ts: int) -> None:
    coid = f"tw-{decision}"
    req = OrderRequest(coid, "BTCUSDT", side, qty)
    await store.record_order(decision, "paper", Order(coid, req, OrderStatus.FILLED, ts, ts,
                                                      qty, price, ts))
    await store.record_fill(Fill(f"f-{decision}", coid, "BTCUSDT", side, qty, price, fee,
                                 Liquidity.TAKER, FillKind.ORDER, ts))


async def _decision(store: DecisionStore, did: str, vid: str | None, symbol: str, ts: int,
                    action: str, outcome: str | None, reason: str = "") -> None:
    await store.record_proposal(did, incident_id=None, verdict_id=vid, symbol=symbol, ts_ns=ts,
                                action=action, proposal_hash=f"h-{did}", revision=1,
                                mode="AUTO", payload={})
    if outcome is not None:
        await store.set_outcome(did, outcome, reason, ts + 1)


async def populate(store: DecisionStore) -> None:
    """Three incidents in the day and one the day before, with verdicts, decisions, fills."""
    incidents = [("i0", "BTCUSDT", T0 - H, "closed"), ("i1", "BTCUSDT", T0 + H, "closed"),
                 ("i2", "ETHUSDT", T0 + 2 * H, "triaged"), ("i3", "BTCUSDT", T0 + 3 * H,
                                                              "closed")]
    for iid, sym, ts, status in incidents:
        await store.record_incident(iid, sym, ts, status, {"z": 5.0})
    verdicts = [("v0", "i0", "BTCUSDT", T0 - H, "MANIPULATION", 0.9),
                ("v1", "i1", "BTCUSDT", T0 + H, "NEWS_DRIVEN", 0.8),
                ("v2", "i2", "ETHUSDT", T0 + 2 * H, "TECHNICAL_SPIKE", 0.6),
                ("v3", "i3", "BTCUSDT", T0 + 3 * H, "NEWS_DRIVEN", 0.6)]
    for vid, iid, sym, ts, cls, conf in verdicts:
        await store.record_verdict(vid, iid, sym, ts + 1, cls, conf, {})
    await _decision(store, "d0", "v0", "BTCUSDT", T0 - H + 5, "BUY", "EXECUTED")
    await _order(store, "d0", Side.BUY, 5.0, 50.0, 0.5, T0 - H + 9)  # outside: not counted
    await _decision(store, "d1", "v1", "BTCUSDT", T0 + H + 5, "BUY", "EXECUTED")
    await _order(store, "d1", Side.BUY, 2.0, 100.0, 0.2, T0 + H + 9)
    await _decision(store, "d2", "v2", "ETHUSDT", T0 + 2 * H + 5, "HOLD", "REJECTED", EVIL)
    # d3 cites yesterday's verdict: its class is looked up, not shown as unknown.
    await _decision(store, "d3", "v0", "BTCUSDT", T0 + 4 * H, "SELL", "EXECUTED")
    await _order(store, "d3", Side.SELL, 1.0, 110.0, 0.1, T0 + 4 * H + 9)
    await _decision(store, "d4", "v3", "BTCUSDT", T0 + 5 * H, "BUY", None)


def ledger_records() -> list[CallRecord]:
    def rec(i: int, ts: int, role: str, route: str, cost: float) -> CallRecord:
        return CallRecord(f"c{i}", ts, role, route, "m", 1000, 100, cost, 500.0, "ok", 1,
                          "fp", False)

    return [rec(1, T0 + H, "triage-analyst", "claude", 0.01),
            rec(2, T0 + 2 * H, "triage-analyst", "claude", 0.02),
            rec(3, T0 + 3 * H, "strategist", "openai", 0.005),
            rec(4, T0 - H, "strategist", "openai", 9.0),  # the day before
            rec(5, T0 + DAY, "strategist", "openai", 9.0)]  # the day after


async def _report(store: DecisionStore, **kw) -> dict:
    ledger = InMemoryLedger()
    for r in ledger_records():
        ledger.add(r)
    return await build_report(store, since_ns=T0, until_ns=T0 + DAY, ledger=ledger,
                              generated_at="2026-11-21T00:05:00Z", **kw)


@pytest.fixture
def memory_report() -> dict:
    async def go() -> dict:
        store = MemoryDecisionStore()
        await populate(store)
        return await _report(store, quality={"precision": 0.75, "recall": 0.5, "labelled": 8})

    return asyncio.run(go())


def test_report_counts_only_the_period(memory_report: dict) -> None:
    r = memory_report
    assert r["incidents"]["count"] == 3
    assert r["incidents"]["by_status"] == {"closed": 2, "triaged": 1}
    assert r["incidents"]["top_symbols"] == [["BTCUSDT", 2], ["ETHUSDT", 1]]
    assert r["verdicts"]["by_class"] == {"NEWS_DRIVEN": 2, "TECHNICAL_SPIKE": 1}
    assert r["verdicts"]["mean_confidence"]["NEWS_DRIVEN"] == pytest.approx(0.7)
    assert r["decisions"]["by_outcome"] == {"EXECUTED": 2, "REJECTED": 1, "undecided": 1}
    rows = {d["id"]: d for d in r["decisions"]["rows"]}
    assert list(rows) == ["d1", "d2", "d3", "d4"]  # oldest first, d0 is the day before
    assert rows["d3"]["verdict"] == "MANIPULATION"
    assert rows["d2"]["reason"] == EVIL and rows["d4"]["outcome"] == "undecided"
    assert r["execution"]["orders"] == 2 and r["execution"]["fills"] == 2


def test_report_pnl_and_llm_cost(memory_report: dict) -> None:
    pnl = memory_report["pnl"]
    assert pnl["realised"] == pytest.approx(10.0)  # sold 1 bought at 100 for 110
    assert pnl["fees"] == pytest.approx(0.3)
    assert pnl["net"] == pytest.approx(9.7)
    assert [v for _, v in pnl["curve"]] == pytest.approx([-0.2, 9.7])
    llm = memory_report["llm"]
    assert llm["calls"] == 3 and llm["cost_usd"] == pytest.approx(0.035)
    assert [(x["route"], x["role"], x["calls"]) for x in llm["rows"]] == [
        ("claude", "triage-analyst", 2), ("openai", "strategist", 1)]
    assert memory_report["quality"] == {"labelled": 8, "precision": 0.75, "recall": 0.5}
    assert not any(v is True for v in memory_report["truncated"].values())


def test_write_report_files_escaped_and_deterministic(memory_report: dict,
                                                      tmp_path: Path) -> None:
    a = write_report(memory_report, tmp_path / "a")
    b = write_report(memory_report, tmp_path / "b")
    for name, path in a.items():
        assert path.read_bytes() == b[name].read_bytes(), name
    for name in ("verdicts_png", "outcomes_png", "pnl_png"):
        assert a[name].read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    page = a["html"].read_text()
    assert "&lt;b&gt;exposure&lt;/b&gt; | cap &amp; more" in page and "<b>exposure" not in page
    assert page.count("data:image/png;base64,") == 3 and "Detection quality" in page
    md = a["markdown"].read_text()
    assert "risk: &lt;b&gt;exposure&lt;/b&gt; \\| cap &amp; more" in md
    assert "![Verdict mix](verdict_mix.png)" in md
    assert json.loads(a["json"].read_text()) == memory_report


def test_truncation_is_reported_and_counts_stay_exact() -> None:
    async def go() -> dict:
        store = MemoryDecisionStore()
        await populate(store)
        return await _report(store, max_rows=2)

    r = asyncio.run(go())
    assert r["truncated"]["decisions"] is True and r["truncated"]["incidents"] is True
    assert len(r["decisions"]["rows"]) == 2 and r["decisions"]["count"] == 4


def test_equity_curve_replaces_the_fill_curve(tmp_path: Path) -> None:
    async def go() -> dict:
        store = MemoryDecisionStore()
        await populate(store)
        return await _report(store, equity=[EquityPoint(T0 + 2, 100.0, 101.0),
                                            (T0 + 1, 100.0)])

    r = asyncio.run(go())
    assert r["pnl"]["curve_kind"] == "equity"
    assert r["pnl"]["curve"] == [[T0 + 1, 100.0], [T0 + 2, 101.0]]
    assert write_report(r, tmp_path)["pnl_png"].stat().st_size > 0


@pytest.mark.parametrize("kw, needle", [
    ({"since_ns": T0, "until_ns": T0}, "period is empty"),
    ({"since_ns": T0, "until_ns": T0 + 1, "quality": {"precision": 1.5}}, "precision"),
    ({"since_ns": T0, "until_ns": T0 + 1, "quality": {"recall": math.nan}}, "recall"),
    ({"since_ns": T0, "until_ns": T0 + 1, "equity": [(1.5, 3.0)]}, "equity point 0"),
])
def test_bad_input_names_what_was_wrong(kw: dict, needle: str) -> None:
    with pytest.raises(ReportError, match=needle):
        asyncio.run(build_report(MemoryDecisionStore(), **kw))


def test_average_cost_pnl_through_a_flip() -> None:
    fills = [{"symbol": "X", "side": "BUY", "qty": 1, "price": 10, "fee": 0, "ts_ns": 1},
             {"symbol": "X", "side": "BUY", "qty": 1, "price": 20, "fee": 0, "ts_ns": 2},
             {"symbol": "X", "side": "SELL", "qty": 3, "price": 25, "fee": 0, "ts_ns": 3},
             {"symbol": "X", "side": "BUY", "qty": 1, "price": 20, "fee": 1, "ts_ns": 4}]
    p = pnl_from_fills(fills)
    # avg 15 on 2 long; sell 3 @25 realises 20 and opens 1 short @25; cover @20 realises 5.
    assert p["realised"] == pytest.approx(25.0) and p["net"] == pytest.approx(24.0)
    assert p["by_symbol"][0]["open_qty"] == 0.0


def test_period_defaults_to_the_last_whole_utc_day() -> None:
    assert period(None, None, T0 + 5 * H) == (T0 - DAY, T0)
    assert period(T0, None, 0) == (T0, T0 + DAY)
    assert parse_time("2026-11-20T01:00:00+01:00") == T0
    with pytest.raises(ValueError, match="--since"):
        period(T0, T0, 0)


def test_job_bad_usage_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--since", "yesterday"]) == 2
    assert "expected an ISO date" in capsys.readouterr().err
    assert main(["--since", "2026-11-20", "--until", "2026-11-19"]) == 2
    assert "must be before --until" in capsys.readouterr().err


def test_job_reads_postgres_and_writes_the_report(
        migrated_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from tripwire.store.pg_decisions import PgDecisionStore

    async def fill_db() -> None:
        store = await PgDecisionStore.connect(migrated_db)
        try:
            await populate(store)
            cluster_ledger = store.llm_ledger()  # what every replica writes (llm_calls)
            for r in ledger_records():
                await cluster_ledger.write(r)
        finally:
            await store.close()

    asyncio.run(fill_db())
    ledger = JsonlLedger(tmp_path / "offline.jsonl")  # an offline ledger, read on request
    for r in ledger_records()[:2]:
        ledger.add(r)
    with ledger.path.open("a") as fh:
        fh.write("not json\n")
    monkeypatch.setenv("TRIPWIRE_PG_DSN", migrated_db)
    monkeypatch.setenv("TRIPWIRE_DATA__DIR", str(tmp_path))
    monkeypatch.delenv("TRIPWIRE_CONFIG", raising=False)

    assert main(["--json"], now_ns=T0 + DAY + H) == 0  # default: the day before now
    out = json.loads(capsys.readouterr().out)
    assert out["period"]["since"] == "2026-11-20T00:00:00Z"
    assert (out["incidents"], out["verdicts"], out["decisions"]) == (3, 3, 4)
    assert (out["orders"], out["fills"]) == (2, 2)
    assert out["pnl_net"] == pytest.approx(9.7) and out["llm_calls"] == 3
    assert Path(out["paths"]["html"]) == tmp_path / "reports" / "2026-11-20" / "report.html"
    report = json.loads(Path(out["paths"]["json"]).read_text())
    assert report["llm"]["corrupt_lines"] == 0  # PostgreSQL's llm_calls
    assert [d["verdict"] for d in report["decisions"]["rows"]] == [
        "NEWS_DRIVEN", "TECHNICAL_SPIKE", "MANIPULATION", "NEWS_DRIVEN"]
    for key in ("markdown", "verdicts_png", "outcomes_png", "pnl_png"):
        assert Path(out["paths"][key]).stat().st_size > 0

    assert main(["--since", "2026-11-19", "--out", str(tmp_path / "y")]) == 0
    text = capsys.readouterr().out
    assert ": 1 incidents, 1 verdicts, 1 decisions" in text and f"html: {tmp_path / 'y' / 'report.html'}" in text

    assert main(["--json", "--ledger", str(ledger.path), "--out", str(tmp_path / "z")],
                now_ns=T0 + DAY + H) == 0  # an offline JSONL ledger instead of llm_calls
    out = json.loads(capsys.readouterr().out)
    assert out["llm_calls"] == 2
    report = json.loads(Path(out["paths"]["json"]).read_text())
    assert report["llm"]["corrupt_lines"] == 1


# -- one run's report (issue 13: the demo's report and summary describe the same run) -------


async def _two_runs(store: DecisionStore) -> None:
    """Run "old" holds the whole populated day; run "new" replayed a market ten days later
    and wrote one incident, verdict and executed decision with one fill."""
    await store.start_run("old", "yesterday")
    await populate(store)
    await store.end_run("old")
    await store.start_run("new", "today's replay", period_start_ns=T0 + 10 * DAY,
                          period_end_ns=T0 + 11 * DAY)
    ts = T0 + 10 * DAY + H
    await store.record_incident("i-new", "SOLUSDT", ts, "closed", {})
    await store.record_verdict("v-new", "i-new", "SOLUSDT", ts + 1, "NEWS_DRIVEN", 0.9, {})
    await _decision(store, "d-new", "v-new", "SOLUSDT", ts + 5, "BUY", "EXECUTED")
    await _order(store, "d-new", Side.BUY, 4.8, 150.0, 0.159999991753686, ts + 9)


def test_a_runs_report_holds_exactly_its_rows_over_its_period(tmp_path: Path) -> None:
    async def go() -> tuple[dict, dict]:
        store = MemoryDecisionStore()
        await _two_runs(store)
        return (await build_report(store, run="new"), await store.counts(run="new"))

    r, counts = asyncio.run(go())
    assert r["run"]["id"] == "new" and r["run"]["label"] == "today's replay"
    assert r["period"]["since_ns"] == T0 + 10 * DAY and r["period"]["until_ns"] == T0 + 11 * DAY
    assert r["incidents"]["count"] == 1 and r["incidents"]["by_status"] == counts["incidents"]
    assert [d["id"] for d in r["decisions"]["rows"]] == ["d-new"]
    assert r["execution"]["fills"] == 1 and r["pnl"]["fees"] == pytest.approx(0.16)
    paths = write_report(r, tmp_path)
    assert "Run new (today&#x27;s replay)" in paths["html"].read_text()
    assert "Run new (today's replay)" in paths["markdown"].read_text()


def test_a_run_report_of_an_unknown_or_endless_run_names_the_problem() -> None:
    async def go(**kw) -> dict:
        store = MemoryDecisionStore()
        await store.start_run("open-ended")
        return await build_report(store, **kw)

    with pytest.raises(ReportError, match="no run 'nope'"):
        asyncio.run(go(run="nope"))
    with pytest.raises(ReportError, match="pass until_ns"):
        asyncio.run(go(run="open-ended"))
    with pytest.raises(ReportError, match="since_ns and until_ns, or a run"):
        asyncio.run(go())


def test_job_reports_one_run(migrated_db: str, tmp_path: Path,
                             monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> None:
    from tripwire.store.pg_decisions import PgDecisionStore

    async def fill_db() -> None:
        store = await PgDecisionStore.connect(migrated_db)
        try:
            await _two_runs(store)
            await store.end_run("new")
        finally:
            await store.close()

    asyncio.run(fill_db())
    monkeypatch.setenv("TRIPWIRE_PG_DSN", migrated_db)
    monkeypatch.setenv("TRIPWIRE_DATA__DIR", str(tmp_path))
    monkeypatch.delenv("TRIPWIRE_CONFIG", raising=False)
    assert main(["--run", "new", "--json", "--ledger", str(tmp_path / "none.jsonl")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["run"]["id"] == "new"
    assert out["period"]["since_ns"] == T0 + 10 * DAY
    assert (out["incidents"], out["verdicts"], out["decisions"], out["fills"]) == (1, 1, 1, 1)
    assert Path(out["paths"]["html"]) == tmp_path / "reports" / "run-new" / "report.html"
    assert main(["--run", "nope"]) == 1
    assert "no run 'nope'" in capsys.readouterr().err
