"""What differs between modes, as ports the engine's step plugs in (see :mod:`tripwire.engine`).

=============  ===========================================  ==================================
port           in process (backtest, demos)                 live (the Serve app)
=============  ===========================================  ==================================
Detectors      :class:`LocalDetectors` over a detector       ``actors.ray_detectors.RayDetectors``
               shard (``actors.shard.DetectorShard``)        over the Ray shard actors
Decisions      the DecisionRunner, drained after each trip   the sign-off deployment's handle
TickSink       none                                          the tick-store sink actor
                                                             (``actors.dataplane``)
Venue broker   paper / backtest broker (execution.Broker)    paper or ccxt broker, in the
                                                             orchestrator
=============  ===========================================  ==================================
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from tripwire.incident import Incident
from tripwire.model import Anomaly, TickBatch


class Detectors(Protocol):
    """Scores a batch of validated ticks; returns the trips (with their snapshots)."""

    async def process(self, batch: TickBatch) -> list[Anomaly]: ...


class Decisions(Protocol):
    """Takes the incidents of one trip time; returns when the mode says they are handed
    over (a backtest: decided; live: queued)."""

    async def on_incidents(self, incidents: Sequence[Incident]) -> None: ...


class TickSink(Protocol):
    async def write(self, batch: TickBatch) -> None: ...


class VenueBroker(Protocol):
    """The part of :class:`tripwire.execution.base.Broker` the venue step drives: ticks in,
    fills out (paper and backtest match orders on them; an exchange marks positions)."""

    def on_ticks(self, batch: TickBatch) -> list[Any]: ...


class PriceBook(Protocol):
    def update(self, batch: TickBatch) -> None: ...


class LocalDetectors:
    """An in-process detector shard as the :class:`Detectors` port (sync underneath)."""

    def __init__(self, shard: Any) -> None:
        self.shard = shard  # anything with process(batch) -> result.anomalies

    async def process(self, batch: TickBatch) -> list[Anomaly]:
        return list(self.shard.process(batch).anomalies) if len(batch) else []
