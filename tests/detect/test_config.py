"""DetectorConfig validation: every bad value names its key."""

from dataclasses import replace

import pytest

from tripwire.detect import DetectorConfig, MetricConfig


@pytest.mark.parametrize(
    "data, message",
    [
        ({"price": {"window": 0}}, r"detector\.price\.window must be an integer >= 1"),
        ({"returns": {"threshold": -1}}, r"detector\.returns\.threshold must be a finite number > 0"),
        ({"volume": {"min_periods": 500}}, r"detector\.volume\.min_periods must be an integer >= 1 and <= 300"),
        ({"volume": {"two_sided": "yes"}}, r"detector\.volume\.two_sided must be true or false"),
        ({"cooldown_s": -3}, r"detector\.cooldown_s must be a number of seconds >= 0"),
        ({"ddof": 2}, r"detector\.ddof must be an integer >= 0 and <= 1"),
        ({"snapshot_len": 0}, r"detector\.snapshot_len must be an integer >= 1"),
        ({"windw": 3}, r"detector\.windw is not a detector setting"),
        ({"price": {"widow": 3}}, r"detector\.price\.widow is not a metric setting"),
        ({"price": 5}, r"detector\.price must be a table"),
    ],
)
def test_bad_values_name_the_key(data, message):
    with pytest.raises(ValueError, match=message):
        DetectorConfig.from_dict(data)


def test_round_trip_and_defaults():
    cfg = DetectorConfig.from_dict({"return": {"window": 50, "min_periods": 10}, "volume_bucket_s": 1})
    # A partial table overrides only what it names: the rest is the metric's own default.
    assert cfg.returns == replace(DetectorConfig().returns, window=50, min_periods=10)
    assert cfg.returns.threshold == DetectorConfig().returns.threshold != MetricConfig().threshold
    assert cfg.volume_bucket_ns == 1_000_000_000
    assert DetectorConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.volume.two_sided is False and cfg.price.effective_min_periods == cfg.price.window
