"""The realistic market: reproducible, tiered, heavy-tailed, bouncing, with graded events."""

from __future__ import annotations

import hashlib
import itertools

import numpy as np
import pytest

from tripwire.feeds.graded_events import KINDS, SIZES, combo
from tripwire.feeds.realistic import (
    TIER_NAMES,
    TIERS,
    RealisticConfig,
    RealisticFeed,
    RealisticMarket,
    tier_counts,
)
from tripwire.model import NS_PER_SECOND, EventKind

S = NS_PER_SECOND
DAY_S = 86_400
TREND = ("trending",)  # activity x1: the tiers' nominal rates


def columns(market: RealisticMarket) -> dict[str, np.ndarray]:
    batches = list(market.batches())
    return {name: np.concatenate([getattr(b, name) for b in batches])
            for name in ("symbol_id", "ts_ns", "price", "qty", "side", "trade_id")}


def digest(market: RealisticMarket) -> str:
    h = hashlib.sha256()
    for b in market.batches():
        for name in ("symbol_id", "ts_ns", "price", "qty", "side", "trade_id"):
            h.update(getattr(b, name).tobytes())
    for lab in market.labels:
        h.update(repr(lab).encode())
    for n in market.news:
        h.update(repr(n).encode())
    return h.hexdigest()


SMALL = dict(tiers={"t2_5ps": 1, "t3_0p5ps": 1, "t4_1per2min": 2, "t5_1per10min": 2},
             days=0.25, warmup_s=1_800.0)


def test_same_seed_same_bytes_and_another_seed_differs():
    a = digest(RealisticMarket(RealisticConfig(seed=5, **SMALL)))
    b = digest(RealisticMarket(RealisticConfig(seed=5, **SMALL)))
    c = digest(RealisticMarket(RealisticConfig(seed=6, **SMALL)))
    assert a == b
    assert a != c


def test_nu_changes_the_returns_and_nothing_else():
    a = columns(RealisticMarket(RealisticConfig(seed=5, nu=3, **SMALL)))
    b = columns(RealisticMarket(RealisticConfig(seed=5, nu=10, **SMALL)))
    assert np.array_equal(a["ts_ns"], b["ts_ns"]) and np.array_equal(a["side"], b["side"])
    assert not np.array_equal(a["price"], b["price"])


@pytest.fixture(scope="module")
def full_day():
    """One weekday of every tier (several of the sparse ones), no events."""
    cfg = RealisticConfig(seed=11, tiers={"t1_50ps": 1, "t2_5ps": 1, "t3_0p5ps": 1,
                                          "t4_1per2min": 4, "t5_1per10min": 4},
                          regimes=TREND, events_per_symbol_day=0)
    m = RealisticMarket(cfg)
    return m, columns(m)


@pytest.mark.parametrize(("tier", "tolerance"), [
    ("t1_50ps", 0.10), ("t2_5ps", 0.10), ("t3_0p5ps", 0.10), ("t4_1per2min", 0.20),
    ("t5_1per10min", 0.25),
])
def test_each_tier_trades_at_its_rate(full_day, tier, tolerance):
    m, c = full_day
    ids = [m.symbols.id(s) for s in m.symbols_of_tier(tier)]
    n = int(np.isin(c["symbol_id"], ids).sum())
    target = next(t.rate for t in TIERS if t.name == tier) * DAY_S * len(ids)
    assert abs(n / target - 1) < tolerance, (tier, n, target)


