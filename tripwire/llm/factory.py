"""From the ``[llm]`` settings to a working router: one provider per configured route.

Keys come from the environment variable a route names (``api_key_env``; by default
``ANTHROPIC_API_KEY`` / ``OPENAI_API_KEY``), never from the settings file. A route whose
key is missing is left out and reported in :attr:`LLMStack.unavailable` (by name, never the
key), so a laptop without keys still answers through the offline rules analyst, and the
reason a paid route is not used is visible rather than silent.

A ``cassette`` route takes ``options = {path = "...", mode = "strict" | "replay" | "record",
inner = "<route name>"}``: it replays recorded answers, and in record mode calls the named
route and keeps what it answered.

>>> from tripwire.llm.config import load_llm_config
>>> stack = build_llm(load_llm_config({"routes": [
...     {"name": "claude", "provider": "anthropic", "model": "claude-haiku-4-5",
...      "api_key_env": "NO_SUCH_KEY_SET", "price": {"input": 1.0, "output": 5.0}}]}), env={})
>>> stack.router.route_names, stack.unavailable
(['rules'], [('claude', 'NO_SUCH_KEY_SET is not set')])
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tripwire.llm.base import Provider
from tripwire.llm.config import LLMConfig, RouteConfig
from tripwire.llm.ledger import LedgerSink
from tripwire.llm.limits import Budget, SharedBudget
from tripwire.llm.router import Router, build_router
from tripwire.model import Clock

_DEFAULT_KEY_ENV = {"anthropic": "ANTHROPIC_API_KEY", "openai": "OPENAI_API_KEY"}


class RouteUnavailable(ValueError):
    """A route that cannot be built here (no key, no inner route); the message says why."""


@dataclass
class LLMStack:
    router: Router
    providers: dict[str, Provider]
    unavailable: list[tuple[str, str]] = field(default_factory=list)

    async def aclose(self) -> None:
        await self.router.aclose()


def provider_for(
    route: RouteConfig, env: Mapping[str, str], built: Mapping[str, Provider]
) -> Provider:
    """The provider a route describes; RouteUnavailable when it cannot be built here."""
    kind, opts = route.provider, dict(route.options)
    if kind == "rules":
        from tripwire.llm.rules import RulesProvider

        return RulesProvider(**({"model": route.model} if route.model else {}))
    if kind == "cassette":
        return _cassette(route, opts, built)
    if kind == "fixed":
        from tripwire.llm.fixed import FixedRuleProvider

        return FixedRuleProvider(**opts)
    key = _key(route, env)
    if kind == "anthropic":
        from tripwire.llm.providers import AnthropicProvider

        return AnthropicProvider(route.model, api_key=key, base_url=route.base_url,
                                 name=route.name, **opts)
    from tripwire.llm.providers import OpenAIProvider

    if kind == "openai-compatible" and not route.base_url:
        raise RouteUnavailable("an openai-compatible route needs base_url")
    return OpenAIProvider(route.model, api_key=key, base_url=route.base_url, name=route.name,
                          **opts)


def _key(route: RouteConfig, env: Mapping[str, str]) -> str | None:
    name = route.api_key_env or _DEFAULT_KEY_ENV.get(route.provider)
    if name is None:  # a local compatible server without auth
        return None
    value = env.get(name)
    if not value:
        raise RouteUnavailable(f"{name} is not set")
    return value


def _cassette(route: RouteConfig, opts: dict[str, Any], built: Mapping[str, Provider]):
    from tripwire.llm.cassette import CassetteProvider

    if "path" not in opts:
        raise RouteUnavailable("a cassette route needs options.path")
    inner_name = opts.pop("inner", None)
    inner = None
    if inner_name is not None:
        if inner_name not in built:
            raise RouteUnavailable(f"inner route {inner_name!r} is not available")
        inner = built[inner_name]
    return CassetteProvider(inner, opts.pop("path"), **opts)


def build_llm(
    config: LLMConfig,
    *,
    env: Mapping[str, str] | None = None,
    ledger: LedgerSink | None = None,
    budget: Budget | SharedBudget | None = None,
    clock: Clock | None = None,
    rng: random.Random | None = None,
) -> LLMStack:
    """Providers for every buildable route (cassettes after the routes they wrap).

    ``ledger`` and ``budget``: where calls are recorded and budgets held; a cluster process
    passes :class:`tripwire.llm.spend.PgSpend`'s (see :func:`build_llm_pg`), a lone run the
    JSONL ledger and the in-process budget (the default).
    """
    env = os.environ if env is None else env
    built: dict[str, Provider] = {}
    unavailable: list[tuple[str, str]] = []
    ordered = sorted(config.routes, key=lambda r: r.provider == "cassette")
    for route in ordered:
        try:
            built[route.name] = provider_for(route, env, built)
        except RouteUnavailable as exc:
            unavailable.append((route.name, str(exc)))
    usable = tuple(r for r in config.routes if r.name in built)
    if not usable:
        raise RouteUnavailable(
            "no usable LLM route: " + "; ".join(f"{n}: {why}" for n, why in unavailable)
        )
    config = config.model_copy(update={"routes": usable})
    router = build_router(config, built, ledger=ledger, budget=budget, clock=clock, rng=rng)
    return LLMStack(router, built, unavailable)


async def build_llm_pg(
    config: LLMConfig,
    dsn: str,
    *,
    env: Mapping[str, str] | None = None,
    rng: random.Random | None = None,
) -> LLMStack:
    """:func:`build_llm` with the ledger and the day budgets in PostgreSQL, shared with every
    other process on ``dsn`` (the router's ``aclose`` closes their pool). Real time: budgets
    are about real calls, whatever clock the caller's market runs on."""
    from tripwire.llm.spend import PgSpend

    spend = await PgSpend.connect(dsn, config)
    try:
        return build_llm(config, env=env, ledger=spend.ledger, budget=spend.budget, rng=rng)
    except BaseException:
        await spend.pool.close()
        raise
