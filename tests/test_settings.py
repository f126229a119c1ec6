"""Settings: TOML file, TRIPWIRE_* overrides, and errors that name the key and its origin."""

from __future__ import annotations

from pathlib import Path

import pytest

from tripwire.config import load_settings


def test_defaults_give_an_embedded_chdb_store_under_the_data_dir():
    s = load_settings(env={})
    assert s.store_url == f"chdb://{Path('data').resolve() / 'ticks'}"
    assert s.pipeline.shards == 2 and s.ray_address is None


def test_env_overrides_the_file_which_overrides_defaults(tmp_path):
    cfg = tmp_path / "tw.toml"
    cfg.write_text(
        '[pipeline]\nshards = 3\nbatch_ms = 2.5\n[detector.returns]\nthreshold = 9.0\n'
        '[store]\nurl = "http://u:p@h:8123/db"\n'
    )
    s = load_settings(cfg, env={"TRIPWIRE_PIPELINE__SHARDS": "5", "TRIPWIRE_RAY__ADDRESS": "x:1"})
    assert (s.pipeline.shards, s.pipeline.batch_ms) == (5, 2.5)
    assert s.detector.returns.threshold == 9.0 and s.store_url == "http://u:p@h:8123/db"
    assert s.ray_address == "x:1"
    s = load_settings(env={"TRIPWIRE_CONFIG": str(cfg)})
    assert s.pipeline.shards == 3


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TRIPWIRE_PIPELINE__SHARDS": "0"}, "pipeline.shards must be an integer >= 1, got 0 (from TRIPWIRE_PIPELINE__SHARDS)"),
        ({"TRIPWIRE_PIPELINE__BATCH_MS": "-1"}, "pipeline.batch_ms must be a number >= 0.0, got -1"),
        ({"TRIPWIRE_PIPELINE__SHRADS": "2"}, "pipeline.shrads is not a known key of [pipeline]"),
        ({"TRIPWIRE_DETECTOR__RETURNS__WINDOW": "0"}, "detector.returns.window must be an integer >= 1 and <= 10000000, got 0 (from TRIPWIRE_DETECTOR__RETURNS__WINDOW)"),
        ({"TRIPWIRE_STORE__URL": "7"}, "store.url must be a string, got 7 (from TRIPWIRE_STORE__URL)"),
        ({"TRIPWIRE_NOPE__X": "1"}, "nope is not a config section"),
    ],
)
def test_bad_values_name_the_key_and_where_it_came_from(env, message):
    with pytest.raises(ValueError) as info:
        load_settings(env=env)
    assert message in str(info.value)


def test_missing_or_broken_file_is_named(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_settings(tmp_path / "nope.toml", env={})
    bad = tmp_path / "bad.toml"
    bad.write_text("[pipeline\n")
    with pytest.raises(ValueError, match=f"config file {bad} is not valid TOML"):
        load_settings(bad, env={})


def test_llm_table_is_validated_with_the_rest(tmp_path):
    cfg = tmp_path / "tw.toml"
    cfg.write_text('[llm.budget]\nper_day_usd = 5.0\n')
    s = load_settings(cfg, env={"TRIPWIRE_LLM__BUDGET__PER_CALL_USD": "0.25"})
    assert (s.llm.budget.per_day_usd, s.llm.budget.per_call_usd) == (5.0, 0.25)
    assert [r.provider for r in s.llm.routes] == ["rules"]  # no keys: the offline analyst
    with pytest.raises(ValueError, match="llm.budget.per_day_usd.*TRIPWIRE_LLM__BUDGET__PER_DAY_USD"):
        load_settings(env={"TRIPWIRE_LLM__BUDGET__PER_DAY_USD": "-1"})
