"""Settings: one TOML file plus ``TRIPWIRE_*`` environment overrides, validated at start.

Precedence, lowest first: built-in defaults, the TOML file (``--config`` or
``TRIPWIRE_CONFIG``), then environment variables named ``TRIPWIRE_<SECTION>__<KEY>``
(nested tables with more ``__``), whose values are read as TOML scalars::

    TRIPWIRE_PIPELINE__SHARDS=4
    TRIPWIRE_DETECTOR__RETURNS__THRESHOLD=7.5
    TRIPWIRE_STORE__URL=http://default:secret@db:8123/tripwire

A bad value stops start-up with a message naming the key and where it came from.

Every section is a pydantic model (:mod:`tripwire.config_model`): ``[data]``, ``[store]``,
``[ray]``, ``[pipeline]``, ``[time]`` here; ``[execution]`` (:mod:`tripwire.execution.config`),
``[engine]`` (:mod:`tripwire.engine.config`),
``[detector]`` (:class:`DetectorSection`, over
:class:`~tripwire.detect.config.DetectorConfig`), ``[llm]``, ``[risk]``/``[signoff]``/
``[news]`` in their modules; tables owned by other modules or layers (``[serve]``,
``[watchdog]``, ``[telemetry]``) are kept raw here and validated by their owners' models,
which :func:`register_section` makes known to ``tripwire config show`` and ``schema``.
:attr:`Settings.origins` says where each key's value came from (the file or a variable).

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from tripwire.config_model import Section, validate
from tripwire.decisions.config import DecisionConfig, load_decision_config
from tripwire.detect.config import DetectorConfig
from tripwire.engine.config import EngineSettings
from tripwire.execution.config import ExecutionSettings
from tripwire.llm.config import LLMConfig, load_llm_config

ENV_PREFIX = "TRIPWIRE_"
OWNED_TABLES = ("serve", "watchdog", "telemetry", "feeds")  # validated by their own modules
_SECONDS = {"kind": "a number of seconds"}
_TEN_YEARS_S = 10 * 365 * 86_400


class DataSection(Section):
    """``[data]``: where tripwire keeps its files (tick store, private PostgreSQL, ledger)."""

    dir: str = "data"


class StoreSection(Section):
    """``[store]``: the tick store's URL (``chdb:///path`` or ``http://...``); "" for the
    embedded chdb store under the data directory. May carry a password: redacted when
    shown."""

    url: str = ""


class RaySection(Section):
    """``[ray]``: the address of a Ray cluster to join; "" starts a local Ray."""

    address: str = ""


class PipelineSettings(Section):
    """``[pipeline]``: the data plane's bounds (see actors.pipeline)."""

    shards: int = Field(2, ge=1)
    batch_rows: int = Field(50_000, ge=1)
    batch_ms: float = Field(5.0, ge=0.0, allow_inf_nan=False)
    max_inflight: int = Field(4, ge=1)
    buffer_ticks: int = Field(2_000_000, ge=1)
    sink_flush_rows: int = Field(100_000, ge=1)
    sink_flush_ms: int = Field(1_000, ge=0)


class TimeSettings(Section):
    """``[time]``: the window a timestamp must fall in to be believed (ticks, news, incidents).

    Live (wall clock): at most ``max_future_skew_s`` ahead of the wall clock and at most
    ``max_age_s`` behind it. Market time (a replay, the demo, backtests): at most
    ``market_max_skew_s`` ahead of the feed's market clock (see tripwire.feeds.validate for
    the rule that keeps one outlier from moving that clock); no age bound on market time.
    """

    # exchange clocks and ours disagree by ms, not seconds
    max_future_skew_s: float = Field(5.0, gt=0, le=_TEN_YEARS_S, json_schema_extra=_SECONDS)
    # a day: older data is a backfill, not a live feed
    max_age_s: float = Field(86_400.0, gt=0, le=_TEN_YEARS_S, json_schema_extra=_SECONDS)
    # One POSTed replay batch spans minutes to hours of market time (50,000 ticks of the
    # demo's quiet hours is ~80 min) and news is posted ahead of its block's ticks.
    market_max_skew_s: float = Field(21_600.0, gt=0, le=_TEN_YEARS_S,
                                     json_schema_extra=_SECONDS)


def _time(table: Any) -> TimeSettings:
    return validate(TimeSettings, table, "time")


