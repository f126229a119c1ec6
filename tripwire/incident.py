"""The incident: one trip, with its recent ticks, the market around it and the news, as facts.

The domain's central object: the engine (:mod:`tripwire.engine`) builds one per tripping tick
and the decision layer (the LLM roles, or the offline rules analyst) sees it instead of the
raw stream; :mod:`tripwire.llm.incident` only renders it into a prompt.
:meth:`Incident.from_anomaly` builds it from a detector trip
(:class:`tripwire.model.Anomaly`, with its frozen snapshot), the headlines known at the trip
(only those at or before it: no look-ahead) and an optional :class:`MarketContext`; every
number is plain (percentages, seconds, ratios) and JSON-ready, so the same object renders
the prompt, travels in ``LLMRequest.context`` (:meth:`Incident.to_context`) and feeds the
semantic cache (:meth:`Incident.features`).

>>> import numpy as np
>>> from tripwire.model import Anomaly, Metric, NewsItem, RecentTicks
>>> s = 1_000_000_000
>>> snap = RecentTicks(np.arange(1, 21, dtype=np.int64) * s, np.r_[np.full(19, 100.0), 80.0],
...                    np.ones(20))
>>> a = Anomaly(symbol_id=0, symbol="ARBUSDT", ts_ns=20 * s, metric=Metric.RETURN, z=-616.2,
...             window_mean=0.0, window_std=3e-4, value=-0.223, price=80.0, snapshot=snap)
>>> news = [NewsItem("n1", 15 * s, "ARB foundation opens grants round", ("ARBUSDT",))]
>>> inc = Incident.from_anomaly(a, news)
>>> inc.recent.ret_1_pct, inc.recent.down_run, inc.news[0].age_s
(-20.0, 1, 5.0)
>>> inc.features()["z_bucket"], inc.features()["metric"]
(-9, 'RETURN')
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from tripwire.model import NS_PER_SECOND, Anomaly, Metric, NewsItem, RecentTicks

MetricName = Literal["RETURN", "VOLUME", "PRICE"]

DEFAULT_NEWS_WINDOW_S = 900.0  # headlines this long before the trip count as "near" it
DEFAULT_MAX_NEWS = 8
DEFAULT_VOLUME_BUCKET_S = 30.0  # the detectors' volume bucket (DetectorConfig.volume_bucket_ns)
MAX_HEADLINE = 300

# Keys of LLMRequest.context that are not the incident itself (see Incident.from_context).
CONTEXT_EXTRAS = ("features", "verdict", "proposal")

_QUOTES = ("FDUSD", "USDT", "USDC", "BUSD", "USD", "PERP")
_STOPWORDS = frozenset(
    "the a an and or of to in on at for with as by from after over under into is are was "
    "be been its it this that says said say new next week day past hour amid ahead".split()
)


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class NewsHeadline(_Frozen):
    """A headline published at most ``window`` seconds before the trip."""

    id: str = Field(max_length=64)
    age_s: float = Field(ge=0.0)  # seconds before the trip (0: same instant)
    headline: str = Field(max_length=MAX_HEADLINE)
    symbols: tuple[str, ...] = Field(default=(), max_length=16)
    about_symbol: bool  # False: market-wide news (it names no symbol)
    source: str = Field(default="", max_length=64)


class RecentMove(_Frozen):
    """What the frozen snapshot (the symbol's last ticks, the tripping one last) shows.

    Returns are simple percentages ending at the tripping tick: over 1 tick, over the tick
    before that (``ret_prev_pct``, to see a print that went far off and came back), over
    the last 10 and 50 ticks and over the whole snapshot (fewer when it holds fewer).
    ``down_run``/``up_run``: consecutive falling/rising prices ending at the trip.
    ``volume_vs_window``: quantity of the last volume bucket over the window's mean bucket.
    """

    ticks: int = Field(ge=0)
    span_s: float = Field(ge=0.0)
    ret_1_pct: float | None = None
    ret_prev_pct: float | None = None
    ret_10_pct: float | None = None
    ret_50_pct: float | None = None
    ret_all_pct: float | None = None
    down_run: int = Field(default=0, ge=0)
    up_run: int = Field(default=0, ge=0)
    last_gap_s: float | None = Field(default=None, ge=0.0)  # since the previous trade
    median_gap_s: float | None = Field(default=None, ge=0.0)  # between trades, before it
    volume_vs_window: float | None = Field(default=None, ge=0.0)


class MarketContext(_Frozen):
    """The market around the trip over ``horizon_s`` up to it, in percent (None: unknown).

    ``reference_move_pct`` is the move of the market reference, ``reference_symbol`` (the
    configured ``[engine] reference_symbol``); None when that symbol is not traded here or
    has no price yet. ``market_move_pct`` is the median move of every symbol.
    ``symbol_move_pct`` is the symbol's own move over the horizon, which the snapshot (a
    few hundred ticks, sometimes seconds) cannot show: a run-up before a reversal.
    The engine builds it (:meth:`tripwire.engine.market.MarketState.context`).
    """

    horizon_s: float = Field(default=900.0, gt=0.0)
    reference_symbol: str | None = Field(default=None, max_length=64)
    reference_move_pct: float | None = None
    market_move_pct: float | None = None
    symbol_move_pct: float | None = None


class Incident(_Frozen):
    """One trip as facts (see the module docstring)."""

    id: str = Field(default="", max_length=64)
    symbol: str = Field(min_length=1, max_length=64)
    ts_ns: int = Field(ge=0)
    metric: MetricName  # the trip this incident is about
    z: float
    value: float  # what was scored: log-return, quantity (or bucket sum), or price
    price: float | None = None  # of the tripping tick
    window_mean: float | None = None
    window_std: float | None = None
    tripped: dict[MetricName, float]  # every metric that tripped on this tick, with its z
    recent: RecentMove
    market: MarketContext | None = None
    news: tuple[NewsHeadline, ...] = Field(default=(), max_length=32)
    news_window_s: float = Field(default=DEFAULT_NEWS_WINDOW_S, ge=0.0)  # how far back

    # -- building ------------------------------------------------------------------------

    @classmethod
    def from_anomaly(
        cls,
        anomaly: Anomaly,
        news: Iterable[NewsItem] = (),
        market: MarketContext | Mapping[str, Any] | None = None,
        *,
        others: Sequence[Anomaly] = (),
        news_window_s: float = DEFAULT_NEWS_WINDOW_S,
        max_news: int = DEFAULT_MAX_NEWS,
        volume_bucket_s: float = DEFAULT_VOLUME_BUCKET_S,
    ) -> Incident:
        """The incident of ``anomaly``; ``others`` are trips of other metrics on the same
        tick (same symbol and time), folded into ``tripped``."""
        if not anomaly.symbol:
            raise ValueError("the anomaly has no symbol name (build it with a SymbolTable)")
        tripped = {Metric(anomaly.metric).name: _num(anomaly.z)}
        for o in others:
            if o.symbol != anomaly.symbol or o.ts_ns != anomaly.ts_ns:
                raise ValueError(
                    f"others must be trips of {anomaly.symbol} at {anomaly.ts_ns}, "
                    f"got {o.symbol} at {o.ts_ns}"
                )
            tripped[Metric(o.metric).name] = _num(o.z)
        if isinstance(market, Mapping):
            market = MarketContext.model_validate(dict(market))
        return cls(
            id=anomaly.id,
            symbol=anomaly.symbol,
            ts_ns=anomaly.ts_ns,
            metric=Metric(anomaly.metric).name,
            z=_num(anomaly.z),
            value=_num(anomaly.value),
            price=_opt(anomaly.price),
            window_mean=_opt(anomaly.window_mean),
            window_std=_opt(anomaly.window_std),
            tripped=tripped,
            recent=recent_move(anomaly, (anomaly, *others), volume_bucket_s),
            market=market,
            news=near_news(anomaly.symbol, anomaly.ts_ns, news, news_window_s, max_news),
            news_window_s=news_window_s,
        )

    @classmethod
    def from_anomalies(cls, anomalies: Sequence[Anomaly], *args: Any, **kw: Any) -> Incident:
        """The incident of several metrics' trips on one tick: the largest |z| leads."""
        lead = lead_trip(anomalies)
        rest = [a for a in anomalies if a is not lead]
        return cls.from_anomaly(lead, *args, others=rest, **kw)

    # -- the context, the cache features ------------------------------------------------

    def to_context(self) -> dict[str, Any]:
        """JSON-ready facts for ``LLMRequest.context`` (with the cache features)."""
        return {**self.model_dump(mode="json"), "features": self.features()}

    @classmethod
    def from_context(cls, context: Mapping[str, Any]) -> Incident:
        """The incident back from a request context (ignores :data:`CONTEXT_EXTRAS`)."""
        return cls.model_validate({k: v for k, v in context.items() if k not in CONTEXT_EXTRAS})

    def features(self) -> dict[str, Any]:
        """Normalised features for the semantic cache: symbol, metric, signed z bucket
        (``floor(log2 |z|)``), the news' tokens and their fingerprint ("" without news)."""
        tokens = news_tokens(h.headline for h in self.news)
        return {
            "symbol": self.symbol,
            "metric": self.metric,
            "z_bucket": z_bucket(self.z),
            "news_fingerprint": news_fingerprint(tokens),
            "news_tokens": tokens,
        }

    # -- presentation ----------------------------------------------------------------------

    @property
    def ts_iso(self) -> str:
        return iso_utc(self.ts_ns)

    @property
    def base_asset(self) -> str:
        return base_asset(self.symbol)

    def symbol_news(self) -> tuple[NewsHeadline, ...]:
        return tuple(h for h in self.news if h.about_symbol)


