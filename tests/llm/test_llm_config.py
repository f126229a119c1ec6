"""The [llm] config table: TOML routes, price resolution, errors naming the key, no secrets."""

from __future__ import annotations

import pytest

from tripwire.llm.config import (
    BudgetConfig,
    CacheConfig,
    LLMConfig,
    Price,
    RouteConfig,
    RoutePolicy,
    load_llm_config,
    load_llm_config_toml,
)

TOML = """
[data]
dir = "/tmp/ignored"

[llm.budget]
per_call_usd = 0.05
per_day_usd = 5.0

[llm.cache]
semantic_threshold = 0.9
semantic_ttl_s = 120

[llm.prices."claude-haiku-4-5"]
input = 1.0
output = 5.0

[[llm.routes]]
name = "claude"
provider = "anthropic"
model = "claude-haiku-4-5"
api_key_env = "ANTHROPIC_API_KEY"
timeout_s = 20
retries = 3
failure_threshold = 4
cooldown_s = 45

[[llm.routes]]
name = "local"
provider = "openai-compatible"
model = "smollm2"
base_url = "http://127.0.0.1:8080/v1"
metered = false
rate_per_s = inf
"""


def test_toml_routes_in_order_with_prices_and_the_rules_fallback(tmp_path):
    path = tmp_path / "tripwire.toml"
    path.write_text(TOML)
    cfg = load_llm_config_toml(path)
    assert [r.name for r in cfg.routes] == ["claude", "local", "rules"]
    claude, local, rules = cfg.routes
    assert claude.price == Price(input=1.0, output=5.0)
    assert (claude.timeout_s, claude.retries, claude.failure_threshold) == (20, 3, 4)
    assert claude.api_key_env == "ANTHROPIC_API_KEY" and claude.metered
    assert local.price is None and not local.metered and local.rate_per_s == float("inf")
    assert (rules.provider, rules.metered, rules.cache_answers) == ("rules", False, False)
    assert cfg.budget.per_day_usd == 5.0 and cfg.budget.per_call_tokens == 50_000
    assert cfg.cache.semantic_threshold == 0.9


def test_defaults_are_the_offline_rules_analyst():
    cfg = load_llm_config(None)
    assert [(r.name, r.provider) for r in cfg.routes] == [("rules", "rules")]
    assert isinstance(cfg.budget, BudgetConfig) and isinstance(cfg.cache, CacheConfig)


def test_route_price_beats_the_table_and_rules_fallback_can_be_off():
    cfg = load_llm_config({
        "prices": {"gpt": {"input": 1, "output": 2}},
        "routes": [{"name": "a", "provider": "openai", "model": "gpt",
                    "price": {"input": 9, "output": 9}}],
        "rules_fallback": False,
    })
    assert [r.name for r in cfg.routes] == ["a"] and cfg.routes[0].price.input == 9


def test_explicit_rules_route_is_not_duplicated():
    cfg = load_llm_config({"routes": [{"name": "offline", "provider": "rules"},
                                      {"name": "cas", "provider": "cassette"}]})
    assert [r.name for r in cfg.routes] == ["offline", "cas"]
    assert not cfg.routes[1].metered
    cached_rules = load_llm_config({"routes": [{"name": "r", "provider": "rules",
                                                "cache_answers": True}]})
    assert cached_rules.routes[0].cache_answers  # an explicit setting wins


