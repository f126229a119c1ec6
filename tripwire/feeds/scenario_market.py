"""The scenario's market: its symbols (:class:`SymbolProfile`: price, volatility, activity,
tick size) and the intraday activity curve every symbol's trade rate follows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tripwire.feeds.scenario_config import _NS

# ----------------------------------------------------------------------------- symbols

# name, price, daily volatility, activity weight (BTC = 1)
_MAJORS: tuple[tuple[str, float, float, float], ...] = (
    ("BTCUSDT", 95_000.0, 0.025, 1.00),
    ("ETHUSDT", 3_400.0, 0.032, 0.70),
    ("SOLUSDT", 190.0, 0.045, 0.45),
    ("XRPUSDT", 2.3, 0.045, 0.35),
    ("BNBUSDT", 700.0, 0.028, 0.30),
    ("DOGEUSDT", 0.35, 0.055, 0.30),
    ("1000PEPEUSDT", 0.018, 0.08, 0.20),
    ("ADAUSDT", 0.95, 0.05, 0.20),
    ("SUIUSDT", 4.2, 0.07, 0.15),
    ("AVAXUSDT", 38.0, 0.055, 0.15),
    ("LINKUSDT", 22.0, 0.05, 0.15),
    ("LTCUSDT", 105.0, 0.04, 0.12),
    ("DOTUSDT", 7.0, 0.05, 0.12),
    ("TRXUSDT", 0.25, 0.03, 0.10),
    ("BCHUSDT", 450.0, 0.045, 0.10),
    ("TONUSDT", 5.5, 0.05, 0.10),
    ("NEARUSDT", 5.2, 0.06, 0.10),
    ("UNIUSDT", 13.0, 0.06, 0.08),
    ("APTUSDT", 9.0, 0.065, 0.08),
    ("ARBUSDT", 0.8, 0.065, 0.08),
)
_SYLLABLES = (
    "ka", "zu", "mo", "ri", "ven", "tor", "lix", "dra", "qua", "sen", "ne", "ob", "fi",
    "gal", "xo", "pra", "lu", "mir", "tek", "vo", "zen", "ark", "bo", "cy",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class SymbolProfile:
    """One symbol's fixed traits (what the market of that symbol looks like)."""

    name: str
    price: float  # at the start
    daily_vol: float  # of the log-price, typical (volatility clusters around it)
    beta: float  # to the market factor
    rate: float  # mean trades per second
    half_spread: float  # relative; buys print this much above the mid, sells below
    tick_size: float
    lot: float  # quantity step
    size_median: float  # median trade quantity
    first_trade_id: int


def _names(n: int, rng: np.random.Generator) -> list[str]:
    """The majors, then made-up coins of 2-4 syllables (over 300,000 to draw from)."""
    names = [m[0] for m in _MAJORS[:n]]
    taken = set(names)
    while len(names) < n:
        k = int(rng.choice((2, 3, 4), p=(0.5, 0.45, 0.05)))
        coin = "".join(_SYLLABLES[int(i)] for i in rng.integers(0, len(_SYLLABLES), k))
        name = coin.upper() + "USDT"
        if name not in taken:
            taken.add(name)
            names.append(name)
    return names


def make_profiles(n: int, tick_rate: float, rng: np.random.Generator) -> list[SymbolProfile]:
    """``n`` symbols: the majors first (prices jittered by the seed), then small caps."""
    names = _names(n, rng)
    price, vol, weight = np.empty(n), np.empty(n), np.empty(n)
    for i in range(n):
        if i < len(_MAJORS):
            _, p, v, w = _MAJORS[i]
            price[i] = p * math.exp(rng.normal(0, 0.05))
            vol[i], weight[i] = v, w
        else:  # small caps: 1e-4 .. 1e3, volatile, rarely traded
            price[i] = 10 ** rng.uniform(-4, 3)
            vol[i] = rng.uniform(0.06, 0.12)
            weight[i] = min(0.1, rng.lognormal(math.log(0.04), 0.5))
    rate = tick_rate * n * weight / weight.sum()
    rate = np.maximum(rate, 0.3 * tick_rate)  # even the quietest fills a window within hours
    rate *= tick_rate * n / rate.sum()
    beta = np.where(np.arange(n) == 0, 1.0, rng.uniform(0.6, 1.4, n))
    out = []
    for i in range(n):
        exp10 = math.floor(math.log10(price[i]))
        half_spread = max(0.5e-4 / math.sqrt(weight[i]), 2 * 10.0 ** (exp10 - 5) / price[i])
        notional = 250.0 * weight[i] ** 0.3  # USD, median trade
        out.append(
            SymbolProfile(
                name=names[i],
                price=float(price[i]),
                daily_vol=float(vol[i]),
                beta=float(beta[i]),
                rate=float(rate[i]),
                half_spread=float(half_spread),
                tick_size=10.0 ** (exp10 - 5),
                lot=10.0 ** math.floor(math.log10(5.0 / price[i])),
                size_median=notional / float(price[i]),
                first_trade_id=int(rng.integers(10**6, 4 * 10**9)),
            )
        )
    return out


# ----------------------------------------------------------------------------- intraday curve


def _activity_curve() -> np.ndarray:
    """Relative activity per minute of the UTC day (mean 1): quiet late evening, a morning
    hump (Asia into Europe) and a larger US-session hump."""
    h = np.arange(1440) / 60.0

    def bump(centre: float, width: float) -> np.ndarray:
        d = (h - centre + 12) % 24 - 12  # periodic distance in hours
        return np.exp(-0.5 * (d / width) ** 2)

    a = 0.45 + 0.55 * bump(8.5, 2.5) + 1.0 * bump(15.0, 2.8) + 0.25 * bump(1.0, 1.8)
    return a / a.mean()


_ACTIVITY = _activity_curve()


def activity(ts_ns: int) -> float:
    """Relative activity (mean 1 over a day) at ``ts_ns`` UTC."""
    return float(_ACTIVITY[(ts_ns // (60 * _NS)) % 1440])
