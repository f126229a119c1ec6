"""Tripwire's counters as Ray custom metrics, so the Ray dashboard (and its Prometheus
endpoint) shows them next to Ray's own.

:class:`RayMetrics` mirrors the OpenTelemetry instruments of :mod:`tripwire.metrics` plus the
data plane's counts: ticks ingested, trips, incidents, verdicts by class, decisions by
outcome, orders by backend, LLM calls by route and their cost, decision latency, and a
queue-depth gauge. Serve deployments and actors make one at start-up and call its methods.

Outside Ray (a unit test, the CLI without a cluster) it is a no-op for Ray but still keeps
its local totals (:meth:`RayMetrics.totals`), so callers never branch on where they run.
Ray metric names allow no dots, hence ``tripwire_ticks_ingested`` for the OTel
``tripwire.ticks`` family. Tag values are bounded per metric (:data:`MAX_TAG_VALUES`); any
new value past the bound is reported as ``"other"`` and counted in ``tags_overflowed``, so a
bad caller cannot blow up the metrics backend's series count.

>>> m = RayMetrics()  # no Ray here: local totals only
>>> m.enabled
False
>>> m.ticks(500); m.verdict("NEWS_DRIVEN"); m.llm_cost(0.002, route="anthropic")
>>> m.totals()["tripwire_ticks_ingested"], m.totals()["tripwire_verdicts{class=NEWS_DRIVEN}"]
(500.0, 1.0)
"""

from __future__ import annotations

import math
import threading
from typing import Any

__all__ = ["DECISION_LATENCY_BOUNDARIES_MS", "MAX_TAG_VALUES", "OTHER", "RayMetrics"]

MAX_TAG_VALUES = 64  # distinct values of one tag per metric; the rest become OTHER
OTHER = "other"
MAX_TAG_CHARS = 64
DECISION_LATENCY_BOUNDARIES_MS = [10.0, 50.0, 100.0, 250.0, 500.0, 1_000.0, 2_500.0, 5_000.0,
                                  10_000.0, 30_000.0, 60_000.0]

# name -> (kind, description, tag key or None)
_METRICS: dict[str, tuple[str, str, str | None]] = {
    "tripwire_ticks_ingested": ("counter", "Ticks accepted by the feeds", None),
    "tripwire_ticks_dead_lettered": ("counter", "Ticks refused, by reason", "reason"),
    "tripwire_trips": ("counter", "Detector trips", None),
    "tripwire_incidents": ("counter", "Incidents opened after cool-down/coalescing", None),
    "tripwire_verdicts": ("counter", "Triage verdicts, by class", "class"),
    "tripwire_decisions": ("counter", "Sign-off decisions, by outcome", "outcome"),
    "tripwire_orders": ("counter", "Orders placed, by backend", "backend"),
    "tripwire_llm_calls": ("counter", "LLM calls, by route", "route"),
    "tripwire_llm_cost_usd": ("counter", "LLM spend in USD, by route", "route"),
    "tripwire_decision_latency_ms": ("histogram", "Incident to final outcome, ms", None),
    "tripwire_queue_depth": ("gauge", "Items waiting, by queue", "queue"),
}


def _ray_initialized() -> bool:
    try:
        import ray
    except ImportError:  # pragma: no cover - ray is a dependency; a stripped env may lack it
        return False
    return ray.is_initialized()


