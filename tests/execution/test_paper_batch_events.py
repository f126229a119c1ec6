"""PaperBroker.on_ticks jumps between the ticks where something can happen (a working order
can fill, an armed bracket trigger); the fills, marks and equity are those of taking the same
ticks one at a time."""

from __future__ import annotations

import random

import pytest

from tests.execution.test_paper import limit, make, market, ticks
from tripwire.execution import Side


def _walk(seed: int, one_by_one: bool):
    rng = random.Random(seed)
    broker, clock = make(latency_ns=3)
    rows, px = [], {0: 100.0, 1: 50.0}
    for t in range(1, 400):
        sym = rng.randrange(2)
        px[sym] *= 1 + rng.gauss(0, 0.01)
        rows.append((sym, t * 10, px[sym]))
    n = 0
    for lo in range(0, len(rows), 40):
        clock.set(rows[lo][1])
        side = Side.BUY if rng.random() < 0.5 else Side.SELL
        sym = "BTCUSDT" if rng.random() < 0.6 else "ETHUSDT"
        p = px[0] if sym == "BTCUSDT" else px[1]
        sign = 1 if side is Side.BUY else -1
        if rng.random() < 0.7:
            broker.place(market(f"o{n}", side, 0.5, symbol=sym, stop_loss=p * (1 - sign * .01),
                                take_profit=p * (1 + sign * .012)))
        elif sym == "BTCUSDT":
            broker.place(limit(f"o{n}", side, 0.5, p * (1 - sign * .004),
                               stop_loss=p * (1 - sign * .02)))
        n += 1
        part = rows[lo:lo + 40]
        for batch in ([ticks(r) for r in part] if one_by_one else [ticks(*part)]):
            broker.on_ticks(batch)
    fills = [(f.order_id, f.kind, f.price, f.qty, f.ts_ns) for f in broker.fills()]
    marks = {s: (p.mark_price, p.qty) for s, p in broker.positions().items()}
    return fills, marks, broker.account()


@pytest.mark.parametrize("seed", range(6))
def test_a_batch_gives_what_its_ticks_one_at_a_time_give(seed):
    fills, marks, account = _walk(seed, one_by_one=False)
    assert len(fills) >= 5  # orders filled and brackets triggered inside batches
    assert (fills, marks, account) == _walk(seed, one_by_one=True)
