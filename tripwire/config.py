"""Settings: one TOML file plus ``TRIPWIRE_*`` environment overrides, validated at start.

Precedence, lowest first: built-in defaults, the TOML file (``--config`` or
``TRIPWIRE_CONFIG``), then environment variables named ``TRIPWIRE_<SECTION>__<KEY>``
(nested tables with more ``__``), whose values are read as TOML scalars::

    TRIPWIRE_PIPELINE__SHARDS=4
    TRIPWIRE_DETECTOR__RETURNS__THRESHOLD=7.5
    TRIPWIRE_STORE__URL=http://default:secret@db:8123/tripwire

A bad value stops start-up with a message naming the key and where it came from.

>>> s = load_settings(env={"TRIPWIRE_PIPELINE__SHARDS": "3", "TRIPWIRE_DATA__DIR": "/tmp/tw"})
>>> s.pipeline.shards, s.store_url
(3, 'chdb:///tmp/tw/ticks')
>>> load_settings(env={"TRIPWIRE_PIPELINE__SHARDS": "zero"})
Traceback (most recent call last):
...
ValueError: pipeline.shards must be an integer >= 1, got 'zero' (from TRIPWIRE_PIPELINE__SHARDS)
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from tripwire.decisions.config import DecisionConfig, load_decision_config
from tripwire.detect.config import DetectorConfig
from tripwire.llm.config import LLMConfig, load_llm_config

ENV_PREFIX = "TRIPWIRE_"
OWNED_TABLES = ("serve", "watchdog", "telemetry")  # validated by their own modules


@dataclass(frozen=True, slots=True)
class PipelineSettings:
    """The data plane's bounds (see actors.pipeline)."""

    shards: int = 2
    batch_rows: int = 50_000
    batch_ms: float = 5.0
    max_inflight: int = 4
    buffer_ticks: int = 2_000_000
    sink_flush_rows: int = 100_000
    sink_flush_ms: int = 1_000


_PIPELINE_MIN = {"batch_ms": 0.0, "sink_flush_ms": 0}


@dataclass(frozen=True, slots=True)
class TimeSettings:
    """``[time]``: the window a timestamp must fall in to be believed (ticks, news, incidents).

    Live (wall clock): at most ``max_future_skew_s`` ahead of the wall clock and at most
    ``max_age_s`` behind it. Market time (a replay, the demo, backtests): at most
    ``market_max_skew_s`` ahead of the feed's market clock (see tripwire.feeds.validate for
    the rule that keeps one outlier from moving that clock); no age bound on market time.
    """

    max_future_skew_s: float = 5.0  # exchange clocks and ours disagree by ms, not seconds
    max_age_s: float = 86_400.0  # a day: older data is a backfill, not a live feed
    # One POSTed replay batch spans minutes to hours of market time (50,000 ticks of the
    # demo's quiet hours is ~80 min) and news is posted ahead of its block's ticks.
    market_max_skew_s: float = 21_600.0


def _time(table: Any) -> TimeSettings:
    if not isinstance(table, dict):
        raise ValueError(f"time must be a table ([time]), got {table!r}")
    names = {f.name for f in fields(TimeSettings)}
    for key, value in table.items():
        if key not in names:
            raise ValueError(f"time.{key} is not a known key of [time] "
                             f"(known: {', '.join(sorted(names))})")
        if isinstance(value, bool) or not isinstance(value, int | float) or not (
                0 < value <= 10 * 365 * 86_400):
            raise ValueError(f"time.{key} must be a number of seconds in (0, 315360000], "
                             f"got {value!r}")
    return TimeSettings(**{k: float(v) for k, v in table.items()})


