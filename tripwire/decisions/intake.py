"""Incident intake: one incident per symbol per cool-down, a bounded queue, nothing lost.

A burst of trips must not become a burst of LLM calls. :class:`IncidentIntake` admits an
incident only if no incident of the same symbol was admitted within ``cooldown_ns`` (by
event time); a later trip inside that window is *coalesced* into the open one. Admitted
incidents wait in a queue of at most ``max_pending``; one more is refused as ``overload``,
which the caller records (``skipped: overload``) rather than dropping. Every answer is
counted in :attr:`IncidentIntake.counts`.

>>> intake = IncidentIntake(cooldown_ns=60, max_pending=1)
>>> [intake.offer(i, s, t).status for i, s, t in [("a", "BTC", 0), ("b", "BTC", 30),
...     ("c", "ETH", 31), ("d", "BTC", 90)]]
['accepted', 'coalesced', 'overload', 'overload']
>>> intake.take(), intake.take(), intake.counts["accepted"]
('a', None, 1)
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass

ACCEPTED = "accepted"
COALESCED = "coalesced"
OVERLOAD = "overload"
SKIPPED_OVERLOAD = "skipped: overload"  # the incident row's status for an overload


@dataclass(frozen=True, slots=True)
class Admission:
    status: str  # accepted | coalesced | overload
    incident_id: str
    into: str | None = None  # coalesced: the open incident it joined


class IncidentIntake:
    def __init__(self, *, cooldown_ns: int, max_pending: int) -> None:
        if cooldown_ns < 0 or max_pending < 1:
            raise ValueError("cooldown_ns must be >= 0 and max_pending >= 1, got "
                             f"{cooldown_ns!r}, {max_pending!r}")
        self.cooldown_ns = cooldown_ns
        self.max_pending = max_pending
        self._pending: deque[str] = deque()
        self._last: dict[str, tuple[int, str]] = {}  # symbol -> (admitted ts, incident id)
        self.counts: Counter[str] = Counter()

    def offer(self, incident_id: str, symbol: str, ts_ns: int) -> Admission:
        last = self._last.get(symbol)
        if last is not None and 0 <= ts_ns - last[0] < self.cooldown_ns:
            self.counts[COALESCED] += 1
            return Admission(COALESCED, incident_id, into=last[1])
        if len(self._pending) >= self.max_pending:
            self.counts[OVERLOAD] += 1
            return Admission(OVERLOAD, incident_id)
        self._pending.append(incident_id)
        self._last[symbol] = (ts_ns, incident_id)
        self.counts[ACCEPTED] += 1
        return Admission(ACCEPTED, incident_id)

    def take(self) -> str | None:
        """The oldest waiting incident id, or None."""
        return self._pending.popleft() if self._pending else None

    def __len__(self) -> int:
        return len(self._pending)
