"""``tripwire config show`` and ``tripwire config schema``: the one configuration model, seen.

``show`` loads the settings exactly as every command does (defaults, the TOML file of
``--config`` or ``$TRIPWIRE_CONFIG``, then ``TRIPWIRE_<SECTION>__<KEY>`` variables),
validates every section, and prints each key's effective value and where it came from:
``default``, ``file`` (with the path) or ``env`` (with the variable). A bad value exits 2
with the message naming the key and the variable. Secrets are never printed: a URL's
password (``store.url``, a DSN, an LLM route's ``base_url``) and any key named like a
password, secret or token show as ``***``.

``schema`` prints the JSON Schema (draft 2020-12) of the whole file, one property per
section, generated from the same pydantic models that validate it.

Sections owned by a runtime layer (``[serve]``) are registered by that layer
(:func:`tripwire.config.register_section`) when the ``tripwire`` command loads its
commands; the domain never imports it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel

from tripwire.commands.common import add_config, add_json
from tripwire.config import (
    DataSection,
    DetectorSection,
    PipelineSettings,
    RaySection,
    Settings,
    StoreSection,
    TimeSettings,
    load_settings,
    registered_sections,
)
from tripwire.config_model import json_schema
from tripwire.decisions.config import (
    DEFAULT_LIMITS,
    MemorySection,
    NewsSection,
    PanelSection,
    RiskSection,
    SignoffSettings,
)
from tripwire.llm.config import LLMConfig
from tripwire.telemetry import TelemetrySettings, telemetry_settings
from tripwire.watchdog.config import WatchdogConfig, load_watchdog_config

HIDDEN = "***"
# Keys whose values are secrets by name (api_key_env and api_token_env hold a variable's
# NAME, not a secret, and stay visible).
_SECRET_KEY = re.compile(r"(^|_)(password|passwd|secret|token|api_key)$", re.IGNORECASE)
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^/@:\s]*:)[^/@\s]*(?=@)")
_QUERY_PASSWORD = re.compile(r"(?P<head>[?&](password|sslpassword|token)=)[^&\s]*",
                             re.IGNORECASE)


def redact(key: str, value: Any) -> Any:
    """``value`` with every secret in it replaced by ``***``.

    >>> redact("url", "postgresql://tw:s3cret@db:5432/tripwire?sslmode=require")
    'postgresql://tw:***@db:5432/tripwire?sslmode=require'
    >>> redact("webhook_token", "abc"), redact("api_key_env", "OPENAI_API_KEY")
    ('***', 'OPENAI_API_KEY')
    """
    if isinstance(value, Mapping):
        if key == "options":  # a route's provider options: values stay out of sight
            return {str(k): HIDDEN for k in value}
        return {k: redact(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(key, v) for v in value]
    if isinstance(value, str):
        if value and _SECRET_KEY.search(key):
            return HIDDEN
        value = _URL_PASSWORD.sub(lambda m: m.group("head") + HIDDEN, value)
        return _QUERY_PASSWORD.sub(lambda m: m.group("head") + HIDDEN, value)
    return value


# -- the sections ----------------------------------------------------------------------------

def _dump(obj: Any) -> dict[str, Any]:
    if isinstance(obj, BaseModel):
        return obj.model_dump(mode="json")
    if dataclasses.is_dataclass(obj):
        return json.loads(json.dumps(dataclasses.asdict(obj), default=str))
    return dict(obj)


def _risk(s: Settings) -> dict[str, Any]:
    d = s.decisions
    out = {"mode": d.mode.value, **{k: getattr(d.limits, k) for k in DEFAULT_LIMITS}}
    out["allowed_symbols"] = sorted(d.limits.allowed_symbols)
    return out


# section -> (its model, its effective values from the loaded settings)
DOMAIN_SECTIONS: dict[str, tuple[Any, Callable[[Settings], Any]]] = {
    "data": (DataSection, lambda s: {"dir": str(s.data_dir)}),
    "store": (StoreSection, lambda s: {"url": s.store_url}),
    "ray": (RaySection, lambda s: {"address": s.ray_address or ""}),
    "pipeline": (PipelineSettings, lambda s: s.pipeline),
    "time": (TimeSettings, lambda s: s.time),
    "detector": (DetectorSection, lambda s: s.detector.to_dict()),
    "llm": (LLMConfig, lambda s: s.llm),
    "risk": (RiskSection, _risk),
    "signoff": (SignoffSettings, lambda s: s.decisions.signoff),
    "news": (NewsSection, lambda s: {"trusted_sources": sorted(s.decisions.news.trusted_sources)}),
    "memory": (MemorySection, lambda s: dataclasses.asdict(s.decisions.memory)),
    "panel": (PanelSection, lambda s: {**dataclasses.asdict(s.decisions.panel),
                                       "members": list(s.decisions.panel.members)}),
    "watchdog": (WatchdogConfig, lambda s: load_watchdog_config(s.table("watchdog"))),
    "telemetry": (TelemetrySettings, lambda s: telemetry_settings(s.table("telemetry"))),
}


def sections() -> dict[str, tuple[Any, Callable[[Settings], Any]]]:
    """Every known section: the domain's and those runtime layers registered."""
    return {**DOMAIN_SECTIONS, **registered_sections()}


