"""Memory: what the analyst and the strategist are told about the past, bounded and honest.

With ``[memory] enabled = true`` both roles see, after the incident's own facts, a section
``Memory (facts from the decision store ...)`` holding:

* the symbol's latest verdicts and decisions before the incident (``max_items`` each; a
  decision settled after the incident's time shows no outcome);
* the most similar past incidents (:meth:`~tripwire.store.decisions.DecisionStore.
  similar_outcomes`: same metric, z bucket within one, the same symbol and news presence
  ranked first) with the move each one realised, and only outcomes realised strictly
  before the incident's time: a backtest never shows a model the future.

Similarity is deliberately cheap and deterministic (the incident's
:meth:`~tripwire.incident.Incident.features`: symbol, metric, signed ``log2 |z|`` bucket,
whether it had news), so the same store and incident give the same prompt in every run.
The section is cut at ``max_chars`` (counted, never silently). Off by default: the prompt
is then byte-for-byte what it was without memory, so recorded cassettes still replay.

Outcomes -- the move of the symbol over ``horizon_s`` after the trip, known at
``ts + horizon`` -- are written by the engine as market time passes them
(:class:`OutcomeSettler` in :mod:`tripwire.engine.outcomes`), and by the nightly review
with ``--record-outcomes`` (:func:`realised_outcome`).

>>> s = MemorySettings.from_table({"enabled": True, "max_items": 2})
>>> s.enabled, s.max_items, s.max_chars, s.horizon_s
(True, 2, 1500, 900.0)
>>> MemorySettings.from_table({"max_items": 0})
Traceback (most recent call last):
...
ValueError: memory.max_items must be an integer in [1, 50], got 0
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tripwire.llm.base import LLMRequest, Message
from tripwire.model import NS_PER_SECOND

MEMORY_HEADING = "Memory (facts from the decision store, all from before this incident):"
TRUNCATED = "... (memory cut at {n} characters)"
_KEYS = ("enabled", "max_items", "max_chars", "horizon_s")


@dataclass(frozen=True, slots=True)
class MemorySettings:
    """``[memory]``: ``enabled`` (false), ``max_items`` per list (5), ``max_chars`` of the
    rendered section (1500), ``horizon_s``: how long after its trip an incident's outcome
    is measured (900 s; the engine records it once market time passes it,
    :mod:`tripwire.engine.outcomes`)."""

    enabled: bool = False
    max_items: int = 5
    max_chars: int = 1500
    horizon_s: float = 900.0

    @classmethod
    def from_table(cls, table: Mapping[str, Any]) -> MemorySettings:
        """Validate ``[memory]``; ValueError naming ``memory.<key>``."""
        if not isinstance(table, Mapping):
            raise ValueError(f"memory must be a table ([memory]), got {table!r}")
        for key in table:
            if key not in _KEYS:
                raise ValueError(f"memory.{key} is not a known key of [memory] "
                                 f"({', '.join(_KEYS)})")
        enabled = table.get("enabled", False)
        if not isinstance(enabled, bool):
            raise ValueError(f"memory.enabled must be true or false, got {enabled!r}")
        items = table.get("max_items", 5)
        if isinstance(items, bool) or not isinstance(items, int) or not 1 <= items <= 50:
            raise ValueError(f"memory.max_items must be an integer in [1, 50], got {items!r}")
        chars = table.get("max_chars", 1500)
        if isinstance(chars, bool) or not isinstance(chars, int) or not 200 <= chars <= 20_000:
            raise ValueError(f"memory.max_chars must be an integer in [200, 20000], "
                             f"got {chars!r}")
        horizon = table.get("horizon_s", 900.0)
        if (isinstance(horizon, bool) or not isinstance(horizon, int | float)
                or not 1.0 <= horizon <= 86_400.0):
            raise ValueError(f"memory.horizon_s must be a number of seconds in [1, 86400], "
                             f"got {horizon!r}")
        return cls(enabled, items, chars, float(horizon))


@dataclass(frozen=True, slots=True)
class Memory:
    """What the store remembers about an incident's symbol and its like, before its time."""

    verdicts: list[dict[str, Any]] = field(default_factory=list)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    similar: list[dict[str, Any]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.verdicts or self.decisions or self.similar)


