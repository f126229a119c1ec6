"""The policies ``tripwire eval`` compares: a small registry other parts extend.

A :class:`Policy` says how one arm of the comparison differs from the shared backtest
settings: :meth:`Policy.configure` returns the fields of the backtest's shard config to
replace (``llm``, ``decisions``, ``cassette_text``, ... -- the names of
``actors.backtest.ShardConfig``; this module stays free of Ray and never imports it), or
raises :class:`Unavailable` with the reason the arm cannot run here (printed in the report,
never silently dropped).

Built in (:func:`builtin`):

* ``no_filter_mr`` / ``no_filter_mom`` -- the baselines: trade every trip by a fixed
  mean-reversion / momentum rule (:mod:`tripwire.llm.fixed`), sized by the same risk gate;
* ``rules`` -- the offline rules analyst (:mod:`tripwire.llm.rules`);
* ``local`` -- the SmolLM2 model behind llama.cpp (:mod:`tripwire.llm.local`), when its
  model file is installed (``make setup-local-llm``);
* ``route:<name>`` -- each route of the user's ``[llm]`` config (its own failover off: an
  error is a failed triage, not a rules answer), and ``cassette`` -- a recorded cassette
  replayed (``--cassette``).

* ``rules_memory`` / ``local_memory`` -- the rules analyst / the local model with
  ``[memory] enabled`` (:mod:`tripwire.decisions.memory`: past verdicts, decisions and the
  outcomes of similar incidents in the prompt). The rules analyst ignores the prompt, so
  ``rules_memory`` is the control that must equal ``rules``;
* ``rules_panel`` / ``local_panel`` -- the consensus panel (:mod:`tripwire.decisions.panel`:
  order-flow, news and market-context analysts, 2 of 3) instead of one analyst; its cost
  shows as three calls per incident.

To add an arm, :func:`register` a Policy whose ``configure`` returns the shard fields to
replace, and under :data:`DECISIONS_UPDATE` the decision settings to flip (a dict of
``DecisionConfig`` fields); ``tripwire eval --policies`` picks arms by name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tripwire.llm.config import LLMConfig, load_llm_config

BASELINE = "no_filter_mr"  # what every other arm is tested against
# The key of Policy.configure's answer holding DecisionConfig fields to replace on the
# shared base (the memory and panel arms flip [memory] / [panel] and keep the rest).
DECISIONS_UPDATE = "decisions_update"


class Unavailable(Exception):
    """This arm cannot run here; the message says why (shown in the report)."""


@dataclass(slots=True)
class EvalContext:
    """What an arm may build from: the user's LLM config, a cassette, a local server."""

    llm: LLMConfig | None = None  # the user's [llm] table (None: defaults)
    cassette_text: str | None = None
    cassette_name: str | None = None
    local_base_url: str | None = None  # set by the runner once the local server is up
    extras: dict[str, Any] = field(default_factory=dict)  # for registered arms


@dataclass(frozen=True, slots=True)
class Policy:
    """One arm. ``analyst``: its verdicts are real classifications (scored in the triage
    table); ``baseline``: it is the reference the paired tests compare against."""

    name: str
    summary: str
    configure: Callable[[EvalContext], dict[str, Any]]
    analyst: bool = True
    baseline: bool = False
    needs_local: bool = False  # the runner starts the local model server for it


_REGISTRY: dict[str, Policy] = {}


def register(policy: Policy, *, replace: bool = False) -> Policy:
    """Add an arm (``replace``: overwrite one of the same name)."""
    if policy.name in _REGISTRY and not replace:
        raise ValueError(f"policy {policy.name!r} is already registered")
    _REGISTRY[policy.name] = policy
    return policy


def registered() -> dict[str, Policy]:
    return dict(_REGISTRY)


def _fixed(variant: str) -> Callable[[EvalContext], dict[str, Any]]:
    def configure(ctx: EvalContext) -> dict[str, Any]:
        return {"llm": load_llm_config({"routes": [
            {"name": f"fixed-{variant}", "provider": "fixed",
             "options": {"variant": variant}}], "rules_fallback": False}),
            "cassette_text": None}
    return configure


def _rules(ctx: EvalContext) -> dict[str, Any]:
    return {"llm": load_llm_config({}), "cassette_text": None}


