"""Scoring triage against the expert table: incidents matched to labelled events.

An incident *matches* an event of its symbol when its time falls in
``[event start, event end + MATCH_AFTER_S]`` -- the detectors trip during the event or
shortly after (a fat finger's print, a cascade's last leg), and a trip minutes later is
about something else. An incident that matches no event is "no event" (expert: IGNORE, see
:mod:`tripwire.lab.mapping`). When two events of one symbol overlap, the one that started
last wins (the nearer cause).

Per seed: the confusion matrix (expert class x verdict class, plus ``NO_VERDICT`` for
incidents whose triage failed), per-class precision and recall, macro-F1 (the mean F1
over the classes that occur as truth), the same with "no event" scored leniently
(TECHNICAL_SPIKE also right), the share of incidents per verdict class, and per event:
whether any incident matched (detected) and whether a matched verdict was the expert's
(classified), for recall against event size.
"""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from tripwire.lab.mapping import CLASSES, NO_EVENT, NO_EVENT_ACCEPTABLE, expert_class
from tripwire.lab.markets import LabEvent
from tripwire.model import NS_PER_SECOND

MATCH_AFTER_S = 300.0
NO_VERDICT = "NO_VERDICT"
COLUMNS = (*CLASSES, NO_VERDICT)
DECIDED = frozenset({"TRIAGE_FAILED"})  # outcomes with an incident but no verdict


def _index(events: Sequence[LabEvent]) -> dict[str, tuple[list[int], list[LabEvent]]]:
    by: dict[str, list[LabEvent]] = defaultdict(list)
    for e in events:
        by[e.label.symbol].append(e)
    out = {}
    for s, evs in by.items():
        evs.sort(key=lambda e: e.label.start_ns)
        out[s] = ([e.label.start_ns for e in evs], evs)
    return out


def match(symbol: str, ts_ns: int, index: Mapping[str, tuple[list[int], list[LabEvent]]],
          after_ns: int = round(MATCH_AFTER_S * NS_PER_SECOND)) -> LabEvent | None:
    """The labelled event an incident at ``ts_ns`` on ``symbol`` belongs to, or None."""
    starts, evs = index.get(symbol, ([], []))
    i = bisect.bisect_right(starts, ts_ns) - 1
    while i >= 0:
        e = evs[i]
        if ts_ns <= e.label.end_ns + after_ns:
            return e
        i -= 1
    return None


def triaged_rows(decisions: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Rows that reached triage: a verdict, or a failed triage (coalesced/skipped did not)."""
    return [r for r in decisions if r.get("verdict") or r.get("outcome") in DECIDED]


def score_seed(decisions: Iterable[Mapping[str, Any]], events: Sequence[LabEvent]) -> dict:
    """One seed's triage table (see the module docstring)."""
    index = _index(events)
    confusion: dict[str, Counter] = {c: Counter() for c in CLASSES}
    matched: dict[str, list[str]] = defaultdict(list)  # event id -> verdicts
    shares: Counter = Counter()
    rows = triaged_rows(decisions)
    for r in rows:
        ev = match(r["symbol"], int(r["ts_ns"]), index)
        truth = expert_class(ev.label.kind if ev else NO_EVENT)
        got = r.get("verdict") or NO_VERDICT
        confusion[truth][got] += 1
        shares[got] += 1
        if ev is not None:
            matched[ev.label.id].append(got)
    per_class = _per_class(confusion)
    lenient = {t: Counter(c) for t, c in confusion.items()}
    for cls in NO_EVENT_ACCEPTABLE - {"IGNORE"}:  # "no event" called TECHNICAL_SPIKE: right
        moved = lenient["IGNORE"].pop(cls, 0)
        lenient["IGNORE"]["IGNORE"] += moved
    per_event = []
    for e in events:
        got = matched.get(e.label.id, [])
        want = expert_class(e.label.kind)
        per_event.append({"kind": e.label.kind.value, "size": e.size, "detected": bool(got),
                          "classified": want in got})
    n = len(rows)
    return {
        "incidents": n,
        "confusion": {t: {c: int(confusion[t][c]) for c in COLUMNS} for t in CLASSES},
        "per_class": per_class,
        "macro_f1": _macro_f1(per_class),
        "macro_f1_lenient": _macro_f1(_per_class(lenient)),
        "share": {c: (shares[c] / n if n else 0.0) for c in COLUMNS},
        "events": per_event,
    }


def _per_class(confusion: Mapping[str, Counter]) -> dict[str, dict[str, float | int | None]]:
    out = {}
    for c in CLASSES:
        tp = confusion[c][c]
        support = sum(confusion[c].values())
        predicted = sum(confusion[t][c] for t in CLASSES)
        p = tp / predicted if predicted else None
        r = tp / support if support else None
        f1 = (2 * p * r / (p + r) if p and r else 0.0) if p is not None and r is not None else (
            0.0 if support else None)
        out[c] = {"support": support, "predicted": predicted, "precision": p, "recall": r,
                  "f1": f1}
    return out


def _macro_f1(per_class: Mapping[str, Mapping[str, Any]]) -> float | None:
    f1s = [v["f1"] for v in per_class.values() if v["support"]]
    return sum(f1s) / len(f1s) if f1s else None


def recall_by_size(seeds: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, float | int]]:
    """Pooled over seeds: per size bucket, events, detection and classification recall."""
    from tripwire.feeds.graded_events import size_bucket

    acc: dict[float, list[int]] = defaultdict(lambda: [0, 0, 0])
    for s in seeds:
        for e in s["events"]:
            a = acc[e["size"]]
            a[0] += 1
            a[1] += e["detected"]
            a[2] += e["classified"]
    return {size_bucket(k): {"size": k, "events": v[0], "detected": v[1] / v[0],
                             "classified": v[2] / v[0]} for k, v in sorted(acc.items())}
