"""The Serve *application builder* for ``serve deploy`` / ``serve run`` on a cluster.

``cluster/serve-config.yaml`` names ``serve_apps.deploy:app``; Serve calls :func:`app` with
the application's ``args`` inside the application's runtime environment, on a cluster node.
Everything secret comes from that node's environment (the env file the cluster launcher
sources before ``ray start``), never from the config file:

- ``TRIPWIRE_PG_DSN`` (required): a cluster uses a real PostgreSQL server; the private
  cluster Tripwire starts on a laptop cannot be shared between nodes.
- ``TRIPWIRE_API_TOKEN`` (required): the bearer token of the mutating routes. Only the
  builder reads it, and only a salted verifier of it (:mod:`serve_apps.bearer`) goes into the
  application: the replicas, the Serve controller and the dashboard never see the token.
- ``TRIPWIRE_CONFIG`` (optional): the settings file; a relative path is looked up in the
  working directory, then in the checkout.

``args`` (all optional)::

    symbols: [BTCUSDT, ETHUSDT]   # or "BTCUSDT,ETHUSDT"; else [serve] symbols, else the
                                  # default scenario's symbols
    config: tripwire.toml         # instead of TRIPWIRE_CONFIG
    probability_symbols: [PM-YES] # symbols priced as probabilities (prediction-market
                                  # tokens): scored on log-odds changes; must be in symbols
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ray import serve

from serve_apps.app import AppSpec, application
from serve_apps.bearer import TokenVerifier
from serve_apps.config import ServeConfig
from tripwire.config import load_settings

DSN_ENV = "TRIPWIRE_PG_DSN"
TOKEN_ENV = "TRIPWIRE_API_TOKEN"
MAX_SYMBOLS = 65_535  # the symbol table's id space (scenario n_symbols bound)
_KNOWN_ARGS = ("symbols", "config", "probability_symbols")
PROJECT_ROOT = Path(__file__).resolve().parents[1]  # the checkout (editable install)


def app(args: dict[str, Any] | None = None) -> serve.Application:
    """Build the bound Tripwire application from ``args`` and the environment."""
    args = dict(args or {})
    unknown = sorted(set(args) - set(_KNOWN_ARGS))
    if unknown:
        raise ValueError(f"unknown application args {unknown} (known: {', '.join(_KNOWN_ARGS)})")
    env = os.environ
    dsn = _required(env, DSN_ENV, "the PostgreSQL server's DSN (postgresql://...); a cluster "
                    "needs a real server every node can reach")
    verifier = TokenVerifier.of(_required(
        env, TOKEN_ENV, "the API's bearer token; put it in the nodes' environment, never in "
        "the Serve config"))
    settings = load_settings(_config_path(args.get("config") or env.get("TRIPWIRE_CONFIG")),
                             env=env)
    serve_table = settings.table("serve")
    # [serve] symbols belongs to this builder, not to ServeConfig: take it out first.
    symbols = _symbols(args.get("symbols", serve_table.pop("symbols", None)))
    serve_table.setdefault("shards", settings.pipeline.shards)
    config = ServeConfig.from_table(serve_table)
    probs = args.get("probability_symbols") or ()
    probs = _symbols(probs) if probs else ()
    unknown = sorted(set(probs) - set(symbols))
    if unknown:
        raise ValueError(f"probability_symbols not among the symbols: {unknown}")
    return application(AppSpec(settings, dsn, symbols, config, verifier,
                               probability_symbols=probs))


def _required(env: Mapping[str, str], name: str, what: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise ValueError(f"{name} is not set: {what}")
    return value


def _config_path(given: Any) -> Path | None:
    """The settings file: absolute, or relative to the working directory, else to the
    checkout (a Serve app has no working_dir of its own; its replicas' cwd is Ray's)."""
    if given is None or given == "":
        return None
    if not isinstance(given, str):
        raise ValueError(f"config must be a path string, got {given!r}")
    path = Path(given).expanduser()
    if path.is_absolute() or path.exists():
        return path
    in_checkout = PROJECT_ROOT / path
    if in_checkout.exists():
        return in_checkout
    raise ValueError(f"config file {given} does not exist (looked in {Path.cwd()} and "
                     f"{PROJECT_ROOT})")


def _symbols(given: Any) -> tuple[str, ...]:
    """Symbols from args/config (a list or a comma-separated string), or the scenario's."""
    if given is None:
        return _default_symbols()
    if isinstance(given, str):
        names = [s.strip() for s in given.split(",")]
    elif isinstance(given, list | tuple):
        names = list(given)
    else:
        raise ValueError(f"symbols must be a list or a comma-separated string, got {given!r}")
    bad = [s for s in names if not isinstance(s, str) or not s.strip()]
    if bad or not names:
        raise ValueError(f"symbols must be non-empty names, got {given!r}")
    names = [s.strip() for s in names]
    if len(set(names)) != len(names):
        raise ValueError(f"symbols must not repeat, got {given!r}")
    if len(names) > MAX_SYMBOLS:
        raise ValueError(f"symbols: at most {MAX_SYMBOLS}, got {len(names)}")
    return tuple(names)


def _default_symbols() -> tuple[str, ...]:
    # Imported here: the scenario module is only needed when no symbols are given.
    from tripwire.feeds.scenario import Scenario, default_scenario_config

    return tuple(Scenario(default_scenario_config()).symbols.names)

