"""Realised outcomes for ``[memory]``, written by the engine as market time passes them.

Memory (:mod:`tripwire.decisions.memory`) shows the analyst how similar past incidents
played out. That needs each incident's *realised* outcome: the move of its symbol over
``[memory] horizon_s`` after the trip. The engine has the prices, so it records them in the
one tick path (:meth:`tripwire.engine.step.Engine.step`), for every driver that plugs an
:class:`OutcomeRecorder` in -- not only ``tripwire review --record-outcomes`` after the day.

No look-ahead, twice over:

* an outcome is written only after the step whose batch carries market time past
  ``ts + horizon`` has gone through the path (the incidents of that batch are decided
  first), and its move uses the last price at or before ``ts + horizon``;
* memory reads only outcomes with ``realised_ns`` strictly before the incident's time
  (:meth:`~tripwire.store.decisions.DecisionStore.similar_outcomes`).

Bounded: at most ``max_pending`` incidents wait (more are refused, counted in
``counts["dropped"]``, like a due incident whose symbol never traded before its horizon).
An outcome the store refuses (an incident it does not know, e.g. a duplicate trip another
replica owns) is counted as ``refused``; memory is advisory, so none of this stops a tick.
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from typing import Any

from tripwire.decisions.memory import MemorySettings, OutcomeSettler
from tripwire.incident import Incident
from tripwire.model import SymbolTable, TickBatch
from tripwire.store.decisions import StoreError

MAX_PENDING = 10_000  # incidents waiting for their horizon (~1 MB of rows at most)


class OutcomeRecorder:
    """The engine's outcome step: ``add`` a step's incidents, then ``on_batch`` the same
    batch; due outcomes go to ``store.record_outcome`` with the incident's verdict class and
    decided action as the store holds them then (HOLD when nothing was proposed)."""

    def __init__(self, store: Any, symbols: SymbolTable, horizon_s: float,
                 max_pending: int = MAX_PENDING) -> None:
        self.store, self.symbols = store, symbols
        self.settler = OutcomeSettler(horizon_s, max_pending)
        self.counts: collections.Counter[str] = collections.Counter()

    def __len__(self) -> int:
        return len(self.settler)

    def add(self, incidents: Sequence[Incident]) -> None:
        for inc in incidents:
            if inc.symbol not in self.symbols:
                self.counts["no_symbol"] += 1
                continue
            if self.settler.add(inc, self.symbols.id(inc.symbol)):
                self.counts["added"] += 1
        self.counts["dropped"] = self.settler.dropped

    async def on_batch(self, batch: TickBatch) -> int:
        """Write the outcomes ``batch`` (already through the path) realised; how many."""
        rows = self.settler.on_batch(batch)
        self.counts["dropped"] = self.settler.dropped
        written = 0
        for row in rows:
            iid = row.pop("incident_id")
            row["classification"], row["action"] = await self._decided(iid, row)
            try:
                written += bool(await self.store.record_outcome(
                    iid, **row, payload={"source": "engine"}))
            except StoreError:
                self.counts["refused"] += 1
        self.counts["recorded"] += written
        return written

    async def _decided(self, incident_id: str, row: dict[str, Any]) -> tuple[str, str]:
        verdicts = await self.store.verdicts_of(incident_id)
        cls = str(verdicts[-1]["class"]) if verdicts else ""
        # The incident's proposal, by market time (it is made at or after the trip, and
        # before the horizon that is passing now).
        props = await self.store.decisions(50, symbol=row["symbol"], since_ns=row["ts_ns"],
                                           until_ns=row["realised_ns"] + 1)
        action = next((str(p["action"]) for p in props
                       if p.get("incident_id") == incident_id), "HOLD")
        return cls, action if action in ("BUY", "SELL") else "HOLD"


def outcome_recorder(store: Any, memory: MemorySettings, symbols: SymbolTable,
                     max_pending: int = MAX_PENDING) -> OutcomeRecorder | None:
    """The recorder a driver plugs into the engine: None when ``[memory]`` is off."""
    if not memory.enabled or store is None:
        return None
    return OutcomeRecorder(store, symbols, memory.horizon_s, max_pending)
