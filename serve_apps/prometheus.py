"""Tripwire's metrics in the Prometheus text exposition format (``GET /metrics``).

The text is written by ``prometheus_client`` (a registry with one custom collector and
``generate_latest``), never by hand: names, ``# TYPE`` lines, label escaping and histogram
series are the library's. Input is the plain dict the services report (it crosses Ray
process boundaries, so it is data, not live objects):

* ``{"<section>": {"<name>": number}}``: the flat counters of the data plane and the
  sign-off service, ``tripwire_<section>_<name>``. A number is a running count (a Prometheus
  counter, exposed as ``..._total``) unless its name is in :data:`GAUGES` (a level that
  goes down too: in-flight work, queue lengths, sizes). Nested dicts and non-numbers are
  left out.
* ``{"otel": [family, ...]}``: the OpenTelemetry instruments as
  :func:`tripwire.metrics.families` gives them, with their own types, labels and histogram
  buckets. A unit of ``ms`` is spelled ``_milliseconds`` in the name, as OpenTelemetry's own
  Prometheus exporter does.

>>> text = exposition({"signoff": {"decided": 3, "inflight": 1},
...                    "otel": [{"name": "tripwire.orders", "kind": "counter", "unit": "1",
...                              "description": "Orders", "points": [
...                                  {"labels": {"backend": 'pa"per'}, "value": 2}]}]})
>>> print("\\n".join(line for line in text.splitlines() if not line.startswith("# HELP")))
# TYPE tripwire_signoff_decided_total counter
tripwire_signoff_decided_total 3.0
# TYPE tripwire_signoff_inflight gauge
tripwire_signoff_inflight 1.0
# TYPE tripwire_orders_total counter
tripwire_orders_total{backend="pa\\"per"} 2.0
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

__all__ = ["CONTENT_TYPE", "GAUGES", "exposition"]

# The classic text format (0.0.4): what every Prometheus server and scraper reads.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4

# Flat-section values that are levels, not running counts (everything else is a counter).
GAUGES = frozenset({
    "inflight", "queued", "pending_rows",  # work waiting now
    "checkpoint_bytes",  # size of the latest shard checkpoint
    "news_kept", "minutes_closed",  # what the incident builder holds now
})

_BAD = re.compile(r"[^a-zA-Z0-9_]")
_UNIT_SUFFIX = {"ms": "milliseconds", "s": "seconds", "By": "bytes"}


def _name(*parts: str) -> str:
    name = "_".join(_BAD.sub("_", p) for p in parts if p)
    return name if name.startswith("tripwire_") else f"tripwire_{name}"


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    return float(v)


class _Sections(Collector):
    """Yields the families of one ``/metrics`` answer (built per request)."""

    def __init__(self, sections: Mapping[str, Any]) -> None:
        self.sections = sections

    def collect(self) -> Iterator[Metric]:
        for section, values in sorted(self.sections.items()):
            if section == "otel" or not isinstance(values, Mapping):
                continue
            for key, v in sorted(values.items()):
                if (value := _number(v)) is None:
                    continue
                name = _name(section, str(key))
                if key in GAUGES:
                    yield GaugeMetricFamily(name, f"{section}: {key} (now)", value=value)
                else:
                    yield CounterMetricFamily(name, f"{section}: {key} (since start)",
                                              value=value)
        otel = self.sections.get("otel") or []
        for fam in sorted(otel, key=lambda f: f["name"]):
            metric = _otel_family(fam)
            if metric is not None:
                yield metric


def _otel_family(fam: Mapping[str, Any]) -> Metric | None:
    suffix = _UNIT_SUFFIX.get(fam.get("unit", ""), "")
    name = _name(fam["name"].replace(".", "_"))
    if suffix and not name.endswith(f"_{suffix}"):
        name = f"{name}_{suffix}"
    doc = fam.get("description") or fam["name"]
    points = fam.get("points") or []
    label_names = sorted({_BAD.sub("_", k) for p in points for k in p.get("labels", {})})

    def values(p: Mapping[str, Any]) -> list[str]:
        labels = {_BAD.sub("_", k): str(v) for k, v in p.get("labels", {}).items()}
        return [labels.get(k, "") for k in label_names]

    kind = fam.get("kind")
    if kind == "histogram":
        metric: Any = HistogramMetricFamily(name, doc, labels=label_names)
        for p in points:
            metric.add_metric(values(p), buckets=_buckets(p), sum_value=float(p["sum"]))
        return metric
    if kind in ("counter", "gauge"):
        cls = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
        metric = cls(name, doc, labels=label_names)
        for p in points:
            if (value := _number(p.get("value"))) is not None:
                metric.add_metric(values(p), value)
        return metric
    return None


def _buckets(p: Mapping[str, Any]) -> list[tuple[str, float]]:
    """OpenTelemetry's per-bucket counts as Prometheus' cumulative ``le`` buckets."""
    bounds, counts = list(p["bounds"]), list(p["counts"])
    out, total = [], 0
    for bound, count in zip([*bounds, math.inf], counts, strict=True):
        total += int(count)
        out.append(("+Inf" if bound == math.inf else repr(float(bound)), float(total)))
    return out


def exposition(sections: Mapping[str, Any]) -> str:
    """The ``/metrics`` body for ``sections`` (see the module docstring)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Sections(sections))
    return generate_latest(registry).decode()
