"""Settings of the decision core: ``[risk]`` (safety mode and hard limits), ``[signoff]``
(fact-check tolerances, approvals, breakers, sizing, intake bounds, the paper venue) and
``[news]`` (which sources' headlines may support a trade, :mod:`tripwire.decisions.provenance`).

Defaults are deliberately timid: DRY_RUN (no order is ever sent until an operator chooses
another mode), 1 % of equity at risk per trade, small notional caps, and only the majors
allowed. Every key is validated; a bad one raises ValueError naming ``risk.<key>`` or
``signoff.<key>``.

>>> cfg = load_decision_config({"mode": "two_phase", "max_daily_orders": 5}, {})
>>> cfg.mode.value, cfg.limits.max_daily_orders, cfg.signoff.approval_ttl_s
('TWO_PHASE', 5, 120.0)
>>> load_decision_config({}, {"approval_ttl_s": -1})
Traceback (most recent call last):
...
ValueError: signoff.approval_ttl_s must be a number > 0, got -1
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from tripwire.decisions.factcheck import FactPolicy
from tripwire.decisions.provenance import NewsTrust
from tripwire.execution.paper import PaperConfig
from tripwire.model import NS_PER_SECOND
from tripwire.risk.limits import RiskLimits
from tripwire.risk.modes import DEFAULT_SAFETY_MODE, SafetyMode, parse_safety_mode

# The majors of the embedded scenario (and of Binance): small caps must be allowed by name.
DEFAULT_ALLOWED = (
    "BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "BNBUSDT", "DOGEUSDT", "1000PEPEUSDT",
    "ADAUSDT", "SUIUSDT", "AVAXUSDT", "LINKUSDT", "LTCUSDT", "DOTUSDT", "TRXUSDT", "BCHUSDT",
    "TONUSDT", "NEARUSDT", "UNIUSDT", "APTUSDT", "ARBUSDT",
)  # fmt: skip
DEFAULT_LIMITS: dict[str, Any] = {
    "max_order_notional": 5_000.0,
    "max_daily_orders": 20,
    "max_position_per_symbol": 10_000.0,
    "max_gross_exposure": 50_000.0,
    "allowed_symbols": DEFAULT_ALLOWED,
    "max_risk_per_trade_pct": 1.0,
    "max_drawdown_pct": 10.0,
    "quantity_step": 1e-6,
}


@dataclass(frozen=True, slots=True)
class SignoffSettings:
    """``[signoff]``: everything but the hard limits. Times in seconds."""

    price_tolerance_pct: float = 1.0
    max_price_age_s: float = 60.0
    max_verdict_age_s: float = 300.0
    approval_ttl_s: float = 120.0
    node_timeout_s: float = 60.0  # any node slower than this ends the decision REJECTED
    rejection_threshold: int = 5  # rejections within the window that close the gate
    rejection_window_s: float = 600.0
    rejection_cooldown_s: float = 900.0
    daily_loss_limit: float = 2_000.0  # quote currency; reached -> closed until 00:00 UTC
    kelly_fraction: float = 0.5
    payoff_ratio: float = 2.0  # the strategist's usual target / stop distance
    incident_cooldown_s: float = 60.0  # one incident per symbol per this long
    max_pending: int = 32  # incidents waiting for triage; more are skipped: overload
    slippage_bps: float = 2.0  # the paper venue
    taker_fee_bps: float = 4.0
    maker_fee_bps: float = 2.0
    latency_ms: float = 50.0
    initial_cash: float = 100_000.0


_INTS = {"rejection_threshold", "max_pending"}
_ZERO_OK = {"slippage_bps", "taker_fee_bps", "maker_fee_bps", "latency_ms"}


@dataclass(frozen=True, slots=True)
class DecisionConfig:
    mode: SafetyMode = DEFAULT_SAFETY_MODE
    limits: RiskLimits = field(default_factory=lambda: RiskLimits.from_mapping(DEFAULT_LIMITS))
    signoff: SignoffSettings = field(default_factory=SignoffSettings)
    news: NewsTrust = field(default_factory=NewsTrust)

    @property
    def fact_policy(self) -> FactPolicy:
        s = self.signoff
        return FactPolicy(s.price_tolerance_pct, s.max_price_age_s, s.max_verdict_age_s,
                          self.news)

    @property
    def paper(self) -> PaperConfig:
        s = self.signoff
        return PaperConfig(slippage_bps=s.slippage_bps, maker_fee_bps=s.maker_fee_bps,
                           taker_fee_bps=s.taker_fee_bps,
                           latency_ns=int(s.latency_ms * 1e6), initial_cash=s.initial_cash)

    def ns(self, key: str) -> int:
        """A ``*_s`` setting of [signoff] in nanoseconds."""
        return int(getattr(self.signoff, key) * NS_PER_SECOND)


def _signoff(table: Mapping[str, Any]) -> SignoffSettings:
    names = {f.name for f in fields(SignoffSettings)}
    for key, value in table.items():
        if key not in names:
            raise ValueError(f"signoff.{key} is not a known key of [signoff] "
                             f"({', '.join(sorted(names))})")
        want_int = key in _INTS
        ok = (isinstance(value, int) if want_int else isinstance(value, int | float))
        ok = ok and not isinstance(value, bool) and math.isfinite(value)
        if not ok or value < 0 or (value == 0 and key not in _ZERO_OK):
            kind = "an integer" if want_int else "a number"
            bound = ">= 0" if key in _ZERO_OK else "> 0"
            raise ValueError(f"signoff.{key} must be {kind} {bound}, got {value!r}")
    return SignoffSettings(**table)


def load_decision_config(risk: Mapping[str, Any], signoff: Mapping[str, Any],
                         news: Mapping[str, Any] | None = None) -> DecisionConfig:
    """``[risk]`` (``mode`` plus any limit; unset limits keep their defaults), ``[signoff]``
    and ``[news]``."""
    risk = dict(risk)
    mode = parse_safety_mode(risk.pop("mode", DEFAULT_SAFETY_MODE))
    limits = RiskLimits.from_mapping({**DEFAULT_LIMITS, **risk})
    if news is not None and not isinstance(news, Mapping):
        raise ValueError(f"news must be a table ([news]), got {news!r}")
    return DecisionConfig(mode, limits, _signoff(signoff), NewsTrust.from_table(news or {}))