@dataclass(frozen=True, slots=True)
class Settings:
    data_dir: Path = Path("data")
    store_url: str = ""  # "" -> chdb:///<data_dir>/ticks
    ray_address: str | None = None
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    pipeline: PipelineSettings = field(default_factory=PipelineSettings)
    llm: LLMConfig = field(default_factory=lambda: load_llm_config({}))
    decisions: DecisionConfig = field(default_factory=DecisionConfig)
    time: TimeSettings = field(default_factory=TimeSettings)
    # Tables validated by the module that owns them ([serve] by serve_apps.config,
    # [watchdog] by tripwire.watchdog, [telemetry] by tripwire.telemetry): raw, as read.
    tables: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def table(self, name: str) -> dict[str, Any]:
        """A raw owned table (``serve``, ``watchdog``, ``telemetry``); {} when absent."""
        return dict(self.tables.get(name, {}))


def _scalar(text: str) -> Any:
    """A TOML scalar (``7``, ``7.5``, ``true``, ``"x"``), or the bare text as a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _env_overrides(env: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    tree: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for name, text in env.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name or name == "TRIPWIRE_CONFIG":
            continue
        path = [p.lower() for p in name[len(ENV_PREFIX):].split("__")]
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = _scalar(text)
        origin[".".join(path)] = name
    return tree, origin


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_settings(
    path: str | os.PathLike | None = None, env: Mapping[str, str] | None = None
) -> Settings:
    env = os.environ if env is None else env
    path = path or env.get("TRIPWIRE_CONFIG") or None
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ValueError(f"config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"config file {path} is not valid TOML: {exc}") from None
    overrides, origin = _env_overrides(env)
    data = _merge(data, overrides)
    try:
        return _build(data)
    except ValueError as exc:
        msg = str(exc)
        key = next((k for k in sorted(origin, key=len, reverse=True) if msg.startswith(k)), None)
        raise ValueError(f"{msg} (from {origin[key]})" if key else msg) from None


def _build(data: dict[str, Any]) -> Settings:
    known = {"data", "store", "ray", "detector", "pipeline", "llm", "risk", "signoff", "news",
             "time", *OWNED_TABLES}
    for section in data:
        if section not in known:
            names = ", ".join(sorted(known))
            raise ValueError(f"{section} is not a config section (known: {names})")
    data_dir = Path(_get(data, "data", "dir", str, "data"))
    store_url = _get(data, "store", "url", str, "") or f"chdb://{data_dir.resolve() / 'ticks'}"
    ray_address = _get(data, "ray", "address", str, "") or None
    detector = DetectorConfig.from_dict(data.get("detector", {}))
    pipeline = _pipeline(data.get("pipeline", {}))
    llm = load_llm_config(data.get("llm", {}))
    decisions = load_decision_config(data.get("risk", {}), data.get("signoff", {}),
                                     data.get("news", {}))
    tables = {}
    for name in OWNED_TABLES:
        table = data.get(name, {})
        if not isinstance(table, dict):
            raise ValueError(f"{name} must be a table ([{name}]), got {table!r}")
        tables[name] = table
    time = _time(data.get("time", {}))
    return Settings(data_dir, store_url, ray_address, detector, pipeline, llm, decisions,
                    time, tables)


def _get(data: dict[str, Any], section: str, key: str, typ: type, default: Any) -> Any:
    table = data.get(section, {})
    extra = set(table) - {key}
    if extra:
        raise ValueError(f"{section}.{sorted(extra)[0]} is not a known key of [{section}]")
    value = table.get(key, default)
    if not isinstance(value, typ):
        raise ValueError(f"{section}.{key} must be a {typ.__name__}, got {value!r}")
    return value


def _pipeline(table: dict[str, Any]) -> PipelineSettings:
    names = {f.name: f for f in fields(PipelineSettings)}
    for key, value in table.items():
        if key not in names:
            raise ValueError(f"pipeline.{key} is not a known key of [pipeline]")
        is_float = names[key].type == "float"
        lo = _PIPELINE_MIN.get(key, 1)
        ok_type = (int, float) if is_float else (int,)
        if isinstance(value, bool) or not isinstance(value, ok_type) or value < lo:
            kind = "a number" if is_float else "an integer"
            raise ValueError(f"pipeline.{key} must be {kind} >= {lo}, got {value!r}")
    return PipelineSettings(**table)