class DetectorSection(Section):
    """``[detector]``: :class:`~tripwire.detect.config.DetectorConfig` as a model.

    The detector's keys and messages are its module's own (``DetectorConfig.from_dict`` /
    ``to_dict``); this model carries the validated values, so the schema and ``config show``
    follow whatever keys that module defines.
    """

    model_config = Section.model_config | {"strict": False}

    values: dict[str, Any] = Field(default_factory=lambda: DetectorConfig().to_dict())

    @model_validator(mode="before")
    @classmethod
    def _through_detector_config(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and set(data) != {"values"}:
            data = {"values": DetectorConfig.from_dict(dict(data)).to_dict()}
        return data

    @property
    def config(self) -> DetectorConfig:
        return DetectorConfig.from_dict(self.values)

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """The detector table's shape, read off its defaults (types and nesting)."""
        return {"title": "DetectorSection", "type": "object",
                "description": (cls.__doc__ or "").strip().splitlines()[0],
                "properties": _schema_of(DetectorConfig().to_dict()),
                "additionalProperties": False}


def _schema_of(values: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            out[key] = {"type": "object", "properties": _schema_of(value),
                        "additionalProperties": False}
        else:
            kind = {bool: "boolean", int: "integer", float: "number", str: "string"}.get(
                type(value), "array" if isinstance(value, list | tuple) else "null")
            out[key] = {"type": kind, "default": list(value) if isinstance(value, tuple)
                        else value}
    return out


# name -> the model of a section whose table another module or layer owns (e.g. [serve] by
# serve_apps.config): for ``tripwire config show`` and ``schema``.
_REGISTERED: dict[str, Any] = {}


def register_section(name: str, model: Any, load: Any) -> None:
    """Make an owned section known: ``model`` its pydantic model, ``load(settings)`` its
    validated value (called by ``tripwire config show``)."""
    _REGISTERED[name] = (model, load)


def registered_sections() -> dict[str, Any]:
    return dict(_REGISTERED)


register_section("execution", ExecutionSettings, lambda s: s.execution)
register_section("engine", EngineSettings, lambda s: s.engine)


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
    # "section.key" -> where its value came from: "TRIPWIRE_..." (a variable) or the file's
    # path; keys not named here have their default.
    origins: Mapping[str, str] = field(default_factory=dict)
    file: str | None = None
    # [execution]: the broker every driver builds (tripwire.execution.factory.build_broker)
    execution: ExecutionSettings = field(default_factory=ExecutionSettings)
    # [engine]: the market reference symbol and the market state's bounds (tripwire.engine)
    engine: EngineSettings = field(default_factory=EngineSettings)

    def table(self, name: str) -> dict[str, Any]:
        """A raw owned table (``serve``, ``watchdog``, ``telemetry``, ``feeds``) or the raw
        ``[news]`` table; {} when absent."""
        return dict(self.tables.get(name, {}))

    def named(self, exc: ValueError) -> ValueError:
        """``exc`` with the variable its key came from, as load_settings names it."""
        return ValueError(with_origin(str(exc), self.origins))

    def named_call(self, fn: Any, *args: Any) -> Any:
        """``fn(*args)``; a ValueError it raises names the variable too (see :meth:`named`)."""
        try:
            return fn(*args)
        except ValueError as exc:
            raise self.named(exc) from None


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
    origins = {**{k: str(path) for k in _leaves(data)}, **origin}
    data = _merge(data, overrides)
    try:
        return _build(data, origins, None if path is None else str(path))
    except ValueError as exc:
        raise ValueError(with_origin(str(exc), origin)) from None


def with_origin(msg: str, origins: Mapping[str, str]) -> str:
    """``msg`` plus ``(from VAR)`` when it names a key an environment variable set."""
    env = {k: v for k, v in origins.items() if v.startswith(ENV_PREFIX)}
    key = next((k for k in sorted(env, key=len, reverse=True)
                if msg.startswith(k + " ") or msg.startswith(k + ":")
                or msg.startswith(k + ".") or msg.startswith(k + "[")), None)
    if key is None or f"(from {env[key]})" in msg:
        return msg
    return f"{msg} (from {env[key]})"


def _leaves(data: Mapping[str, Any], prefix: str = "") -> list[str]:
    out = []
    for k, v in data.items():
        name = f"{prefix}{k}"
        out.extend(_leaves(v, name + ".") if isinstance(v, Mapping) else [name])
    return out


def _build(data: dict[str, Any], origins: Mapping[str, str] | None = None,
           file: str | None = None) -> Settings:
    known = {"data", "store", "ray", "detector", "pipeline", "llm", "risk", "signoff", "news",
             "memory", "panel", "time", "execution", "engine", *OWNED_TABLES}
    for section in data:
        if section not in known:
            names = ", ".join(sorted(known))
            raise ValueError(f"{section} is not a config section (known: {names})")
    data_dir = Path(validate(DataSection, data.get("data", {}), "data").dir)
    store_url = (validate(StoreSection, data.get("store", {}), "store").url
                 or f"chdb://{data_dir.resolve() / 'ticks'}")
    ray_address = validate(RaySection, data.get("ray", {}), "ray").address or None
    detector = DetectorConfig.from_dict(data.get("detector", {}))
    pipeline = validate(PipelineSettings, data.get("pipeline", {}), "pipeline")
    llm = load_llm_config(data.get("llm", {}))
    decisions = load_decision_config(data.get("risk", {}), data.get("signoff", {}),
                                     data.get("news", {}), memory=data.get("memory", {}),
                                     panel=data.get("panel", {}))
    tables = {}
    for name in OWNED_TABLES:
        table = data.get(name, {})
        if not isinstance(table, dict):
            raise ValueError(f"{name} must be a table ([{name}]), got {table!r}")
        tables[name] = table
    # [news] is validated above (trust) and by its feeds' owner (tripwire.adapters.news:
    # sources, aliases, max_seen); kept raw too, so the drivers hand its aliases to the
    # news pollers and the webhook.
    tables["news"] = dict(data.get("news", {}))
    time = _time(data.get("time", {}))
    execution = validate(ExecutionSettings, data.get("execution", {}), "execution")
    engine = validate(EngineSettings, data.get("engine", {}), "engine")
    return Settings(data_dir, store_url, ray_address, detector, pipeline, llm, decisions,
                    time, tables, dict(origins or {}), file, execution, engine)
