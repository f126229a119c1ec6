"""Probability symbols are scored on log-odds changes (tripwire.detect.transform), in the
detector shard, while the venue and the analyst's snapshot keep the real prices."""

from __future__ import annotations

import numpy as np

from actors.shard import DetectorShard
from tripwire.model import Metric, SymbolTable, TickBatch

N = 4000
T0 = 1_700_000_000


def _market(rng, start, end, n, noise, jump_at=None, jump_to=None):
    base = np.linspace(start, end, n)
    if jump_at is not None:
        base[jump_at:] = jump_to
    return np.round(np.clip(base + rng.normal(0, noise, n), 0.001, 0.999), 3)


def _trips(prices: np.ndarray, probability: bool, seed: int = 3):
    names = ["PM-X"]
    shard = DetectorShard(0, 1, SymbolTable(names),
                          probability_symbols=names if probability else ())
    rng = np.random.default_rng(seed)
    ts = (T0 + np.arange(len(prices))) * 10**9
    batch = TickBatch.from_columns(np.zeros(len(prices)), ts, prices,
                                   rng.lognormal(3, 1, len(prices)))
    return shard.process(batch), batch


def test_drifts_near_certainty_do_not_trip_but_a_repricing_does():
    rng = np.random.default_rng(7)
    half = N // 2
    near_one = np.r_[_market(rng, 0.97, 0.97, half, 0.002), _market(rng, 0.97, 0.99, half, 0.002)]
    near_zero = np.r_[_market(rng, 0.01, 0.01, half, 0.0005),
                      _market(rng, 0.01, 0.02, half, 0.0005)]
    jump = _market(rng, 0.30, 0.30, N, 0.003, jump_at=3 * N // 4, jump_to=0.60)
    assert len(_trips(near_one, True)[0].trips) == 0
    assert len(_trips(near_zero, True)[0].trips) == 0
    res, _ = _trips(jump, True)
    metrics = {Metric(int(m)) for m in res.trips.metric}
    assert metrics == {Metric.RETURN}  # the level metric is off for probabilities
    first = res.anomalies[0]
    assert abs(first.price - 0.60) < 0.02  # the real price, not the odds
    # The analyst's snapshot shows probabilities, not the odds the bank scored.
    assert first.snapshot is not None
    assert 0.0 < first.snapshot.price.min() and first.snapshot.price.max() < 1.0
    assert np.allclose(first.snapshot.price[-1], first.price)
    # value is the change of log-odds the return metric scored (bucketed), about 1.25
    assert 0.8 < abs(first.value) < 1.6


def test_yes_and_no_tokens_of_one_market_trip_alike():
    """log-odds are symmetric (logit(1-p) = -logit(p)); log-returns are not: the YES token
    at 0.98 -> 0.90 and its NO token at 0.02 -> 0.10 are the same news."""
    rng = np.random.default_rng(11)
    yes = _market(rng, 0.98, 0.98, N, 0.001, jump_at=3 * N // 4, jump_to=0.90)
    no = np.round(1.0 - yes, 3)
    yes_z = [abs(a.z) for a in _trips(yes, True)[0].anomalies]
    no_z = [abs(a.z) for a in _trips(no, True)[0].anomalies]
    assert yes_z and np.allclose(yes_z, no_z, rtol=1e-6)
    # On log-returns (no transform) the two tokens of one market disagree.
    raw_yes = [abs(a.z) for a in _trips(yes, False)[0].anomalies if a.metric == Metric.RETURN]
    raw_no = [abs(a.z) for a in _trips(no, False)[0].anomalies if a.metric == Metric.RETURN]
    assert raw_yes != raw_no