# ----------------------------------------------------------------------------- helpers


def lead_trip(anomalies: Sequence[Anomaly]) -> Anomaly:
    """The trip an incident is about when several metrics trip on one tick: the largest
    |z|, ties broken by metric order (RETURN before VOLUME before PRICE). The one rule,
    used by every mode."""
    if not anomalies:
        raise ValueError("an incident needs at least one trip")
    return max(anomalies, key=lambda a: (abs(a.z), -int(a.metric)))


def _num(x: float) -> float:
    """A finite float (the detectors never produce NaN z; a guard keeps JSON valid)."""
    x = float(x)
    if not math.isfinite(x):
        raise ValueError(f"expected a finite number, got {x}")
    return x


def _opt(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(float(x)) else float(x)


def _pct(new: float, old: float) -> float | None:
    if not (old > 0 and math.isfinite(old) and math.isfinite(new)):
        return None
    return round((new / old - 1.0) * 100.0, 4)


def _run(prices: np.ndarray, sign: int) -> int:
    """Consecutive strict moves in direction ``sign`` ending at the last price (ties skip:
    a repeated print neither breaks nor extends a run)."""
    d = np.sign(np.diff(prices))
    d = d[d != 0]
    against = np.flatnonzero(d[::-1] != sign)
    return int(against[0]) if len(against) else len(d)


def recent_move(
    anomaly: Anomaly, trips: Sequence[Anomaly], volume_bucket_s: float = DEFAULT_VOLUME_BUCKET_S
) -> RecentMove:
    """The :class:`RecentMove` of an anomaly's snapshot (all None when it has none)."""
    snap = anomaly.snapshot
    jump = _trip_return(trips)
    if snap is None or len(snap) == 0:
        return RecentMove(
            ticks=0, span_s=0.0, ret_1_pct=jump, volume_vs_window=_volume_ratio(trips, None, 0)
        )
    p, t = np.asarray(snap.price, dtype=np.float64), np.asarray(snap.ts_ns, dtype=np.int64)
    n, last = len(p), float(p[-1])

    def ret(k: int) -> float | None:
        return _pct(last, float(p[-1 - min(k, n - 1)])) if n > 1 else None

    gaps = np.diff(t) / NS_PER_SECOND
    return RecentMove(
        ticks=n,
        span_s=round(float(t[-1] - t[0]) / NS_PER_SECOND, 3),
        ret_1_pct=ret(1) if n > 1 else jump,
        ret_prev_pct=_pct(float(p[-2]), float(p[-3])) if n > 2 else None,
        ret_10_pct=ret(10),
        ret_50_pct=ret(50),
        ret_all_pct=ret(n - 1),
        down_run=_run(p, -1),
        up_run=_run(p, 1),
        last_gap_s=round(float(gaps[-1]), 3) if n > 1 else None,
        median_gap_s=round(float(np.median(gaps[:-1])), 3) if n > 2 else None,
        volume_vs_window=_volume_ratio(trips, snap, volume_bucket_s),
    )


def _trip_return(trips: Sequence[Anomaly]) -> float | None:
    """The tripping tick's move from the RETURN trip itself (its value is the log-return):
    a snapshot cut short by a burst of trades may hold only the tripping tick."""
    for a in trips:
        if a.metric == Metric.RETURN and math.isfinite(a.value):
            return round(math.expm1(a.value) * 100.0, 4)
    return None


def _volume_ratio(
    trips: Sequence[Anomaly], snap: RecentTicks | None, bucket_s: float
) -> float | None:
    """The last volume bucket over the window's typical bucket: exact when the volume metric
    tripped; else the snapshot over the last ``bucket_s`` (a lower bound when the snapshot
    is shorter) measured as the window is (trades for ``log_count``, quantity otherwise)
    over the window's mean (its geometric mean for the ``log_*`` statistics)."""
    for a in trips:
        if a.metric == Metric.VOLUME and a.window_mean > 0 and math.isfinite(a.value):
            return round(a.value / a.window_mean, 3)
    volume = (trips[0].window or {}).get("volume") or {}
    mean, statistic = volume.get("mean"), volume.get("statistic", "sum")
    if snap is None or len(snap) == 0 or mean is None or not math.isfinite(mean):
        return None
    if statistic in ("log_count", "log_active"):
        typical = math.exp(mean)  # the window holds logs: its mean is a geometric mean
    else:
        typical = mean
    if not typical > 0:
        return None
    since = int(snap.ts_ns[-1]) - round(bucket_s * NS_PER_SECOND)
    recent = np.asarray(snap.ts_ns) > since
    # Like with like: trades per bucket for the trade-count statistic, quantity otherwise.
    measure = (float(recent.sum()) if statistic == "log_count"
               else float(np.asarray(snap.qty)[recent].sum()))
    return round(measure / typical, 3)


def base_asset(symbol: str) -> str:
    """``BTCUSDT`` -> ``BTC``, ``1000PEPEUSDT`` -> ``PEPE`` (headlines name the coin).

    >>> base_asset("1000PEPEUSDT"), base_asset("ETH-PERP"), base_asset("XYZ")
    ('PEPE', 'ETH', 'XYZ')
    """
    name = symbol.upper()
    for quote in _QUOTES:
        if name.endswith(quote) and len(name) > len(quote):
            name = name[: -len(quote)].rstrip("-_/:")
            break
    return name.lstrip("0123456789") or name


def near_news(
    symbol: str,
    ts_ns: int,
    news: Iterable[NewsItem],
    window_s: float = DEFAULT_NEWS_WINDOW_S,
    max_items: int = DEFAULT_MAX_NEWS,
) -> tuple[NewsHeadline, ...]:
    """Headlines in ``[ts - window, ts]`` about ``symbol`` or market-wide (naming no
    symbol), most recent first, the symbol's own first; news about other symbols is left
    out. Never a headline after the trip: a backtest must not read the future."""
    lo = ts_ns - round(window_s * NS_PER_SECOND)
    word = re.compile(rf"\b{re.escape(base_asset(symbol))}\b")
    picked = []
    for item in news:
        if not lo <= item.ts_ns <= ts_ns:
            continue
        about = symbol in item.symbols or bool(word.search(item.headline))
        if not about and item.symbols:
            continue
        picked.append((not about, ts_ns - item.ts_ns, item.id, item, about))
    picked.sort(key=lambda r: r[:3])
    return tuple(
        NewsHeadline(
            id=item.id[:64],
            age_s=round(age / NS_PER_SECOND, 3),
            headline=item.headline[:MAX_HEADLINE],
            symbols=tuple(item.symbols[:16]),
            about_symbol=about,
            source=item.source[:64],
        )
        for _, age, _, item, about in picked[:max_items]
    )


def z_bucket(z: float) -> int:
    """Signed ``floor(log2 |z|)`` (0 below 1): z 10 and 15 share a bucket, 16 does not.

    >>> z_bucket(10.0), z_bucket(15.9), z_bucket(16.0), z_bucket(-616.2), z_bucket(0.5)
    (3, 3, 4, -9, 0)
    """
    a = abs(z)
    if not a >= 1.0 or not math.isfinite(a):
        return 0
    return int(math.copysign(math.floor(math.log2(a)), z))


def news_tokens(headlines: Iterable[str]) -> list[str]:
    """Sorted distinct lower-case words (3+ letters, no stop words, no numbers).

    >>> news_tokens(["BREAKING: SEC approves spot SUI ETF", "SUI ETF approved"])
    ['approved', 'approves', 'breaking', 'etf', 'sec', 'spot', 'sui']
    """
    out: set[str] = set()
    for h in headlines:
        for w in re.findall(r"[a-z][a-z0-9'-]*", h.lower()):
            w = w.strip("'-")
            if len(w) >= 3 and w not in _STOPWORDS:
                out.add(w)
    return sorted(out)


def news_fingerprint(tokens: Sequence[str]) -> str:
    """16 hex digits over the tokens; "" when there is no news."""
    if not tokens:
        return ""
    return hashlib.sha256("|".join(tokens).encode()).hexdigest()[:16]


def iso_utc(ts_ns: int) -> str:
    """``2026-01-05T00:00:00.000Z`` (exact: integer arithmetic, no float seconds)."""
    dt = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=ts_ns // 1000)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"
