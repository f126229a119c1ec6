"""The decision log's fingerprint: SHA-256 over a canonical JSON of the decision rows.

Two runs with the same seed, config and cassette must give the same hash (bit-identical
decisions); ``tripwire eval`` prints it per policy and overall. Canonical: keys sorted, no
whitespace, floats as Python's shortest repr, rows ordered by (policy, seed, ts_ns,
symbol, incident id) so the order tasks finish in does not matter. Only what a decision
*is* goes in: never wall-clock figures (latency) or file paths.

>>> decision_log_hash([{"b": 1, "a": 0.5}]) == decision_log_hash([{"a": 0.5, "b": 1}])
True
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

ROW_KEYS = ("policy", "seed", "symbol", "ts_ns", "metric", "incident_id", "decision_id",
            "outcome", "reason", "verdict", "order_id")


def canonical_rows(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    out = [{k: r.get(k) for k in ROW_KEYS if k in r} for r in rows]
    out.sort(key=lambda r: (str(r.get("policy")), int(r.get("seed") or 0),
                            int(r.get("ts_ns") or 0), str(r.get("symbol")),
                            str(r.get("incident_id"))))
    return out


def decision_log_hash(rows: Iterable[Mapping[str, Any]]) -> str:
    text = json.dumps(canonical_rows(rows), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()