@pytest.mark.parametrize("table,message", [
    ({"routes": [{"name": "a", "provider": "rules", "timeout_s": 0}]},
     "llm.routes[0].timeout_s: Input should be greater than 0, got 0"),
    ({"routes": [{"name": "a", "provider": "rules"}, {"name": "b", "provider": "rules",
                                                       "retries": -1}]},
     "llm.routes[1].retries: Input should be greater than or equal to 0, got -1"),
    ({"routes": [{"name": "a", "provider": "gemini"}]},
     "llm.routes[0].provider: Input should be"),
    ({"routes": [{"provider": "rules"}]}, "llm.routes[0].name: Field required"),
    ({"routes": [{"name": "a b", "provider": "rules"}]}, "llm.routes[0].name: String should"),
    ({"routes": [{"name": "a", "provider": "rules"}] * 2},
     "llm.routes[1].name: duplicate route name 'a'"),
    ({"routes": [{"name": "a", "provider": "openai", "model": "gpt-9"}]},
     "llm.routes[0].price: no price for model 'gpt-9' of metered route 'a'"),
    ({"routes": [{"name": "a", "provider": "rules", "backoff_base_s": 2, "backoff_cap_s": 1}]},
     "llm.routes[0].backoff_cap_s: must be >= backoff_base_s"),
    ({"routes": [{"name": "a", "provider": "rules", "timout_s": 3}]},
     "llm.routes[0].timout_s is not a known key"),
    ({"budget": {"per_day_usd": -1}}, "llm.budget.per_day_usd: Input should be greater than 0"),
    ({"cache": {"semantic_threshold": 1.5}}, "llm.cache.semantic_threshold"),
    ({"cache": {"weight_news": 0.9}}, "llm.cache: weight_metric + weight_z + weight_news"),
    ({"prices": {"m": {"input": -1, "output": 0}}}, "llm.prices.m.input"),
    ({"routing": []}, "llm.routing is not a known key"),
    ({"routes": [{"name": "rules", "provider": "openai", "metered": False}]},
     "llm.routes: the name 'rules' is reserved"),
    ({"routes": [], "rules_fallback": False}, "llm.routes: no routes"),
])
def test_bad_values_name_the_key(table, message):
    with pytest.raises(ValueError) as info:
        load_llm_config(table)
    assert message in str(info.value)


def test_several_errors_are_reported_together():
    with pytest.raises(ValueError) as info:
        load_llm_config({"budget": {"per_day_usd": -1, "per_call_tokens": 0}})
    assert "per_day_usd" in str(info.value) and "per_call_tokens" in str(info.value)


def test_secrets_never_appear_in_errors_or_reprs():
    with pytest.raises(ValueError) as info:
        load_llm_config({"routes": [{"name": "a", "provider": "openai", "model": "m",
                                     "metered": False, "api_key": "sk-live-SECRET"}]})
    assert "SECRET" not in str(info.value) and "set api_key_env" in str(info.value)
    with pytest.raises(ValueError) as info:
        load_llm_config({"routes": [{"name": "a", "provider": "openai", "metered": False,
                                     "base_url": ["http://u:SECRET@h"]}]})
    assert "SECRET" not in str(info.value) and "llm.routes[0].base_url" in str(info.value)
    with pytest.raises(ValueError) as info:
        load_llm_config({"routes": [{"name": "a", "provider": "openai", "metered": False,
                                     "api_key_env": "sk-SECRET-not-a-name"}]})
    assert "SECRET" not in str(info.value)
    route = RouteConfig(name="a", provider="openai", base_url="http://u:SECRET@h",
                        metered=False, options={"token": "SECRET"})
    assert "SECRET" not in repr(route) and "SECRET" not in str(route)


def test_toml_file_problems_are_named(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_llm_config_toml(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[llm\n")
    with pytest.raises(ValueError, match="not valid TOML"):
        load_llm_config_toml(bad)
    odd = tmp_path / "odd.toml"
    odd.write_text('llm = "x"\n')
    with pytest.raises(ValueError, match="llm must be a table"):
        load_llm_config_toml(odd)
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    assert load_llm_config_toml(empty).routes[0].provider == "rules"


def test_models_are_frozen_and_a_route_config_is_a_policy():
    cfg = LLMConfig()
    with pytest.raises(Exception, match="frozen"):
        cfg.rules_fallback = False
    assert isinstance(cfg.routes[0], RoutePolicy)
    assert RoutePolicy().retries == 2
