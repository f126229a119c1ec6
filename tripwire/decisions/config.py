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

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ConfigDict, Field, model_validator

from tripwire.config_model import Section, validate
from tripwire.decisions.factcheck import FactPolicy
from tripwire.decisions.memory import MemorySettings
from tripwire.decisions.panel import PANEL_ROLES, PanelSettings
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


def _pos(default: float) -> Any:
    return Field(default, gt=0, allow_inf_nan=False)


def _nonneg(default: float) -> Any:
    return Field(default, ge=0, allow_inf_nan=False)


class SignoffSettings(Section):
    """``[signoff]``: everything but the hard limits. Times in seconds."""

    price_tolerance_pct: float = _pos(1.0)
    max_price_age_s: float = _pos(60.0)
    max_verdict_age_s: float = _pos(300.0)
    approval_ttl_s: float = _pos(120.0)
    node_timeout_s: float = _pos(60.0)  # any node slower than this ends the decision REJECTED
    rejection_threshold: int = Field(5, gt=0)  # rejections within the window close the gate
    rejection_window_s: float = _pos(600.0)
    rejection_cooldown_s: float = _pos(900.0)
    daily_loss_limit: float = _pos(2_000.0)  # quote currency; reached -> closed until 00:00 UTC
    kelly_fraction: float = _pos(0.5)
    payoff_ratio: float = _pos(2.0)  # the strategist's usual target / stop distance
    incident_cooldown_s: float = _pos(60.0)  # one incident per symbol per this long
    max_pending: int = Field(32, gt=0)  # incidents waiting for triage; more: overload
    slippage_bps: float = _nonneg(2.0)  # the paper venue
    taker_fee_bps: float = _nonneg(4.0)
    maker_fee_bps: float = _nonneg(2.0)
    latency_ms: float = _nonneg(50.0)
    initial_cash: float = _pos(100_000.0)


def _risk_defaults() -> dict[str, Any]:
    out = dict(DEFAULT_LIMITS)
    out["allowed_symbols"] = list(DEFAULT_ALLOWED)
    return out


class RiskSection(Section):
    """``[risk]``: the safety mode and the hard limits (:class:`~tripwire.risk.limits.
    RiskLimits` validates them, with its own messages naming ``risk.<key>``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mode: str = Field(DEFAULT_SAFETY_MODE.value,
                      description="DRY_RUN, TWO_PHASE, DIRECT, ... (tripwire.risk.modes)")
    max_order_notional: float = DEFAULT_LIMITS["max_order_notional"]
    max_daily_orders: int = DEFAULT_LIMITS["max_daily_orders"]
    max_position_per_symbol: float = DEFAULT_LIMITS["max_position_per_symbol"]
    max_gross_exposure: float = DEFAULT_LIMITS["max_gross_exposure"]
    allowed_symbols: list[str] = Field(default_factory=lambda: list(DEFAULT_ALLOWED))
    max_risk_per_trade_pct: float = DEFAULT_LIMITS["max_risk_per_trade_pct"]
    max_drawdown_pct: float = DEFAULT_LIMITS["max_drawdown_pct"]
    quantity_step: float = DEFAULT_LIMITS["quantity_step"]

    @model_validator(mode="before")
    @classmethod
    def _through_risk_limits(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        risk = dict(data)
        mode = parse_safety_mode(risk.pop("mode", DEFAULT_SAFETY_MODE))
        limits = RiskLimits.from_mapping({**DEFAULT_LIMITS, **risk})
        return {"mode": mode.value, **{k: getattr(limits, k) for k in DEFAULT_LIMITS},
                "allowed_symbols": sorted(limits.allowed_symbols)}


class NewsSection(Section):
    """``[news]``: the sources whose headlines may support a NEWS_DRIVEN trade
    (:class:`~tripwire.decisions.provenance.NewsTrust` validates the names)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    trusted_sources: list[str] = Field(
        default_factory=lambda: sorted(NewsTrust().trusted_sources))

    @model_validator(mode="before")
    @classmethod
    def _through_news_trust(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        return {"trusted_sources": sorted(NewsTrust.from_table(dict(data)).trusted_sources)}


class MemorySection(Section):
    """``[memory]`` for the config schema and ``config show``
    (:class:`~tripwire.decisions.memory.MemorySettings` validates it)."""

    enabled: bool = False
    max_items: int = Field(5, ge=1, le=50)
    max_chars: int = Field(1500, ge=200, le=20_000)
    horizon_s: float = Field(900.0, ge=1.0, le=86_400.0, allow_inf_nan=False)


class PanelSection(Section):
    """``[panel]`` for the config schema and ``config show``
    (:class:`~tripwire.decisions.panel.PanelSettings` validates it)."""

    enabled: bool = False
    members: list[str] = Field(default_factory=lambda: list(PANEL_ROLES), min_length=1,
                               max_length=8)
    threshold: int = Field(2, ge=1, le=8)


@dataclass(frozen=True, slots=True)
class DecisionConfig:
    mode: SafetyMode = DEFAULT_SAFETY_MODE
    limits: RiskLimits = field(default_factory=lambda: RiskLimits.from_mapping(DEFAULT_LIMITS))
    signoff: SignoffSettings = field(default_factory=SignoffSettings)
    news: NewsTrust = field(default_factory=NewsTrust)
    memory: MemorySettings = field(default_factory=MemorySettings)  # [memory], off
    panel: PanelSettings = field(default_factory=PanelSettings)  # [panel], off

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
    return validate(SignoffSettings, table, "signoff")


def load_decision_config(risk: Mapping[str, Any], signoff: Mapping[str, Any],
                         news: Mapping[str, Any] | None = None, *,
                         memory: Mapping[str, Any] | None = None,
                         panel: Mapping[str, Any] | None = None) -> DecisionConfig:
    """``[risk]`` (``mode`` plus any limit; unset limits keep their defaults), ``[signoff]``,
    ``[news]``, ``[memory]`` (:mod:`tripwire.decisions.memory`) and ``[panel]``
    (:mod:`tripwire.decisions.panel`)."""
    risk = dict(risk)
    mode = parse_safety_mode(risk.pop("mode", DEFAULT_SAFETY_MODE))
    limits = RiskLimits.from_mapping({**DEFAULT_LIMITS, **risk})
    if news is not None and not isinstance(news, Mapping):
        raise ValueError(f"news must be a table ([news]), got {news!r}")
    return DecisionConfig(mode, limits, _signoff(signoff), NewsTrust.from_table(news or {}),
                          MemorySettings.from_table(memory or {}),
                          PanelSettings.from_table(panel or {}))
