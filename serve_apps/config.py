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

from dataclasses import dataclass, fields
from typing import Any

from tripwire.config import Settings
from tripwire.model import Clock, SimClock, SystemClock

_BOUNDS: dict[str, tuple[float, float]] = {
    "port": (1, 65_535), "ingress_replicas": (1, 64), "triage_min_replicas": (1, 64),
    "triage_max_replicas": (1, 64), "triage_max_ongoing": (1, 1_000),
    "max_ongoing_requests": (1, 10_000), "signoff_workers": (1, 64), "shards": (1, 1_024),
    "heartbeat_s": (0.05, 3_600.0), "replica_cpus": (0.0, 64.0),
    "shard_max_restarts": (0, 1_000), "shard_checkpoint_batches": (1, 1_000_000),
    "shard_checkpoint_s": (0.01, 3_600.0),
}


@dataclass(frozen=True)
class ServeConfig:
    host: str = "127.0.0.1"
    port: int = 8000
    ingress_replicas: int = 1
    max_ongoing_requests: int = 64  # per ingress replica; beyond it Serve queues, then 503s
    triage_min_replicas: int = 1
    triage_max_replicas: int = 2
    triage_max_ongoing: int = 4  # per triage replica (LLM calls are slow: keep it small)
    signoff_workers: int = 2  # decisions run concurrently inside the sign-off replica
    shards: int = 2
    heartbeat_s: float = 1.0
    # A killed shard actor is restarted by Ray up to this many times and restored from its
    # last checkpoint, taken every this many batches or seconds (whichever comes first).
    shard_max_restarts: int = 3
    shard_checkpoint_batches: int = 20
    shard_checkpoint_s: float = 5.0
    replica_cpus: float = 0.0  # 0 fits a laptop; give real CPUs on a cluster
    store_ticks: bool = True
    # "system": decisions run on wall time (live). "market": on the ticks' own time (a
    # replay or the demo at accelerated speed: price and verdict ages, approval expiry and
    # cool-downs are then measured in market time, as in a backtest).
    clock: str = "system"
    # The symbols `serve deploy` (serve_apps.deploy) serves when its args name none; the
    # demo and the jobs take theirs from their feed.
    symbols: tuple[str, ...] = ()

    @classmethod
    def from_table(cls, table: dict[str, Any]) -> ServeConfig:
        known = {f.name: f for f in fields(cls)}
        table = dict(table)
        if "symbols" in table:
            table["symbols"] = _symbols(table["symbols"])
        for key, value in table.items():
            if key == "symbols":
                continue
            if key not in known:
                raise ValueError(f"serve.{key} is not a known key of [serve] (known: "
                                 f"{', '.join(sorted(known))})")
            default = getattr(cls, key)
            if isinstance(default, bool) or isinstance(default, str):
                if not isinstance(value, type(default)):
                    raise ValueError(f"serve.{key} must be a {type(default).__name__}, "
                                     f"got {value!r}")
                continue
            lo, hi = _BOUNDS[key]
            kind = int if isinstance(default, int) else (int, float)
            if isinstance(value, bool) or not isinstance(value, kind) or not lo <= value <= hi:
                what = "an integer" if kind is int else "a number"
                raise ValueError(f"serve.{key} must be {what} in [{lo:g}, {hi:g}], got {value!r}")
        cfg = cls(**table)
        if cfg.clock not in ("system", "market"):
            raise ValueError(f"serve.clock must be 'system' or 'market', got {cfg.clock!r}")
        if cfg.triage_min_replicas > cfg.triage_max_replicas:
            raise ValueError("serve.triage_min_replicas must be <= serve.triage_max_replicas")
        return cfg

    @classmethod
    def from_settings(cls, settings: Settings) -> ServeConfig:
        table = settings.table("serve")
        table.setdefault("shards", settings.pipeline.shards)
        return cls.from_table(table)


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
