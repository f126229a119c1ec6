"""Fail closed, node by node: the wrapper every graph node runs inside.

A node that raises, times out or returns something malformed does not crash the graph: the
wrapper turns it into ``{"outcome": "REJECTED", "reason": "<node>: <why>"}`` and the graph's
routing sends the decision straight to its final node. Two things pass through untouched:
LangGraph's interrupt (a TWO_PHASE decision pausing for a person is not a failure) and
BaseExceptions such as cancellation (a process being stopped is not a verdict on the
decision; the checkpoint resumes it). Once an outcome is set, later nodes do nothing, and
a failure of the final node keeps that outcome (an EXECUTED decision did send its order).

Each node run is one OpenTelemetry span ``<graph>.<node>`` carrying the decision and
incident ids; a node that fails closed marks its span ERROR with the reason.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from langgraph.errors import GraphBubbleUp

from tripwire import telemetry
from tripwire.decisions.outcome import Outcome
from tripwire.metrics import DecisionMetrics

Node = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
MAX_REASON = 500
DECISION_ID = "tripwire.decision_id"  # span attributes: find a decision's or incident's spans
INCIDENT_ID = "tripwire.incident_id"


def rejected(reason: str) -> dict[str, Any]:
    return {"outcome": Outcome.REJECTED.value, "reason": reason[:MAX_REASON]}


def guarded(graph: str, name: str, fn: Node, *, timeout_s: float,
            metrics: DecisionMetrics, always: bool = False) -> Node:
    """``fn`` made fail-closed, timed out after ``timeout_s``, its latency recorded.

    ``always``: run even when an outcome is already set (the final node)."""

    def failed(state: dict[str, Any], reason: str) -> dict[str, Any]:
        if always and state.get("outcome"):
            # The final node failed after the outcome was reached (an EXECUTED decision has
            # sent its order): keep the outcome, add why its bookkeeping failed.
            return {"reason": f"{state.get('reason', '')}; {reason}"[:MAX_REASON]}
        return rejected(reason)

    async def node(state: dict[str, Any]) -> dict[str, Any]:
        if state.get("outcome") and not always:
            return {}
        # One span per node run, a child of the caller's (the runner's incident span), so
        # the node's LLM calls and the order nest under it in the incident's trace.
        with telemetry.span(f"{graph}.{name}", record_errors=False,
                            **{DECISION_ID: state.get("decision_id"),
                               INCIDENT_ID: state.get("incident_id")}) as span:
            update = await run(state)
            if update.get("outcome") == Outcome.REJECTED.value and "reason" in update:
                telemetry.mark_failed(span, update["reason"])
            return update

    async def run(state: dict[str, Any]) -> dict[str, Any]:
        t0 = time.perf_counter()
        try:
            async with asyncio.timeout(timeout_s):
                update = await fn(state)
            if not isinstance(update, Mapping):
                return rejected(f"{name}: returned {type(update).__name__}, not a state update")
            return dict(update)
        except GraphBubbleUp:  # interrupt(): a pause, not a failure
            raise
        except TimeoutError:
            return failed(state, f"{name}: timed out after {timeout_s:g}s")
        except Exception as exc:  # fail closed on anything a node raises
            return failed(state, f"{name}: {type(exc).__name__}: {exc}")
        finally:
            metrics.node_latency(graph, name, (time.perf_counter() - t0) * 1e3)

    node.__name__ = name
    return node


def next_or_finish(next_node: str, finish: str = "finish") -> Callable[[dict[str, Any]], str]:
    """Routing after a node: on to ``next_node``, or to ``finish`` once an outcome is set."""

    def route(state: dict[str, Any]) -> str:
        return finish if state.get("outcome") else next_node

    return route
