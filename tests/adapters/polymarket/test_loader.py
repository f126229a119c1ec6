"""PolymarketTradesFile: a recorded data-API /trades answer replayed as validated chunks."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from tests.adapters.polymarket.server import NO, YES
from tripwire.adapters.polymarket.config import MarketSpec
from tripwire.adapters.polymarket.loader import PolymarketTradesFile
from tripwire.model import DeadReason, SimClock

DATA = Path(__file__).parent / "data" / "trades.json"
MARKETS = (MarketSpec(YES, "PM-TEST-YES", "0xbd", "Yes"), MarketSpec(NO, "PM-TEST-NO", "0xbd", "No"))


async def _all(feed):
    return [c async for c in feed.chunks()]


def test_history_is_replayed_oldest_first_with_dead_letters_named():
    feed = PolymarketTradesFile(DATA, MARKETS, clock=SimClock(1))
    chunks = asyncio.run(_all(feed))
    ticks = chunks[0].ticks
    assert ticks.price.tolist() == [0.55, 0.58, 0.58, 0.39, 0.61]
    assert ticks.qty.tolist() == [20.0, 3.0, 10.5, 50.0, 120.0]
    assert ticks.side.tolist() == [1, 1, -1, -1, 1]
    assert ticks.ts_ns[0] == 1750428120 * 10**9 and (np.diff(ticks.ts_ns) >= 0).all()
    # Two trades in one second: rising ids in the order they happened (file order reversed).
    same = ticks.trade_id[1:3].tolist()
    assert same == [1750428180000 * 1024, 1750428180000 * 1024 + 1]
    reasons = sorted(d.reason.value for d in chunks[0].dead)
    assert reasons == ["bad_price", "duplicate", "unknown_symbol"]
    bad = next(d for d in chunks[0].dead if d.reason is DeadReason.BAD_PRICE)
    assert "1.58 is outside [0, 1]" in bad.detail and bad.symbol == "PM-TEST-YES"
    assert feed.probability_symbols() == ("PM-TEST-YES", "PM-TEST-NO")
    assert feed.stats()["rows"] == 8


def test_a_file_that_is_not_a_trades_answer_is_refused_by_name(tmp_path):
    path = tmp_path / "x.json"
    path.write_text('{"error": "rate limited"}')
    feed = PolymarketTradesFile(path, MARKETS)
    with pytest.raises(ValueError, match="must hold a JSON array of trades"):
        asyncio.run(_all(feed))
    with pytest.raises(ValueError, match="does not exist"):
        PolymarketTradesFile(tmp_path / "missing.json", MARKETS)
