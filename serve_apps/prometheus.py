"""Tripwire's counters in the Prometheus text exposition format (``GET /metrics``).

Input is the plain dict the services report: ``{"<section>": {"<name>": number}}`` for
flat counters, and ``{"otel": {"<metric>": {"k=v,...": value}}}`` for the OpenTelemetry
instruments (:func:`tripwire.metrics.snapshot`); a histogram point becomes ``_count`` and
``_sum`` series.

>>> print(exposition({"dataplane": {"ticks_in": 5},
...                   "otel": {"tripwire.orders": {"backend=paper": 2}}}), end="")
# TYPE tripwire_dataplane_ticks_in gauge
tripwire_dataplane_ticks_in 5
# TYPE tripwire_orders counter
tripwire_orders{backend="paper"} 2
"""

from __future__ import annotations

import math
import re
from typing import Any

_BAD = re.compile(r"[^a-zA-Z0-9_]")


def _name(*parts: str) -> str:
    name = "_".join(_BAD.sub("_", p) for p in parts if p)
    return name if name.startswith("tripwire_") else f"tripwire_{name}"


def _labels(key: str) -> str:
    if not key:
        return ""
    pairs = []
    for item in key.split(","):
        k, _, v = item.partition("=")
        v = v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        pairs.append(f'{_BAD.sub("_", k)}="{v}"')
    return "{" + ",".join(pairs) + "}"


def _num(v: Any) -> str | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    return repr(float(v)) if isinstance(v, float) and not math.isfinite(v) else str(v)


def exposition(sections: dict[str, Any]) -> str:
    lines: list[str] = []
    for section, values in sorted(sections.items()):
        if section == "otel" or not isinstance(values, dict):
            continue
        for key, v in sorted(values.items()):
            text = _num(v)
            if text is not None:
                name = _name(section, key)
                lines += [f"# TYPE {name} gauge", f"{name} {text}"]
    for metric, points in sorted(sections.get("otel", {}).items()):
        name = _name(metric.replace(".", "_"))
        hist = any(isinstance(p, dict) for p in points.values())
        lines.append(f"# TYPE {name} {'summary' if hist else 'counter'}")
        for key, v in sorted(points.items()):
            if isinstance(v, dict):
                lines.append(f"{name}_count{_labels(key)} {v.get('count', 0)}")
                lines.append(f"{name}_sum{_labels(key)} {v.get('sum', 0)}")
            elif (text := _num(v)) is not None:
                lines.append(f"{name}{_labels(key)} {text}")
    return "\n".join(lines) + "\n"
