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


# -- the engine records outcomes itself (tripwire.engine.outcomes) ------------------------

class _Remembering:
    """A decisions port that files each incident in the store, asks memory what it may see
    at the incident's time, and records a HOLD -- what the triage graph does, minus a model."""

    def __init__(self, store: MemoryDecisionStore) -> None:
        self.store, self.seen = store, []

    async def on_incidents(self, incidents):
        for inc in incidents:
            await self.store.record_incident(inc.id, inc.symbol, inc.ts_ns, "triaged", {})
            memory = await recall(self.store, inc, MemorySettings(enabled=True, max_items=50))
            self.seen.append((inc.ts_ns, [o["realised_ns"] for o in memory.similar]))


class _Watched(MemoryDecisionStore):
    """Records, for each outcome written, the market time the engine had reached."""

    def __init__(self, clock) -> None:
        super().__init__()
        self.clock, self.written = clock, []

    async def record_outcome(self, incident_id, **row):
        self.written.append((row["realised_ns"], self.clock()))
        return await super().record_outcome(incident_id, **row)


def _engine_run(memory: MemorySettings, max_pending: int = 10_000):
    from actors.shard import DetectorShard
    from tripwire.engine import Engine, LocalDetectors, MarketState
    from tripwire.engine.outcomes import outcome_recorder
    from tripwire.engine.step import sub_batches
    from tripwire.feeds.scenario import Scenario, ScenarioConfig

    sc = Scenario(ScenarioConfig(seed=3, n_symbols=6, duration_s=4 * 3600,
                                 events_per_kind={"fat_finger": 2, "news_shock": 2,
                                                  "liquidation_cascade": 1}))
    now = {"ns": 0}
    store = _Watched(lambda: now["ns"])
    port = _Remembering(store)
    market = MarketState(sc.symbols)
    market.on_news(sc.news)
    recorder = outcome_recorder(store, memory, sc.symbols, max_pending=max_pending)
    engine = Engine(market, LocalDetectors(DetectorShard(0, 1, sc.symbols, id_seed=3)), port,
                    outcomes=recorder)

    async def run():
        for chunk in sc.blocks():
            for b in sub_batches(chunk.ticks):
                now["ns"] = int(b.ts_ns.max())  # market time once this batch has gone through
                await engine.step(b)

    asyncio.run(run())
    return engine, store, port, recorder


@pytest.mark.parametrize("horizon_s", [20, 300])
def test_the_engine_records_each_outcome_once_the_market_passes_its_horizon(horizon_s):
    engine, store, port, recorder = _engine_run(MemorySettings(enabled=True,
                                                               horizon_s=horizon_s))
    assert len(port.seen) >= 5
    recorded = recorder.counts["recorded"]
    assert recorded >= 3 and engine.counts["outcomes"] == recorded == len(store.written)
    assert len(store._outcomes) == recorded  # each incident at most once
    # never ahead of the clock: written only when market time had passed ts + horizon
    assert all(realised <= clock for realised, clock in store.written)
    for row in store._outcomes.values():
        assert row["realised_ns"] == row["ts_ns"] + horizon_s * S and row["action"] == "HOLD"
    # memory saw only outcomes realised before each incident's time
    assert all(r < ts for ts, realised in port.seen for r in realised)
    # two similar trips 37 s apart (seed 3): the later one sees the earlier one's outcome
    # with a 20 s horizon, and not with 300 s (it is recorded later, but not realised then)
    assert sum(bool(realised) for _, realised in port.seen) == (1 if horizon_s == 20 else 0)


def test_the_engine_bounds_the_pending_outcomes_and_counts_the_overflow():
    _, _, port, recorder = _engine_run(MemorySettings(enabled=True, horizon_s=3600),
                                       max_pending=1)
    assert recorder.counts["dropped"] >= 1 and len(recorder) <= 1
    # every incident is accounted for: recorded, dropped (refused or never priced), waiting
    assert (recorder.counts["recorded"] + recorder.counts["dropped"] + len(recorder)
            == len(port.seen))


def test_memory_off_plugs_no_recorder_into_the_engine():
    from tripwire.engine.outcomes import outcome_recorder
    from tripwire.model import SymbolTable

    syms = SymbolTable(["BTCUSDT"])
    assert outcome_recorder(MemoryDecisionStore(), MemorySettings(), syms) is None
    assert outcome_recorder(MemoryDecisionStore(), MemorySettings(enabled=True),
                            syms) is not None