def test_the_quietest_symbols_leave_most_minutes_empty(full_day):
    m, c = full_day
    for name in m.symbols_of_tier("t5_1per10min"):
        ts = c["ts_ns"][c["symbol_id"] == m.symbols.id(name)]
        busy_minutes = len(np.unique(ts // (60 * S)))
        assert busy_minutes < 0.2 * 1440, name  # no floor keeps its windows full
        assert np.diff(ts).max() > 30 * 60 * S  # half an hour without a trade happens


def test_every_tier_has_a_name_and_symbols_are_labelled_with_it(full_day):
    m, _ = full_day
    assert set(m.tiers.values()) == set(TIER_NAMES)
    assert list(m.tiers) == list(m.symbols.names)
    assert m.tier_of["BTCUSDT"] == "t1_50ps"


def test_default_split_is_heavy_tailed_few_busy_many_quiet():
    counts = tier_counts(24)
    assert list(counts.values()) == sorted(counts.values())
    assert sum(counts.values()) == 24 and counts["t1_50ps"] < counts["t5_1per10min"]
    assert all(v >= 1 for v in tier_counts(5).values())


def test_bid_ask_bounce_makes_trade_to_trade_returns_mean_revert(full_day):
    m, c = full_day
    for tier in ("t1_50ps", "t2_5ps", "t3_0p5ps"):
        (name,) = m.symbols_of_tier(tier)
        r = np.diff(np.log(c["price"][c["symbol_id"] == m.symbols.id(name)]))
        assert np.corrcoef(r[1:], r[:-1])[0, 1] < -0.2, tier


def test_prices_sit_on_the_tick_grid_and_sizes_have_a_long_tail(full_day):
    m, c = full_day
    for i in range(len(m.symbols)):
        rows = c["symbol_id"] == i
        steps = c["price"][rows] / m.tick[i]
        assert np.allclose(steps, np.rint(steps), atol=1e-6)
    btc = c["qty"][c["symbol_id"] == 0]
    assert btc.max() / np.median(btc) > 100  # Pareto tail: a few trades are huge
    assert (btc > 0).all()


def test_trade_ids_are_consecutive_per_symbol_and_time_never_goes_back(full_day):
    _, c = full_day
    assert (np.diff(c["ts_ns"]) >= 0).all()
    for i in np.unique(c["symbol_id"]):
        assert (np.diff(c["trade_id"][c["symbol_id"] == i]) == 1).all()


def _standardised_returns(nu: float) -> np.ndarray:
    m = RealisticMarket(RealisticConfig(seed=3, nu=nu, tiers={"t4_1per2min": 20},
                                        regimes=TREND, events_per_symbol_day=0))
    c = columns(m)
    out = []
    for i in range(len(m.symbols)):
        r = np.diff(np.log(c["price"][c["symbol_id"] == i]))
        out.append(r / r.std())
    return np.abs(np.concatenate(out))


def test_student_t_innovations_have_heavier_tails_at_lower_nu():
    r3, r10 = _standardised_returns(3.0), _standardised_returns(10.0)
    kurt3 = np.mean(r3**4) / np.mean(r3**2) ** 2
    kurt10 = np.mean(r10**4) / np.mean(r10**2) ** 2
    assert kurt3 > 2 * kurt10 and kurt10 > 3  # 3: Gaussian; time-mixing adds some
    tail3 = np.quantile(r3, 0.999) / np.quantile(r3, 0.5)
    tail10 = np.quantile(r10, 0.999) / np.quantile(r10, 0.5)
    assert tail3 > 1.3 * tail10


def test_weekends_are_quieter():
    m = RealisticMarket(RealisticConfig(seed=2, tiers={"t3_0p5ps": 1}, days=7, regimes=TREND,
                                        events_per_symbol_day=0))
    day = (columns(m)["ts_ns"] - m.config.start_ns) // (DAY_S * S)  # day 0: a Monday
    per_day = np.bincount(day, minlength=7)
    assert per_day[5:].mean() < 0.7 * per_day[:5].mean()


def test_regimes_change_activity_and_volatility():
    def day(regime: str) -> tuple[int, float]:
        m = RealisticMarket(RealisticConfig(seed=4, tiers={"t3_0p5ps": 2}, regimes=(regime,),
                                            events_per_symbol_day=0))
        c = columns(m)
        rows = c["symbol_id"] == 0
        p = c["price"][rows]
        minute = (c["ts_ns"][rows] - m.config.start_ns) // (60 * S)
        last = np.flatnonzero(np.diff(minute, append=minute[-1] + 1))
        return int(rows.sum()), float(np.std(np.diff(np.log(p[last]))))

    calm, high = day("calm"), day("high_vol")
    assert high[0] > 1.4 * calm[0]
    assert high[1] > 2 * calm[1]


def test_regimes_are_drawn_per_day_or_cycled_as_given():
    m = RealisticMarket(RealisticConfig(n_symbols=1, days=5, events_per_symbol_day=0,
                                        regimes=("calm", "crash")))
    assert m.regimes == ("calm", "crash", "calm", "crash", "calm")
    drawn = RealisticMarket(RealisticConfig(n_symbols=1, days=8, events_per_symbol_day=0))
    every = {"calm", "trending", "high_vol", "crash"}
    assert set(drawn.regimes[:4]) == set(drawn.regimes[4:]) == every  # each once per 4 days


# ----------------------------------------------------------------------------- events


@pytest.fixture(scope="module")
def eventful():
    cfg = RealisticConfig(seed=8, tiers={"t2_5ps": 2, "t3_0p5ps": 2, "t4_1per2min": 2},
                          days=4, events_per_symbol_day=6, regimes=TREND)
    return RealisticMarket(cfg)


def test_graded_events_cover_every_kind_and_size_and_carry_tier_and_size(eventful):
    m = eventful
    assert len(m.events) == 6 * 6 * 4  # 48 per tier: every one of the 40 (kind, size)
    for tier in ("t2_5ps", "t3_0p5ps", "t4_1per2min"):
        mine = [e for e in m.events if e.tier == tier]
        assert {e.label.kind for e in mine} == set(KINDS)
        assert {e.size for e in mine} == set(SIZES)
    for e in m.events:
        assert m.tiers[e.label.symbol] == e.tier
        assert abs(e.label.magnitude) == pytest.approx(e.size, rel=1e-9)
        assert e.label.end_ns >= e.label.start_ns
        assert e.label.start_ns >= m.config.start_ns + m.config.warmup_s * S


def test_a_short_run_gets_fewer_events_after_a_shorter_warm_up():
    m = RealisticMarket(RealisticConfig(tiers={"t3_0p5ps": 1}, days=0.05))  # 72 minutes
    assert len(m.events) == 2  # 54 minutes after an 18-minute warm-up: two 20-minute slots
    assert min(e.label.start_ns for e in m.events) >= m.config.start_ns + 18 * 60 * S


def test_events_of_one_symbol_never_overlap(eventful):
    by_symbol: dict[str, list] = {}
    for e in eventful.events:
        by_symbol.setdefault(e.label.symbol, []).append((e.label.start_ns, e.label.end_ns))
    for spans in by_symbol.values():
        spans.sort()
        assert all(a[1] < b[0] for a, b in itertools.pairwise(spans))


def test_an_event_moves_the_price_by_its_size(eventful):
    m = eventful
    c = columns(m)
    for e in m.events:
        if e.size < 0.05 or e.label.kind not in (EventKind.FAT_FINGER, EventKind.NEWS_SHOCK):
            continue
        rows = c["symbol_id"] == m.symbols.id(e.label.symbol)
        ts, p = c["ts_ns"][rows], c["price"][rows]
        before = p[ts < e.label.start_ns][-1]
        if e.label.kind is EventKind.FAT_FINGER:  # the bad print itself
            at = p[ts == e.label.start_ns]
            assert np.abs(at / before - 1 - e.label.magnitude).min() < 0.3 * e.size
        else:  # a news shock's move has settled by its end
            after = p[(ts > e.label.end_ns)][:5].mean()
            assert abs(after / before - 1 - e.label.magnitude) < 0.5 * e.size


def test_news_shocks_have_a_headline_tied_to_the_label(eventful):
    ids = {n.id for n in eventful.news}
    shocks = [e.label for e in eventful.events if e.label.kind is EventKind.NEWS_SHOCK]
    assert shocks and all(lab.news_id in ids for lab in shocks)


def test_quiet_days_have_no_event_and_no_event_news():
    m = RealisticMarket(RealisticConfig(n_symbols=6, days=1, events_per_symbol_day=0))
    assert m.events == () and m.labels == []
    assert all(not n.symbols for n in m.news)


def test_the_kind_size_cycle_visits_every_pair_once():
    pairs = [combo(c) for c in range(len(KINDS) * len(SIZES))]
    assert len(set(pairs)) == len(pairs)
    assert all(combo(c)[1] != combo(c + 1)[1] for c in range(40))


def test_the_feed_validates_every_tick_and_sends_labels_first():
    feed = RealisticFeed(RealisticConfig(n_symbols=5, days=0.25, warmup_s=600.0))
    chunks = list(feed.iter_chunks())
    assert chunks[0].labels and not any(ch.labels for ch in chunks[1:])
    assert sum(len(ch.dead) for ch in chunks) == 0
    assert sum(len(ch) for ch in chunks) > 0
    assert feed.stats()["blocks"] == feed.market.n_blocks == 6


@pytest.mark.parametrize(("over", "key"), [
    ({"nu": 2}, "realistic.nu"),
    ({"n_symbols": 0}, "realistic.n_symbols"),
    ({"days": 0}, "realistic.days"),
    ({"tiers": {"t9": 1}}, "realistic.tiers.t9"),
    ({"regimes": ("boom",)}, "realistic.regimes"),
    ({"events_per_symbol_day": -1}, "realistic.events_per_symbol_day"),
    ({"block_s": 90}, "realistic.block_s"),
    ({"seed": -1}, "realistic.seed"),
])
def test_bad_config_is_refused_naming_the_key(over, key):
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        RealisticConfig(**over)
