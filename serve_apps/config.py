"""``[serve]``: where the app listens and how its deployments scale.

>>> from tripwire.config import load_settings
>>> c = ServeConfig.from_settings(load_settings(env={"TRIPWIRE_SERVE__PORT": "8100"}))
>>> c.host, c.port, c.triage_max_replicas
('127.0.0.1', 8100, 2)
>>> ServeConfig.from_table({"port": 0})
Traceback (most recent call last):
...
ValueError: serve.port must be an integer in [1, 65535], got 0
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator, model_validator
from pydantic.dataclasses import dataclass

from tripwire.config import Settings, register_section
from tripwire.config_model import STRICT, validate
from tripwire.model import Clock, SimClock, SystemClock


def _int(default: int, lo: int, hi: int) -> Any:
    return Field(default, ge=lo, le=hi)


def _num(default: float, lo: float, hi: float) -> Any:
    return Field(default, ge=lo, le=hi, allow_inf_nan=False)


# A pydantic dataclass: validated like every section model, and still a dataclass that
# callers copy with dataclasses.replace (the demo, the live job).
@dataclass(frozen=True, config=STRICT)
class ServeConfig:
    """``[serve]``: where the app listens and how its deployments scale."""

    host: str = "127.0.0.1"
    port: int = _int(8000, 1, 65_535)
    ingress_replicas: int = _int(1, 1, 64)
    # per ingress replica; beyond it Serve queues, then 503s. An open /v1/stream is one.
    max_ongoing_requests: int = _int(64, 1, 10_000)
    triage_min_replicas: int = _int(1, 1, 64)
    triage_max_replicas: int = _int(2, 1, 64)
    triage_max_ongoing: int = _int(4, 1, 1_000)  # per triage replica (LLM calls are slow)
    signoff_workers: int = _int(2, 1, 64)  # decisions run concurrently in the sign-off replica
    shards: int = _int(2, 1, 1_024)
    heartbeat_s: float = _num(1.0, 0.05, 3_600.0)
    # A killed shard actor is restarted by Ray up to this many times and restored from its
    # last checkpoint, taken every this many batches or seconds (whichever comes first).
    shard_max_restarts: int = _int(3, 0, 1_000)
    shard_checkpoint_batches: int = _int(20, 1, 1_000_000)
    shard_checkpoint_s: float = _num(5.0, 0.01, 3_600.0)
    replica_cpus: float = _num(0.0, 0.0, 64.0)  # 0 fits a laptop; give real CPUs on a cluster
    store_ticks: bool = True
    # "system": decisions run on wall time (live). "market": on the ticks' own time (a
    # replay or the demo at accelerated speed: price and verdict ages, approval expiry and
    # cool-downs are then measured in market time, as in a backtest).
    clock: str = Field("system", json_schema_extra={"expect": "'system' or 'market'",
                                                    "enum": ["system", "market"]})
    # The symbols `serve deploy` (serve_apps.deploy) serves when its args name none; the
    # demo and the jobs take theirs from their feed.
    symbols: tuple[str, ...] = ()

    @field_validator("symbols", mode="before")
    @classmethod
    def _symbol_list(cls, value: Any) -> tuple[str, ...]:
        return _symbols(value)

    @field_validator("clock")
    @classmethod
    def _clock(cls, value: str) -> str:
        if value not in ("system", "market"):
            raise ValueError(f"serve.clock must be 'system' or 'market', got {value!r}")
        return value

    @model_validator(mode="after")
    def _replicas(self) -> ServeConfig:
        if self.triage_min_replicas > self.triage_max_replicas:
            raise ValueError("serve.triage_min_replicas must be <= serve.triage_max_replicas")
        return self

    @classmethod
    def from_table(cls, table: dict[str, Any]) -> ServeConfig:
        return validate(cls, table, "serve")

    @classmethod
    def from_settings(cls, settings: Settings) -> ServeConfig:
        """``[serve]`` of ``settings``; a bad value names its key and variable."""
        table = settings.table("serve")
        table.setdefault("shards", settings.pipeline.shards)
        try:
            return cls.from_table(table)
        except ValueError as exc:
            raise settings.named(exc) from None


def _symbols(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list | tuple) or not all(
            isinstance(v, str) and v for v in value):
        raise ValueError(f"serve.symbols must be a list of symbol names, got {value!r}")
    return tuple(value)


def make_clock(config: ServeConfig) -> Clock:
    """Wall time, or market time that the ticks move (``[serve] clock``)."""
    return SimClock(0) if config.clock == "market" else SystemClock()


register_section("serve", ServeConfig, ServeConfig.from_settings)
