"""The decision journal: one markdown file per decision, readable with `cat`, never clobbered.

The chains are built through the store's own API (MemoryDecisionStore), from the real models
(Incident, TriageVerdict, StrategistProposal, Proposal, DoubleCheck, Order, Fill), so the
journal is tested on what the sign-off graph actually records. ``test_explain`` reuses the
builders.
"""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

import numpy as np

from tripwire.decisions.proposal import Proposal, proposal_hash
from tripwire.decisions.signatures import SIGNERS, Signature
from tripwire.execution.base import (
    Fill,
    FillKind,
    Liquidity,
    Order,
    OrderRequest,
    OrderStatus,
    OrderType,
)
from tripwire.incident import Incident, MarketContext
from tripwire.llm.schemas import DoubleCheck, StrategistProposal, TriageVerdict
from tripwire.model import Anomaly, Metric, NewsItem, RecentTicks, Side, client_order_id
from tripwire.store.decisions import (
    Approval,
    DecisionChain,
    DecisionStore,
    MemoryDecisionStore,
)
from tripwire.store.journal import (
    decision_in,
    journal_root,
    render_journal,
    write_journal,
)

S = 1_000_000_000
T0 = 1_714_564_800 * S  # 2024-05-01 12:00:00 UTC
FILL_PRICE = 80.12


def _incident(symbol: str, ts_ns: int) -> Incident:
    ts = ts_ns - np.arange(19, -1, -1, dtype=np.int64) * S
    snap = RecentTicks(ts, np.r_[np.full(19, 100.0), 80.0], np.ones(20))
    a = Anomaly(symbol_id=0, symbol=symbol, ts_ns=ts_ns, metric=Metric.RETURN, z=-616.2,
                window_mean=0.0, window_std=3e-4, value=-0.223, price=80.0, snapshot=snap)
    news = [NewsItem("n1", ts_ns - 5 * S, "ARB foundation | opens grants round", (symbol,))]
    market = MarketContext(reference_symbol="BTCUSDT", reference_move_pct=-0.4,
                           market_move_pct=-0.6, symbol_move_pct=-19.8)
    return Incident.from_anomaly(a, news, market)


def _verdict_payload() -> dict:
    v = TriageVerdict(classification="LIQUIDATION_CASCADE", confidence=0.82,
                      reasoning="Forced selling in steps;\nno headline explains it.",
                      key_factors=["20% drop in one tick", "no news about the symbol"],
                      source="llm")
    return {**v.model_dump(mode="json"), "route": "anthropic", "model": "claude-test",
            "cost_usd": 0.0042, "latency_ms": 812.5}


def _strategist(symbol: str, action: str = "BUY") -> dict:
    return StrategistProposal(action=action, symbol=symbol, size=0.25, limit_price=None,
                              stop_loss=76.0, take_profit=88.0, rationale="Mean reversion "
                              "after a cascade.", confidence=0.6, source="llm"
                              ).model_dump(mode="json")


def _risk(approved: bool = True) -> dict:
    return {
        "approved": approved, "quantity": 1.5 if approved else 0.0, "requested_quantity": 2.0,
        "sizing": "0.25 of max position, floored to the risk-per-trade cap",
        "checks": [
            {"name": "order_notional", "passed": True, "value": 120.18, "limit": 1000.0,
             "reason": "within the cap", "allowed_quantity": 2.0},
            {"name": "risk_per_trade", "passed": approved, "value": 1.2, "limit": 1.0,
             "reason": "shrunk to 1.5 to fit 1% of equity" if approved
             else "stop too far: 4% of equity at risk", "allowed_quantity": 1.5},
        ],
        "gates": [{"name": "halt", "passed": True, "reason": "not halted"},
                  {"name": "rejection_breaker", "passed": True, "reason": "0 of 5"}],
    }


