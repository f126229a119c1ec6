"""Deterministic risk: safety modes, limits, gates and sizing, in plain arithmetic.

No LLM and no I/O here: every function takes facts and returns an explainable record, so
the sign-off graph can call it, journal it and replay it bit for bit. A limit may only
shrink an order or veto it; a gate that cannot be read counts as closed.
"""

from tripwire.risk.gates import (
    GateCheck,
    GateDecision,
    HaltReader,
    HaltStatus,
    PnLBreaker,
    RejectionBreaker,
    StaticHaltFlag,
    check_halt,
    gate_open,
)
from tripwire.risk.limits import (
    LIMIT_CHECKS,
    LimitCheck,
    PortfolioState,
    Position,
    ProposedOrder,
    RiskDecision,
    RiskLimits,
    check_all,
)
from tripwire.risk.modes import DEFAULT_SAFETY_MODE, SafetyMode, parse_safety_mode
from tripwire.risk.sizing import SizeResult, kelly_multiplier, size_position

__all__ = [
    "DEFAULT_SAFETY_MODE",
    "LIMIT_CHECKS",
    "GateCheck",
    "GateDecision",
    "HaltReader",
    "HaltStatus",
    "LimitCheck",
    "PnLBreaker",
    "PortfolioState",
    "Position",
    "ProposedOrder",
    "RejectionBreaker",
    "RiskDecision",
    "RiskLimits",
    "SafetyMode",
    "SizeResult",
    "StaticHaltFlag",
    "check_all",
    "check_halt",
    "gate_open",
    "kelly_multiplier",
    "parse_safety_mode",
    "size_position",
]
