"""The scenario generator: determinism, streaming, labels that tell the truth, and quality."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import math
import uuid
from itertools import islice, pairwise

import numpy as np
import pytest

from tripwire.detect import DetectorBank
from tripwire.detect.evaluate import evaluate
from tripwire.feeds.scenario import (
    DEFAULT_START_NS,
    EVENT_GAP_S,
    Scenario,
    ScenarioConfig,
    ScenarioFeed,
    default_scenario_config,
    read_labels,
    read_news,
)
from tripwire.model import TICK_COLUMNS, EventKind, Metric, TickBatch, Trips

S = 1_000_000_000
SMALL = ScenarioConfig(
    seed=3, n_symbols=10, duration_s=10 * 3600, warmup_s=1800, events_per_kind=1, tick_rate=1.0
)
DETECTED_KINDS = ("flash_crash", "pump_and_dump", "liquidation_cascade", "news_shock", "fat_finger")


def digest(scenario: Scenario) -> str:
    h = hashlib.sha256()
    for chunk in scenario.blocks():
        for name in TICK_COLUMNS:
            h.update(np.ascontiguousarray(getattr(chunk.ticks, name)).tobytes())
        for item in chunk.news:
            h.update(repr(item).encode())
    h.update(repr(scenario.labels).encode())
    return h.hexdigest()


@pytest.fixture(scope="module")
def small() -> tuple[Scenario, TickBatch, list]:
    sc = Scenario(SMALL)
    chunks = list(sc.blocks())
    return sc, TickBatch.concat([c.ticks for c in chunks]), chunks


def symbol_ticks(ticks: TickBatch, sc: Scenario, name: str) -> TickBatch:
    return ticks.take(np.flatnonzero(ticks.symbol_id == sc.symbols.id(name)))


def labels_of(sc: Scenario, kind: EventKind):
    return [x for x in sc.labels if x.kind is kind]


# ----------------------------------------------------------------------------- determinism


def test_same_seed_is_bit_identical_and_another_seed_differs():
    cfg = dataclasses.replace(SMALL, duration_s=4 * 3600, events_per_kind={"fat_finger": 2})
    first = digest(Scenario(cfg))
    assert digest(Scenario(cfg)) == first
    assert digest(Scenario(dataclasses.replace(cfg, seed=4))) != first


def test_output_does_not_depend_on_how_it_is_consumed(small):
    _, ticks, chunks = small
    # Iterating again, or stopping early, gives the same blocks (a prefix of the stream).
    again = [c.ticks for c in islice(Scenario(SMALL).blocks(), 25)]
    for a, b in zip(again, chunks[:25], strict=True):
        assert all(np.array_equal(getattr(a, k), getattr(b.ticks, k)) for k in TICK_COLUMNS)
    # The feed validates everything and refuses nothing.
    feed = ScenarioFeed(SMALL)
    fed = TickBatch.concat([c.ticks for c in feed.iter_chunks()])
    assert all(np.array_equal(getattr(fed, k), getattr(ticks, k)) for k in TICK_COLUMNS)
    counters = feed.stats()
    assert counters["accepted"] == len(ticks) and counters["dead"] == {} and counters["gaps"] == 0


def test_paced_feed_releases_the_same_ticks_in_slices():
    cfg = ScenarioConfig(n_symbols=3, duration_s=1200, events=False)

    async def collect():
        feed = ScenarioFeed(cfg, speed=50_000.0)
        return [c async for c in feed.chunks()]

    parts = asyncio.run(collect())
    paced = TickBatch.concat([c.ticks for c in parts])
    plain = TickBatch.concat([c.ticks for c in Scenario(cfg).blocks()])
    assert len(parts) > Scenario(cfg).n_blocks  # the pacer sliced the blocks
    for k in ("symbol_id", "ts_ns", "price", "qty", "side", "trade_id"):
        assert np.array_equal(getattr(paced, k), getattr(plain, k))
    assert (paced.recv_ns > 0).all()


def test_generation_is_lazy_so_memory_does_not_grow_with_duration():
    sc = Scenario(ScenarioConfig(n_symbols=5, duration_s=30 * 86_400))
    first = next(iter(sc.blocks()))
    assert 0 < len(first) < 10_000
    assert sc.estimated_ticks > 30 * 86_400 * 5  # a month of trades, not made up front


# ----------------------------------------------------------------------------- ticks


def test_blocks_are_sorted_by_time_then_symbol(small):
    _, _, chunks = small
    for c in chunks:
        ts, sym = c.ticks.ts_ns, c.ticks.symbol_id
        assert (np.diff(ts) >= 0).all()
        ties = np.flatnonzero(np.diff(ts) == 0)
        assert (sym[ties + 1] > sym[ties]).all()
    starts = [int(c.ticks.ts_ns[0]) for c in chunks if len(c)]
    assert starts == sorted(starts)


def test_trades_look_like_an_exchange(small):
    sc, ticks, _ = small
    assert set(np.unique(ticks.side).tolist()) == {-1, 1}
    assert (ticks.qty > 0).all() and (ticks.price > 0).all()
    assert ticks.ts_ns.min() >= SMALL.start_ns and ticks.ts_ns.max() < SMALL.end_ns
    for i, p in enumerate(sc.profiles):
        mine = symbol_ticks(ticks, sc, p.name)
        assert len(mine) > 1_000, p.name
        # Trade ids are consecutive from the symbol's offset, across blocks.
        assert mine.trade_id[0] == p.first_trade_id
        assert (np.diff(mine.trade_id) == 1).all(), p.name
        steps = mine.price / p.tick_size
        assert np.allclose(steps, np.rint(steps), rtol=0, atol=1e-6), p.name
        lots = mine.qty / p.lot
        assert np.allclose(lots, np.rint(lots), rtol=0, atol=1e-6), p.name
        assert mine.symbol_id[0] == i


def test_symbols_are_plausible_and_heterogeneous():
    sc = Scenario(ScenarioConfig(n_symbols=40, events=False, duration_s=60))
    names = sc.symbols.names
    assert names[:3] == ("BTCUSDT", "ETHUSDT", "SOLUSDT")
    assert len(set(names)) == 40 and all(n.endswith("USDT") for n in names)
    prices = [p.price for p in sc.profiles]
    assert 5e4 < prices[0] < 2e5  # a BTC near 1e5
    assert min(prices) >= 1e-4 * 0.9 and max(prices) <= 2e5
    rates = [p.rate for p in sc.profiles]
    assert rates[0] == max(rates) and max(rates) > 5 * min(rates)


def test_the_estimate_for_progress_bars_is_close(small):
    sc, ticks, _ = small
    assert abs(sc.estimated_ticks - len(ticks)) < 0.1 * len(ticks)


def test_background_has_heavy_tails_volatility_clustering_and_a_daily_cycle():
    cfg = ScenarioConfig(seed=11, n_symbols=3, duration_s=2 * 86_400, events=False)
    sc = Scenario(cfg)
    btc = symbol_ticks(TickBatch.concat([c.ticks for c in sc.blocks()]), sc, "BTCUSDT")
    minute = (btc.ts_ns - cfg.start_ns) // (60 * S)
    last = np.searchsorted(minute, np.arange(minute[-1] + 1), side="right") - 1
    r = np.diff(np.log(btc.price[last]))
    r -= r.mean()
    excess_kurtosis = (r**4).mean() / (r**2).mean() ** 2 - 3
    a = np.abs(r) - np.abs(r).mean()
    acf1 = (a[:-1] * a[1:]).mean() / a.var()
    per_hour = np.bincount((minute // 60) % 24, minlength=24)
    assert excess_kurtosis > 1.0  # fat tails at the minute scale
    assert acf1 > 0.1  # large moves follow large moves
    assert per_hour.max() > 2 * per_hour.min()  # busy US session, quiet late evening


# ----------------------------------------------------------------------------- labels and news


def test_default_scenario_shape():
    sc = Scenario(default_scenario_config())
    assert sc.config.start_ns == DEFAULT_START_NS and sc.config.duration_s == 86_400
    assert len(sc.symbols) == 24
    counts = {k.value: len(labels_of(sc, k)) for k in EventKind}
    assert counts == dict.fromkeys(counts, 5)
    assert 2_000_000 < sc.estimated_ticks < 6_000_000
    assert 100 < len(sc.news) < 250


@pytest.mark.parametrize("seed", [None, 1, 2])
def test_labels_are_well_formed_and_never_overlap_on_a_symbol(seed):
    sc = Scenario(default_scenario_config(seed))
    cfg = sc.config
    assert len({x.id for x in sc.labels}) == len(sc.labels)
    by_symbol: dict[str, list] = {}
    for x in sc.labels:
        assert uuid.UUID(x.id).version == 7
        assert x.symbol in sc.symbols
        assert cfg.start_ns + cfg.effective_warmup_s * S <= x.start_ns <= x.end_ns < cfg.end_ns
        assert (x.magnitude == 0) == (x.kind is EventKind.VOLUME_BURST)
        by_symbol.setdefault(x.symbol, []).append(x)
    for spans in by_symbol.values():
        spans.sort(key=lambda x: x.start_ns)
        for a, b in pairwise(spans):
            assert b.start_ns - a.end_ns > EVENT_GAP_S * S
    assert len(by_symbol) > len(sc.symbols) // 2  # spread over symbols...
    starts = sorted(x.start_ns for x in sc.labels)
    assert starts[-1] - starts[0] > 12 * 3600 * S  # ...and over the day


def test_news_shocks_have_their_headline_at_the_event_time_in_the_right_block(small):
    sc, _, chunks = small
    news = {n.id: n for n in sc.news}
    shocks = labels_of(sc, EventKind.NEWS_SHOCK)
    assert shocks
    for x in shocks:
        item = news[x.news_id]
        assert item.ts_ns == x.start_ns and x.symbol in item.symbols
        assert item.headline.startswith("BREAKING")
    block_ns = SMALL.block_s * S
    seen = []
    for b, chunk in enumerate(chunks):
        for item in chunk.news:
            assert (item.ts_ns - SMALL.start_ns) // block_ns == b
            seen.append(item.id)
    assert sorted(seen) == sorted(news)  # every headline exactly once
    assert chunks[0].labels == sc.labels and all(not c.labels for c in chunks[1:])


def test_most_news_is_noise_and_some_is_misleading():
    sc = Scenario(default_scenario_config())
    tied = {x.news_id for x in sc.labels if x.news_id}
    assert len(tied) >= 5  # every news shock, some cascades and pumps
    untied = [n for n in sc.news if n.id not in tied]
    assert len(untied) > 0.8 * len(sc.news)
    herrings = [n for n in untied if n.symbols]
    assert herrings
    hour = 3600 * S
    for n in herrings:  # scary, yet nothing happens to that symbol around it
        assert not [
            x for x in sc.labels
            if x.symbol in n.symbols and x.start_ns - hour < n.ts_ns < x.end_ns + hour
        ]  # fmt: skip


def test_labels_and_news_round_trip_through_json_lines(tmp_path):
    sc = Scenario(SMALL)
    assert read_labels(sc.write_labels(tmp_path / "out" / "labels.jsonl")) == sc.labels
    assert read_news(sc.write_news(tmp_path / "out" / "news.jsonl")) == sc.news


# ----------------------------------------------------------------------------- events


def test_a_fat_finger_is_exactly_one_off_market_tick(small):
    sc, ticks, _ = small
    (ff,) = labels_of(sc, EventKind.FAT_FINGER)
    mine = symbol_ticks(ticks, sc, ff.symbol)
    near = np.abs(mine.ts_ns - ff.start_ns) < 600 * S
    local = np.median(mine.price[near])
    off = np.flatnonzero(near & (np.abs(mine.price / local - 1) > 0.03))
    assert len(off) == 1  # one print far away, nothing else near it
    i = int(off[0])
    assert mine.ts_ns[i] == ff.start_ns == ff.end_ns
    assert abs(mine.price[i] / mine.price[i - 1] - 1) >= 0.07
    assert mine.price[i] / mine.price[i - 1] - 1 == pytest.approx(ff.magnitude, abs=0.01)
    assert abs(mine.price[i + 1] / mine.price[i - 1] - 1) < 0.01  # the next one is normal


def test_an_outage_has_no_ticks_while_the_price_moves(small):
    sc, ticks, _ = small
    (out,) = labels_of(sc, EventKind.OUTAGE)
    mine = symbol_ticks(ticks, sc, out.symbol)
    inside = (mine.ts_ns >= out.start_ns) & (mine.ts_ns <= out.end_ns)
    assert not inside.any()
    before = int(np.searchsorted(mine.ts_ns, out.start_ns)) - 1
    after = before + 1
    assert out.start_ns - mine.ts_ns[before] < 300 * S and mine.ts_ns[after] - out.end_ns < 300 * S
    gap_s = (mine.ts_ns[after] - mine.ts_ns[before]) / S
    prof = sc.profiles[sc.symbols.id(out.symbol)]
    moved = math.log(mine.price[after] / mine.price[before])
    noise = 4 * 2 * prof.daily_vol * math.sqrt(gap_s / 86_400) + 4 * prof.half_spread
    assert abs(moved - math.log1p(out.magnitude)) < noise  # the market kept moving
    assert abs(out.magnitude) >= 0.01 and mine.trade_id[after] == mine.trade_id[before] + 1


def test_events_move_the_price_as_labelled(small):
    sc, ticks, _ = small
    for kind in (EventKind.FLASH_CRASH, EventKind.LIQUIDATION_CASCADE, EventKind.PUMP_AND_DUMP):
        (x,) = labels_of(sc, kind)
        mine = symbol_ticks(ticks, sc, x.symbol)
        span = (mine.ts_ns >= x.start_ns) & (mine.ts_ns <= x.end_ns)
        start = mine.price[np.searchsorted(mine.ts_ns, x.start_ns) - 1]
        extreme = mine.price[span].min() if x.magnitude < 0 else mine.price[span].max()
        assert extreme / start - 1 == pytest.approx(x.magnitude, abs=0.02 + 0.2 * abs(x.magnitude))
    (burst,) = labels_of(sc, EventKind.VOLUME_BURST)
    mine = symbol_ticks(ticks, sc, burst.symbol)
    span = (mine.ts_ns >= burst.start_ns) & (mine.ts_ns <= burst.end_ns)
    hour_before = (mine.ts_ns < burst.start_ns) & (mine.ts_ns > burst.start_ns - 3600 * S)
    seconds = (burst.end_ns - burst.start_ns) / S
    assert mine.qty[span].sum() / seconds > 10 * mine.qty[hour_before].sum() / 3600
    assert abs(math.log(mine.price[span][-1] / mine.price[span][0])) < 0.01  # no move


def test_a_slow_trend_moves_the_price_but_never_trips_a_return_detector():
    cfg = ScenarioConfig(
        seed=5, n_symbols=8, duration_s=16 * 3600, warmup_s=2 * 3600,
        events_per_kind={"slow_trend": 4},
    )  # fmt: skip
    sc = Scenario(cfg)
    bank = DetectorBank(n_symbols=cfg.n_symbols)
    parts, kept = [], []
    for chunk in sc.blocks():
        parts.append(bank.push(chunk.ticks).trips)
        kept.append(chunk.ticks)
    trips, ticks = Trips.concat(parts), TickBatch.concat(kept)
    for x in sc.labels:
        sid = sc.symbols.id(x.symbol)
        on_trend = (trips.symbol_id == sid) & (trips.ts_ns >= x.start_ns) & (trips.ts_ns <= x.end_ns)
        assert not (on_trend & (trips.metric == int(Metric.RETURN))).any()
        mine = symbol_ticks(ticks, sc, x.symbol)
        p0, p1 = (mine.price[np.searchsorted(mine.ts_ns, t)] for t in (x.start_ns, x.end_ns))
        assert abs(x.magnitude) >= 0.02 and np.sign(math.log(p1 / p0)) == np.sign(x.magnitude)


# ----------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"seed": -1}, "scenario.seed must be an integer >= 0"),
        ({"n_symbols": 0}, "scenario.n_symbols must be an integer in [1, 65535]"),
        ({"n_symbols": 2.0}, "scenario.n_symbols"),
        ({"start_ns": 0}, "scenario.start_ns must be an integer > 0"),
        ({"duration_s": float("nan")}, "scenario.duration_s must be a number of seconds"),
        ({"block_s": 7}, "scenario.block_s must be an integer that divides 60, got 7"),
        ({"tick_rate": 0}, "scenario.tick_rate must be"),
        ({"events_per_kind": -1}, "scenario.events_per_kind must be None, an integer"),
        ({"events_per_kind": {"crash": 1}}, "scenario.events_per_kind.crash is not an event kind"),
        ({"events_per_kind": {"outage": "2"}}, "scenario.events_per_kind.outage must be"),
        ({"news_per_hour": -2}, "scenario.news_per_hour must be a number in [0, 3600]"),
        ({"events": "yes"}, "scenario.events must be true or false"),
        ({"warmup_s": 1e9}, "scenario.warmup_s must be None or a number"),
        ({"tail_df": 2}, "scenario.tail_df must be a number > 2"),
    ],
)
def test_config_errors_name_the_key(change, message):
    with pytest.raises(ValueError) as exc:
        ScenarioConfig(**change)
    assert message in str(exc.value)


def test_config_from_a_table_refuses_unknown_keys_and_explicit_counts_must_fit():
    assert ScenarioConfig.from_dict({"n_symbols": 3}).n_symbols == 3
    with pytest.raises(ValueError, match=r"scenario\.symbol is not a scenario setting"):
        ScenarioConfig.from_dict({"symbol": 3})
    with pytest.raises(ValueError, match="scenario.events_per_kind: cannot place 9 slow_trend"):
        Scenario(ScenarioConfig(n_symbols=2, duration_s=6 * 3600, events_per_kind=9))
    tiny = Scenario(ScenarioConfig(n_symbols=2, duration_s=600))  # automatic count: none fit
    assert tiny.labels == [] and tiny.n_blocks == 10


# ----------------------------------------------------------------------------- the default day


@pytest.fixture(scope="module")
def default_day():
    """The default scenario through one DetectorBank with the default DetectorConfig."""
    sc = Scenario(default_scenario_config())
    bank = DetectorBank(n_symbols=len(sc.symbols))
    cascades = labels_of(sc, EventKind.LIQUIDATION_CASCADE)
    busiest = max(cascades, key=lambda x: sc.profiles[sc.symbols.id(x.symbol)].rate)
    sid = sc.symbols.id(busiest.symbol)
    parts, cascade_ts, n = [], [], 0
    for chunk in sc.blocks():
        t = chunk.ticks
        parts.append(bank.push(t).trips)
        n += len(t)
        keep = (t.symbol_id == sid) & (t.ts_ns >= busiest.start_ns) & (t.ts_ns <= busiest.end_ns)
        cascade_ts.append(t.ts_ns[keep])
    return sc, Trips.concat(parts), n, busiest, np.concatenate(cascade_ts)


@pytest.mark.slow
def test_a_liquidation_cascade_peaks_at_tens_of_thousands_of_ticks_per_second(default_day):
    sc, _, _, cascade, ts = default_day
    per_second = np.searchsorted(ts, ts + S) - np.arange(len(ts))  # ticks in [t, t + 1 s)
    assert per_second.max() >= 20_000
    background = sc.profiles[sc.symbols.id(cascade.symbol)].rate
    assert len(ts) > 50 * background * (cascade.end_ns - cascade.start_ns) / S


@pytest.mark.slow
def test_the_default_day_meets_the_detection_quality_targets(default_day):
    sc, trips, n, _, _ = default_day
    cfg = sc.config
    report = evaluate(trips, sc.labels, sc.symbols, duration_ns=cfg.end_ns - cfg.start_ns)
    assert 2_000_000 < n < 6_000_000
    for kind in DETECTED_KINDS:
        assert report.recall[kind] >= 0.95, (kind, report.missed)
    assert report.slow_trend_trips == 0
    assert report.false_trips_per_symbol_day <= 1.0