async def recall(store: Any, incident: Any, settings: MemorySettings) -> Memory | None:
    """The incident's :class:`Memory` from a decision store, or None when memory is off."""
    if not settings.enabled:
        return None
    f = incident.features()
    history = await store.history(incident.symbol, before_ns=incident.ts_ns,
                                  limit=settings.max_items)
    similar = await store.similar_outcomes(
        incident.symbol, incident.metric, f["z_bucket"], as_of_ns=incident.ts_ns,
        has_news=bool(incident.news), limit=settings.max_items)
    return Memory(history["verdicts"], history["decisions"], similar)


def _ago(ts_ns: int, now_ns: int) -> str:
    s = max(0, now_ns - ts_ns) / NS_PER_SECOND
    if s < 3600:
        return f"{s / 60:.0f} min before"
    if s < 86_400:
        return f"{s / 3600:.1f} h before"
    return f"{s / 86_400:.1f} d before"


def render(memory: Memory | None, now_ns: int, max_chars: int = 1500) -> str:
    """The memory section's text ("" for None); one fact per line, cut at ``max_chars``."""
    if memory is None:
        return ""
    lines = [MEMORY_HEADING]
    if memory.empty:
        lines.append("- nothing recorded yet for this symbol or similar incidents")
    for v in memory.verdicts:
        lines.append(f"- verdict {_ago(v['ts_ns'], now_ns)}: {v['class']} "
                     f"(confidence {float(v['confidence']):.2f})")
    for d in memory.decisions:
        out = d.get("outcome") or "not settled then"
        lines.append(f"- decision {_ago(d['ts_ns'], now_ns)}: {d['action']} -> {out}")
    for o in memory.similar:
        pnl = "" if o.get("pnl") is None else f", PnL {float(o['pnl']):+.2f}"
        news = "with news" if o["has_news"] else "no news"
        lines.append(
            f"- similar incident {_ago(o['ts_ns'], now_ns)} on {o['symbol']} ({o['metric']}, "
            f"z bucket {o['z_bucket']}, {news}): classified {o['classification'] or 'n/a'}, "
            f"{o['action']}; the price then moved {float(o['move_pct']):+.2f}% over "
            f"{float(o['horizon_s']) / 60:g} min{pnl}")
    text = "\n".join(lines)
    if len(text) > max_chars:
        note = TRUNCATED.format(n=max_chars)
        text = text[: max(0, max_chars - len(note) - 1)].rsplit("\n", 1)[0] + "\n" + note
    return text


def with_memory(request: LLMRequest, text: str) -> LLMRequest:
    """``request`` with the memory section after its last user message ("" changes
    nothing: the prompt, and so its fingerprint and any cassette, stay as they were)."""
    if not text:
        return request
    messages = list(request.messages)
    last = messages[-1]
    messages[-1] = Message(last.role, f"{last.content}\n\n{text}")
    # Not in ``context``: that is the incident (the rules analyst and the cache read it).
    return dataclasses.replace(request, messages=tuple(messages))


def realised_outcome(prices: list[tuple[int, float]], ts_ns: int, price: float,
                     horizon_s: float) -> tuple[float, int] | None:
    """(move in percent, when it was known) of a symbol over ``horizon_s`` after a trip at
    ``ts_ns`` and ``price``, from ``prices`` [(ts_ns, price)] sorted by time: the last
    price at or before ``ts + horizon``. None without a price at or past the horizon (the
    outcome is not realised yet) or with a bad reference price.

    >>> s = NS_PER_SECOND
    >>> realised_outcome([(0, 100.0), (30 * s, 97.0), (70 * s, 99.0)], 0, 100.0, 60)
    (-3.0, 60000000000)
    >>> realised_outcome([(0, 100.0), (30 * s, 97.0)], 0, 100.0, 60) is None
    True
    """
    if not (price > 0 and math.isfinite(price)):
        return None
    end = ts_ns + round(horizon_s * NS_PER_SECOND)
    if not prices or prices[-1][0] < end:
        return None
    last = None
    for t, p in prices:
        if t > end:
            break
        if t >= ts_ns:
            last = p
    if last is None or not math.isfinite(last):
        return None
    return round((last / price - 1.0) * 100.0, 6), end


