"""Parity: two runs of the same tick stream compared record by record.

A backtest predicts live only if every driver of the engine makes the same decisions on the
same stream. ``tripwire parity`` runs one recorded stream through three drivers (the
in-process backtest, its Ray-task fan-out, and the live driver on market time: Ray shard
actors, the sign-off orchestrator, the paper venue) and hands their shard reports (with
``records``, see ``actors.backtest.ShardConfig.records``) to :func:`compare`, which pairs
the records by their ids (derived from the same seed, so they compare too) and lists every
difference: a record only one side has, or a field whose values differ. Every field is
compared except the store's write time (``recorded_ns``, wall clock by design).

>>> a = [{"label": "g0", "records": {"orders": [{"id": "o1", "qty": 1.0}]}}]
>>> b = [{"label": "g0", "records": {"orders": [{"id": "o1", "qty": 2.0}]}}]
>>> r = compare(a, b)
>>> r.count, r.differences[0].field, r.records["orders"]
(1, 'qty', 1)
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# Each kind of record and the field that names it within a shard's report.
RECORD_KEYS: dict[str, tuple[str, ...]] = {
    "incidents": ("id",),
    "decisions": ("incident_id",),
    "proposals": ("decision_id",),
    "signatures": ("decision_id", "signer"),
    "orders": ("id",),
    "fills": ("fill_id",),
    "positions": ("symbol",),
    "pnl": ("label",),
}
MAX_LISTED = 200  # differences kept with their values; beyond, only counted
# Store bookkeeping, not decisions: when a row was written (the wall clock by design).
IGNORED_FIELDS = frozenset({"recorded_ns"})


@dataclass(frozen=True, slots=True)
class Difference:
    kind: str  # one of RECORD_KEYS
    key: str  # the record's shard label and id
    field: str  # "" when the record is missing on one side
    a: Any
    b: Any

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "key": self.key, "field": self.field,
                "a": _short(self.a), "b": _short(self.b)}


@dataclass(slots=True)
class ParityResult:
    names: tuple[str, str]
    count: int = 0  # every difference, listed or not
    records: dict[str, int] = field(default_factory=dict)  # records compared, per kind
    differences: list[Difference] = field(default_factory=list)  # the first MAX_LISTED
    kinds: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RECORD_KEYS, 0))

    def add(self, d: Difference) -> None:
        self.count += 1
        self.kinds[d.kind] += 1  # every difference, listed or not
        if len(self.differences) < MAX_LISTED:
            self.differences.append(d)

    def by_kind(self) -> dict[str, int]:
        out = dict.fromkeys(RECORD_KEYS, 0)
        for d in self.differences:
            out[d.kind] += 1
        return out

    def counted_by_kind(self) -> dict[str, int]:
        """Every difference per kind (:meth:`by_kind` sees only the listed ones)."""
        return dict(self.kinds)

    def to_dict(self) -> dict[str, Any]:
        return {"drivers": list(self.names), "differences": self.count,
                "records": dict(self.records), "by_kind": self.counted_by_kind(),
                "by_kind_listed": self.by_kind(),
                "listed": [d.to_dict() for d in self.differences]}


def compare(a: Sequence[Mapping[str, Any]], b: Sequence[Mapping[str, Any]],
            names: tuple[str, str] = ("a", "b")) -> ParityResult:
    """Every difference between two runs' shard reports (paired by shard label)."""
    out = ParityResult(names)
    left, right = _by_label(a, names[0]), _by_label(b, names[1])
    for label in sorted(set(left) | set(right)):
        if label not in left or label not in right:
            out.add(Difference("pnl", label, "", label in left, label in right))
            continue
        for kind, key_fields in RECORD_KEYS.items():
            ra = _keyed(_records(left[label], kind), key_fields, kind, label)
            rb = _keyed(_records(right[label], kind), key_fields, kind, label)
            out.records[kind] = out.records.get(kind, 0) + len(set(ra) | set(rb))
            for key in sorted(set(ra) | set(rb)):
                _diff_record(out, kind, key, ra.get(key), rb.get(key))
    return out


def _by_label(reports: Sequence[Mapping[str, Any]], name: str) -> dict[str, Mapping[str, Any]]:
    out: dict[str, Mapping[str, Any]] = {}
    for r in reports:
        if "records" not in r:
            raise ValueError(f"{name}: shard {r.get('label')!r} has no records (run it with "
                             "ShardConfig(records=True))")
        if r["label"] in out:
            raise ValueError(f"{name}: shard label {r['label']!r} twice")
        out[r["label"]] = r
    return out


def _records(report: Mapping[str, Any], kind: str) -> Iterable[Mapping[str, Any]]:
    return report["records"].get(kind, ())


def _keyed(rows: Iterable[Mapping[str, Any]], key_fields: tuple[str, ...], kind: str,
           label: str) -> dict[str, Mapping[str, Any]]:
    out: dict[str, Mapping[str, Any]] = {}
    for row in rows:
        key = label + "/" + "/".join(str(row.get(f)) for f in key_fields)
        if key in out:
            raise ValueError(f"{kind}: two records named {key}")
        out[key] = row
    return out


def _diff_record(out: ParityResult, kind: str, key: str, a: Mapping[str, Any] | None,
                 b: Mapping[str, Any] | None) -> None:
    if a is None or b is None:
        out.add(Difference(kind, key, "", a is not None, b is not None))
        return
    for name in sorted((set(a) | set(b)) - IGNORED_FIELDS):
        va, vb = a.get(name), b.get(name)
        if not _same(va, vb):
            out.add(Difference(kind, key, name, va, vb))


def _same(a: Any, b: Any) -> bool:
    """Equal to the bit, NaN equal to NaN (a flat position's average price)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, Mapping | list | tuple) or isinstance(b, Mapping | list | tuple):
        return _canonical(a) == _canonical(b)
    return a == b and type(a) is type(b)


def _canonical(x: Any) -> str:
    return json.dumps(x, sort_keys=True, default=str, allow_nan=True)


def _short(x: Any, limit: int = 200) -> Any:
    text = _canonical(x)
    return x if len(text) <= limit else text[:limit] + "..."
