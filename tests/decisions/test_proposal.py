"""tripwire.decisions.proposal: the terms a signature signs, and their hash."""

from __future__ import annotations

import pytest

from tripwire.decisions.proposal import Proposal, canonical_json, proposal_hash


def make(**over) -> Proposal:
    base = dict(decision_id="d1", incident_id="i1", verdict_id="v1", symbol="BTCUSDT",
                side="BUY", quantity=0.5, order_type="market", limit_price=None,
                stop_loss=95.0, take_profit=110.0, reference_price=100.0, position_qty=0.0,
                verdict_ts_ns=1, created_ns=2)
    return Proposal(**{**base, **over})


def test_the_hash_is_stable_and_changes_with_any_term():
    p = make()
    assert proposal_hash(p) == proposal_hash(Proposal.from_dict(p.to_dict()))
    assert len(proposal_hash(p)) == 64
    for field, value in [("quantity", 0.4), ("side", "SELL"), ("stop_loss", 94.0),
                         ("revision", 1), ("symbol", "ETHUSDT")]:
        kw = {field: value}
        if field == "side":
            kw.update(stop_loss=105.0, take_profit=90.0)
        assert proposal_hash(make(**kw)) != proposal_hash(p), field


def test_canonical_json_is_key_order_free_and_refuses_nan():
    assert canonical_json({"b": 1, "a": 2.5}) == canonical_json({"a": 2.5, "b": 1}) == \
        '{"a":2.5,"b":1}'
    with pytest.raises(ValueError):
        canonical_json({"a": float("nan")})


def test_a_shrink_is_a_smaller_next_revision_only():
    p = make()
    s = p.shrunk(0.25)
    assert (s.quantity, s.revision) == (0.25, 1) and proposal_hash(s) != proposal_hash(p)
    for bad in (0.5, 0.6, 0.0, -1.0):
        with pytest.raises(ValueError, match="a shrink must be"):
            p.shrunk(bad)


def test_malformed_terms_are_refused_naming_the_decision():
    with pytest.raises(ValueError, match="proposal d1"):
        make(quantity=0.0)
    with pytest.raises(TypeError):
        Proposal.from_dict({**make().to_dict(), "extra": 1})


def test_the_summary_says_the_terms():
    assert make().summary() == ("BUY 0.5 BTCUSDT @ market (ref 100), stop 95, target 110")
    assert make(order_type="limit", limit_price=99.0).notional == pytest.approx(49.5)