@dataclass(slots=True)
class _Pending:
    row: dict[str, Any]
    sid: int
    end_ns: int


class OutcomeSettler:
    """Turns decided incidents into realised outcomes as the market moves past their
    horizon, for a driver to write with :meth:`DecisionStore.record_outcome`.

    ``add`` an incident once it is decided (its symbol id, time, price and what was done),
    before the batch that made it goes to :meth:`on_batch` (its trip tick is then the
    symbol's last price seen, should the symbol not trade again before the horizon);
    feed every tick batch, in time order, to :meth:`on_batch`, which returns the outcomes
    whose horizon ended at or before the batch's last tick: the symbol's last price at or
    before ``ts + horizon`` (from this batch, else the last one seen before it). At most
    ``max_pending`` wait; more are refused and counted in ``dropped`` (memory is advisory:
    a dropped outcome costs a fact, never an order).
    """

    def __init__(self, horizon_s: float, max_pending: int = 10_000) -> None:
        if not (isinstance(horizon_s, int | float) and 0 < horizon_s < math.inf):
            raise ValueError(f"horizon_s must be a number > 0, got {horizon_s!r}")
        if max_pending < 1:
            raise ValueError(f"max_pending must be >= 1, got {max_pending}")
        self.horizon_s = float(horizon_s)
        self.max_pending = max_pending
        self.dropped = 0
        self._pending: list[_Pending] = []
        self._last: dict[int, float] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, incident: Any, symbol_id: int, classification: str = "",
            action: str = "HOLD") -> bool:
        """Wait for ``incident`` (an :class:`~tripwire.incident.Incident` with a price);
        False when it has no usable price or the bound is reached (counted)."""
        price = incident.price
        if price is None or not (price > 0 and math.isfinite(price)):
            return False
        if len(self._pending) >= self.max_pending:
            self.dropped += 1
            return False
        f = incident.features()
        end = incident.ts_ns + round(self.horizon_s * NS_PER_SECOND)
        row = {"incident_id": incident.id, "symbol": incident.symbol,
               "metric": incident.metric, "z_bucket": f["z_bucket"],
               "has_news": bool(incident.news), "ts_ns": incident.ts_ns,
               "realised_ns": end, "horizon_s": self.horizon_s,
               "classification": classification, "action": action, "price": float(price)}
        self._pending.append(_Pending(row, int(symbol_id), end))
        return True

    def on_batch(self, batch: Any) -> list[dict[str, Any]]:
        """Outcomes realised by ``batch`` (a TickBatch, after every earlier one): rows for
        :meth:`DecisionStore.record_outcome` (``incident_id`` first, then keywords)."""
        if len(batch) == 0:
            return []
        last_ts = int(batch.ts_ns[-1])
        due = [p for p in self._pending if p.end_ns <= last_ts]
        out = []
        for p in due:
            mask = (batch.symbol_id == p.sid) & (batch.ts_ns <= p.end_ns)
            idx = mask.nonzero()[0]
            price = float(batch.price[idx[-1]]) if len(idx) else self._last.get(p.sid)
            if price is None or not math.isfinite(price):
                continue  # no trade of the symbol before its horizon: not realised
            row = dict(p.row)
            entry = row.pop("price")
            row["move_pct"] = round((price / entry - 1.0) * 100.0, 6)
            out.append(row)
        if due:
            self._pending = [p for p in self._pending if p.end_ns > last_ts]
            # a due incident with no price yet is dropped (counted): its horizon has passed
            self.dropped += len(due) - len(out)
        if not self._pending:  # nothing waits: no last price is needed (the next trip's
            self._last.clear()  # own batch sets its symbol's before its horizon can pass)
            return out
        ids = np.asarray(batch.symbol_id)
        uniq, first = np.unique(ids[::-1], return_index=True)  # each symbol's last tick
        for sid, i in zip(uniq.tolist(), (len(ids) - 1 - first).tolist(), strict=True):
            self._last[sid] = float(batch.price[i])
        return out