def _flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in values.items():
        if isinstance(v, Mapping) and v:
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _source(settings: Settings, section: str, key: str) -> dict[str, Any]:
    """Where ``section.key`` came from: its own origin, else its nearest set parent's."""
    parts = f"{section}.{key}".split(".")
    for n in range(len(parts), 1, -1):
        origin = settings.origins.get(".".join(parts[:n]))
        if origin is not None:
            kind = "env" if origin.startswith("TRIPWIRE_") else "file"
            return {"source": kind, "from": origin}
    return {"source": "default"}


def effective(settings: Settings) -> dict[str, dict[str, dict[str, Any]]]:
    """section -> dotted key -> {"value", "source", "from"?}, secrets redacted.

    Raises ValueError (naming the key and variable) when an owned section is invalid.
    """
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for name, (_model, load) in sections().items():
        values = redact(name, _dump(settings.named_call(load, settings)))
        out[name] = {key: {"value": redact(key.rsplit(".", 1)[-1], v),
                           **_source(settings, name, key)}
                     for key, v in _flatten(values).items()}
    return out


def schema() -> dict[str, Any]:
    """The JSON Schema of the config file: every section's model, $defs hoisted to the root."""
    props: dict[str, Any] = {}
    defs: dict[str, Any] = {}
    for name, (model, _load) in sections().items():
        s = json_schema(model)
        defs.update(s.pop("$defs", {}))
        props[name] = s
    out: dict[str, Any] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Tripwire configuration",
        "description": ("One TOML file; every key may be overridden by the environment "
                        "variable TRIPWIRE_<SECTION>__<KEY> (nested tables: more __)."),
        "type": "object", "properties": props, "additionalProperties": False}
    if defs:
        out["$defs"] = defs
    return out


# -- the commands ----------------------------------------------------------------------------

def cmd_show(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    try:
        settings = load_settings(args.config)
        shown = effective(settings)
    except ValueError as exc:
        print(f"tripwire config show: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"file": settings.file, "sections": shown}))
        return 0
    table = Table(title=f"Effective configuration ({settings.file or 'no file'})")
    for col in ("key", "value", "source"):
        table.add_column(col, overflow="fold")
    for name, keys in shown.items():
        for key, v in keys.items():
            where = v["source"] + (f" {v['from']}" if "from" in v else "")
            table.add_row(f"{name}.{key}", json.dumps(v["value"]), where)
    Console().print(table)
    n_set = sum(1 for keys in shown.values() for v in keys.values() if v["source"] != "default")
    Console().print(f"{sum(len(k) for k in shown.values())} keys in {len(shown)} sections; "
                    f"{n_set} set by the file or the environment.")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    print(json.dumps(schema(), indent=None if args.json else 2))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="the effective settings and their JSON Schema")
    cfg = p.add_subparsers(dest="config_command", required=True)
    show = cfg.add_parser("show", help="every key's effective value and where it came from "
                          "(default, file, env); secrets redacted")
    add_config(show)
    add_json(show)
    show.set_defaults(func=cmd_show)
    sch = cfg.add_parser("schema", help="the JSON Schema of the config file")
    add_json(sch, "one line (default: indented)")
    sch.set_defaults(func=cmd_schema)
