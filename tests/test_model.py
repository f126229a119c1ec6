"""The domain model: tick batches, ids, clocks, symbols."""

import random

import numpy as np
import pytest

from tripwire.model import (
    SimClock,
    SymbolTable,
    TickBatch,
    client_order_id,
    id_time_ns,
    new_id,
)


def test_tick_batch_checks_dtypes_and_lengths():
    ok = TickBatch.from_columns([0, 1], [1, 2], [1.0, 2.0], [3.0, 4.0], side=[1, -1], trade_id=[7, 8])
    assert len(ok) == 2 and ok.trade_id.tolist() == [7, 8]
    with pytest.raises(TypeError, match="TickBatch.price must have dtype float64, got float32"):
        TickBatch(ok.symbol_id, ok.ts_ns, ok.price.astype(np.float32), ok.qty)
    with pytest.raises(ValueError, match="symbol_id has 2, qty has 1"):
        TickBatch(ok.symbol_id, ok.ts_ns, ok.price, ok.qty[:1])
    with pytest.raises(TypeError, match="TickBatch.ts_ns must be a numpy array, got list"):
        TickBatch(ok.symbol_id, [1, 2], ok.price, ok.qty)


def test_tick_batch_concat_and_take():
    a = TickBatch.from_columns([0], [1], [1.0], [1.0])
    b = TickBatch.from_columns([1, 1], [2, 3], [2.0, 3.0], [1.0, 1.0])
    c = TickBatch.concat([a, b])
    assert c.ts_ns.tolist() == [1, 2, 3]
    assert c.take(np.array([2])).price.tolist() == [3.0]
    assert len(TickBatch.concat([])) == 0


def test_ids_are_uuid7_time_ordered_and_reproducible_with_a_seed():
    clock = SimClock(1_700_000_000_000_000_000)
    first = new_id(clock)
    clock.advance(5_000_000)
    second = new_id(clock)
    assert first < second and first[14] == "7"
    assert id_time_ns(second) - id_time_ns(first) == 5_000_000
    assert new_id(clock, random.Random(3)) == new_id(clock, random.Random(3))
    with pytest.raises(ValueError, match="not a UUIDv7"):
        id_time_ns("00000000-0000-4000-8000-000000000000")


def test_client_order_ids_are_deterministic_per_leg():
    d = new_id()
    assert client_order_id(d, 0) == client_order_id(d, 0) != client_order_id(d, 1)
    assert len(client_order_id(d, 0)) <= 36
    with pytest.raises(ValueError, match="leg must be >= 0"):
        client_order_id(d, -1)


def test_sim_clock_never_goes_back():
    clock = SimClock(10)
    with pytest.raises(ValueError, match="cannot go back"):
        clock.set(5)
    with pytest.raises(ValueError, match="cannot go back"):
        clock.advance(-1)


def test_symbol_table():
    t = SymbolTable(["A", "B", "A"])
    assert len(t) == 2 and t.id("B") == 1 and "A" in t
    with pytest.raises(KeyError, match="unknown symbol 'C'"):
        t.id("C")
    with pytest.raises(KeyError, match="unknown symbol id 5"):
        t.name(5)
