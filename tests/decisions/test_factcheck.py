"""tripwire.decisions.factcheck: the facts a signed proposal rests on, checked again."""

from __future__ import annotations

import pytest

from tripwire.decisions.factcheck import FactPolicy, Facts, fact_check
from tripwire.decisions.proposal import Proposal
from tripwire.model import NS_PER_SECOND
from tripwire.risk.gates import HaltStatus

NOW = 1_000 * NS_PER_SECOND
P = Proposal("d1", "i1", "v1", "BTCUSDT", "BUY", 0.5, "market", None, 95.0, None,
             reference_price=100.0, position_qty=0.0, verdict_ts_ns=NOW - 10 * NS_PER_SECOND,
             created_ns=NOW)
POLICY = FactPolicy()


def facts(**over) -> Facts:
    base = dict(now_ns=NOW, latest_price=100.2, latest_price_ns=NOW - NS_PER_SECOND,
                allowed_symbols=frozenset({"BTCUSDT"}), halt=HaltStatus(False),
                position_qty=0.0, classification=None, news=())
    return Facts(**{**base, **over})


def failed(fc) -> list[str]:
    return [f.name for f in fc.facts if not f.passed]


def test_all_facts_hold():
    fc = fact_check(P, facts(), POLICY)
    assert fc.passed and failed(fc) == [] and fc.reasons == ()


@pytest.mark.parametrize(("over", "name"), [
    ({"latest_price": 102.0}, "price"),  # 2 % > 1 % tolerance
    ({"latest_price": None}, "price"),
    ({"latest_price_ns": NOW - 120 * NS_PER_SECOND}, "price"),  # stale
    ({"now_ns": NOW + 400 * NS_PER_SECOND, "latest_price_ns": NOW + 399 * NS_PER_SECOND},
     "verdict_age"),
    ({"allowed_symbols": frozenset({"ETHUSDT"})}, "symbol"),
    ({"halt": HaltStatus(True, "operator: test")}, "halt"),
    ({"halt": None}, "halt"),  # unreadable: treated as halted
    ({"position_qty": 1.0}, "position"),
    ({"position_qty": None}, "position"),
])
def test_each_changed_fact_fails_alone_and_is_named(over, name):
    fc = fact_check(P, facts(**over), POLICY)
    assert not fc.passed and failed(fc) == [name]
    assert fc.reasons[0].startswith(f"{name}: ")


def test_a_bad_policy_is_refused_naming_the_key():
    with pytest.raises(ValueError, match="signoff.max_price_age_s"):
        FactPolicy(max_price_age_s=0)