def _local(ctx: EvalContext) -> dict[str, Any]:
    if ctx.local_base_url is None:
        raise Unavailable("the local model server is not running")
    return {"llm": load_llm_config({"routes": [{
        "name": "local", "provider": "openai-compatible",
        "model": ctx.extras.get("local_model_id") or "local",
        "options": {"mode": "json_schema"}, "training_cutoff": ctx.extras.get(
            "local_training_cutoff"),
        "base_url": ctx.local_base_url, "metered": False, "timeout_s": 120,
        "max_concurrency": 1, "rate_per_s": 1000, "burst": 1000, "retries": 0,
        "cache_answers": False}], "rules_fallback": False}), "cassette_text": None}


def local_available() -> str | None:
    """None when the local model can run here, else why not."""
    import importlib.util

    from tripwire.llm.local import INSTALL_HINT, SERVER_MODULES, find_gguf

    if any(importlib.util.find_spec(m) is None for m in SERVER_MODULES):
        return f"llama.cpp's server (xllamacpp) is not installed: {INSTALL_HINT}"
    try:
        find_gguf()
    except Exception as exc:  # any failure to find it means "not installed"
        return f"no local model file ({exc}): {INSTALL_HINT}"
    return None


def route_policy(name: str) -> Policy:
    """The arm of one configured route, alone (no rules fallback: its failures count)."""

    def configure(ctx: EvalContext) -> dict[str, Any]:
        routes = {r.name: r for r in (ctx.llm.routes if ctx.llm else ())}
        if name not in routes:
            raise Unavailable(f"no route named {name!r} in [llm] (known: "
                              f"{', '.join(routes) or 'none'})")
        llm = ctx.llm.model_copy(update={"routes": (routes[name],), "rules_fallback": False})
        return {"llm": load_llm_config(llm.model_dump(mode="json")), "cassette_text": None}

    return Policy(f"route:{name}", f"the configured route {name!r} alone", configure)


def _cassette(ctx: EvalContext) -> dict[str, Any]:
    if ctx.cassette_text is None:
        raise Unavailable("no --cassette given")
    return {"cassette_text": ctx.cassette_text, "cassette_mode": "strict", "llm": None}


def _with(configure: Callable[[EvalContext], dict[str, Any]], **flips: Any
          ) -> Callable[[EvalContext], dict[str, Any]]:
    """``configure`` plus decision settings flipped (see :data:`DECISIONS_UPDATE`)."""
    def wrapped(ctx: EvalContext) -> dict[str, Any]:
        return {**configure(ctx), DECISIONS_UPDATE: dict(flips)}
    return wrapped


def _memory_on() -> Any:
    from tripwire.decisions.memory import MemorySettings

    return MemorySettings(enabled=True)


def _panel_on() -> Any:
    from tripwire.decisions.panel import PanelSettings

    return PanelSettings(enabled=True)


def builtin() -> None:
    """Register the built-in arms (idempotent)."""
    for p in (
        Policy("no_filter_mr", "trade every trip, against the move (mean reversion)",
               _fixed("mean_reversion"), analyst=False, baseline=True),
        Policy("no_filter_mom", "trade every trip, with the move (momentum)",
               _fixed("momentum"), analyst=False),
        Policy("rules", "the offline rules analyst", _rules),
        Policy("local", "SmolLM2-135M behind llama.cpp (local, offline)", _local,
               needs_local=True),
        Policy("cassette", "a recorded cassette, replayed strictly (a miss fails closed)",
               _cassette),
        Policy("rules_memory", "the rules analyst with [memory] on (a control: rules ignore "
               "the prompt)", _with(_rules, memory=_memory_on())),
        Policy("local_memory", "the local model with [memory] on",
               _with(_local, memory=_memory_on()), needs_local=True),
        Policy("rules_panel", "the consensus panel of rules analysts (2 of 3)",
               _with(_rules, panel=_panel_on())),
        Policy("local_panel", "the consensus panel of local-model analysts (2 of 3)",
               _with(_local, panel=_panel_on()), needs_local=True),
    ):
        register(p, replace=True)


DEFAULT_POLICIES = ("no_filter_mr", "no_filter_mom", "rules", "local")


def select(names: list[str] | tuple[str, ...], ctx: EvalContext) -> list[Policy]:
    """The arms named (``route:<name>`` built on demand); the baseline always first."""
    builtin()
    out: list[Policy] = []
    for n in names:
        if n.startswith("route:"):
            out.append(route_policy(n.removeprefix("route:")))
        elif n in _REGISTRY:
            out.append(_REGISTRY[n])
        else:
            raise ValueError(f"--policies: unknown policy {n!r} (known: "
                             f"{', '.join(sorted(_REGISTRY))}, route:<name>)")
    if BASELINE not in [p.name for p in out]:
        out.insert(0, _REGISTRY[BASELINE])
    return out
