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
        ({"return_bucket_s": -1}, r"detector\.return_bucket_s must be a number of seconds >= 0"),
        ({"volume_statistic": "mean"}, r"detector\.volume_statistic must be one of \['sum', 'log_active', 'log_count'\]"),
        ({"min_bucket_trades": -1}, r"detector\.min_bucket_trades must be an integer >= 0"),
        ({"symbols": {"BTCUSDT": {"return": 9}}}, r"detector\.symbols\.BTCUSDT\.return is not a metric"),
        ({"symbols": {"BTCUSDT": {"volume": 0}}}, r"detector\.symbols\.BTCUSDT\.volume must be a finite number > 0"),
        ({"symbols": {"BTCUSDT": 3}}, r"detector\.symbols\.BTCUSDT must be a table"),
        ({"symbols": [1]}, r"detector\.symbols must be a table"),
        ({"calibration": "/nonexistent/cal.toml"}, r"detector\.calibration: cannot read /nonexistent/cal\.toml"),
        ({"calibration": 3}, r"detector\.calibration must be a path"),
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
    assert cfg.volume.two_sided is False and cfg.price.effective_min_periods == 50


def test_legacy_config_keeps_the_old_statistics():
    old = DetectorConfig.legacy()
    assert (old.return_bucket_ns, old.volume_statistic, old.min_bucket_trades) == (0, "sum", 0)
    assert old.returns.threshold == 12.0 and old.volume.threshold == 10.0
    assert DetectorConfig.from_dict(old.to_dict()) == old


def test_calibration_file_and_symbol_thresholds(tmp_path):
    path = tmp_path / "cal.toml"
    path.write_text(
        "[detector]\nreturn_bucket_s = 5\n[detector.returns]\nthreshold = 15.0\n"
        "[detector.symbols.BTCUSDT]\nreturns = 20.0\n"
    )
    cfg = DetectorConfig.from_dict({"calibration": str(path), "cooldown_s": 30})
    assert cfg.return_bucket_ns == 5_000_000_000 and cfg.cooldown_ns == 30_000_000_000
    assert cfg.returns.threshold == 15.0
    # A symbol's missing metrics take the config's thresholds.
    assert cfg.thresholds_for("BTCUSDT") == (20.0, cfg.volume.threshold, cfg.price.threshold)
    assert cfg.thresholds_for("ETHUSDT") == (15.0, cfg.volume.threshold, cfg.price.threshold)
    # Keys given next to the file win over the file's.
    over = DetectorConfig.from_dict({"calibration": str(path), "return_bucket_s": 1})
    assert over.return_bucket_ns == 1_000_000_000
    assert DetectorConfig.from_dict(cfg.to_dict()) == cfg
    (tmp_path / "bad.toml").write_text("[detector\n")
    with pytest.raises(ValueError, match=r"detector\.calibration: .*bad\.toml is not valid TOML"):
        DetectorConfig.from_dict({"calibration": str(tmp_path / "bad.toml")})
    (tmp_path / "none.toml").write_text("[other]\n")
    with pytest.raises(ValueError, match=r"has no \[detector\] table"):
        DetectorConfig.from_dict({"calibration": str(tmp_path / "none.toml")})


def test_configs_stay_hashable_with_symbol_thresholds():
    a = DetectorConfig(symbols={"BTCUSDT": {"returns": 20.0}})
    assert hash(a) == hash(DetectorConfig(symbols={"BTCUSDT": [20.0, 11.0, 20.0]}))
    assert {a: 1}[DetectorConfig.from_dict(a.to_dict())] == 1
