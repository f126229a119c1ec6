"""The fact-checker: re-verify, at signing time, the facts a proposal was built on.

Between the strategist's idea and the signature the world moves on. The fact-checker reads
fresh facts and signs only if every one still holds; each is a named :class:`Fact` with the
value, the bound and a sentence of reason, so a veto explains itself. Plain arithmetic:

* ``price``: the latest price is within ``price_tolerance_pct`` of the proposal's reference
  price, and not older than ``max_price_age_s``;
* ``verdict_age``: the triage verdict is younger than ``max_verdict_age_s``;
* ``symbol``: the symbol is allowed;
* ``halt``: the halt flag reads clear (an unreadable flag counts as halted);
* ``position``: the position in the symbol is what the proposal assumed (a fill or another
  decision in between changes what this order would do);
* ``news``: the incident's headlines may carry this trade: none of them carries
  instructions, and a NEWS_DRIVEN verdict has a headline from a trusted source
  (:mod:`tripwire.decisions.provenance`).

A missing fact (no price at all) fails its check: fail closed.

>>> from tripwire.decisions.proposal import Proposal
>>> from tripwire.risk.gates import HaltStatus
>>> p = Proposal("d", "i", "v", "BTCUSDT", "BUY", 0.5, "market", None, 95.0, None,
...     reference_price=100.0, position_qty=0.0, verdict_ts_ns=0, created_ns=0)
>>> facts = Facts(now_ns=10**9, latest_price=100.4, latest_price_ns=10**9,
...     allowed_symbols=frozenset({"BTCUSDT"}), halt=HaltStatus(False), position_qty=0.0)
>>> r = fact_check(p, facts, FactPolicy(price_tolerance_pct=0.5))
>>> r.passed, [f.name for f in r.facts]
(True, ['price', 'verdict_age', 'symbol', 'halt', 'position', 'news'])
>>> fact_check(p, facts, FactPolicy(price_tolerance_pct=0.25)).reasons
('price: latest 100.4 is 0.4% from the reference 100 (tolerance 0.25%)',)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tripwire.decisions.proposal import Proposal
from tripwire.decisions.provenance import NewsTrust, check_news
from tripwire.model import NS_PER_SECOND
from tripwire.risk.gates import HaltStatus

POSITION_EPS = 1e-9  # relative: position quantities this close are the same


@dataclass(frozen=True, slots=True)
class FactPolicy:
    price_tolerance_pct: float = 1.0
    max_price_age_s: float = 60.0
    max_verdict_age_s: float = 300.0
    news: NewsTrust = field(default_factory=NewsTrust)

    def __post_init__(self) -> None:
        for name in ("price_tolerance_pct", "max_price_age_s", "max_verdict_age_s"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ValueError(f"signoff.{name} must be a finite number > 0, got {value!r}")


@dataclass(frozen=True, slots=True)
class Facts:
    """What the fact-checker read just now. ``latest_price`` None: no price is known."""

    now_ns: int
    latest_price: float | None
    latest_price_ns: int | None
    allowed_symbols: frozenset[str]
    halt: HaltStatus | None  # None: the flag could not be read
    position_qty: float | None  # None: the position could not be read
    classification: str | None = None  # the triage verdict's class
    news: tuple[Mapping[str, Any], ...] = ()  # the incident's headlines (headline, source)


@dataclass(frozen=True, slots=True)
class Fact:
    name: str
    passed: bool
    reason: str


@dataclass(frozen=True, slots=True)
class FactCheck:
    passed: bool
    facts: tuple[Fact, ...]

    @property
    def reasons(self) -> tuple[str, ...]:
        return tuple(f"{f.name}: {f.reason}" for f in self.facts if not f.passed)


def check_price(p: Proposal, facts: Facts, policy: FactPolicy) -> Fact:
    price, at = facts.latest_price, facts.latest_price_ns
    if price is None or at is None or not (math.isfinite(price) and price > 0):
        return Fact("price", False, f"no usable latest price for {p.symbol} ({price!r})")
    age_s = (facts.now_ns - at) / NS_PER_SECOND
    if age_s > policy.max_price_age_s:
        return Fact("price", False, f"latest price is {age_s:.1f}s old "
                                    f"(max {policy.max_price_age_s:g}s)")
    off_pct = abs(price / p.reference_price - 1.0) * 100.0
    ok = off_pct <= policy.price_tolerance_pct
    return Fact("price", ok, f"latest {price:.8g} is {off_pct:.3g}% from the reference "
                             f"{p.reference_price:.8g} (tolerance {policy.price_tolerance_pct:g}%)")


def check_verdict_age(p: Proposal, facts: Facts, policy: FactPolicy) -> Fact:
    age_s = (facts.now_ns - p.verdict_ts_ns) / NS_PER_SECOND
    ok = age_s <= policy.max_verdict_age_s
    return Fact("verdict_age", ok, f"verdict is {age_s:.1f}s old (max "
                                   f"{policy.max_verdict_age_s:g}s)")


def check_symbol(p: Proposal, facts: Facts, policy: FactPolicy) -> Fact:
    ok = p.symbol in facts.allowed_symbols
    return Fact("symbol", ok, f"{p.symbol} is {'' if ok else 'not '}an allowed symbol")


def check_halt_clear(p: Proposal, facts: Facts, policy: FactPolicy) -> Fact:
    halt = facts.halt
    if not isinstance(halt, HaltStatus):
        return Fact("halt", False, "halt flag unreadable; treated as halted")
    if halt.halted:
        return Fact("halt", False, f"halted by {halt.by or 'unknown'}: {halt.reason}")
    return Fact("halt", True, "halt flag clear")


def check_position(p: Proposal, facts: Facts, policy: FactPolicy) -> Fact:
    now = facts.position_qty
    if now is None or not math.isfinite(now):
        return Fact("position", False, f"position in {p.symbol} unreadable ({now!r})")
    scale = max(abs(now), abs(p.position_qty), 1.0)
    ok = abs(now - p.position_qty) <= POSITION_EPS * scale
    return Fact("position", ok, f"position {now:.10g} (proposal assumed {p.position_qty:.10g})")


def check_news_support(p: Proposal, facts: Facts, policy: FactPolicy) -> Fact:
    c = check_news(policy.news, facts.classification, facts.news)
    return Fact("news", c.passed, c.reason)


FACT_CHECKS = (check_price, check_verdict_age, check_symbol, check_halt_clear, check_position,
               check_news_support)


def fact_check(p: Proposal, facts: Facts, policy: FactPolicy) -> FactCheck:
    """Every fact's answer; passed only when all hold."""
    results = tuple(check(p, facts, policy) for check in FACT_CHECKS)
    return FactCheck(all(f.passed for f in results), results)