def _proposal(decision_id: str, symbol: str, ts_ns: int, inc_id: str, ver_id: str
              ) -> Proposal:
    return Proposal(decision_id, inc_id, ver_id, symbol, "BUY", 1.5, "market", None, 76.0,
                    88.0, reference_price=80.0, position_qty=0.0, verdict_ts_ns=ts_ns,
                    created_ns=ts_ns, confidence=0.6)


async def _record_trip(store: DecisionStore, symbol: str, ts_ns: int,
                       incident_id: str, verdict_id: str) -> None:
    inc = _incident(symbol, ts_ns - 2 * S)
    await store.record_incident(incident_id, symbol, inc.ts_ns, "triaged",
                                inc.model_dump(mode="json"))
    await store.record_verdict(verdict_id, incident_id, symbol, ts_ns - S,
                               "LIQUIDATION_CASCADE", 0.82, _verdict_payload())


async def record_executed(store: DecisionStore, decision_id: str, symbol: str,
                          ts_ns: int) -> None:
    """Record a DIRECT decision from trip to fill: three APPROVEs, one order, one fill."""
    inc_id, ver_id = f"inc-{decision_id}", f"ver-{decision_id}"
    await _record_trip(store, symbol, ts_ns, inc_id, ver_id)
    p = _proposal(decision_id, symbol, ts_ns, inc_id, ver_id)
    h = proposal_hash(p)
    double = DoubleCheck(verdict="AGREE", concerns=["thin book after the drop"],
                         confidence=0.7, max_size=None, source="llm").model_dump(mode="json")
    facts = [{"name": "fresh_price", "passed": True, "reason": "80.01 is 0.01% from 80.0"},
             {"name": "verdict_age", "passed": True, "reason": "1.0 s old (max 60 s)"}]
    await store.record_proposal(
        decision_id, incident_id=inc_id, verdict_id=ver_id, symbol=symbol, ts_ns=ts_ns,
        action="BUY", proposal_hash=h, revision=0, mode="DIRECT",
        payload={"strategist": _strategist(symbol), "proposal": p.to_dict(), "risk": _risk(),
                 "facts": facts, "double_check": double})
    for i, signer in enumerate(SIGNERS):
        await store.add_signature(decision_id, Signature(signer, h, "APPROVE",
                                                         f"{signer} | ok", ts_ns + i * S))
    await _order_and_fill(store, decision_id, symbol, ts_ns + 4 * S)
    for i, (sender, recipient, kind) in enumerate([
            ("strategist", "risk_gate", "proposal"), ("risk_gate", "fact_checker", "signed"),
            ("double_checker", "executor", "signed"), ("executor", "journal", "executed")]):
        await store.append_message(decision_id, sender, recipient, kind, {"n": i},
                                   ts_ns + i * S // 4)
    await store.set_outcome(decision_id, "EXECUTED", "3 valid signatures; order filled",
                            ts_ns + 5 * S)


async def _order_and_fill(store: DecisionStore, decision_id: str, symbol: str,
                          ts_ns: int) -> None:
    coid = client_order_id(decision_id, 0)
    req = OrderRequest(coid, symbol, Side.BUY, 1.5, OrderType.MARKET, None, 76.0, 88.0)
    await store.record_order(decision_id, "paper", Order(coid, req, OrderStatus.OPEN, ts_ns,
                                                         ts_ns, updated_ns=ts_ns))
    filled = Order(coid, req, OrderStatus.FILLED, ts_ns, ts_ns, 1.5, FILL_PRICE, ts_ns + S)
    await store.update_order("paper", filled)
    await store.record_fill(Fill(f"{coid}-f1", coid, symbol, Side.BUY, 1.5, FILL_PRICE, 0.12,
                                 Liquidity.TAKER, FillKind.ORDER, ts_ns + S))


async def record_rejected(store: DecisionStore, decision_id: str, symbol: str,
                          ts_ns: int) -> None:
    """Record a decision the risk gate vetoed: one VETO, no order."""
    await _record_trip(store, symbol, ts_ns, f"inc-{decision_id}", f"ver-{decision_id}")
    await store.record_proposal(
        decision_id, incident_id=f"inc-{decision_id}", verdict_id=f"ver-{decision_id}",
        symbol=symbol, ts_ns=ts_ns, action="BUY", proposal_hash="f" * 64, revision=0,
        mode="DRY_RUN", payload={"strategist": _strategist(symbol), "risk": _risk(False)})
    await store.add_signature(decision_id, Signature("risk_gate", "f" * 64, "VETO",
                                                     "risk per trade over the cap", ts_ns))
    await store.set_outcome(decision_id, "REJECTED", "risk gate vetoed: risk_per_trade",
                            ts_ns + S)


def build_executed(decision_id: str = "0190a1b2-exec-7000-8000-000000000001",
                   symbol: str = "ARBUSDT", ts_ns: int = T0) -> DecisionChain:
    """A DIRECT decision from trip to fill: three APPROVEs, one order, one fill."""
    store = MemoryDecisionStore()

    async def build() -> DecisionChain:
        await record_executed(store, decision_id, symbol, ts_ns)
        return await store.chain(decision_id)

    return asyncio.run(build())


def build_rejected(decision_id: str = "0190a1b2-rej-7000-8000-000000000002",
                   symbol: str = "ARBUSDT", ts_ns: int = T0) -> DecisionChain:
    """Rejected at the risk gate: one VETO, no order."""
    store = MemoryDecisionStore()

    async def build() -> DecisionChain:
        await record_rejected(store, decision_id, symbol, ts_ns)
        return await store.chain(decision_id)

    return asyncio.run(build())


# ----------------------------------------------------------------------------- rendering


def test_executed_entry_tells_the_whole_story():
    chain = build_executed()
    md = render_journal(chain)
    h = chain.proposal["proposal_hash"]
    assert md.splitlines()[0] == "# ARBUSDT · EXECUTED · 2024-05-01 12:00:00.000 UTC"
    assert f"- **Decision:** `{chain.decision_id}`" in md
    assert f"- **Incident:** `inc-{chain.decision_id}`" in md and "- **Mode:** DIRECT" in md
    for section in ("Trip", "Verdict", "Proposal", "Risk gate", "Fact check", "Double check",
                    "Signatures", "Approval", "Order and fills", "Outcome"):
        assert f"\n## {section}\n" in md, section
    for signer in SIGNERS:
        assert re.search(rf"^\| {signer} \| APPROVE \| {h[:12]} \|", md, re.MULTILINE), signer
    assert "risk_gate \\| ok" in md  # a pipe in a reason cannot break the table
    assert f"**Proposal hash:** `{h}`" in md
    assert "3 valid signatures over" in md
    assert "LIQUIDATION_CASCADE" in md and "claude-test" in md and "$0.0042" in md
    assert "> Forced selling in steps;\n> no headline explains it." in md
    assert "ARB foundation \\| opens grants round" in md and "5 s before" in md
    assert "RETURN (z -616.2)" in md and "BTCUSDT -0.40%" in md
    assert "| risk_per_trade | PASS |" in md and "| halt | PASS | not halted |" in md
    assert "| fresh_price | PASS |" in md
    assert "thin book after the drop" in md and "Blind:** yes" in md
    assert f"| {FILL_PRICE} |" in md and "| filled |" in md
    assert "- **Outcome:** EXECUTED" in md and "3 valid signatures; order filled" in md


def test_rejected_entry_without_orders_says_so():
    md = render_journal(build_rejected())
    assert md.splitlines()[0].startswith("# ARBUSDT · REJECTED · ")
    assert "| risk_per_trade | FAIL |" in md and "stop too far" in md
    assert "| risk_gate | VETO | ffffffffffff |" in md
    assert "no APPROVE over this proposal hash from risk_gate" in md
    assert "_no order was sent_" in md
    assert "risk gate vetoed: risk_per_trade" in md
    assert "## Fact check\n\n_nothing recorded_" in md


def test_a_bare_chain_renders_without_errors():
    md = render_journal(DecisionChain("d-bare"))
    assert md.startswith("# UNKNOWN · PENDING · —")
    assert "PENDING (still in flight)" in md and "_no signatures_" in md


def test_an_approval_is_rendered():
    chain = build_executed()
    chain.approval = Approval(chain.decision_id, "approved", chain.proposal["proposal_hash"],
                              "BUY 1.5 ARBUSDT", T0, T0 + 300 * S, "alice", T0 + 60 * S,
                              "looks fine")
    md = render_journal(chain)
    assert "- **Status:** approved" in md and "- **Decided by:** alice" in md
    assert "- **Note:** looks fine" in md and "2024-05-01 12:01:00.000 UTC" in md


def test_the_journal_root_lives_in_the_context_dir(tmp_path):
    assert journal_root(tmp_path) == tmp_path / "context" / "journal"


# ----------------------------------------------------------------------------- files


def test_entry_path_layout(tmp_path):
    path = write_journal(build_executed(ts_ns=T0 + 3_723 * S + 5), tmp_path)
    assert path == tmp_path / "2024-05-01" / "13-02-03-ARBUSDT-executed.md"
    assert path.read_text().startswith("# ARBUSDT · EXECUTED · 2024-05-01 13:02:03.000 UTC")
    rejected = write_journal(build_rejected(), tmp_path)
    assert rejected.name == "12-00-00-ARBUSDT-rejected.md"
    assert [p.name for p in (tmp_path / "2024-05-01").iterdir() if p.name.startswith(".")] == []


def test_same_second_symbol_and_outcome_gets_a_suffix_and_never_overwrites(tmp_path):
    paths = [write_journal(build_rejected(f"d-{i}", ts_ns=T0 + i * 1000), tmp_path)
             for i in range(3)]
    assert [p.name for p in paths] == ["12-00-00-ARBUSDT-rejected.md",
                                       "12-00-00-ARBUSDT-rejected-2.md",
                                       "12-00-00-ARBUSDT-rejected-3.md"]
    assert [decision_in(p) for p in paths] == ["d-0", "d-1", "d-2"]


def test_rewriting_the_same_decision_is_idempotent(tmp_path):
    chain = build_executed()
    first = write_journal(chain, tmp_path)
    write_journal(build_executed("other"), tmp_path)  # takes the -2 name
    chain.proposal["reason"] = "re-journaled after a restart"
    again = write_journal(chain, tmp_path)
    assert again == first
    assert "re-journaled after a restart" in first.read_text()
    assert len(list((tmp_path / "2024-05-01").iterdir())) == 2


def test_the_final_entry_replaces_the_in_flight_one(tmp_path):
    chain = build_executed()
    outcome = chain.proposal["outcome"]
    chain.proposal["outcome"] = None
    pending = write_journal(chain, tmp_path)
    assert pending.name.endswith("-ARBUSDT-pending.md")
    other = build_executed("someone-else")
    other.proposal["outcome"] = None
    others = write_journal(other, tmp_path)
    chain.proposal["outcome"] = outcome
    final = write_journal(chain, tmp_path)
    assert final.name.endswith("-executed.md") and not pending.exists()
    assert others.exists()  # another decision's in-flight entry stays


def test_a_symbol_with_path_characters_stays_in_its_day_dir(tmp_path):
    path = write_journal(build_rejected(symbol="PM:0xabc/yes"), tmp_path)
    assert path.parent == tmp_path / "2024-05-01"
    assert path.name == "12-00-00-PM_0xabc_yes-rejected.md"


def test_concurrent_writers_for_one_name_both_land(tmp_path):
    chains = [build_rejected(f"d-{i}") for i in range(8)]

    async def write_all() -> list[Path]:
        return await asyncio.gather(*(asyncio.to_thread(write_journal, c, tmp_path)
                                      for c in chains))

    paths = asyncio.run(write_all())
    assert len(set(paths)) == 8
    assert sorted(decision_in(p) for p in paths) == sorted(c.decision_id for c in chains)
    assert not [n for n in os.listdir(paths[0].parent) if n.endswith(".tmp")]