class RayMetrics:
    """One method per event; ``enabled`` says whether Ray receives them."""

    def __init__(self, *, enabled: bool | None = None) -> None:
        self.enabled = _ray_initialized() if enabled is None else enabled
        self.tags_overflowed = 0
        self._lock = threading.Lock()  # Serve replicas call from several threads
        self._totals: dict[str, float] = {}
        self._seen: dict[str, set[str]] = {name: set() for name in _METRICS}
        self._ray: dict[str, Any] = self._create() if self.enabled else {}

    @staticmethod
    def _create() -> dict[str, Any]:
        from ray.util.metrics import Counter, Gauge, Histogram

        made: dict[str, Any] = {}
        for name, (kind, desc, tag) in _METRICS.items():
            keys = (tag,) if tag else None
            if kind == "counter":
                made[name] = Counter(name, description=desc, tag_keys=keys)
            elif kind == "gauge":
                made[name] = Gauge(name, description=desc, tag_keys=keys)
            else:
                made[name] = Histogram(name, description=desc,
                                       boundaries=DECISION_LATENCY_BOUNDARIES_MS, tag_keys=keys)
        return made

    # -- the events -------------------------------------------------------------------------

    def ticks(self, n: int) -> None:
        self._add("tripwire_ticks_ingested", n)

    def dead_letter(self, reason: str, n: int = 1) -> None:
        self._add("tripwire_ticks_dead_lettered", n, reason)

    def trips(self, n: int) -> None:
        self._add("tripwire_trips", n)

    def incident(self) -> None:
        self._add("tripwire_incidents", 1)

    def verdict(self, cls: str) -> None:
        self._add("tripwire_verdicts", 1, cls)

    def decision(self, outcome: str, latency_ms: float | None = None) -> None:
        self._add("tripwire_decisions", 1, outcome)
        if latency_ms is not None:
            self._observe("tripwire_decision_latency_ms", latency_ms)

    def order(self, backend: str) -> None:
        self._add("tripwire_orders", 1, backend)

    def llm_call(self, route: str) -> None:
        self._add("tripwire_llm_calls", 1, route)

    def llm_cost(self, usd: float, route: str = "all") -> None:
        self._add("tripwire_llm_cost_usd", usd, route)

    def queue_depth(self, queue: str, depth: int) -> None:
        """Set a gauge (not a count): the latest depth of ``queue``."""
        _check_amount("queue depth", depth)
        tag = self._tag("tripwire_queue_depth", queue)
        with self._lock:
            self._totals[_key("tripwire_queue_depth", "queue", tag)] = float(depth)
        if self.enabled:
            self._ray["tripwire_queue_depth"].set(float(depth), tags={"queue": tag})

    def totals(self) -> dict[str, float]:
        """Everything recorded by this instance: ``name`` or ``name{tag=value}`` -> total
        (gauges: the latest value; histograms: the count of observations)."""
        with self._lock:
            return dict(self._totals)

    # -- plumbing -----------------------------------------------------------------------------

    def _add(self, name: str, amount: float, tag_value: str | None = None) -> None:
        _check_amount(name, amount)
        if amount == 0:
            return  # Ray counters refuse 0; nothing happened anyway
        tag_key = _METRICS[name][2]
        tags = None
        if tag_key is not None:
            tags = {tag_key: self._tag(name, tag_value or "")}
        with self._lock:
            k = _key(name, tag_key, tags[tag_key] if tags else None)
            self._totals[k] = self._totals.get(k, 0.0) + float(amount)
        if self.enabled:
            self._ray[name].inc(float(amount), tags=tags)

    def _observe(self, name: str, value: float) -> None:
        _check_amount(name, value)
        with self._lock:
            self._totals[name] = self._totals.get(name, 0.0) + 1.0
        if self.enabled:
            self._ray[name].observe(float(value))

    def _tag(self, name: str, value: str) -> str:
        value = str(value)[:MAX_TAG_CHARS] or "unknown"
        with self._lock:
            seen = self._seen[name]
            if value in seen:
                return value
            if len(seen) >= MAX_TAG_VALUES:
                self.tags_overflowed += 1
                return OTHER
            seen.add(value)
            return value


def _key(name: str, tag_key: str | None, tag_value: str | None) -> str:
    return name if tag_key is None else f"{name}{{{tag_key}={tag_value}}}"


def _check_amount(what: str, amount: float) -> None:
    if isinstance(amount, bool) or not isinstance(amount, int | float):
        raise TypeError(f"{what}: amount must be a number, got {type(amount).__name__}")
    if not (amount >= 0 and math.isfinite(amount)):  # also refuses NaN and infinity
        raise ValueError(f"{what}: amount must be a finite number >= 0, got {amount!r}")
