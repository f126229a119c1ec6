"""Response caches: exact request fingerprints, and "semantic" matches of similar incidents.

* :class:`ExactCache`: fingerprint -> answer, bounded LRU with a TTL.
* :class:`SemanticCache`: answers keyed by normalised incident features read from
  ``request.context`` (symbol, trip metric, z bucket, news tokens). A request matches a
  stored answer of the same role, schema and symbol when the weighted feature similarity
  reaches the threshold. The similarity is pluggable (e.g. an embedding model over
  :attr:`IncidentFeatures.text`); the default is pure Python.
* :class:`ResponseCache`: both, in that order, with hit/miss counters.

An entry is never returned once its TTL has passed on the injected clock. A hit is the
stored answer marked ``cached=True`` with zero cost, usage and latency (nothing was spent
on it); its ``fingerprint`` is that of the call that produced it. Answers are shared
between hits: treat them as read-only.

>>> f = features_of({"symbol": "BTCUSDT", "metric": "returns", "z": -13.2,
...                  "news": ["Exchange X halts BTC withdrawals"]})
>>> f.symbol, f.metric, f.z_bucket, sorted(f.news)
('BTCUSDT', 'returns', -3, ['btc', 'exchange', 'halts', 'withdrawals'])
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from pydantic import BaseModel

from tripwire.llm.base import LLMRequest, LLMResponse, Usage
from tripwire.llm.config import CacheConfig
from tripwire.model import NS_PER_SECOND, Clock, SystemClock

# ----------------------------------------------------------------------------- features

_TOKEN = re.compile(r"[a-z0-9]+")
# Words that carry no meaning about the event; two headlines sharing only these are unrelated.
_STOP = frozenset(
    "the and for with from that this into over after amid says said will its are was were "
    "has have been more than new not but about"
    .split()
)


@dataclass(frozen=True, slots=True)
class IncidentFeatures:
    """What makes two incidents "the same question" for the semantic cache.

    z_bucket: signed floor(log2 |z|), so 8 <= |z| < 16 is +-3 and a crash never matches a
    pump. news: normalised headline tokens. text: the headlines, for a pluggable embedding
    similarity.
    """

    symbol: str
    metric: str
    z_bucket: int
    news: frozenset[str]
    text: str = ""


def z_bucket(z: float) -> int:
    """Signed ``floor(log2 |z|)``, 0 below 1 (as :meth:`tripwire.incident.Incident.features`).

    >>> [z_bucket(v) for v in (0.3, 1.5, -3.0, 8.0, 15.9, -16.0)]
    [0, 0, -1, 3, 3, -4]
    """
    a = abs(z)
    if not a >= 1.0 or not math.isfinite(a):
        return 0
    k = math.floor(math.log2(a))
    return -k if z < 0 else k


def news_tokens(headlines: Iterable[str]) -> frozenset[str]:
    """Lower-case alphanumeric tokens of 3+ characters (or digits), minus stop words."""
    out: set[str] = set()
    for h in headlines:
        for t in _TOKEN.findall(h.lower()):
            if (len(t) >= 3 or t.isdigit()) and t not in _STOP:
                out.add(t)
    return frozenset(out)


def _headlines(raw: Any) -> list[str]:
    if not raw:
        return []
    if isinstance(raw, str):
        return [raw]
    out = []
    for item in raw:
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, Mapping):
            out.append(str(item.get("headline") or item.get("title") or ""))
        else:
            out.append(str(getattr(item, "headline", "") or ""))
    return out


def _label(value: Any) -> str:
    # Enums (tripwire.model.Metric is an IntEnum) by name, so "RETURNS" == "returns".
    return str(getattr(value, "name", value)).lower()


def features_of(context: Mapping[str, Any]) -> IncidentFeatures | None:
    """Features of the incident in ``context`` (or ``context["incident"]``), or None.

    Prefers the precomputed ``features`` of :meth:`tripwire.incident.Incident.to_context`
    (symbol, metric, z_bucket, news_tokens); else reads ``symbol``, ``metric`` (or
    ``trip_metric``), ``z`` and ``news`` (or ``headlines``: strings, or mappings/objects
    with a ``headline``).
    """
    inc = context.get("incident")
    src: Mapping[str, Any] = inc if isinstance(inc, Mapping) else context
    heads = _headlines(src.get("news", src.get("headlines")))
    text = " | ".join(heads)
    pre = src.get("features")
    if isinstance(pre, Mapping):
        got = _precomputed(pre, text)
        if got is not None:
            return got
    symbol = src.get("symbol")
    metric = src.get("metric", src.get("trip_metric"))
    z = src.get("z")
    if not symbol or metric is None or isinstance(z, bool) or not isinstance(z, int | float):
        return None
    if not math.isfinite(z):
        return None
    return IncidentFeatures(str(symbol), _label(metric), z_bucket(float(z)), news_tokens(heads),
                            text)


def _precomputed(pre: Mapping[str, Any], text: str) -> IncidentFeatures | None:
    symbol, metric, bucket = pre.get("symbol"), pre.get("metric"), pre.get("z_bucket")
    tokens = pre.get("news_tokens")
    if not symbol or metric is None or isinstance(bucket, bool) or not isinstance(bucket, int):
        return None
    if not isinstance(tokens, list | tuple | frozenset | set):
        return None
    return IncidentFeatures(str(symbol), _label(metric), bucket,
                            frozenset(str(t) for t in tokens), text)


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    """Intersection over union; two empty sets are identical.

    >>> jaccard(frozenset("ab"), frozenset("bc")), jaccard(frozenset(), frozenset())
    (0.3333333333333333, 1.0)
    """
    if not a and not b:
        return 1.0
    inter = len(a & b)
    return inter / (len(a) + len(b) - inter)


Similarity = Callable[[IncidentFeatures, IncidentFeatures], float]


def weighted_similarity(
    w_metric: float = 0.3, w_z: float = 0.3, w_news: float = 0.4
) -> Similarity:
    """Weighted feature match: metric equal, z bucket equal, Jaccard of news tokens."""

    def similarity(a: IncidentFeatures, b: IncidentFeatures) -> float:
        s = w_metric * (a.metric == b.metric) + w_z * (a.z_bucket == b.z_bucket)
        return s + w_news * jaccard(a.news, b.news)

    return similarity


# ----------------------------------------------------------------------------- caches


def as_cached(response: LLMResponse) -> LLMResponse:
    """The form a hit is served in: marked cached, nothing spent."""
    return replace(
        response, cached=True, cost_usd=0.0, latency_ms=0.0, attempts=0, usage=Usage()
    )


class ExactCache:
    """Fingerprint -> answer; LRU bounded by ``capacity``; entries expire after ``ttl_s``."""

    def __init__(self, ttl_s: float, capacity: int, clock: Clock | None = None) -> None:
        if not ttl_s > 0 or capacity < 1:
            raise ValueError(f"need ttl_s > 0 and capacity >= 1, got {ttl_s}, {capacity}")
        self._ttl_ns = int(ttl_s * NS_PER_SECOND)
        self.capacity = capacity
        self._clock = clock or SystemClock()
        self._data: OrderedDict[str, tuple[int, LLMResponse]] = OrderedDict()

    def get(self, fingerprint: str) -> LLMResponse | None:
        entry = self._data.get(fingerprint)
        if entry is None:
            return None
        if self._clock.now_ns() - entry[0] >= self._ttl_ns:
            del self._data[fingerprint]
            return None
        self._data.move_to_end(fingerprint)
        return entry[1]

    def put(self, fingerprint: str, response: LLMResponse) -> None:
        """Store ``response`` (already in cached form, see :func:`as_cached`)."""
        self._data[fingerprint] = (self._clock.now_ns(), response)
        self._data.move_to_end(fingerprint)
        if len(self._data) > self.capacity:
            self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)


@dataclass(slots=True)
class _Entry:
    key: tuple[str, type[BaseModel], str]
    features: IncidentFeatures
    response: LLMResponse
    stored_ns: int


class SemanticCache:
    """Answers of similar incidents: same role, schema and symbol, similarity >= threshold.

    Per (role, schema, symbol) at most ``per_symbol`` entries are compared (the newest), so a
    lookup costs a bounded number of similarity calls; ``capacity`` bounds the whole cache
    (oldest stored first out).
    """

    def __init__(
        self,
        *,
        ttl_s: float,
        threshold: float,
        capacity: int = 1024,
        per_symbol: int = 32,
        similarity: Similarity | None = None,
        features: Callable[[Mapping[str, Any]], IncidentFeatures | None] = features_of,
        clock: Clock | None = None,
    ) -> None:
        if not ttl_s > 0 or not 0 < threshold <= 1 or capacity < 1 or per_symbol < 1:
            raise ValueError("need ttl_s > 0, 0 < threshold <= 1, capacity and per_symbol >= 1")
        self._ttl_ns = int(ttl_s * NS_PER_SECOND)
        self.threshold = threshold
        self.capacity = capacity
        self.per_symbol = per_symbol
        self.similarity = similarity or weighted_similarity()
        self.features = features
        self._clock = clock or SystemClock()
        self._by_key: dict[tuple[str, type[BaseModel], str], list[_Entry]] = {}
        self._order: OrderedDict[int, _Entry] = OrderedDict()  # id(entry) -> entry, FIFO

    def get(self, request: LLMRequest) -> LLMResponse | None:
        if not request.context:
            return None
        f = self.features(request.context)
        if f is None:
            return None
        bucket = self._by_key.get((request.role, request.schema, f.symbol))
        if not bucket:
            return None
        now = self._clock.now_ns()
        best: _Entry | None = None
        best_score = self.threshold
        for e in reversed(bucket):  # newest first: ties go to the freshest answer
            if now - e.stored_ns >= self._ttl_ns:
                continue
            score = self.similarity(f, e.features)
            if score >= best_score and (best is None or score > best_score):
                best, best_score = e, score
        self._expire(bucket, now)
        return best.response if best is not None else None

    def put(self, request: LLMRequest, response: LLMResponse) -> bool:
        """Store ``response`` (cached form) if the request describes an incident."""
        if not request.context:
            return False
        f = self.features(request.context)
        if f is None:
            return False
        key = (request.role, request.schema, f.symbol)
        entry = _Entry(key, f, response, self._clock.now_ns())
        bucket = self._by_key.setdefault(key, [])
        bucket.append(entry)
        self._order[id(entry)] = entry
        if len(bucket) > self.per_symbol:
            self._drop(bucket[0])
        while len(self._order) > self.capacity:
            self._drop(next(iter(self._order.values())))
        return True

    def _expire(self, bucket: list[_Entry], now: int) -> None:
        # Entries are appended in time order, so the expired ones are a prefix.
        while bucket and now - bucket[0].stored_ns >= self._ttl_ns:
            self._drop(bucket[0])

    def _drop(self, entry: _Entry) -> None:
        self._order.pop(id(entry), None)
        bucket = self._by_key.get(entry.key)
        if bucket is None:
            return
        bucket.remove(entry)
        if not bucket:
            del self._by_key[entry.key]

    def __len__(self) -> int:
        return len(self._order)


class ResponseCache:
    """Exact cache first, then the semantic one; counts hits by kind and misses."""

    def __init__(self, exact: ExactCache | None, semantic: SemanticCache | None = None) -> None:
        self.exact = exact
        self.semantic = semantic
        self.hits = {"exact": 0, "semantic": 0}
        self.misses = 0

    @classmethod
    def from_config(
        cls,
        config: CacheConfig,
        clock: Clock | None = None,
        *,
        similarity: Similarity | None = None,
    ) -> ResponseCache | None:
        """None when caching is disabled."""
        if not config.enabled:
            return None
        exact = ExactCache(config.exact_ttl_s, config.exact_capacity, clock)
        semantic = None
        if config.semantic:
            semantic = SemanticCache(
                ttl_s=config.semantic_ttl_s,
                threshold=config.semantic_threshold,
                capacity=config.semantic_capacity,
                per_symbol=config.semantic_per_symbol,
                similarity=similarity or weighted_similarity(
                    config.weight_metric, config.weight_z, config.weight_news
                ),
                clock=clock,
            )
        return cls(exact, semantic)

    def lookup(self, request: LLMRequest, fingerprint: str) -> tuple[LLMResponse, str] | None:
        """(cached answer, "exact" | "semantic"), or None."""
        if self.exact is not None:
            hit = self.exact.get(fingerprint)
            if hit is not None:
                self.hits["exact"] += 1
                return hit, "exact"
        if self.semantic is not None:
            hit = self.semantic.get(request)
            if hit is not None:
                self.hits["semantic"] += 1
                return hit, "semantic"
        self.misses += 1
        return None

    def store(self, request: LLMRequest, fingerprint: str, response: LLMResponse) -> None:
        cached = as_cached(response)
        if self.exact is not None:
            self.exact.put(fingerprint, cached)
        if self.semantic is not None:
            self.semantic.put(request, cached)
