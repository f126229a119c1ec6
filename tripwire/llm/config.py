"""LLM configuration: routes, prices, budgets and caches as validated pydantic models.

The ``[llm]`` table of the config file, with one ``[[llm.routes]]`` entry per route in
failover order::

    [llm.budget]
    per_day_usd = 5.0

    [llm.prices."claude-haiku-4-5"]      # USD per million tokens, by model
    input = 1.0
    output = 5.0

    [[llm.routes]]
    name = "claude"
    provider = "anthropic"
    model = "claude-haiku-4-5"
    api_key_env = "ANTHROPIC_API_KEY"   # the variable's *name*: keys never live in config
    timeout_s = 20
    retries = 2

A route's price comes from its own ``price`` or from ``[llm.prices]`` by model; a metered
route without one is an error, so the ledger never records a paid call as free. The offline
``rules`` analyst is appended as the last route unless ``rules_fallback = false``.
A bad value stops start-up with a message naming the key:

>>> load_llm_config({"routes": [{"name": "a", "provider": "rules", "timeout_s": -1}]})
Traceback (most recent call last):
...
ValueError: llm.routes[0].timeout_s: Input should be greater than 0, got -1
>>> cfg = load_llm_config({})
>>> [(r.name, r.provider, r.metered) for r in cfg.routes]
[('rules', 'rules', False)]
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tripwire.llm.base import Usage

ProviderKind = Literal["anthropic", "openai", "openai-compatible", "rules", "cassette", "fixed"]

# Providers that cost nothing and answer deterministically: not counted against budgets,
# and their answers are not cached (a cached fallback answer would outlive the outage).
# A cassette in *record* mode does spend money through its inner provider: give that route
# ``metered = true`` and a price. ``fixed``: the lab's no-filter policies
# (:mod:`tripwire.llm.fixed`), which trade every trip by a fixed rule.
_FREE_KINDS = frozenset({"rules", "cassette", "fixed"})

_STRICT = ConfigDict(extra="forbid", frozen=True)


class Price(BaseModel):
    """USD per million tokens.

    >>> Price(input=3.0, output=15.0).cost(Usage(1_000, 200))
    0.006
    """

    model_config = _STRICT

    input: float = Field(ge=0, allow_inf_nan=False)
    output: float = Field(ge=0, allow_inf_nan=False)

    def cost(self, usage: Usage) -> float:
        return (usage.input_tokens * self.input + usage.output_tokens * self.output) / 1e6


class RoutePolicy(BaseModel):
    """How the router treats one route: time, load, retry and breaker bounds, price.

    rate_per_s/burst    token bucket in front of the provider (inf: unlimited)
    retries             re-attempts after a retryable failure (timeout, 5xx, 529, 429)
    backoff_*           capped exponential backoff with full jitter between retries
    max_retry_after_s   a Retry-After longer than this fails over instead of waiting
    failure_threshold   consecutive failed provider calls that open the breaker
    cooldown_s          open time before a single half-open trial call
    metered             counted against the token/USD budgets
    per_day_tokens/usd  this route's own share of the UTC day (on top of [llm.budget]'s
                        total; shared by every process like the total)
    cache_answers       successful answers go into the response cache
    """

    model_config = _STRICT

    timeout_s: float = Field(default=30.0, gt=0, allow_inf_nan=False)
    max_concurrency: int = Field(default=4, ge=1)
    rate_per_s: float = Field(default=5.0, gt=0)
    burst: int = Field(default=10, ge=1)
    retries: int = Field(default=2, ge=0, le=20)
    backoff_base_s: float = Field(default=0.25, ge=0, allow_inf_nan=False)
    backoff_cap_s: float = Field(default=8.0, ge=0, allow_inf_nan=False)
    max_retry_after_s: float = Field(default=30.0, ge=0, allow_inf_nan=False)
    failure_threshold: int = Field(default=5, ge=1)
    cooldown_s: float = Field(default=30.0, gt=0, allow_inf_nan=False)
    price: Price | None = None
    metered: bool = True
    per_day_tokens: int | None = Field(default=None, ge=1)
    per_day_usd: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    cache_answers: bool = True

    @model_validator(mode="after")
    def _backoff_order(self) -> RoutePolicy:
        if self.backoff_cap_s < self.backoff_base_s:
            raise ValueError(
                f"backoff_cap_s: must be >= backoff_base_s ({self.backoff_base_s}), "
                f"got {self.backoff_cap_s}"
            )
        return self


class RouteConfig(RoutePolicy):
    """One ``[[llm.routes]]`` entry: which provider and model, plus its policy."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    provider: ProviderKind
    model: str = ""
    # repr=False: a base URL may carry credentials (http://user:pass@host) and options may
    # hold provider settings nobody wants in a log line.
    base_url: str | None = Field(default=None, repr=False)
    api_key_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    options: dict[str, Any] = Field(default_factory=dict, repr=False)
    # The model's training-data cutoff (ISO date, e.g. "2024-10-01"): results on market data
    # from before it are not out-of-sample (the model may have read about those days), and
    # ``tripwire eval`` on stored data says so. None: unknown (or no trained model).
    training_cutoff: str | None = Field(default=None, pattern=r"^\d{4}-\d{2}-\d{2}$")

    @model_validator(mode="before")
    @classmethod
    def _free_kind_defaults(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and data.get("provider") in _FREE_KINDS:
            data = {"metered": False, "cache_answers": False, **data}
        return data


class BudgetConfig(BaseModel):
    """Token and USD ceilings per call (all attempts of it) and per UTC day; None: no limit."""

    model_config = _STRICT

    per_call_tokens: int | None = Field(default=50_000, ge=1)
    per_call_usd: float | None = Field(default=1.0, gt=0, allow_inf_nan=False)
    per_day_tokens: int | None = Field(default=5_000_000, ge=1)
    per_day_usd: float | None = Field(default=20.0, gt=0, allow_inf_nan=False)


class CacheConfig(BaseModel):
    """Exact-fingerprint and semantic (incident-feature) response caches."""

    model_config = _STRICT

    enabled: bool = True
    exact_ttl_s: float = Field(default=3600.0, gt=0, allow_inf_nan=False)
    exact_capacity: int = Field(default=4096, ge=1)
    semantic: bool = True
    semantic_ttl_s: float = Field(default=300.0, gt=0, allow_inf_nan=False)
    semantic_capacity: int = Field(default=1024, ge=1)
    semantic_threshold: float = Field(default=0.85, gt=0, le=1)
    semantic_per_symbol: int = Field(default=32, ge=1)  # candidates compared per lookup
    weight_metric: float = Field(default=0.3, ge=0)
    weight_z: float = Field(default=0.3, ge=0)
    weight_news: float = Field(default=0.4, ge=0)

    @model_validator(mode="after")
    def _weights(self) -> CacheConfig:
        total = self.weight_metric + self.weight_z + self.weight_news
        if abs(total - 1.0) > 1e-9:
            raise ValueError(f"weight_metric + weight_z + weight_news: must sum to 1, got {total}")
        return self


def _rules_route() -> RouteConfig:
    return RouteConfig(name="rules", provider="rules")


class LLMConfig(BaseModel):
    """The whole ``[llm]`` table."""

    model_config = _STRICT

    routes: tuple[RouteConfig, ...] = ()
    prices: dict[str, Price] = Field(default_factory=dict)
    budget: BudgetConfig = Field(default_factory=BudgetConfig)
    cache: CacheConfig = Field(default_factory=CacheConfig)
    rules_fallback: bool = True

    @model_validator(mode="after")
    def _resolve_routes(self) -> LLMConfig:
        seen: set[str] = set()
        routes: list[RouteConfig] = []
        for i, route in enumerate(self.routes):
            if route.name in seen:
                raise ValueError(f"routes[{i}].name: duplicate route name {route.name!r}")
            seen.add(route.name)
            routes.append(self._priced(i, route))
        if self.rules_fallback and not any(r.provider == "rules" for r in routes):
            if "rules" in seen:
                raise ValueError("routes: the name 'rules' is reserved for the rules fallback")
            routes.append(_rules_route())
        if not routes:
            raise ValueError("routes: no routes and rules_fallback = false")
        # Frozen model: the resolved tuple replaces the given one once, at validation.
        object.__setattr__(self, "routes", tuple(routes))
        return self

    def _priced(self, i: int, route: RouteConfig) -> RouteConfig:
        if route.price is not None:
            return route
        price = self.prices.get(route.model)
        if price is not None:
            return route.model_copy(update={"price": price})
        if route.metered:
            raise ValueError(
                f"routes[{i}].price: no price for model {route.model!r} of metered route "
                f"{route.name!r} (add [llm.prices.{route.model!r}], a price on the route, "
                "or metered = false)"
            )
        return route


# ----------------------------------------------------------------------------- loading

# Values of these keys are never echoed in errors (URLs can carry credentials).
_QUIET_KEYS = frozenset({"base_url", "options", "api_key_env"})


def _key(prefix: str, loc: tuple[int | str, ...]) -> str:
    out = prefix
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _describe(prefix: str, err: Mapping[str, Any]) -> str:
    loc = tuple(err["loc"])
    msg = str(err["msg"])
    if err["type"] == "extra_forbidden":
        hint = " (secrets come from the environment: set api_key_env)" if loc[-1:] == (
            "api_key",
        ) else ""
        return f"{_key(prefix, loc)} is not a known key{hint}"
    if err["type"] == "value_error":
        # Our own model validators start the message with the key path relative to the model.
        text = msg.removeprefix("Value error, ")
        rel, sep, rest = text.partition(": ")
        if sep and " " not in rel:
            return f"{_key(prefix, loc)}.{rel}: {rest}"
        return f"{_key(prefix, loc)}: {text}"
    value = err.get("input")
    quiet = any(part in _QUIET_KEYS for part in loc) or isinstance(value, Mapping)
    tail = "" if quiet or err["type"] == "missing" else f", got {value!r}"
    return f"{_key(prefix, loc)}: {msg}{tail}"


def load_llm_config(data: Mapping[str, Any] | None, *, prefix: str = "llm") -> LLMConfig:
    """Validate the ``[llm]`` table; a ValueError names every bad key."""
    try:
        return LLMConfig.model_validate(dict(data or {}))
    except ValidationError as exc:
        raise ValueError("; ".join(_describe(prefix, e) for e in exc.errors())) from None


def load_llm_config_toml(path: str | Path) -> LLMConfig:
    """The ``[llm]`` table of a TOML file (defaults when the file has none)."""
    try:
        doc = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ValueError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"config file {path} is not valid TOML: {exc}") from None
    table = doc.get("llm", {})
    if not isinstance(table, dict):
        raise ValueError("llm must be a table")
    return load_llm_config(table)
