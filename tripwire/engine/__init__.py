"""The engine: how a tick becomes an order, the same in every mode. Read this file first.

::

    validated ticks (feeds.validate: one TickBatch)
      |
      v  Engine.step(batch, live=...)                               tripwire/engine/step.py
      |-- own symbols --> Detectors.process -> trips (Anomaly)      ports.Detectors
      |-- every symbol -> MarketState: latest prices, minute closes, news   engine/market.py
      |   (the batch is cut at each trip time: market and venue move up to the trip)
      |-- trips of one tick -> MarketState.incidents -> Incident    tripwire/incident.py
      |     lead trip = largest |z|; market reference = [engine] reference_symbol
      |-- incidents --> Decisions.on_incidents                      ports.Decisions
      |     intake (cool-down, coalescing) -> triage graph -> sign-off graph
      |     -> tripwire.decisions (sizing, re-check, refusal) -> Broker.place -> Order
      `-- ticks ------> Venue.step: broker.on_ticks (fills), prices, market clock

What each mode plugs into the ports (the drivers are wiring only):

================  ======================  =======================  =========================
mode              Detectors               Decisions                Venue broker
================  ======================  =======================  =========================
backtest          in-process shard        DecisionRunner, drained  BacktestBroker (SimClock)
(actors.backtest  (LocalDetectors)        after each trip time
 run_shard; Ray
 tasks fan it out)
live (Serve app,  Ray shard actors        the sign-off deployment  paper / ccxt broker in
 actors.dataplane (actors.ray_detectors.  handle (queued; market   serve_apps.orchestrator
 runs Engine.step RayDetectors); sink:    time: waits until        (Venue.step in on_ticks,
 + orchestrator)  the tick-store actor    decided)                 given until_ns)
tripwire parity   RayDetectors (same      the Orchestrator class,  the orchestrator's
 live leg         port, seeded ids)       waited on                paper venue, SimClock
tripwire decide   the triage demo's       DecisionRunner.handle    PaperBroker (Venue.step)
 --demo           incidents (below)
tripwire triage   in-process shard        the triage analyst only  none
 --demo           (actors.triage.demo_incidents drives the engine)
================  ======================  =======================  =========================

DecisionDeps (what the graphs need) is assembled once, by ``graphs.deps.build_deps``, with
the broker each driver's configuration chose. ``tripwire parity`` (:mod:`.parity`) runs one
stream through several drivers and counts every record that differs.

A second copy of any of these steps elsewhere is a defect: the backtest predicts live
because both run this code. The engine imports no Ray, Serve or LangGraph; the clock is
injected (a :class:`~tripwire.model.SimClock` the ticks move on market time, the wall clock
live).
"""

from tripwire.engine.config import EngineSettings
from tripwire.engine.market import MarketState
from tripwire.engine.ports import Decisions, Detectors, LocalDetectors, TickSink, VenueBroker
from tripwire.engine.step import Engine, Venue, segments

__all__ = ["Decisions", "Detectors", "Engine", "EngineSettings", "LocalDetectors",
           "MarketState", "TickSink", "Venue", "VenueBroker", "segments"]
