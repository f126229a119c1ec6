"""`tripwire explain`: one decision's chain from the trip to the fills, on a terminal or as JSON.

Rendering is tested on chains recorded through MemoryDecisionStore (the builders live in
``test_journal``); the command against a real PostgreSQL (``migrated_db``) filled through
PgDecisionStore.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json

import pytest
from rich.console import Console

from tests.store.test_journal import (
    FILL_PRICE,
    T0,
    build_executed,
    build_rejected,
    record_executed,
    record_rejected,
)
from tripwire.commands import main as store_main
from tripwire.decisions.signatures import SIGNERS
from tripwire.store.decisions import Approval, DecisionChain
from tripwire.store.explain import explain_json, render_explain


def _render(chain: DecisionChain) -> str:
    console = Console(record=True, width=120, file=io.StringIO())
    render_explain(chain, console)
    return console.export_text()


# ----------------------------------------------------------------------------- rendering


def test_explain_shows_the_chain_in_time_order():
    chain = build_executed()
    out = _render(chain)
    h = chain.proposal["proposal_hash"]
    assert "ARBUSDT" in out and "EXECUTED" in out and chain.decision_id in out
    titles = ["Trip", "Verdict", "Proposal", "Risk gate", "Fact check", "Double check",
              "Signatures", "Approval", "Order", "Fills", "Outcome", "Bus messages"]
    positions = [out.index(t) for t in titles]
    assert positions == sorted(positions), dict(zip(titles, positions, strict=True))
    for signer in SIGNERS:
        assert signer in out
    assert out.count(h[:12]) >= 4 and "3 valid signatures over" in out
    assert "LIQUIDATION_CASCADE" in out and "ARB foundation | opens grants round" in out
    assert "risk_per_trade" in out and "fresh_price" in out and "thin book" in out
    assert f"1.5 @ {FILL_PRICE}" in out and str(FILL_PRICE) in out.split("Fills")[1]
    assert "strategist → risk_gate" in out and "executor → journal" in out


def test_explain_a_rejected_decision_without_orders():
    out = _render(build_rejected())
    assert "REJECTED" in out and "VETO" in out and "no order was sent" in out
    assert "no APPROVE over this proposal hash from risk_gate" in out
    assert "Bus messages" not in out  # nothing on the bus: no empty table


def test_text_from_the_chain_is_never_parsed_as_markup():
    chain = build_rejected()
    chain.proposal["reason"] = "vetoed [bold]loudly[/bold] [/]"
    out = _render(chain)
    assert "vetoed [bold]loudly[/bold] [/]" in out


def test_explain_survives_a_bare_chain():
    out = _render(DecisionChain("d-bare"))
    assert "d-bare" in out and "PENDING" in out and "nothing recorded" in out


def test_explain_json_round_trips_the_full_chain():
    chain = build_executed()
    chain.approval = Approval(chain.decision_id, "approved", chain.proposal["proposal_hash"],
                              "BUY 1.5 ARBUSDT", T0, T0 + 60, "alice", T0 + 5, "ok")
    chain.orders[0]["payload"]["avg_fill_price"] = float("nan")  # strict JSON has no NaN
    data = json.loads(json.dumps(explain_json(chain), allow_nan=False))
    assert data["decision_id"] == chain.decision_id and data["outcome"] == "EXECUTED"
    assert data["signature_check"]["valid"] is True
    assert [s["signer"] for s in data["signatures"]] == list(SIGNERS)
    assert data["signatures"][0] == json.loads(json.dumps(
        dataclasses.asdict(chain.signatures[0])))
    assert data["approval"]["decided_by"] == "alice"
    assert data["orders"][0]["payload"]["avg_fill_price"] is None
    assert data["fills"][0]["price"] == FILL_PRICE
    assert data["incident"]["payload"]["metric"] == "RETURN"
    assert data["proposal"]["payload"]["risk"]["checks"][1]["name"] == "risk_per_trade"
    assert len(data["messages"]) == 4


def test_explain_json_of_a_rejected_chain():
    data = json.loads(json.dumps(explain_json(build_rejected())))
    assert data["outcome"] == "REJECTED" and data["orders"] == [] and data["approval"] is None
    assert data["signature_check"]["valid"] is False


# ----------------------------------------------------------------------------- the command


EXEC_ID = "0190a1b2-c3d4-7000-8000-00000000aaaa"
OTHER_ID = "0190a1b2-c3d4-7000-8000-00000000bbbb"
REJ_ID = "0190ffff-0000-7000-8000-000000000001"


@pytest.fixture
def filled_db(migrated_db: str) -> str:
    from tripwire.store.pg_decisions import PgDecisionStore

    async def fill() -> None:
        store = await PgDecisionStore.connect(migrated_db)
        try:
            await record_executed(store, EXEC_ID, "ARBUSDT", T0)
            await record_executed(store, OTHER_ID, "ETHUSDT", T0 + 10**9)
            await record_rejected(store, REJ_ID, "ARBUSDT", T0 + 2 * 10**9)
        finally:
            await store.close()

    asyncio.run(fill())
    return migrated_db


pg_timeout = pytest.mark.timeout(120)


@pg_timeout
def test_unknown_id_exits_2_naming_it(filled_db, capsys):
    assert store_main(["explain", "no-such-decision-id", "--dsn", filled_db]) == 2
    err = capsys.readouterr().err
    assert "no-such-decision-id" in err and "no decision" in err


@pg_timeout
def test_a_short_or_ambiguous_prefix_exits_2(filled_db, capsys):
    assert store_main(["explain", "0190", "--dsn", filled_db]) == 2
    assert "at least 8 characters" in capsys.readouterr().err
    assert store_main(["explain", "0190a1b2-c3d4", "--dsn", filled_db]) == 2
    err = capsys.readouterr().err
    assert "ambiguous" in err and EXEC_ID in err and OTHER_ID in err


@pg_timeout
def test_explain_prints_the_chain_from_postgres(filled_db, capsys):
    assert store_main(["explain", EXEC_ID, "--dsn", filled_db]) == 0
    out = capsys.readouterr().out
    assert EXEC_ID in out and "EXECUTED" in out and "3 valid signatures over" in out
    for signer in SIGNERS:
        assert signer in out
    assert str(FILL_PRICE) in out


@pg_timeout
def test_explain_json_by_unique_prefix(filled_db, capsys):
    assert store_main(["explain", REJ_ID[:12], "--dsn", filled_db, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["decision_id"] == REJ_ID and data["outcome"] == "REJECTED"
    assert data["orders"] == [] and data["signatures"][0]["verdict"] == "VETO"


@pg_timeout
def test_explain_is_a_top_level_tripwire_command(filled_db, capsys):
    from tripwire.cli import main

    assert main(["explain", OTHER_ID, "--dsn", filled_db, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["symbol"] == "ETHUSDT" and data["fills"][0]["price"] == FILL_PRICE
