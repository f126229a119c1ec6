"""The lab's "no filter" baseline: a fixed rule that trades every trip, no judgement at all.

It answers the three roles of the sign-off path so that everything after the analyst --
intake cool-down, the risk gate's sizing and limits, the fact-checker, the broker -- runs
exactly as for any analyst; only the judgement is removed:

* ``triage-analyst``: TECHNICAL_SPIKE at confidence 1.0, "[fixed] no filter" (not a
  classification: the lab does not score a fixed policy's triage);
* ``strategist``: always BUY or SELL, never HOLD. ``variant = "mean_reversion"`` trades
  against the last ten ticks' move (a spike is expected to come back), ``"momentum"`` with
  it. Same size (:data:`SIZE`, the rules analyst's largest), same stop and target
  construction as the rules' news trade (stop half the move, 1-5 %, target twice that), a
  marketable limit: the comparison is about *which* trips are traded, not how;
* ``double-checker``: AGREE, no cap.

A trip with no move at all (a volume trip on an unchanged price) has no direction: the
rule then follows the tripping z-score's sign, and HOLDs only when that is zero too.

>>> import asyncio
>>> from tripwire.llm.base import LLMRequest, Message
>>> from tripwire.llm.schemas import StrategistProposal
>>> inc = {"symbol": "X", "ts_ns": 0, "metric": "RETURN", "z": -9.0, "value": -0.01,
...        "tripped": {"RETURN": -9.0},
...        "price": 100.0, "recent": {"ticks": 50, "span_s": 60.0, "ret_1_pct": -1.0,
...        "ret_10_pct": -2.0}}
>>> req = LLMRequest(role="strategist", system="", messages=(Message("user", "?"),),
...                  schema=StrategistProposal, context=inc)
>>> asyncio.run(FixedRuleProvider("mean_reversion").complete(req, timeout_s=1)).data["action"]
'BUY'
>>> asyncio.run(FixedRuleProvider("momentum").complete(req, timeout_s=1)).data["action"]
'SELL'
"""

from __future__ import annotations

import json
import time
from typing import Any

from pydantic import ValidationError

from tripwire.llm.base import LLMRequest, ProviderError, ProviderResult, Usage
from tripwire.llm.incident import Incident
from tripwire.llm.rules import MARKETABLE, RULES_MAX_SIZE, evidence
from tripwire.llm.schemas import (
    Action,
    CheckVerdict,
    Classification,
    DoubleCheck,
    StrategistProposal,
    TriageVerdict,
)

VARIANTS = ("mean_reversion", "momentum")
SIZE = RULES_MAX_SIZE  # of the maximum position, on every trade


def _sig(x: float) -> float:
    return float(f"{x:.8g}")


def _direction(incident: Incident) -> int:
    move = evidence(incident).move
    if move:
        return 1 if move > 0 else -1
    z = incident.z or 0.0
    return (z > 0) - (z < 0)


def propose(incident: Incident, variant: str) -> StrategistProposal:
    """Always a trade (mean reversion: against the move; momentum: with it)."""
    d = _direction(incident)
    price = incident.price
    if d == 0 or price is None or price <= 0:
        return StrategistProposal(
            action=Action.HOLD, symbol=incident.symbol, size=0.0, limit_price=None,
            stop_loss=None, take_profit=None, rationale="[fixed] no direction or no price",
            confidence=1.0, source="rules")  # fmt: skip
    buy = (d < 0) if variant == "mean_reversion" else (d > 0)
    dist = min(5.0, max(1.0, abs(evidence(incident).move) * 0.5)) / 100.0
    return StrategistProposal(
        action=Action.BUY if buy else Action.SELL,
        symbol=incident.symbol,
        size=SIZE,
        limit_price=_sig(price * (1 + MARKETABLE if buy else 1 - MARKETABLE)),
        stop_loss=_sig(price * (1 - dist) if buy else price * (1 + dist)),
        take_profit=_sig(price * (1 + 2 * dist) if buy else price * (1 - 2 * dist)),
        rationale=f"[fixed] no filter, {variant}: trade every trip",
        confidence=1.0,
        source="rules",
    )


class FixedRuleProvider:
    """The no-filter policy behind the Provider protocol (``options.variant`` picks it)."""

    kind = "fixed"

    def __init__(self, variant: str = "mean_reversion") -> None:
        if variant not in VARIANTS:
            raise ValueError(f"fixed rule variant must be one of {', '.join(VARIANTS)}, "
                             f"got {variant!r}")
        self.variant = variant
        self.model = f"fixed-{variant}"

    async def complete(self, request: LLMRequest, *, timeout_s: float) -> ProviderResult:
        start = time.perf_counter()
        try:
            incident = Incident.from_context(request.context)
        except ValidationError as exc:
            raise ProviderError("bad_request", f"request.context is not an incident: "
                                f"{exc.errors()[0].get('msg', 'invalid')}") from None
        answer: Any
        if request.role == "triage-analyst":
            answer = TriageVerdict(classification=Classification.TECHNICAL_SPIKE, confidence=1.0,
                                   reasoning="[fixed] no filter: every trip is traded",
                                   key_factors=["no filter"], source="rules")
        elif request.role == "strategist":
            answer = propose(incident, self.variant)
        elif request.role == "double-checker":
            answer = DoubleCheck(verdict=CheckVerdict.AGREE, concerns=[], confidence=1.0,
                                 max_size=None, source="rules")
        else:
            raise ProviderError("bad_request", f"the fixed rule has no answer for role "
                                f"{request.role!r}")
        data = answer.model_dump(mode="json")
        raw = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return ProviderResult(data, raw, Usage(0, 0), self.model,
                              (time.perf_counter() - start) * 1e3, self.kind)

    async def aclose(self) -> None:
        return None
