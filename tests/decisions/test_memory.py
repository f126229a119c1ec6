"""Memory's pure parts: settings, rendering bounds, the request edit, the outcome settler."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from tests.llm.test_rules import make
from tripwire.decisions.memory import (
    MEMORY_HEADING,
    Memory,
    MemorySettings,
    OutcomeSettler,
    recall,
    render,
    with_memory,
)
from tripwire.llm.base import LLMRequest, Message
from tripwire.llm.schemas import TriageVerdict
from tripwire.model import NS_PER_SECOND, TickBatch
from tripwire.store.decisions import MemoryDecisionStore

S = NS_PER_SECOND


def batch(sym, ts_s, price) -> TickBatch:
    n = len(ts_s)
    return TickBatch.from_columns(np.asarray(sym, dtype=np.int32),
                                  (np.asarray(ts_s, dtype=np.int64) * S), np.asarray(price),
                                  np.ones(n), trade_id=np.arange(1, n + 1))


@pytest.mark.parametrize("table,key", [({"enabled": "yes"}, "memory.enabled"),
                                       ({"max_chars": 10}, "memory.max_chars"),
                                       ({"depth": 3}, "memory.depth")])
def test_bad_memory_settings_name_the_key(table, key):
    with pytest.raises(ValueError, match=key):
        MemorySettings.from_table(table)


def test_render_is_bounded_and_counts_the_cut():
    similar = [{"symbol": "ETHUSDT", "metric": "RETURN", "z_bucket": 4, "has_news": False,
                "ts_ns": 0, "classification": "TECHNICAL_SPIKE", "action": "HOLD",
                "move_pct": 1.0, "horizon_s": 1800.0, "pnl": None}] * 50
    text = render(Memory(similar=similar), 3600 * S, max_chars=400)
    assert text.startswith(MEMORY_HEADING) and len(text) <= 400
    assert text.endswith("(memory cut at 400 characters)")
    assert render(None, 0) == "" and "nothing recorded yet" in render(Memory(), 0)


def test_with_memory_appends_and_an_empty_text_changes_nothing():
    req = LLMRequest(role="triage-analyst", system="s", messages=(Message("user", "facts"),),
                     schema=TriageVerdict)
    assert with_memory(req, "") is req
    more = with_memory(req, "Memory: x")
    assert more.messages[-1].content == "facts\n\nMemory: x"
    assert more.fingerprint() != req.fingerprint() and more.context == req.context


def test_the_settler_realises_outcomes_at_the_horizon_and_memory_shows_them():
    settler = OutcomeSettler(horizon_s=60, max_pending=2)
    inc = make(price=100.0).model_copy(update={"id": "i-1", "ts_ns": 1_000 * S})
    assert settler.add(inc, symbol_id=0, classification="IGNORE", action="HOLD")
    assert settler.on_batch(batch([0, 1], [1_030, 1_040], [97.0, 5.0])) == []  # not yet
    [row] = settler.on_batch(batch([1, 0], [1_061, 1_070], [5.0, 99.0]))
    assert row["move_pct"] == pytest.approx(-3.0)  # the last price at or before 1060 s
    assert row["realised_ns"] == 1_060 * S and len(settler) == 0

    async def stored():
        store = MemoryDecisionStore()
        await store.record_incident("i-1", inc.symbol, inc.ts_ns, "triaged", {})
        await store.record_outcome(**row)  # the settler's row is the port's call
        later = inc.model_copy(update={"id": "i-2", "ts_ns": 2_000 * S})
        return await recall(store, later, MemorySettings(enabled=True))

    memory = asyncio.run(stored())
    assert [o["incident_id"] for o in memory.similar] == ["i-1"]


def test_the_settler_is_bounded_and_counts_what_it_drops():
    settler = OutcomeSettler(horizon_s=1, max_pending=1)
    inc = make(price=100.0).model_copy(update={"id": "a", "ts_ns": 10 * S})
    assert settler.add(inc, 0) and not settler.add(inc.model_copy(update={"id": "b"}), 0)
    assert settler.dropped == 1
    assert settler.on_batch(batch([1], [20], [5.0])) == []  # symbol 0 never traded
    assert settler.dropped == 2 and len(settler) == 0
    assert not settler.add(inc.model_copy(update={"price": None}), 0)
    with pytest.raises(ValueError, match="horizon_s"):
        OutcomeSettler(horizon_s=0)
