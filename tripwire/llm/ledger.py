"""Cost ledger: one :class:`CallRecord` per provider call, cache hit or refusal, and sinks.

Every attempt the router makes (successes, retries, repairs, failures) and every cache hit
or refusal (budget, open breaker, local throttling) becomes one record, written through a
:class:`LedgerSink`. :class:`InMemoryLedger` keeps a bounded ring of recent records plus
totals that never drop; a PostgreSQL sink writes :meth:`CallRecord.to_row` into the
``llm_calls`` table (:data:`LLM_CALLS_DDL`) column for column. :func:`summarise` groups
records into the rows of ``tripwire llm costs``.

>>> rec = CallRecord(call_id="c1", ts_ns=0, role="triage-analyst", route="claude",
...                  model="haiku", input_tokens=900, output_tokens=100, cost_usd=0.0014,
...                  latency_ms=812.0, outcome="ok", attempt=1, fingerprint="ab", cached=False)
>>> [(r.route, r.calls, r.input_tokens, r.cost_usd) for r in summarise([rec, rec])]
[('claude', 2, 1800, 0.0028)]
"""

from __future__ import annotations

import json
import os
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

# Outcomes: "ok", "repaired" (a valid answer to the repair prompt), "cache_hit", "retry"
# (failed, will be retried), "failed:<kind>" (failed, route given up), "invalid" (an answer
# that did not validate), "budget" (refused before sending), "breaker_open" (route skipped),
# "throttled" (no rate-limit or concurrency slot within the route's timeout).
OK_OUTCOMES = frozenset({"ok", "repaired", "cache_hit"})

GROUP_KEYS = ("role", "route", "model", "outcome")

