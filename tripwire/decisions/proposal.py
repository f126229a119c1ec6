"""The proposal three signers sign: an order's exact terms, and the hash that binds them.

A :class:`Proposal` is the strategist's idea after the deterministic risk gate has sized it:
side, quantity, prices, plus the facts it was built on (the verdict, the reference price,
the position it assumed). Its :func:`proposal_hash` is a SHA-256 over a canonical JSON of
every field, so a signature over one hash covers exactly those terms: change one digit of
the quantity after signing (a tampered row, a bug) and the hash, and so every signature,
no longer matches.

A shrink (the double-checker may only make a trade smaller) makes a new *revision* with a
new hash; the signers sign the revision again.

>>> p = Proposal("d-1", "i-1", "v-1", "BTCUSDT", "BUY", 0.5, "market", None, 95.0, 110.0,
...     reference_price=100.0, position_qty=0.0, verdict_ts_ns=1, created_ns=2)
>>> len(proposal_hash(p)), proposal_hash(p) == proposal_hash(Proposal.from_dict(p.to_dict()))
(64, True)
>>> proposal_hash(p) == proposal_hash(p.shrunk(0.25))
False
>>> p.shrunk(0.25).revision, p.shrunk(0.25).quantity
(1, 0.25)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

from tripwire.model import Side

SIDES = tuple(s.name for s in Side if s.is_order_side)  # ("BUY", "SELL"): the one side type
ORDER_TYPES = ("market", "limit")


@dataclass(frozen=True, slots=True)
class Proposal:
    """One order's terms as proposed and sized; the unit every signature is about."""

    decision_id: str
    incident_id: str
    verdict_id: str
    symbol: str
    side: str  # BUY | SELL (a HOLD never becomes a Proposal)
    quantity: float  # base units, > 0, after the risk gate's sizing
    order_type: str  # market | limit
    limit_price: float | None
    stop_loss: float  # every proposal carries a stop: no naked positions
    take_profit: float | None
    reference_price: float  # the price the strategist and the gate reasoned from
    position_qty: float  # the position in ``symbol`` the proposal assumed (fact-checked later)
    verdict_ts_ns: int  # when the verdict was made (its age is fact-checked)
    created_ns: int
    confidence: float = 1.0
    revision: int = 0  # 0 as sized by the risk gate; +1 per shrink

    def __post_init__(self) -> None:
        problems = _problems(self)
        if problems:
            raise ValueError(f"proposal {self.decision_id}: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Proposal:
        """The proposal back from :meth:`to_dict` (unknown or missing keys raise)."""
        return cls(**data)

    def shrunk(self, quantity: float) -> Proposal:
        """The next revision at a smaller quantity; never larger."""
        if not 0 < quantity < self.quantity:
            raise ValueError(
                f"a shrink must be to a quantity in (0, {self.quantity:g}), got {quantity!r}"
            )
        return dataclasses.replace(self, quantity=quantity, revision=self.revision + 1)

    @property
    def notional(self) -> float:
        return self.quantity * (self.limit_price or self.reference_price)

    def summary(self) -> str:
        """``BUY 0.5 BTCUSDT @ market (ref 100), stop 95, target 110``."""
        at = f"{self.limit_price:.8g}" if self.limit_price is not None else "market"
        target = f"{self.take_profit:.8g}" if self.take_profit is not None else "none"
        return (f"{self.side} {self.quantity:.10g} {self.symbol} @ {at} "
                f"(ref {self.reference_price:.8g}), stop {self.stop_loss:.8g}, target {target}")


def _positive(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) and x > 0


def _problems(p: Proposal) -> list[str]:
    out = []
    if p.side not in SIDES:
        out.append(f"side must be one of {SIDES}, got {p.side!r}")
    if p.order_type not in ORDER_TYPES:
        out.append(f"order_type must be one of {ORDER_TYPES}, got {p.order_type!r}")
    for name in ("quantity", "stop_loss", "reference_price"):
        if not _positive(getattr(p, name)):
            out.append(f"{name} must be a finite number > 0, got {getattr(p, name)!r}")
    for name in ("limit_price", "take_profit"):
        value = getattr(p, name)
        if value is not None and not _positive(value):
            out.append(f"{name} must be null or a finite number > 0, got {value!r}")
    if (p.order_type == "limit") != (p.limit_price is not None):
        out.append("a limit order needs a limit_price and a market order has none")
    if not math.isfinite(p.position_qty):
        out.append(f"position_qty must be finite, got {p.position_qty!r}")
    return out


def canonical_json(data: Any) -> str:
    """Sorted keys, no spaces, floats as repr: the same bytes for the same terms."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False)


def proposal_hash(proposal: Proposal) -> str:
    """SHA-256 (hex) of the proposal's canonical JSON: what a signature signs."""
    return hashlib.sha256(canonical_json(proposal.to_dict()).encode()).hexdigest()