LLM_CALLS_DDL = """
CREATE TABLE IF NOT EXISTS llm_calls (
    id             bigserial PRIMARY KEY,
    call_id        text             NOT NULL,
    ts_ns          bigint           NOT NULL,
    role           text             NOT NULL,
    route          text             NOT NULL,
    model          text             NOT NULL,
    input_tokens   integer          NOT NULL,
    output_tokens  integer          NOT NULL,
    cost_usd       double precision NOT NULL,
    latency_ms     double precision NOT NULL,
    outcome        text             NOT NULL,
    attempt        integer          NOT NULL,
    fingerprint    text             NOT NULL,
    cached         boolean          NOT NULL,
    detail         text             NOT NULL
);
CREATE INDEX IF NOT EXISTS llm_calls_ts ON llm_calls (ts_ns);
CREATE INDEX IF NOT EXISTS llm_calls_call ON llm_calls (call_id);
"""


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One ledger row.

    call_id      groups the rows of one router call (its attempts, failovers, cache hit)
    ts_ns        when the row was written (injected clock, ns UTC)
    attempt      provider-call number within the call (0: no provider call was made)
    fingerprint  the request's fingerprint (a semantic cache hit answers a different one)
    detail       short why: the error of a failure, "exact"/"semantic" for cache hits
    """

    call_id: str
    ts_ns: int
    role: str
    route: str
    model: str
    input_tokens: int
    output_tokens: int
    cost_usd: float
    latency_ms: float
    outcome: str
    attempt: int
    fingerprint: str
    cached: bool
    detail: str = ""

    def to_row(self) -> dict[str, Any]:
        """Column name -> value for the ``llm_calls`` table (same names, same order)."""
        return asdict(self)


COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(CallRecord))


@dataclass(frozen=True, slots=True)
class CostRow:
    """One line of ``tripwire llm costs``; a key not grouped by reads ``"*"``."""

    role: str
    route: str
    model: str
    outcome: str
    calls: int
    ok: int  # rows with an answer: ok, repaired, cache_hit
    cache_hits: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    mean_latency_ms: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Totals:
    __slots__ = ("cache_hits", "calls", "cost_usd", "input_tokens", "latency_ms", "ok",
                 "output_tokens")

    def __init__(self) -> None:
        self.calls = self.ok = self.cache_hits = self.input_tokens = self.output_tokens = 0
        self.cost_usd = self.latency_ms = 0.0

    def add(self, r: CallRecord) -> None:
        self.calls += 1
        self.ok += r.outcome in OK_OUTCOMES
        self.cache_hits += r.outcome == "cache_hit"
        self.input_tokens += r.input_tokens
        self.output_tokens += r.output_tokens
        self.cost_usd += r.cost_usd
        self.latency_ms += r.latency_ms

    def merge(self, o: _Totals) -> None:
        for name in self.__slots__:
            setattr(self, name, getattr(self, name) + getattr(o, name))


def _check_by(by: Sequence[str]) -> tuple[str, ...]:
    bad = [k for k in by if k not in GROUP_KEYS]
    if bad:
        raise ValueError(f"cannot group costs by {bad[0]!r} (choose from {', '.join(GROUP_KEYS)})")
    return tuple(by)


def _rows(groups: dict[tuple[str, ...], _Totals], by: tuple[str, ...]) -> list[CostRow]:
    out = []
    for key, t in groups.items():
        named = dict(zip(by, key, strict=True))
        out.append(CostRow(
            *(named.get(k, "*") for k in GROUP_KEYS),
            calls=t.calls, ok=t.ok, cache_hits=t.cache_hits, input_tokens=t.input_tokens,
            output_tokens=t.output_tokens, cost_usd=round(t.cost_usd, 10),
            mean_latency_ms=t.latency_ms / t.calls if t.calls else 0.0,
        ))
    out.sort(key=lambda r: (-r.cost_usd, r.role, r.route, r.model, r.outcome))
    return out


def summarise(
    records: Iterable[CallRecord], by: Sequence[str] = ("route", "model")
) -> list[CostRow]:
    """Group records by ``by`` (any of role, route, model, outcome); costliest first."""
    keys = _check_by(by)
    groups: dict[tuple[str, ...], _Totals] = {}
    for r in records:
        key = tuple(getattr(r, k) for k in keys)
        t = groups.get(key)
        if t is None:
            t = groups[key] = _Totals()
        t.add(r)
    return _rows(groups, keys)


def in_range(
    records: Iterable[CallRecord], since_ns: int | None, until_ns: int | None
) -> Iterable[CallRecord]:
    """The records with ``since_ns <= ts_ns < until_ns`` (None: unbounded)."""
    lo = since_ns if since_ns is not None else -(2**63)
    hi = until_ns if until_ns is not None else 2**63
    return (r for r in records if lo <= r.ts_ns < hi)


@runtime_checkable
class LedgerSink(Protocol):
    """Where call records go. ``write`` must not block the event loop for long."""

    async def write(self, record: CallRecord) -> None: ...

    async def summarise(
        self,
        since_ns: int | None = None,
        until_ns: int | None = None,
        *,
        by: Sequence[str] = ("route", "model"),
    ) -> list[CostRow]: ...


class InMemoryLedger:
    """The newest ``capacity`` records plus all-time totals by role/route/model/outcome.

    A summary over a time range reads the retained records (``dropped`` says how many fell
    off the ring); a summary without a range reads the totals, which never drop.
    """

    def __init__(self, capacity: int = 10_000) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.records: deque[CallRecord] = deque(maxlen=capacity)
        self._totals: dict[tuple[str, str, str, str], _Totals] = {}
        self.dropped = 0

    async def write(self, record: CallRecord) -> None:
        self.add(record)

    def add(self, record: CallRecord) -> None:
        if len(self.records) == self.records.maxlen:
            self.dropped += 1
        self.records.append(record)
        key = (record.role, record.route, record.model, record.outcome)
        t = self._totals.get(key)
        if t is None:
            t = self._totals[key] = _Totals()
        t.add(record)

    async def summarise(
        self,
        since_ns: int | None = None,
        until_ns: int | None = None,
        *,
        by: Sequence[str] = ("route", "model"),
    ) -> list[CostRow]:
        if since_ns is None and until_ns is None:
            return self.totals(by)
        return summarise(in_range(self.records, since_ns, until_ns), by)

    def totals(self, by: Sequence[str] = ("route", "model")) -> list[CostRow]:
        """All-time totals, grouped like :func:`summarise`."""
        keys = _check_by(by)
        idx = [GROUP_KEYS.index(k) for k in keys]
        groups: dict[tuple[str, ...], _Totals] = {}
        for full, t in self._totals.items():
            key = tuple(full[i] for i in idx)
            g = groups.get(key)
            if g is None:
                g = groups[key] = _Totals()
            g.merge(t)
        return _rows(groups, keys)

    def __len__(self) -> int:
        return len(self.records)


def ledger_path(settings: Any) -> Path:
    """The offline JSONL ledger (runs without a database write it): <data dir>."""
    return Path(settings.data_dir) / "llm_calls.jsonl"


class JsonlLedger:
    """Records appended to a JSON-lines file: the embedded default until PostgreSQL holds
    the ``llm_calls`` table, so ``tripwire llm costs`` can read what earlier runs spent.

    Each line is :meth:`CallRecord.to_row`. Appends are line-buffered and flushed per
    record (a crash loses at most the record being written); a line that does not parse
    is skipped and counted (``corrupt``) rather than failing the summary.

    >>> import asyncio, tempfile, pathlib
    >>> rec = CallRecord(call_id="c1", ts_ns=5, role="triage-analyst", route="rules",
    ...                  model="rules-v1", input_tokens=0, output_tokens=0, cost_usd=0.0,
    ...                  latency_ms=0.1, outcome="ok", attempt=1, fingerprint="ab", cached=False)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     led = JsonlLedger(pathlib.Path(d) / "llm_calls.jsonl")
    ...     asyncio.run(led.write(rec))
    ...     [(r.route, r.calls) for r in asyncio.run(led.summarise())]
    [('rules', 1)]
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.corrupt = 0

    async def write(self, record: CallRecord) -> None:
        self.add(record)

    def add(self, record: CallRecord) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(record.to_row(), separators=(",", ":"))
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(line + "\n")

    def records(self) -> Iterable[CallRecord]:
        if not self.path.exists():
            return
        names = {f.name for f in fields(CallRecord)}
        with self.path.open(encoding="utf-8") as fh:
            for line in fh:
                try:
                    row = json.loads(line)
                    yield CallRecord(**{k: v for k, v in row.items() if k in names})
                except (ValueError, TypeError):
                    self.corrupt += 1

    async def summarise(
        self,
        since_ns: int | None = None,
        until_ns: int | None = None,
        *,
        by: Sequence[str] = ("route", "model"),
    ) -> list[CostRow]:
        return summarise(in_range(self.records(), since_ns, until_ns), by)
